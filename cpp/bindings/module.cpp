// The fraudcore._core extension module: one bind_<concept>() per concept.
#include <pybind11/pybind11.h>

#include "fraudcore/error.hpp"
#include "fraudcore/features.hpp"
#include "fraudcore/parallel.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {
void bind_serialize(py::module_& m);
void bind_autoencoder(py::module_& m);
void bind_features(py::module_& m);
void bind_iforest(py::module_& m);
void bind_neighbors(py::module_& m);
void bind_online(py::module_& m);
void bind_tree_ensemble(py::module_& m);
}  // namespace fraudcore::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "fraudcore's native core (C++17, Eigen, OpenMP).";
  py::register_exception<fraudcore::FormatError>(m, "ModelFormatError", PyExc_ValueError);
  m.def("available_cores", &fraudcore::available_cores,
        "Number of processors this process may run on.");
  m.attr("MAX_ABS_AMOUNT") = fraudcore::kMaxAbsAmount;
  m.attr("MIN_ABS_AMOUNT") = fraudcore::kMinAbsAmount;
  m.def("resolve_n_threads", &fraudcore::resolve_n_threads, py::arg("n_jobs"),
        "Thread count for an n_jobs value (joblib convention: -1 = all cores).");
  fraudcore::bindings::bind_serialize(m);
  fraudcore::bindings::bind_iforest(m);
  fraudcore::bindings::bind_neighbors(m);
  fraudcore::bindings::bind_autoencoder(m);
  fraudcore::bindings::bind_features(m);
  fraudcore::bindings::bind_tree_ensemble(m);
  fraudcore::bindings::bind_online(m);
}
