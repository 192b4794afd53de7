#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "array.hpp"
#include "fraudcore/autoencoder.hpp"
#include "fraudcore/dense_kernels.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {

void bind_autoencoder(py::module_& m) {
  m.def("dense_gemm_isa", &dense_gemm_isa, "Instruction set of the float32 layer kernels.");
  py::class_<AutoEncoder>(m, "AutoEncoderModel", "Native autoencoder; see fraudcore.AutoEncoder.")
      .def(py::init<>())
      .def(
          "initialize",
          [](AutoEncoder& self, const py::array& X, const std::vector<Index>& layers, int activation,
             double dropout, double l2, double learning_rate, Index batch_size, bool float64,
             std::uint64_t seed, bool standardize) {
            FRAUDCORE_CHECK(activation >= 0 && activation <= 3, "unknown activation code " << activation);
            AutoEncoderParams p;
            p.layers = layers;
            p.activation = static_cast<Activation>(activation);
            p.dropout = dropout;
            p.l2 = l2;
            p.learning_rate = learning_rate;
            p.batch_size = batch_size;
            p.float64 = float64;
            p.seed = seed;
            with_matrix(X, [&](const auto& view) { self.initialize(view, p, standardize); });
          },
          py::arg("X"), py::arg("layers"), py::arg("activation"), py::arg("dropout"), py::arg("l2"),
          py::arg("learning_rate"), py::arg("batch_size"), py::arg("float64"), py::arg("seed"),
          py::arg("standardize"), "Fresh weights (and standardisation) for data like X.")
      .def(
          "train_epoch",
          [](AutoEncoder& self, const py::array& X, int n_threads) {
            double loss = 0.0;
            with_matrix(X, [&](const auto& view) { loss = self.train_epoch(view, n_threads); });
            return loss;
          },
          py::arg("X"), py::arg("n_threads"), "One shuffled pass over X; the mean training loss.")
      .def(
          "row_errors",
          [](const AutoEncoder& self, const py::array& X, int n_threads) {
            return per_row(X, [&](const auto& view, double* out) { self.row_errors(view, out, n_threads); });
          },
          py::arg("X"), py::arg("n_threads"), "Mean squared reconstruction error per row.")
      .def(
          "value_errors",
          [](const AutoEncoder& self, const py::array& X, int n_threads) {
            FRAUDCORE_CHECK(X.ndim() == 2, "X must be a 2-D array");
            py::array_t<double> out({static_cast<Index>(X.shape(0)), self.n_features()});
            double* dst = out.mutable_data();
            with_matrix(X, [&](const auto& view) { self.value_errors(view, dst, n_threads); });
            return out;
          },
          py::arg("X"), py::arg("n_threads"), "Squared reconstruction error of every value.")
      .def(
          "layer",
          [](const AutoEncoder& self, Index l) {
            const auto w = self.weights(l), b = self.biases(l);
            py::array_t<double> W({static_cast<Index>(b.size()), static_cast<Index>(w.size() / b.size())});
            std::copy(w.begin(), w.end(), W.mutable_data());
            return py::make_tuple(W, py::array_t<double>(static_cast<py::ssize_t>(b.size()), b.data()));
          },
          py::arg("l"), "(weights, biases) of layer l as float64 arrays.")
      .def_property_readonly("input_mean", [](const AutoEncoder& self) {
        return py::array_t<double>(static_cast<py::ssize_t>(self.input_mean().size()), self.input_mean().data());
      })
      .def_property_readonly("input_scale", [](const AutoEncoder& self) {
        return py::array_t<double>(static_cast<py::ssize_t>(self.input_scale().size()), self.input_scale().data());
      })
      .def_property_readonly("n_features", &AutoEncoder::n_features)
      .def_property_readonly("epochs_trained", &AutoEncoder::epochs_trained)
      .def_property_readonly(
          "settings",
          [](const AutoEncoder& self) {
            const AutoEncoderParams& p = self.params();
            py::dict d;
            d["layers"] = py::tuple(py::cast(p.layers));
            d["activation"] = static_cast<int>(p.activation);
            d["dropout"] = p.dropout;
            d["l2"] = p.l2;
            d["learning_rate"] = p.learning_rate;
            d["batch_size"] = p.batch_size;
            d["float64"] = p.float64;
            return d;
          },
          "What the network was initialised with: layers, activation code, dropout, l2, "
          "learning_rate, batch_size, float64.")
      .def("serialize", [](const AutoEncoder& self) { return py::bytes(self.serialize()); })
      .def_static(
          "deserialize",
          [](py::bytes data) { return AutoEncoder::deserialize(std::string_view(data)); },
          py::arg("data"));
}

}  // namespace fraudcore::bindings
