# Third-party dependencies, all from package registries at build time:
#  - Eigen 3: PyPI's cmeel-eigen (a build requirement in pyproject.toml, so it
#    sits on the build environment's sys.path under cmeel.prefix/), or a
#    system package such as Debian's libeigen3-dev.
#  - OpenMP: the compiler's runtime (libgomp with GCC); Threads for the
#    plain threads a forked child runs parallel loops on.
#  - pybind11 (Python builds only): PyPI's pybind11, found via its CMake dir.

find_package(Python 3.9 COMPONENTS Interpreter REQUIRED)

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import os, sys; print(';'.join(p for p in (os.path.join(d, 'cmeel.prefix') for d in sys.path if d) if os.path.isdir(p)))"
  OUTPUT_VARIABLE FRAUDCORE_CMEEL_PREFIXES
  OUTPUT_STRIP_TRAILING_WHITESPACE)
find_package(Eigen3 3.3 CONFIG REQUIRED HINTS ${FRAUDCORE_CMEEL_PREFIXES})
message(STATUS "fraudcore: Eigen ${Eigen3_VERSION} from ${Eigen3_DIR}")

find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

if(FRAUDCORE_BUILD_PYTHON)
  find_package(Python 3.9 COMPONENTS Interpreter Development.Module REQUIRED)
  if(NOT pybind11_DIR)
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -m pybind11 --cmakedir
      OUTPUT_VARIABLE pybind11_DIR
      OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  find_package(pybind11 2.12 CONFIG REQUIRED)
endif()
