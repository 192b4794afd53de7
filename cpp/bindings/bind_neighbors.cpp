#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "array.hpp"
#include "fraudcore/knn_detector.hpp"
#include "fraudcore/lof.hpp"
#include "fraudcore/neighbors.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {

namespace {

NeighborAlgorithm parse_algorithm(const std::string& name, Index n_rows, Index n_features, Index k) {
  if (name == "auto") return choose_neighbor_algorithm(n_rows, n_features, k);
  if (name == "brute") return NeighborAlgorithm::kBrute;
  if (name == "kd_tree") return NeighborAlgorithm::kKdTree;
  throw std::invalid_argument("algorithm must be 'auto', 'brute' or 'kd_tree', got '" + name + "'");
}

const char* algorithm_name(NeighborAlgorithm a) {
  return a == NeighborAlgorithm::kBrute ? "brute" : "kd_tree";
}

Index rows_of(const py::array& X) { return X.ndim() == 2 ? X.shape(0) : 0; }
Index cols_of(const py::array& X) { return X.ndim() == 2 ? X.shape(1) : 0; }

// The (distances, indices) arrays of a search, filled block by block.
struct NeighborArrays {
  py::array_t<double> dist;
  py::array_t<Index> ind;
  NeighborArrays(Index n, Index k) : dist({n, k}), ind({n, k}) {}
  NeighborConsumer consumer(Index k) {
    double* d_out = dist.mutable_data();
    Index* i_out = ind.mutable_data();
    return [=](Index count, const Index* rows, const double* d, const Index* i) {
      for (Index q = 0; q < count; ++q) {
        std::copy(d + q * k, d + (q + 1) * k, d_out + rows[q] * k);
        std::copy(i + q * k, i + (q + 1) * k, i_out + rows[q] * k);
      }
    };
  }
  py::tuple result() { return py::make_tuple(dist, ind); }
};

py::array_t<double> vector_array(const std::vector<double>& v) {
  return py::array_t<double>(static_cast<py::ssize_t>(v.size()), v.data());
}

}  // namespace

