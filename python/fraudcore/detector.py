"""FraudDetector: transactions in, ranked and explained alerts out.

One estimator for the whole job a fraud team runs: point-in-time features
(:func:`fraudcore.build_features`), several unsupervised detectors (each on
the feature map that suits it, see FraudDetector._inputs), each detector's score
normalised on the training data, a weighted ensemble, a risk score, a
threshold, risk levels and the reasons behind each alert.

Scores and levels
-----------------
- ``score_<detector>``: the detector's score normalised by the method
  fitted on training data; higher is riskier. "normal" (default): the
  standard normal quantile of the detector's training rank, so a score in
  the top 0.1% of training stands 3.1 above the median rather than 0.5
  (averaging ranks lets one detector's middling opinion drown another's
  extreme one); "rank": the fraction of training rows the detector scored
  lower; "zscore"; "minmax".
- ``risk_score`` in [0, 1]: the fraction of training transactions whose
  final score is lower: the ensemble score, or with the supervised stage
  its raw score. It is monotone in that score and comparable across models.
- ``fraud_probability`` (with the supervised stage only): the calibrated
  probability that the transaction is fraud.
- ``is_alert``: ``risk_score >= threshold_``. The threshold is
  ``1 - contamination`` (the top ``contamination`` share of training
  transactions) unless labels calibrate it (``target_recall`` or
  ``max_fpr``, on a held-out ``validation_fraction`` of the labelled rows).
- ``risk_level``: CRITICAL for risk_score >= 0.999, HIGH >= 0.99, MEDIUM
  >= 0.95, else LOW (RISK_LEVELS); ``priority`` 1 (CRITICAL) to 4 (LOW)
  for alerts, 5 for the rest.
- ``confidence``: the weighted share of detectors that flag the row on
  their own (their training rank at or above the threshold).
- ``reasons``: for alerts, the three features that contribute most, in
  words (see :mod:`fraudcore._reasons`).

Labels
------
With labels (``y``, or the schema's label column), FraudDetector adds a
supervised stage (:class:`fraudcore.supervised.GradientBoostingStage`):
gradient-boosted trees on the features plus each detector's normalised
score, the hybrid ADBench and the fraud literature find strongest. Labels
may be partial: NaN marks an unlabelled row, which still trains the
unsupervised detectors. The labelled rows are split (``validation``) into a
part the models learn from and a held-out ``validation_fraction`` that
calibrates the probabilities and the threshold and gives
``training_metrics_``. The reasons of an alert then come from the trees'
TreeSHAP contributions: a feature's own, plus each detector score's
contribution shared out over the features that drove that detector.

Rows traced back
----------------
score's results keep ``data``'s index (the loaders' ``source_row``: each
row's place in the file) and start with the schema's identifying columns
(:attr:`Schema.identifiers`: transaction id, entity, invoice).

Cancellations and returns
-------------------------
Rows the schema marks as cancellations (:meth:`Schema.cancellations`) are
in every customer's history, so the features of the rows after them are
the same as without this rule. With ``alert_cancellations=False`` (the
default) they raise no alert (``is_alert`` False, ``priority`` 5, no
reasons; their risk_score and risk_level stay the model's view) and the
detectors, the normalisers and the threshold are fitted on the other rows
only: the model learns what it alerts on, and ``contamination`` is the
share of purchases that alert (on Online Retail, a model fitted with the
cancellations but alerting on purchases only alerted 0.43% of its training
purchases at contamination 0.01; 52% of its alerts had been cancellations).
With ``alert_cancellations=True`` they are
rows like any other, in fit and in score; an alert on one gives
"cancellation" as its first reason. The results get an ``is_cancellation``
column when the schema defines cancellations.
"""

import copy
import itertools
import struct
import warnings

import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.base import BaseEstimator

from fraudcore import _core, metrics
from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import (
    MetadataError,
    NativeModelMixin,
    _open,
    fitted,
    fitted_equal,
    fitted_int,
    register,
)
from fraudcore._progress import Steps
from fraudcore._reasons import describe
from fraudcore._validation import check_fraction
from fraudcore.autoencoder import AutoEncoder
from fraudcore.features import DEFAULT_WINDOWS, _config, _times_ns, build_features
from fraudcore.iforest import IsolationForest
from fraudcore.knn import KNNDetector
from fraudcore.lof import LocalOutlierFactor
from fraudcore.schema import Schema
from fraudcore.supervised import GradientBoostingStage

__all__ = ["RISK_LEVELS", "FraudDetector"]

RISK_LEVELS = (("CRITICAL", 0.999), ("HIGH", 0.99), ("MEDIUM", 0.95), ("LOW", 0.0))
_DETECTORS = {
    "isolation_forest": (IsolationForest, {"n_estimators": 200}),
    "lof": (LocalOutlierFactor, {"n_neighbors": 20, "novelty": True}),
    "autoencoder": (AutoEncoder, {"epochs": 10}),
    "knn": (KNNDetector, {"n_neighbors": 5, "novelty": True}),
}
# The default pair and the forest's weight, chosen on real labelled data
# (benchmarks/bench_quality.py): on Fraud_Data and the ADBench mean, 0.8 x
# isolation_forest + 0.2 x knn is never more than 0.01 ROC-AUC below its
# better member and above it on most; the earlier 0.6 x isolation_forest +
# 0.4 x lof fell 0.021 below the forest on Fraud_Data and 0.013 on ADBench.
_FOREST_WEIGHT, _OTHERS_WEIGHT = 0.8, 0.2
_NORMALIZATIONS = ("normal", "rank", "zscore", "minmax")
_NEIGHBOR_DETECTORS = ("lof", "knn")
_QUANTILES = 1001  # quantile grid per feature
_SUPERVISED = ("auto", True, False)
_MIN_LABELS_PER_CLASS = 10  # supervised="auto" needs this many labelled rows of each class
_VALIDATION = ("group", "time", "random")
_RESULT_COLUMNS = (
    "risk_score",
    "fraud_probability",
    "is_cancellation",
    "is_alert",
    "risk_level",
    "priority",
    "confidence",
    "reasons",
)


