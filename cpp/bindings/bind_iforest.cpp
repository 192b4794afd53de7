#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "array.hpp"
#include "fraudcore/iforest.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {

void bind_iforest(py::module_& m) {
  py::class_<IsolationForest>(m, "IsolationForestModel",
                              "Native isolation forest; see fraudcore.IsolationForest.")
      .def(py::init<>())
      .def(
          "fit",
          [](IsolationForest& self, const py::array& X, int n_estimators, Index max_samples,
             Index max_features, bool bootstrap, int extension_level, std::uint64_t seed,
             int n_threads) {
            IsolationForestParams p;
            p.n_estimators = n_estimators;
            p.max_samples = max_samples;
            p.max_features = max_features;
            p.bootstrap = bootstrap;
            p.extension_level = extension_level;
            p.seed = seed;
            with_matrix(X, [&](const auto& view) { self.fit(view, p, n_threads); });
          },
          py::arg("X"), py::arg("n_estimators"), py::arg("max_samples"), py::arg("max_features"),
          py::arg("bootstrap"), py::arg("extension_level"), py::arg("seed"), py::arg("n_threads"),
          "Grow the forest on a 2-D float32/float64 array (GIL released).")
      .def(
          "score_samples",
          [](const IsolationForest& self, const py::array& X, int n_threads) {
            return per_row(X, [&](const auto& view, double* out) {
              self.score_samples(view, out, n_threads);
            });
          },
          py::arg("X"), py::arg("n_threads"),
          "-2^(-E[h(x)]/c(max_samples)) per row (GIL released).")
      .def(
          "mean_path_length",
          [](const IsolationForest& self, const py::array& X, int n_threads) {
            return per_row(X, [&](const auto& view, double* out) {
              self.mean_path_length(view, out, n_threads);
            });
          },
          py::arg("X"), py::arg("n_threads"), "E[h(x)] per row (GIL released).")
      .def(
          "feature_contributions",
          [](const IsolationForest& self, const py::array& X, int n_threads) {
            FRAUDCORE_CHECK(X.ndim() == 2, "X must be a 2-D array");
            py::array_t<double> out({X.shape(0), static_cast<py::ssize_t>(self.n_features())});
            double* dst = out.mutable_data();
            with_matrix(X, [&](const auto& view) { self.feature_contributions(view, dst, n_threads); });
            return out;
          },
          py::arg("X"), py::arg("n_threads"),
          "Each feature's depth-weighted share of the splits isolating each row (GIL released).")
      .def("serialize",
           [](const IsolationForest& self) { return py::bytes(self.serialize()); })
      .def_static(
          "deserialize",
          [](py::bytes data) { return IsolationForest::deserialize(std::string_view(data)); },
          py::arg("data"))
      .def_property_readonly("fitted", &IsolationForest::fitted)
      .def_property_readonly("n_features", &IsolationForest::n_features)
      .def_property_readonly("n_estimators", &IsolationForest::n_estimators)
      .def_property_readonly("max_samples", &IsolationForest::max_samples)
      .def_property_readonly("extension_level", &IsolationForest::extension_level)
      .def_property_readonly("n_nodes", &IsolationForest::n_nodes)
      .def(
          "export_tree",
          [](const IsolationForest& self, int t) {
            auto tree = self.export_tree(t);
            py::dict d;
            d["split"] = py::array_t<std::int32_t>(tree.split.size(), tree.split.data());
            d["left"] = py::array_t<std::int32_t>(tree.left.size(), tree.left.data());
            d["threshold"] = py::array_t<double>(tree.threshold.size(), tree.threshold.data());
            d["path"] = py::array_t<double>(tree.path.size(), tree.path.data());
            return d;
          },
          py::arg("t"), "Tree t as arrays: split, left (a leaf: itself), threshold, path.");
}

}  // namespace fraudcore::bindings