void bind_neighbors(py::module_& m) {
  py::class_<NeighborIndex>(m, "NeighborIndex",
                            "Exact k-nearest-neighbour index (brute force or k-d tree).")
      .def(py::init<>())
      .def(
          "fit",
          [](NeighborIndex& self, const py::array& X, double p, const std::string& algorithm,
             Index leaf_size, Index k_hint) {
            const auto a = parse_algorithm(algorithm, rows_of(X), cols_of(X), k_hint);
            const Metric metric = Metric::minkowski(p);
            with_matrix(X, [&](const auto& view) { self.fit(view, metric, a, leaf_size); });
          },
          py::arg("X"), py::arg("p") = 2.0, py::arg("algorithm") = "auto",
          py::arg("leaf_size") = 30, py::arg("k_hint") = 5)
      .def(
          "kneighbors",
          [](const NeighborIndex& self, const py::array& X, Index k, int n_threads) {
            FRAUDCORE_CHECK(k >= 1 && k <= self.n_rows(),
                            "n_neighbors must be in [1, " << self.n_rows() << "], got " << k);
            NeighborArrays out(rows_of(X), k);
            auto consume = out.consumer(k);
            with_matrix(X, [&](const auto& view) { self.kneighbors(view, k, n_threads, consume); });
            return out.result();
          },
          py::arg("X"), py::arg("k"), py::arg("n_threads") = 1,
          "(distances, indices) of the k nearest fitted rows of each row of X.")
      .def(
          "kneighbors_fitted",
          [](const NeighborIndex& self, Index k, int n_threads) {
            NeighborTable table;
            {
              py::gil_scoped_release release;
              table = self.kneighbors_fitted(k, n_threads);
            }
            NeighborArrays out(self.n_rows(), k);
            std::copy(table.dist.begin(), table.dist.end(), out.dist.mutable_data());
            std::copy(table.ind.begin(), table.ind.end(), out.ind.mutable_data());
            return out.result();
          },
          py::arg("k"), py::arg("n_threads") = 1,
          "(distances, indices) of each fitted row's k nearest other rows.")
      .def_property_readonly("algorithm",
                             [](const NeighborIndex& self) { return algorithm_name(self.algorithm()); })
      .def_property_readonly("n_rows", &NeighborIndex::n_rows)
      .def_property_readonly("n_features", &NeighborIndex::n_features)
      .def_static("kernel_isa", &BruteForceIndex::kernel_isa,
                  "Instruction set of the brute-force screening kernel in use.")
      .def_static("supported_isas", &BruteForceIndex::supported_isas,
                  "Screening kernels this CPU can run, widest first.")
      .def_static("use_isa", &BruteForceIndex::use_isa, py::arg("isa"),
                  "Use that screening kernel from now on (tests, benchmarks).");

  py::class_<LocalOutlierFactor>(m, "LocalOutlierFactorModel",
                                 "Native LOF; see fraudcore.LocalOutlierFactor.")
      .def(py::init<>())
      .def(
          "fit",
          [](LocalOutlierFactor& self, const py::array& X, Index n_neighbors, double p,
             const std::string& algorithm, Index leaf_size, int n_threads) {
            const auto a = parse_algorithm(algorithm, rows_of(X), cols_of(X), n_neighbors);
            const Metric metric = Metric::minkowski(p);
            with_matrix(X, [&](const auto& view) {
              self.fit(view, metric, a, leaf_size, n_neighbors, n_threads);
            });
          },
          py::arg("X"), py::arg("n_neighbors"), py::arg("p"), py::arg("algorithm"),
          py::arg("leaf_size"), py::arg("n_threads"))
      .def(
          "score_samples",
          [](const LocalOutlierFactor& self, const py::array& X, int n_threads) {
            return per_row(X, [&](const auto& view, double* out) {
              self.score_samples(view, out, n_threads);
            });
          },
          py::arg("X"), py::arg("n_threads"))
      .def(
          "neighbor_deviations",
          [](const LocalOutlierFactor& self, const py::array& X, int n_threads) {
            FRAUDCORE_CHECK(X.ndim() == 2, "X must be a 2-D array");
            py::array_t<double> out({X.shape(0), X.shape(1)});
            double* dst = out.mutable_data();
            with_matrix(X, [&](const auto& view) { self.neighbor_deviations(view, dst, n_threads); });
            return out;
          },
          py::arg("X"), py::arg("n_threads"),
          "|x - mean of its k nearest fitted rows| per feature (GIL released).")
      .def_property_readonly("negative_outlier_factor",
                             [](const LocalOutlierFactor& self) {
                               return vector_array(self.negative_outlier_factor());
                             })
      .def_property_readonly("local_reachability_density",
                             [](const LocalOutlierFactor& self) {
                               return vector_array(self.local_reachability_density());
                             })
      .def_property_readonly("n_neighbors", &LocalOutlierFactor::n_neighbors)
      .def_property_readonly("algorithm",
                             [](const LocalOutlierFactor& self) {
                               return algorithm_name(self.index().algorithm());
                             })
      .def_property_readonly("n_rows", [](const LocalOutlierFactor& self) { return self.index().n_rows(); })
      .def_property_readonly("n_features",
                             [](const LocalOutlierFactor& self) { return self.index().n_features(); })
      .def_property_readonly("p", [](const LocalOutlierFactor& self) { return self.index().metric().p(); })
      .def_property_readonly("leaf_size",
                             [](const LocalOutlierFactor& self) { return self.index().leaf_size(); })
      .def("serialize", [](const LocalOutlierFactor& self) { return py::bytes(self.serialize()); })
      .def_static(
          "deserialize",
          [](py::bytes data) { return LocalOutlierFactor::deserialize(std::string_view(data)); },
          py::arg("data"));

  py::class_<KnnDetector>(m, "KNNDetectorModel", "Native k-NN detector; see fraudcore.KNNDetector.")
      .def(py::init<>())
      .def(
          "fit",
          [](KnnDetector& self, const py::array& X, Index n_neighbors, int method, double p,
             const std::string& algorithm, Index leaf_size, int n_threads) {
            FRAUDCORE_CHECK(method >= 0 && method <= 2, "unknown method code " << method);
            const auto a = parse_algorithm(algorithm, rows_of(X), cols_of(X), n_neighbors);
            const Metric metric = Metric::minkowski(p);
            with_matrix(X, [&](const auto& view) {
              self.fit(view, metric, a, leaf_size, n_neighbors, static_cast<KnnAggregate>(method),
                       n_threads);
            });
          },
          py::arg("X"), py::arg("n_neighbors"), py::arg("method"), py::arg("p"),
          py::arg("algorithm"), py::arg("leaf_size"), py::arg("n_threads"))
      .def(
          "distances",
          [](const KnnDetector& self, const py::array& X, int n_threads) {
            return per_row(X, [&](const auto& view, double* out) {
              self.distances(view, out, n_threads);
            });
          },
          py::arg("X"), py::arg("n_threads"))
      .def_property_readonly("fitted_distances",
                             [](const KnnDetector& self) {
                               return vector_array(self.fitted_distances());
                             })
      .def_property_readonly("n_neighbors", &KnnDetector::n_neighbors)
      .def_property_readonly("algorithm",
                             [](const KnnDetector& self) {
                               return algorithm_name(self.index().algorithm());
                             })
      .def_property_readonly("n_rows", [](const KnnDetector& self) { return self.index().n_rows(); })
      .def_property_readonly("n_features", [](const KnnDetector& self) { return self.index().n_features(); })
      .def_property_readonly("p", [](const KnnDetector& self) { return self.index().metric().p(); })
      .def_property_readonly("leaf_size", [](const KnnDetector& self) { return self.index().leaf_size(); })
      .def_property_readonly("method", [](const KnnDetector& self) { return static_cast<int>(self.aggregate()); },
                             "0 = largest, 1 = mean, 2 = median.")
      .def("serialize", [](const KnnDetector& self) { return py::bytes(self.serialize()); })
      .def_static(
          "deserialize",
          [](py::bytes data) { return KnnDetector::deserialize(std::string_view(data)); },
          py::arg("data"));
}

}  // namespace fraudcore::bindings
