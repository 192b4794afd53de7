#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <vector>

#include "fraudcore/error.hpp"
#include "fraudcore/online.hpp"

namespace py = pybind11;

namespace fraudcore::bindings {

namespace {

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::vector<double> to_vector(const Doubles& a) {
  FRAUDCORE_CHECK(a.ndim() == 1, "expected a 1-D array, got " << a.ndim() << " dimension(s)");
  return std::vector<double>(a.data(), a.data() + a.shape(0));
}

// OnlineScoring and the Python objects of the models it borrows, which this
// keeps alive.
struct OnlineScoringModel {
  std::vector<py::object> models;
  std::unique_ptr<OnlineScoring> core;
};

OnlineDetector detector_of(const py::object& model) {
  OnlineDetector det;
  if (py::isinstance<IsolationForest>(model)) {
    det.forest = model.cast<const IsolationForest*>();
  } else if (py::isinstance<LocalOutlierFactor>(model)) {
    det.lof = model.cast<const LocalOutlierFactor*>();
  } else if (py::isinstance<KnnDetector>(model)) {
    det.knn = model.cast<const KnnDetector*>();
  } else if (py::isinstance<AutoEncoder>(model)) {
    det.autoencoder = model.cast<const AutoEncoder*>();
  } else {
    throw std::invalid_argument("models must be native IsolationForest, LocalOutlierFactor, "
                                "KNNDetector or AutoEncoder models");
  }
  return det;
}

}  // namespace

void bind_online(py::module_& m) {
  py::class_<OnlineScoringModel>(m, "OnlineScoringModel",
                                 "One feature row's FraudDetector score in one call; see "
                                 "fraudcore.OnlineScorer.")
      .def(py::init([](const Doubles& grid, const py::list& models,
                       const std::vector<bool>& quantile_input,
                       const std::vector<Doubles>& training_sorted,
                       const std::vector<int>& normalization, const std::vector<double>& a,
                       const std::vector<double>& b,
                       const std::vector<std::optional<Doubles>>& normal_tables,
                       const std::vector<double>& weights, const Doubles& reference,
                       const py::object& supervised, double threshold) {
             FRAUDCORE_CHECK(grid.ndim() == 2, "grid must be a 2-D array (quantiles x features)");
             const std::size_t k = models.size();
             FRAUDCORE_CHECK(quantile_input.size() == k && training_sorted.size() == k &&
                                 normalization.size() == k && a.size() == k && b.size() == k &&
                                 normal_tables.size() == k && weights.size() == k,
                             "give every per-detector argument one value per model");
             auto out = std::make_unique<OnlineScoringModel>();
             std::vector<OnlineDetector> detectors;
             for (std::size_t i = 0; i < k; ++i) {
               const py::object model = models[i];
               OnlineDetector det = detector_of(model);
               out->models.push_back(model);
               det.quantile_input = quantile_input[i];
               det.training_sorted = to_vector(training_sorted[i]);
               FRAUDCORE_CHECK(normalization[i] >= 0 && normalization[i] <= 3,
                               "unknown normalization code " << normalization[i]);
               det.normalization = static_cast<Normalization>(normalization[i]);
               det.a = a[i];
               det.b = b[i];
               if (normal_tables[i]) det.normal_table = to_vector(*normal_tables[i]);
               det.weight = weights[i];
               detectors.push_back(std::move(det));
             }
             const TreeEnsemble* stage = nullptr;
             if (!supervised.is_none()) {
               stage = supervised.cast<const TreeEnsemble*>();
               out->models.push_back(supervised);
             }
             out->core = std::make_unique<OnlineScoring>(
                 QuantileGrid(grid.data(), grid.shape(0), grid.shape(1)), std::move(detectors),
                 to_vector(reference), stage, threshold);
             return out;
           }),
           py::arg("grid"), py::arg("models"), py::arg("quantile_input"),
           py::arg("training_sorted"), py::arg("normalization"), py::arg("a"), py::arg("b"),
           py::arg("normal_tables"), py::arg("weights"), py::arg("reference"),
           py::arg("supervised"), py::arg("threshold"))
      .def(
          "score",
          [](const OnlineScoringModel& self, const Doubles& x, const Doubles& log_x,
             py::array_t<double, py::array::c_style> quantile_x) {
            const OnlineScoring& core = *self.core;
            const Index d = core.n_features();
            FRAUDCORE_CHECK(x.ndim() == 1 && x.shape(0) == d && log_x.ndim() == 1 &&
                                log_x.shape(0) == d && quantile_x.ndim() == 1 &&
                                quantile_x.shape(0) == d,
                            "x, log_x and quantile_x must hold the " << d << " features");
            thread_local OnlineResult result;
            double* quantile = quantile_x.mutable_data();
            {
              py::gil_scoped_release release;
              core.score(x.data(), log_x.data(), quantile, result);
            }
            py::tuple out(3 + result.normed.size());
            out[0] = py::float_(result.final_score);
            out[1] = py::float_(result.risk);
            out[2] = py::float_(result.confidence);
            for (std::size_t i = 0; i < result.normed.size(); ++i) {
              out[3 + i] = py::float_(result.normed[i]);
            }
            return out;
          },
          py::arg("x"), py::arg("log_x"), py::arg("quantile_x"),
          "(final score, risk score, confidence, each detector's normalised score) of one "
          "feature row x whose log map is log_x; its quantile map into quantile_x (GIL "
          "released).")
      .def_property_readonly("n_features",
                             [](const OnlineScoringModel& self) { return self.core->n_features(); })
      .def_property_readonly("n_detectors", [](const OnlineScoringModel& self) {
        return self.core->n_detectors();
      });
}

}  // namespace fraudcore::bindings