@register
class FraudDetector(NativeModelMixin, BaseEstimator):
    """Features, an ensemble of detectors, a calibrated threshold and reasons.

    Parameters
    ----------
    schema : Schema
        The columns of the transaction table.
    detectors : sequence of str
        From "isolation_forest", "lof" (novelty mode), "autoencoder", "knn".
    weights : dict, "fit" or None
        Ensemble weights by detector. None: 0.8 for the isolation forest
        and the rest shared equally by the others (the default pair: 0.8 x
        isolation_forest + 0.2 x knn), or equal weights without a forest.
        "fit" (needs labels): the weights on a 0.1 grid of the simplex with
        the best PR-AUC on the validation part; the grid holds every single detector, so the
        ensemble is never worse there than the best one alone.
    normalization : {"normal", "rank", "zscore", "minmax"}
        See "Scores and levels" above.
    neighbor_samples : int or None
        The neighbour detectors (lof, knn) index a random sample of at most
        this many training rows (None: every row). Subsampling makes them
        better, not only faster: fraud comes in bursts, and in the whole
        table a burst's rows are each other's neighbours and look dense;
        in a sample they stand alone (Zimek et al., "Subsampling for
        efficient and effective unsupervised outlier detection ensembles",
        KDD 2013). Scoring n rows then costs O(n x neighbor_samples), not
        O(n^2). The normaliser sees every training row: the indexed ones
        with their leave-one-out score (as in outlier mode), the others
        with their novelty score. Scoring the indexed rows again later
        makes each its own neighbour (as scikit-learn's novelty LOF on its
        training rows), so they score a little lower then.
    contamination : float in (0, 0.5]
        Expected fraud share: the alert threshold unless labels calibrate it.
    supervised : {"auto", True, False}
        The supervised stage (see "Labels"): "auto" adds it when labels are
        given; True requires labels.
    validation : {"group", "time", "random"}
        How the labelled rows are split for calibration. "group" (default):
        ``validation_fraction`` of the customers (of those with fraud and of
        the others), a customer's rows all on one side, so the trees cannot
        learn a customer and find it again (rows without an entity count as
        one customer; a schema without an entity splits rows, as "random"); "time": the last
        ``validation_fraction`` of the labelled rows in time, as the model
        will meet the future (a customer may then have rows on both sides,
        as in production); "random": rows, stratified by label.
    imbalance : {"class_weight", "smote", None}
        How the supervised stage weighs the rare fraud class.
    supervised_params : dict or None
        Parameters of :class:`fraudcore.supervised.GradientBoostingStage`.
    target_recall, max_fpr : float or None
        With labels: calibrate the threshold on the validation part for this
        recall (the highest threshold reaching it), or for this largest
        false-positive rate (the most fraud caught within it).
    validation_fraction : float
        Share of labelled rows held out for calibration and the training
        metrics (see ``validation``); no model is fitted on them.
    detector_params : dict
        Per detector, parameters overriding the defaults.
    windows, night_hours : see :func:`fraudcore.build_features`.
    alert_cancellations : bool
        Whether the schema's cancellations and returns are fitted on and can
        alert (see "Cancellations and returns" above). Default False: they
        only feed the customers' history.
    random_state : int or None
    n_jobs : int
    verbose : bool
        Show a progress bar of fit's and score's steps (features, each
        detector, calibration or reasons) on stderr.

    Attributes
    ----------
    feature_names_, weights_, threshold_, training_metrics_ (dict, with
    labels), n_training_rows_, supervised_ (the fitted
    GradientBoostingStage, or None).
    """

    _fitted_attributes = (
        "feature_names_",
        "weights_",
        "threshold_",
        "training_metrics_",
        "n_training_rows_",
        "normalizers_",
    )
    _unsaved_params = ("verbose",)

    def __init__(
        self,
        schema=None,
        *,
        detectors=("isolation_forest", "knn"),
        weights=None,
        normalization="normal",
        neighbor_samples=16_384,
        contamination=0.01,
        supervised="auto",
        validation="group",
        imbalance="class_weight",
        supervised_params=None,
        target_recall=None,
        max_fpr=None,
        validation_fraction=0.3,
        detector_params=None,
        windows=DEFAULT_WINDOWS,
        night_hours=(0, 6),
        alert_cancellations=False,
        random_state=None,
        n_jobs=-1,
        verbose=False,
    ):
        self.schema = schema
        self.detectors = detectors
        self.weights = weights
        self.normalization = normalization
        self.neighbor_samples = neighbor_samples
        self.contamination = contamination
        self.supervised = supervised
        self.validation = validation
        self.imbalance = imbalance
        self.supervised_params = supervised_params
        self.target_recall = target_recall
        self.max_fpr = max_fpr
        self.validation_fraction = validation_fraction
        self.detector_params = detector_params
        self.windows = windows
        self.night_hours = night_hours
        self.alert_cancellations = alert_cancellations
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_is_fitted__(self):
        return getattr(self, "models_", None) is not None

    # -- fitting ---------------------------------------------------------------

    def _check_params(self, labelled):
        if not isinstance(self.schema, Schema):
            raise ValueError(f"FraudDetector needs a fraudcore.Schema, got {self.schema!r}")
        clash = [
            c for c in self.schema.identifiers if c in _RESULT_COLUMNS or c.startswith("score_")
        ]
        if clash:
            raise ValueError(
                f"identifying column(s) {clash} of the schema have the names of score's "
                "result columns; rename them in the data and the schema"
            )
        names = list(self.detectors)
        unknown = [d for d in names if d not in _DETECTORS]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"detectors must be distinct names from {sorted(_DETECTORS)}, got {self.detectors!r}"
            )
        if self.normalization not in _NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {_NORMALIZATIONS}, got {self.normalization!r}"
            )
        samples = self.neighbor_samples
        if samples is not None and (
            isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 30
        ):
            raise ValueError(
                f"neighbor_samples must be an integer >= 30 or None, got {self.neighbor_samples!r}"
            )
        if not 0.0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination!r}")
        if (
            self.target_recall is not None
            or self.max_fpr is not None
            or self.weights == "fit"
            or self.supervised is True
        ) and not labelled:
            raise ValueError(
                "target_recall, max_fpr, weights='fit' and supervised=True need labels: "
                "pass y or set schema.label"
            )
        if (
            not any(self.supervised is option for option in _SUPERVISED)
            and self.supervised != "auto"
        ):
            raise ValueError(f"supervised must be 'auto', True or False, got {self.supervised!r}")
        if self.validation not in _VALIDATION:
            raise ValueError(f"validation must be one of {_VALIDATION}, got {self.validation!r}")
        if self.supervised_params is not None and not isinstance(self.supervised_params, dict):
            raise ValueError(
                f"supervised_params must be a dict or None, got {self.supervised_params!r}"
            )
        try:
            stage = GradientBoostingStage(
                **{"imbalance": self.imbalance, **(self.supervised_params or {})}
            )
        except TypeError as exc:
            raise ValueError(f"supervised_params: {exc}") from None
        stage._validate_params()
        if self.target_recall is not None and self.max_fpr is not None:
            raise ValueError("give target_recall or max_fpr, not both")
        for name in ("target_recall", "max_fpr"):
            value = getattr(self, name)
            if value is not None:
                check_fraction(name, value)
        if not isinstance(self.alert_cancellations, (bool, np.bool_)):
            raise ValueError(
                f"alert_cancellations must be True or False, got {self.alert_cancellations!r}"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        if isinstance(self.weights, dict):
            if (
                set(self.weights) != set(names)
                or any(w < 0 for w in self.weights.values())
                or sum(self.weights.values()) <= 0
            ):
                raise ValueError(
                    f"weights must give every detector {names} a weight >= 0, not all 0"
                )
        elif self.weights not in (None, "fit"):
            raise ValueError(f"weights must be a dict, 'fit' or None, got {self.weights!r}")
        return names

    def _labels(self, data, y):
        if y is None and self.schema.label is not None and self.schema.label in data.columns:
            y = self.schema.label
        if y is None:
            return None
        y = data[y] if isinstance(y, str) else y
        message = "labels must hold 0 (legitimate), 1 (fraud) or NaN (unlabelled) for every row"
        try:
            y = pd.Series(np.asarray(y) if not isinstance(y, pd.Series) else y).astype("Float64")
        except (TypeError, ValueError):
            raise ValueError(message) from None
        y = y.to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(y)
        if len(y) != len(data) or not np.isin(y[known], (0, 1)).all():
            raise ValueError(message)
        if not known.any():
            raise ValueError("the labels are all missing (NaN)")
        # -1: unlabelled
        return np.where(known, y, -1).astype(np.int8)

    def fit(self, data, y=None):
        """Fit on a transaction table; ``y`` = labels (array or column name;
        0 legitimate, 1 fraud, NaN unlabelled), optional."""
        labels = self._labels(data, y)
        names = self._check_params(labels is not None)
        use_supervised = labels is not None and self.supervised is not False
        if use_supervised and self.supervised == "auto":
            counts = np.bincount(labels[labels >= 0], minlength=2)
            if counts.min() < _MIN_LABELS_PER_CLASS:
                warnings.warn(
                    f"supervised='auto': {counts[1]} fraud and {counts[0]} legitimate labelled rows are "
                    f"too few for the supervised stage (it needs {_MIN_LABELS_PER_CLASS} of each); "
                    "fitting the unsupervised detectors only",
                    UserWarning,
                    stacklevel=2,
                )
                use_supervised = False
        stages = ["features", *names, *(["supervised"] if use_supervised else []), "calibration"]
        with Steps(self.verbose, "FraudDetector.fit", stages) as steps:
            try:
                return self._fit(data, labels, names, use_supervised, steps)
            except BaseException:
                # A detector failed (an autoencoder that diverged, say): the
                # detector is unfitted, not half-fitted and savable.
                self.models_ = None
                raise

    def _fit(self, data, labels, names, use_supervised, steps):
        steps.start("features")
        features = self._features(data)
        X = features.to_numpy(dtype=np.float64)
        rng = np.random.default_rng(self.random_state)
        alertable = ~self._quiet_cancellations(data)
        train = alertable.copy()
        calibrate = labels is not None and (
            use_supervised
            or self.target_recall is not None
            or self.max_fpr is not None
            or self.weights == "fit"
        )
        if calibrate:
            # Quiet cancellations are neither learned from nor held out.
            train &= self._validation_split(data, np.where(alertable, labels, -1), rng)
        held_out = alertable & ~train
        if train.sum() < 30:
            left_out = (
                ""
                if alertable.all()
                else f"; its {int((~alertable).sum())} cancellations are left out (alert_cancellations=False)"
            )
            raise ValueError(
                f"FraudDetector needs at least 30 training rows, got {int(train.sum())}{left_out}"
            )
        self.feature_names_ = list(features.columns)
        # What each detector sees (see _inputs).
        self.quantiles_ = np.quantile(X[train], np.linspace(0.0, 1.0, _QUANTILES), axis=0)
        logged = _signed_log1p(X[train])
        self.log_center_ = logged.mean(axis=0)
        spread = logged.std(axis=0)
        self.log_scale_ = np.where(spread > 0, spread, 1.0)
        inputs = self._inputs(X, names)
        seed = int(rng.integers(2**31 - 1))
        self.models_ = {}
        self.supervised_ = None
        raw = {}
        train_rows = np.flatnonzero(train)
        for name in names:
            steps.start(name)
            cls, defaults = _DETECTORS[name]
            params = {**defaults, **(self.detector_params or {}).get(name, {})}
            if "random_state" in cls().get_params():
                params.setdefault("random_state", seed)
            if "n_jobs" in cls().get_params():
                params.setdefault("n_jobs", self.n_jobs)
            sample = self._neighbor_sample(name, train_rows.size, rng)
            fit_rows = train_rows if sample is None else train_rows[sample]
            model = cls(**params).fit(inputs[name][fit_rows])
            self.models_[name] = model
            raw[name] = _training_risk(name, model, inputs[name][train_rows], sample)
        self.normalizers_ = {name: _fit_normalizer(self.normalization, raw[name]) for name in names}
        self._training_sorted = {name: np.sort(raw[name]) for name in names}
        normed_train = {name: self._normalize(name, raw[name]) for name in names}

        validation = None
        if calibrate:
            val_raw = {name: _risk(self.models_[name], inputs[name][held_out]) for name in names}
            validation = (
                {name: self._normalize(name, val_raw[name]) for name in names},
                labels[held_out],
            )
        self._fit_decision(
            names, X, labels, train, held_out, normed_train, validation, use_supervised, seed, steps
        )
        return self

    def _fit_decision(
        self,
        names,
        X,
        labels,
        train,
        held_out,
        normed_train,
        validation,
        use_supervised,
        seed,
        steps,
    ):
        """Everything after the detectors: weights, the supervised stage, the
        risk reference, the threshold and the training metrics."""
        self.weights_ = self._choose_weights(names, validation)
        self.supervised_ = None
        if use_supervised:
            steps.start("supervised")
            stage = self._fit_supervised(X, train, held_out, labels, normed_train, validation, seed)
            self.supervised_ = self._kept_stage(stage, X[held_out], validation)
        steps.start("calibration")
        final_train = self._final_score(X[train], normed_train)
        self._reference = np.sort(final_train)
        self.n_training_rows_ = int(train.sum())

        self.threshold_ = 1.0 - float(self.contamination)
        self.training_metrics_ = {}
        if validation is not None:
            risk_val = self._risk_score(self._final_score(X[held_out], validation[0]))
            y_val = validation[1]
            if self.target_recall is not None:
                self.threshold_, _, _ = metrics.threshold_for_recall(
                    y_val, risk_val, self.target_recall
                )
            elif self.max_fpr is not None:
                _, self.threshold_ = metrics.detection_rate_at_fpr(y_val, risk_val, self.max_fpr)
            self.training_metrics_ = {
                "on": "validation",
                "rows": len(y_val),
                **metrics.evaluate(y_val, risk_val, self.threshold_),
            }
        elif labels is not None:
            known = labels[train] >= 0
            risk_train = self._risk_score(final_train)
            self.training_metrics_ = {
                "on": "training",
                "rows": int(known.sum()),
                **metrics.evaluate(labels[train][known], risk_train[known], self.threshold_),
            }

    def retrain(self, data, y=None):
        """A new FraudDetector: this one's features and detectors, with the
        supervised stage and the threshold fitted again on labelled ``data``.

        For labels that arrive later (chargebacks, analysts' decisions):
        ``y`` as in :meth:`fit` (NaN for rows without a label). The labelled
        rows are split as in fit; the new model's ``training_metrics_`` are
        measured on the held-out part, and ``training_metrics_["previous"]``
        holds this model's figures on the same rows, for comparison (rows
        this model was itself fitted on, if ``data`` holds any, flatter it).
        This model is not changed.
        """
        if not self.__sklearn_is_fitted__():
            raise ValueError("retrain needs a fitted FraudDetector")
        labels = self._labels(data, y)
        if labels is None:
            raise ValueError(
                "retrain needs labels: pass y or a table with the schema's label column"
            )
        new = copy.deepcopy(self)
        names = list(self.models_)
        use_supervised = self.supervised is not False
        with Steps(
            self.verbose,
            "FraudDetector.retrain",
            ["features", *names, *(["supervised"] if use_supervised else []), "calibration"],
        ) as steps:
            _, X, _, raw = self._assess(data, steps)
            rng = np.random.default_rng(self.random_state)
            alertable = ~self._quiet_cancellations(data)
            train = alertable & self._validation_split(data, np.where(alertable, labels, -1), rng)
            held_out = alertable & ~train
            if train.sum() < 30:
                raise ValueError(
                    f"retrain needs at least 30 training rows after holding out the validation "
                    f"part, got {int(train.sum())}"
                )
            normed = {name: self._normalize(name, raw[name]) for name in names}
            validation = ({name: v[held_out] for name, v in normed.items()}, labels[held_out])
            seed = int(rng.integers(2**31 - 1))
            new._fit_decision(
                names,
                X,
                labels,
                train,
                held_out,
                {name: v[train] for name, v in normed.items()},
                validation,
                use_supervised,
                seed,
                steps,
            )
        previous = self._risk_score(self._final_score(X[held_out], validation[0]))
        new.training_metrics_["previous"] = metrics.evaluate(
            validation[1], previous, self.threshold_
        )
        return new

    def _validation_split(self, data, labels, rng):
        """Boolean mask of training rows: every unlabelled row, and the
        labelled rows outside the held-out part (see ``validation``)."""
        labelled = np.flatnonzero(labels >= 0)
        n_held = int(round(self.validation_fraction * labelled.size))
        if self.validation == "time":
            times = _times_ns(data[self.schema.timestamp], self.schema.time_unit, "timestamp")
            held = labelled[np.argsort(times[labelled], kind="stable")][labelled.size - n_held :]
        elif self.validation == "group" and self.schema.entity is not None:
            groups, _ = pd.factorize(
                data[self.schema.entity].to_numpy()[labelled], use_na_sentinel=False
            )
            has_fraud = np.bincount(groups, weights=labels[labelled] == 1) > 0
            chosen = np.zeros(has_fraud.size, dtype=bool)
            for kind in (False, True):
                candidates = np.flatnonzero(has_fraud == kind)
                size = int(round(self.validation_fraction * candidates.size))
                chosen[rng.choice(candidates, size=size, replace=False)] = True
            held = labelled[chosen[groups]]
        else:
            held = labelled[~_stratified_split(labels[labelled], self.validation_fraction, rng)]
        train = np.ones(len(labels), dtype=bool)
        train[held] = False
        y_held = labels[held]
        if y_held.size == 0 or y_held.min() == y_held.max():
            raise ValueError(
                f"the held-out labelled rows ({y_held.size:,}, validation={self.validation!r}) "
                "need fraud and legitimate rows to calibrate on: give more labels, another "
                "validation_fraction or validation='random' (fraud at very few customers), "
                "or supervised=False"
            )
        return train

    def _fit_supervised(self, X, train, held_out, labels, normed_train, validation, seed):
        """The gradient-boosting stage on the labelled training rows' features
        plus detector scores, calibrated on the held-out rows."""
        hybrid = self._hybrid(X[train], normed_train)
        known = labels[train] >= 0
        y = labels[train][known]
        if y.min() == y.max():
            raise ValueError(
                "the supervised stage needs fraud and legitimate rows among the labelled "
                "training rows"
            )
        params = {
            "imbalance": self.imbalance,
            "random_state": seed,
            "n_jobs": self.n_jobs,
            **(self.supervised_params or {}),
        }
        return GradientBoostingStage(**params).fit(
            hybrid[known],
            y,
            X_calibration=self._hybrid(X[held_out], validation[0]),
            y_calibration=validation[1],
        )

    def _kept_stage(self, stage, X_held, validation):
        """``stage``, unless supervised="auto" and it learned nothing (no tree
        splits: too few labelled rows) or ranks the held-out rows below the
        unsupervised ensemble (by PR-AUC); then None, with a warning."""
        if self.supervised is True:
            return stage
        normed, y = validation
        nodes = stage._native.export_nodes()
        if (nodes["feature"] >= 0).any():
            ensemble = metrics.average_precision(y, self._ensemble(normed))
            trees = metrics.average_precision(
                y, stage.decision_function(self._hybrid(X_held, normed))
            )
            if trees >= ensemble:
                return stage
            why = f"ranks the held-out labelled rows below the ensemble (PR-AUC {trees:.3f} < {ensemble:.3f})"
        else:
            why = "learned no split from the labelled rows"
        warnings.warn(
            f"supervised='auto': the supervised stage {why}; the model uses the unsupervised ensemble "
            "(supervised=True keeps the stage anyway)",
            UserWarning,
            stacklevel=4,
        )
        return None

    def _hybrid(self, X, normed):
        """The supervised stage's input: the features, then each detector's normalised score."""
        return np.column_stack([X, *(normed[name] for name in self.models_)])

    def _final_score(self, X, normed):
        """The score risk_score ranks: the supervised stage's, else the ensemble's."""
        if self.supervised_ is None:
            return self._ensemble(normed)
        return self.supervised_.decision_function(self._hybrid(X, normed))

    def _neighbor_sample(self, name, n_train, rng):
        """Sorted positions among the training rows that detector `name` is
        fitted on, or None for all of them (see neighbor_samples)."""
        if (
            name not in _NEIGHBOR_DETECTORS
            or self.neighbor_samples is None
            or n_train <= self.neighbor_samples
        ):
            return None
        return np.sort(rng.choice(n_train, size=int(self.neighbor_samples), replace=False))

    def _choose_weights(self, names, validation):
        if isinstance(self.weights, dict):
            total = sum(self.weights.values())
            return {name: float(self.weights[name]) / total for name in names}
        if self.weights == "fit":
            scores, y_val = validation
            if y_val.min() == y_val.max():
                raise ValueError(
                    "weights='fit' needs fraud and legitimate rows in the validation part"
                )
            best, best_ap = None, -1.0
            for combo in _simplex_grid(len(names), 10):
                candidate = dict(zip(names, combo))
                ap = metrics.average_precision(y_val, self._ensemble(scores, candidate))
                if ap > best_ap + 1e-12:
                    best, best_ap = candidate, ap
            return best
        if "isolation_forest" in names and len(names) > 1:
            rest = _OTHERS_WEIGHT / (len(names) - 1)
            return {name: _FOREST_WEIGHT if name == "isolation_forest" else rest for name in names}
        return {name: 1.0 / len(names) for name in names}

    def _quiet_cancellations(self, data):
        """Boolean array: the rows that are cancellations and may not alert."""
        if self.alert_cancellations:
            return np.zeros(len(data), dtype=bool)
        return self.schema.cancellations(data)

    # -- scoring ---------------------------------------------------------------

    def _features(self, data):
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        return build_features(
            data,
            self.schema,
            windows=self.windows,
            night_hours=self.night_hours,
            n_jobs=self.n_jobs,
        )

    def _inputs(self, X, names=None):
        """{detector: the matrix it sees}. The isolation forest gets signed
        log1p features, standardised: extremes keep their size (an amount 20x
        the customer's mean stays far beyond 3x), which isolation needs. The
        neighbour detectors and the autoencoder get each feature's training
        quantile (mid-rank for ties), so flags, counts and heavy-tailed
        amounts weigh alike in distances (on quantiles a 20x amount would
        sit next to a 3x one at the top of the range)."""
        maps = {}

        def get(kind):
            if kind not in maps:
                maps[kind] = (
                    (_signed_log1p(X) - self.log_center_) / self.log_scale_
                    if kind == "log"
                    else self._quantile_map(X)
                )
            return maps[kind]

        return {
            name: get("log" if name == "isolation_forest" else "quantile")
            for name in (self.models_ if names is None else names)
        }

    def _quantile_map(self, X):
        """Each value's mid-rank in its feature's training quantile grid (native)."""
        return _core.quantile_map(X, self.quantiles_, _core.resolve_n_threads(self.n_jobs))

    def _training_below(self, name, raw):
        """How many training rows detector `name` scored lower."""
        return _count_below(self._training_sorted[name], raw)

    def _training_rank(self, name, raw, below=None):
        """The share of training rows detector `name` scored lower (`below`:
        their count, when already known)."""
        below = self._training_below(name, raw) if below is None else below
        return below / len(self._training_sorted[name])

    def _normalize(self, name, raw, below=None):
        kind, a, b = self.normalizers_[name]
        if kind == "rank":
            return self._training_rank(name, raw, below)
        if kind == "normal":
            below = self._training_below(name, raw) if below is None else below
            return ndtri((below + 0.5) / (len(self._training_sorted[name]) + 1.0))
        return (raw - a) / b  # zscore: (mean, std); minmax: (min, max - min)

    def _ensemble(self, normed, weights=None):
        weights = self.weights_ if weights is None else weights
        return sum(weights[name] * normed[name] for name in weights)

    def _risk_score(self, ensemble):
        return _fraction_below(self._reference, ensemble)

    def score(self, data, *, reasons="alerts"):
        """Risk scores, alerts, levels and reasons for every transaction of ``data``.

        Features are computed within ``data`` (each row sees the earlier
        rows of its entity in ``data``); pass the history along, or use a
        :class:`fraudcore.FeatureState`, to score with more of it.
        ``reasons``: "alerts" (default), "all" or None.
        """
        return self._scored(data, reasons, "FraudDetector.score")[0]

    def _scored(self, data, reasons, description):
        """(score's table, each detector's raw score, the features), the steps on a progress bar."""
        if not self.__sklearn_is_fitted__():
            raise ValueError("this FraudDetector is not fitted yet; call fit first")
        with Steps(self.verbose, description, ["features", *self.models_, "reasons"]) as steps:
            features, X, inputs, raw = self._assess(data, steps)
            return self._result(data, features, X, inputs, raw, reasons, steps), raw, features

    def _assess(self, data, steps):
        """Features (as a table and as a float64 matrix), each detector's
        input matrix and its score (higher = riskier)."""
        steps.start("features")
        features = self._features(data)
        if list(features.columns) != self.feature_names_:
            raise ValueError(
                "the data's features differ from the training features; was the schema changed?"
            )
        X = features.to_numpy(dtype=np.float64)
        inputs = self._inputs(X)
        raw = {}
        for name, model in self.models_.items():
            steps.start(name)
            raw[name] = _risk(model, inputs[name])
        return features, X, inputs, raw

    def _result(self, data, features, X, inputs, raw, reasons, steps):
        steps.start("reasons")
        cancellation = self.schema.cancellations(data)
        columns, normed = self._decide(X, raw, cancellation)
        out = data[self.schema.identifiers].copy()  # on data's index; see "Rows traced back"
        for name, values in columns.items():
            out[name] = values
        alert = columns["is_alert"]
        explain = (
            alert
            if reasons == "alerts"
            else np.ones(len(alert), bool)
            if reasons == "all"
            else None
        )
        out["reasons"] = [[] for _ in range(len(alert))]
        if explain is not None and explain.any():
            rows = np.flatnonzero(explain)
            texts = self._explain_rows(rows, X, inputs, normed, features, data, cancellation)
            out.iloc[rows, out.columns.get_loc("reasons")] = pd.Series(texts, index=out.index[rows])
        return out

    def _decide(self, X, raw, cancellation):
        """score's columns for rows with features X and raw detector scores
        ``raw`` (all but the identifiers and the reasons), as {column: array}
        in score's order, and each detector's normalised score."""
        below = {name: self._training_below(name, raw[name]) for name in self.models_}
        normed = {name: self._normalize(name, raw[name], below[name]) for name in self.models_}
        final = self._final_score(X, normed)
        risk = self._risk_score(final)
        out = {"risk_score": risk}
        if self.supervised_ is not None:
            out["fraud_probability"] = self.supervised_._calibrated(final)
        for name in self.models_:
            out[f"score_{name}"] = normed[name]
        if self.schema.has_cancellations:
            out["is_cancellation"] = cancellation
        alert = risk >= self.threshold_
        if not self.alert_cancellations:
            alert &= ~cancellation
        out["is_alert"] = alert
        levels = np.full(len(risk), RISK_LEVELS[-1][0], dtype=object)
        for level, cut in reversed(RISK_LEVELS[:-1]):
            levels[risk >= cut] = level
        out["risk_level"] = levels
        priority = np.select(
            [levels == "CRITICAL", levels == "HIGH", levels == "MEDIUM"], [1, 2, 3], 4
        )
        out["priority"] = np.where(alert, priority, 5)
        out["confidence"] = sum(
            self.weights_[name]
            * (self._training_rank(name, raw[name], below[name]) >= self.threshold_)
            for name in self.models_
        )
        return out, normed

    def _explain_rows(self, rows, X, inputs, normed, features, data, cancellation, details=False):
        """_explain of the rows at positions ``rows`` of a batch (``features``
        and ``data`` as tables)."""
        return self._explain(
            X[rows],
            {name: m[rows] for name, m in inputs.items()},
            {name: v[rows] for name, v in normed.items()},
            features.iloc[rows],
            data.iloc[rows],
            cancellation[rows],
            details,
        )

    def _explain(
        self, X, inputs, normed, features, data, cancellation, details=False, population=None
    ):
        """The reasons of rows (features X, each detector's input and
        normalised score; ``features`` and ``data`` as tables or records for
        describe), "cancellation" first for cancellations; with ``details``
        as describe's {"feature", "value", "text"} dicts. ``population``:
        describe's reading of quantiles_, when the caller keeps one."""
        hybrid = None if self.supervised_ is None else self._hybrid(X, normed)
        attribution = self._attribution(inputs, hybrid)
        population = self.quantiles_ if population is None else population
        texts = describe(features, data, self.schema, attribution, population, details=details)
        first = (
            {"feature": None, "value": None, "text": "cancellation"} if details else "cancellation"
        )
        return [
            [first, *text] if cancelled else text for text, cancelled in zip(texts, cancellation)
        ]

    def classic_recipe(self, data, *, zscore_above=3.0, autoencoder_above=0.85):
        """The e-commerce recipe users bring from tutorials, on this model.

        RiskScore = 1.0 when the amount's z-score against the customer's
        history is above ``zscore_above`` or the autoencoder's reconstruction
        error, min-max scaled on the training data, is above
        ``autoencoder_above``; else 0.0. Needs "autoencoder" among the
        detectors.

        Returns
        -------
        results : DataFrame
            :meth:`score` for every transaction plus ``amount_zscore``,
            ``autoencoder_score`` and ``RiskScore``.
        high_confidence : DataFrame
            The rows of ``results`` that every detector flags on its own
            (each detector's training rank at or above the threshold).
        """
        if "autoencoder" not in (getattr(self, "models_", None) or {}):
            raise ValueError(
                "the classic recipe needs a fitted FraudDetector with 'autoencoder' among its detectors"
            )
        results, raw, features = self._scored(data, "alerts", "FraudDetector.classic_recipe")
        sorted_train = self._training_sorted["autoencoder"]
        span = max(sorted_train[-1] - sorted_train[0], 1e-300)
        ae = (raw["autoencoder"] - sorted_train[0]) / span
        results["amount_zscore"] = features["amount_zscore"].to_numpy()
        results["autoencoder_score"] = ae
        results["RiskScore"] = (
            (results["amount_zscore"] > zscore_above) | (ae > autoencoder_above)
        ).astype(float)
        every = np.logical_and.reduce(
            [self._training_rank(name, raw[name]) >= self.threshold_ for name in self.models_]
        )
        return results, results[every]

    def _attribution(self, inputs, hybrid=None):
        """Per-feature share of each row's unusualness, weighted over the detectors.

        The isolation forest gives each feature's share of the splits that
        isolate the row, LOF each feature's distance from the mean of the
        row's neighbours, the autoencoder its per-feature reconstruction
        errors; for the k-NN detector each feature's distance from the
        training median in quantiles (|q - 0.5|) stands in for now.

        With the supervised stage (``hybrid``: its input rows), the weights
        are the trees' TreeSHAP contributions instead: what pushed the row
        towards fraud. A feature counts its own positive contribution plus,
        for each detector score that pushed towards fraud, that push shared
        out in the proportions the detector's own attribution gives.
        """
        shares = self._detector_shares(inputs)
        if hybrid is None:
            return sum(self.weights_[name] * part for name, part in shares.items())
        phi = self.supervised_.contributions(hybrid)
        d = len(self.feature_names_)
        total = np.maximum(phi[:, :d], 0.0)
        for k, name in enumerate(self.models_):
            total = total + np.maximum(phi[:, d + k], 0.0)[:, None] * shares[name]
        return total

    def _detector_shares(self, inputs):
        """{detector: each feature's share of each row's unusualness to it} (rows sum to 1)."""
        shares = {}
        for name, model in self.models_.items():
            seen = inputs[name]
            if name == "isolation_forest":
                parts = model.feature_contributions(seen)
            elif name == "lof":
                parts = model.neighbor_deviations(seen)
            elif name == "autoencoder":
                parts = model.reconstruction_errors(seen)
            else:
                parts = np.abs(seen - 0.5)
            shares[name] = parts / np.maximum(parts.sum(axis=1, keepdims=True), 1e-300)
        return shares

    # -- persistence -----------------------------------------------------------

    def _validate_params(self):
        """Every parameter check fit makes before seeing data (load runs it too)."""
        self._check_params(labelled=True)
        _config(self.schema, self.windows, self.night_hours, 3.0)
        resolve_n_jobs(self.n_jobs)
        np.random.default_rng(self.random_state)
        if self.detector_params is not None:
            if not isinstance(self.detector_params, dict):
                raise ValueError(
                    f"detector_params must be a dict or None, got {self.detector_params!r}"
                )
            for name, params in self.detector_params.items():
                if name not in _DETECTORS or not isinstance(params, dict):
                    raise ValueError(
                        f"detector_params must map detector names to dicts, got {name!r}"
                    )
                cls, defaults = _DETECTORS[name]
                cls(**{**defaults, **params})._validate_params()

    def _check_fitted_attributes(self, params, attributes, parts):
        models, quantiles, (log_center, log_scale, reference), training_sorted, stage = parts
        names = list(params["detectors"])
        config = _config(params["schema"], params["windows"], params["night_hours"], 3.0)
        features = config.feature_names() + list(params["schema"].passthrough)
        fitted_equal(attributes, "feature_names_", features, "the schema, windows and night_hours")
        n_features, n_rows = len(features), fitted_int(attributes, "n_training_rows_", 30)
        weights = fitted(attributes, "weights_")
        if not (
            isinstance(weights, dict)
            and set(weights) == set(names)
            and all(isinstance(w, float) and 0.0 <= w <= 1.0 for w in weights.values())
            and abs(sum(weights.values()) - 1.0) < 1e-9
        ):
            raise MetadataError(
                "attributes.weights_", f"must give each of {names} a weight in [0, 1], summing to 1"
            )
        threshold = fitted(attributes, "threshold_")
        if not isinstance(threshold, float) or np.isnan(threshold):
            raise MetadataError("attributes.threshold_", f"must be a number, got {threshold!r}")
        if not isinstance(fitted(attributes, "training_metrics_"), dict):
            raise MetadataError("attributes.training_metrics_", "must be a dict")
        normalizers = fitted(attributes, "normalizers_")
        if not (
            isinstance(normalizers, dict)
            and set(normalizers) == set(names)
            and all(
                isinstance(n, tuple)
                and len(n) == 3
                and n[0] == params["normalization"]
                and all(isinstance(v, float) and np.isfinite(v) for v in n[1:])
                and n[2] > 0
                for n in normalizers.values()
            )
        ):
            raise MetadataError(
                "attributes.normalizers_",
                f"must give each of {names} a "
                f"({params['normalization']!r}, finite, positive) triple",
            )
        for name, model in models.items():
            if model.n_features_in_ != n_features or getattr(model, "novelty", True) is not True:
                raise MetadataError(
                    f"body.models_.{name}",
                    f"must be fitted on {n_features} features (in novelty mode)",
                )
        if stage is not None and stage.n_features_in_ != n_features + len(names):
            raise MetadataError(
                "body.supervised",
                f"must be fitted on the {n_features} features and {len(names)} detector scores",
            )
        if quantiles.shape[1] != n_features or not np.all(np.diff(quantiles, axis=0) >= 0):
            raise MetadataError(
                "body.quantiles_", f"must be {_QUANTILES} sorted rows of {n_features} values"
            )
        # |signed log1p| of a finite float64 is below 710, so every input's
        # standardised log stays finite.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            reach = (
                (np.abs(log_center) + 710.0) / log_scale
                if log_center.shape == log_scale.shape
                else None
            )
        if not (
            log_center.shape == log_scale.shape == (n_features,)
            and (log_scale > 0).all()
            and np.isfinite(reach).all()
        ):
            raise MetadataError(
                "body.log_scale_",
                f"the log centres and scales must be {n_features} finite "
                "numbers, the scales positive and not tiny",
            )
        # The detectors' training scores come from fit; the reference of the
        # final score from fit or from the latest retrain.
        for name, values in [("ensemble", reference), *training_sorted.items()]:
            size = n_rows if name == "ensemble" else 30
            if (
                len(values) < size
                or (name == "ensemble" and len(values) != n_rows)
                or not np.isfinite(values).all()
                or np.any(np.diff(values) < 0)
            ):
                raise MetadataError(
                    f"body.training_scores.{name}",
                    f"must be {'' if name == 'ensemble' else 'at least '}{size} "
                    f"{'(n_training_rows_) ' if name == 'ensemble' else ''}sorted finite numbers",
                )

    def _to_bytes(self):
        if not self.__sklearn_is_fitted__():
            raise ValueError("only a fitted FraudDetector can be saved")
        return super()._to_bytes()

    def _body(self):
        """Each detector's own envelope, the supervised stage's (when there is
        one), then the arrays, each length-prefixed."""
        parts = [model._to_bytes() for model in self.models_.values()]
        if self.supervised_ is not None:
            parts.append(self.supervised_._to_bytes())
        arrays = [
            self.quantiles_,
            self.log_center_,
            self.log_scale_,
            self._reference,
            *(self._training_sorted[n] for n in self.models_),
        ]
        parts += [np.ascontiguousarray(a, dtype="<f8").tobytes() for a in arrays]
        return b"".join(struct.pack("<Q", len(p)) + p for p in parts)

    def _read_body(self, body, params):
        try:
            names = list(params["detectors"])
            parts = _split_parts(body)
            if len(parts) not in (2 * len(names) + 4, 2 * len(names) + 5):
                raise ValueError("wrong number of parts")
            has_stage = len(parts) == 2 * len(names) + 5
            models = {}
            kinds = [
                *(_DETECTORS[name][0] for name in names),
                *([GradientBoostingStage] if has_stage else []),
            ]
            for name, kind, data in zip([*names, "supervised"], kinds, parts):
                cls, inner_meta, inner_body = _open(data)
                if cls is not kind:
                    raise ValueError(f"part {name} holds a {cls.__name__}")
                model = cls()
                model._restore(inner_meta, inner_body)
                if not model.__sklearn_is_fitted__():
                    raise ValueError(f"part {name} holds an unfitted {cls.__name__}")
                models[name] = model
            stage = models.pop("supervised", None)
            arrays = [np.frombuffer(p, dtype="<f8").astype(np.float64) for p in parts[len(kinds) :]]
            if not all(np.isfinite(a).all() for a in arrays):
                raise ValueError("the quantiles, scalings or training scores hold NaN or infinity")
            if arrays[0].size == 0:
                raise ValueError("the quantile grid is empty")
            quantiles = arrays[0].reshape(_QUANTILES, -1)
        except (KeyError, TypeError, ValueError, struct.error) as exc:
            raise _core.ModelFormatError(
                f"FraudDetector model data is inconsistent: {exc}"
            ) from None
        return models, quantiles, arrays[1:4], dict(zip(names, arrays[4:])), stage

    def _set_body(self, parts):
        if parts is None:
            self.models_ = None
            return
        (
            self.models_,
            self.quantiles_,
            (self.log_center_, self.log_scale_, self._reference),
            self._training_sorted,
            self.supervised_,
        ) = parts


