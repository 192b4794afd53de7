#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "array.hpp"
#include "fraudcore/tree_ensemble.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {
namespace {

template <class T>
std::vector<T> to_vector(const py::array_t<T, py::array::c_style | py::array::forcecast>& a,
                         const char* name) {
  FRAUDCORE_CHECK(a.ndim() == 1, name << " must be 1-D");
  return std::vector<T>(a.data(), a.data() + a.size());
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

}  // namespace

void bind_tree_ensemble(py::module_& m) {
  using IntArray = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;
  using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
  py::class_<TreeEnsemble>(m, "TreeEnsembleModel",
                           "Native gradient-boosted trees: raw scores and TreeSHAP contributions.")
      .def(py::init([](Index n_features, double baseline,
                       const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& tree_begin,
                       const IntArray& feature, const DoubleArray& threshold, const IntArray& left,
                       const IntArray& right, const DoubleArray& value, const DoubleArray& cover,
                       const py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>& missing_left) {
             TreeNodes nodes{to_vector(feature, "feature"), to_vector(threshold, "threshold"),
                             to_vector(left, "left"),       to_vector(right, "right"),
                             to_vector(value, "value"),     to_vector(cover, "cover"),
                             to_vector(missing_left, "missing_left")};
             return TreeEnsemble(n_features, baseline, to_vector(tree_begin, "tree_begin"), std::move(nodes));
           }),
           py::arg("n_features"), py::arg("baseline"), py::arg("tree_begin"), py::arg("feature"),
           py::arg("threshold"), py::arg("left"), py::arg("right"), py::arg("value"), py::arg("cover"),
           py::arg("missing_left"), "A validated ensemble from a flat node table (see tree_ensemble.hpp).")
      .def(
          "decision_function",
          [](const TreeEnsemble& self, const py::array& X, int n_threads) {
            return per_row(X, [&](const auto& view, double* out) {
              self.decision_function(view, out, n_threads);
            });
          },
          py::arg("X"), py::arg("n_threads"), "baseline + the leaf values each row reaches (GIL released).")
      .def(
          "contributions",
          [](const TreeEnsemble& self, const py::array& X, int n_threads) {
            FRAUDCORE_CHECK(X.ndim() == 2, "X must be a 2-D array");
            py::array_t<double> out({X.shape(0), static_cast<py::ssize_t>(self.n_features() + 1)});
            double* dst = out.mutable_data();
            with_matrix(X, [&](const auto& view) { self.contributions(view, dst, n_threads); });
            return out;
          },
          py::arg("X"), py::arg("n_threads"),
          "TreeSHAP values, n x (d + 1); the last column is the expected value (GIL released).")
      .def("serialize", [](const TreeEnsemble& self) { return py::bytes(self.serialize()); })
      .def_static(
          "deserialize",
          [](py::bytes data) { return TreeEnsemble::deserialize(std::string_view(data)); },
          py::arg("data"))
      .def_property_readonly("n_features", &TreeEnsemble::n_features)
      .def_property_readonly("n_trees", &TreeEnsemble::n_trees)
      .def_property_readonly("baseline", &TreeEnsemble::baseline)
      .def_property_readonly("expected_value", &TreeEnsemble::expected_value)
      .def(
          "export_nodes",
          [](const TreeEnsemble& self) {
            const TreeNodes& t = self.nodes();
            py::dict d;
            d["tree_begin"] = to_array(self.tree_begin());
            d["feature"] = to_array(t.feature);
            d["threshold"] = to_array(t.threshold);
            d["left"] = to_array(t.left);
            d["right"] = to_array(t.right);
            d["value"] = to_array(t.value);
            d["cover"] = to_array(t.cover);
            d["missing_left"] = to_array(t.missing_left);
            return d;
          },
          "The node table as arrays (tree_begin, feature, threshold, left, right, value, cover, "
          "missing_left).");
}

}  // namespace fraudcore::bindings
