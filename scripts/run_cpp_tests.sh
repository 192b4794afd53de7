#!/usr/bin/env bash
# Build and run the C++ unit tests twice: a Release build, then a Debug build
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Needs GoogleTest (Debian's libgtest-dev: installed here when missing, if we
# are root) and installs the build tools (cmake, ninja, cmeel-eigen for Eigen)
# into the active Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s libgtest-dev >/dev/null 2>&1 && [[ ! -f /usr/include/gtest/gtest.h ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgtest-dev >/dev/null
  else
    echo "run_cpp_tests: GoogleTest is missing; install libgtest-dev" >&2
    exit 1
  fi
fi
python -m pip install -q "cmake>=3.18" ninja "cmeel-eigen>=3.4"

run() {  # run NAME CMAKE_ARGS...
  local dir="build/cpp-tests-$1"
  shift
  cmake -S . -B "$dir" -G Ninja -DPython_EXECUTABLE="$(command -v python)" \
    -DFRAUDCORE_BUILD_PYTHON=OFF -DFRAUDCORE_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j 2
  ctest --test-dir "$dir" --output-on-failure -j 2
}

echo "== C++ tests (Release)"
run release -DCMAKE_BUILD_TYPE=Release
echo "== C++ tests (AddressSanitizer + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run sanitize -DCMAKE_BUILD_TYPE=Debug -DFRAUDCORE_SANITIZE=ON