def _signed_log1p(X):
    return np.sign(X) * np.log1p(np.abs(X))


def _split_parts(body):
    parts, at = [], 0
    while at < len(body):
        (size,) = struct.unpack_from("<Q", body, at)
        at += 8
        if at + size > len(body):
            raise ValueError("a part runs past the end of the data")
        parts.append(bytes(body[at : at + size]))
        at += size
    return parts


def _count_below(sorted_values, x):
    """How many of sorted_values are strictly below each x."""
    return np.searchsorted(sorted_values, x, side="left")


def _fraction_below(sorted_values, x):
    """The share of sorted_values strictly below each x."""
    return _count_below(sorted_values, x) / len(sorted_values)


def _risk(model, X):
    """A detector's score of new rows, higher = riskier."""
    return -model.score_samples(X)


def _training_risk(name, model, X, sample=None):
    """A detector's score of every training row X, higher = riskier. The
    neighbour detectors leave each row they index out of its own neighbours
    (as in outlier mode); `sample` says which rows of X those are (None: all)."""
    if name not in _NEIGHBOR_DETECTORS:
        return _risk(model, X)
    own = -getattr(model, model._training_scores_attribute)
    if sample is None:
        return own
    risk = np.empty(len(X))
    rest = np.ones(len(X), dtype=bool)
    rest[sample] = False
    risk[sample] = own
    risk[rest] = _risk(model, X[rest])
    return risk


def _fit_normalizer(kind, raw):
    if kind == "zscore":
        sd = float(np.std(raw))
        return ("zscore", float(np.mean(raw)), sd if sd > 0 else 1.0)
    if kind == "minmax":
        span = float(np.max(raw) - np.min(raw))
        return ("minmax", float(np.min(raw)), span if span > 0 else 1.0)
    return (kind, 0.0, 1.0)  # rank, normal: from the sorted training scores


def _stratified_split(labels, validation_fraction, rng):
    """Boolean mask of training rows; validation_fraction of each class held out."""
    train = np.ones(len(labels), dtype=bool)
    for cls in (0, 1):
        rows = np.flatnonzero(labels == cls)
        held = rng.choice(rows, size=int(round(validation_fraction * len(rows))), replace=False)
        train[held] = False
    return train


def _simplex_grid(k, steps):
    """Every weight vector of k non-negative multiples of 1/steps summing to 1."""
    for cut in itertools.combinations(range(steps + k - 1), k - 1):
        bounds = (-1, *cut, steps + k - 1)
        yield tuple((bounds[i + 1] - bounds[i] - 1) / steps for i in range(k))
