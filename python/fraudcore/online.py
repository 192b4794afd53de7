"""OnlineScorer: each transaction scored as it arrives, with its customer's history.

:meth:`FraudDetector.score` sees only the rows it is given. An
:class:`OnlineScorer` keeps every customer's history in a
:class:`fraudcore.FeatureState` and scores one transaction (``score_one``)
or a batch (``score_many``) against it, then adds them to the history.

Contract
--------
- **Identical to batch**: after the history ``rows[:i]`` (folded in by
  ``warm``, ``from_history`` or earlier scoring), ``score_one(rows[i])``
  holds exactly the values of ``detector.score(rows[:i + 1]).iloc[-1]``
  (floats bit for bit, the same reasons), and ``score_many(rows[i:j])``
  those of the last ``j - i`` rows of ``detector.score(rows[:j])``; rows of
  one customer arrive in time order.
- **Result**: a dict per transaction with the schema's identifiers (as
  given), score's columns (``risk_score``, ``fraud_probability`` with the
  supervised stage, ``score_<detector>``, ``is_cancellation`` when the
  schema has cancellations, ``is_alert``, ``risk_level``, ``priority``,
  ``confidence``, ``reasons``) as Python scalars, then ``features``
  ({name: float}) and ``reason_details`` (per reason, in order, the feature
  and value it came from and its text; "cancellation" and "no single value
  is rare on its own" have feature and value None).
- **Bad input** (a field the schema names missing, an amount that is not a
  finite number, a time that does not parse or is earlier than the
  customer's last) is a ValueError naming the field (``score_many``: and
  the record's index) and changes nothing: ``score_many`` checks every
  record before adding any, a batch is all or nothing.
- **Threads**: the scorer may be shared; the history changes under the
  FeatureState's lock (one transaction or one batch at a time), scoring
  only reads the fitted model.

Speed: ``score_one`` computes the features in the FeatureState, then the
rest in one native call (:class:`fraudcore._core.OnlineScoringModel`: the
detectors' input maps, single-row detector kernels, normalisation, ensemble,
supervised stage, risk and levels); reasons are computed only for the rows
that get them (alerts by default). ``score_many`` runs the batch path.
"""

import math

import numpy as np
import pandas as pd
from scipy.special import ndtri

from fraudcore import _core
from fraudcore._reasons import _population
from fraudcore.detector import _NORMALIZATIONS, RISK_LEVELS, FraudDetector, _risk
from fraudcore.features import FeatureState, _config, _times_ns

__all__ = ["OnlineScorer"]

_REASONS = ("alerts", "all", None)


class OnlineScorer:
    """Score transactions one at a time (or in batches) with their history.

    Parameters
    ----------
    detector : FraudDetector
        A fitted detector.
    state : FeatureState or None
        The customers' history; None starts an empty one. It must have the
        detector's schema, windows and night_hours (else ValueError).
    reasons : {"alerts", "all", None}
        Which transactions get reasons, as in :meth:`FraudDetector.score`.

    Attributes
    ----------
    detector : FraudDetector
    state : FeatureState
        Save it (``state.save``, pickle) to keep the history over a restart.
    """

    def __init__(self, detector, state=None, *, reasons="alerts"):
        if not isinstance(detector, FraudDetector) or not detector.__sklearn_is_fitted__():
            raise ValueError(f"OnlineScorer needs a fitted FraudDetector, got {detector!r}")
        if not any(reasons is r or reasons == r for r in _REASONS):
            raise ValueError(f"reasons must be 'alerts', 'all' or None, got {reasons!r}")
        schema = detector.schema
        if state is None:
            state = FeatureState(schema, windows=detector.windows, night_hours=detector.night_hours)
        _check_state(state, detector)
        self.detector = detector
        self.state = state
        self.reasons = reasons
        self._setup()

    def _setup(self):
        """What score_one reads per call, made once: the native scorer and
        the detector's settings."""
        detector = self.detector
        schema = detector.schema
        self._names = list(detector.feature_names_)
        self._required = schema.required_columns()
        self._identifiers = schema.identifiers
        self._scores = [f"score_{name}" for name in detector.models_]
        self._log_center, self._log_scale = detector.log_center_, detector.log_scale_
        self._native = _native_scoring(detector)
        self._input_kinds = {name: _input_kind(name) for name in detector.models_}
        self._population = _population(self._names, detector.quantiles_)

    def __getstate__(self):
        return {"detector": self.detector, "state": self.state, "reasons": self.reasons}

    def __setstate__(self, values):
        self.__dict__.update(values)
        self._setup()

    @classmethod
    def from_history(cls, detector, history, **kw):
        """A scorer whose state holds ``history`` (a DataFrame, folded in
        time order, ties in row order); ``kw`` as for the constructor."""
        scorer = cls(detector, **kw)
        scorer.warm(history)
        return scorer

    def warm(self, records_or_frame):
        """Add transactions (a DataFrame or a list of dicts) to the history
        without scoring them (restarts, back-fills), in time order, ties in
        their order. All or nothing, as score_many."""
        frame = self._frame(records_or_frame)
        if len(frame):
            schema = self.detector.schema
            times = _times_ns(frame[schema.timestamp], schema.time_unit, "timestamp")
            order = np.argsort(times, kind="stable")
            if (np.diff(order) != 1).any():
                frame = frame.iloc[order]
            self.state.update(frame)

    # -- scoring ---------------------------------------------------------------

    def score_one(self, transaction):
        """Score one transaction (a dict; a pandas Series is accepted) against
        the history so far, then add it to the history.

        Returns
        -------
        dict
            See "Result" in the module documentation.
        """
        if type(transaction) is not dict:
            transaction = _as_dict(transaction)
        for field in self._required:
            if field not in transaction:
                raise ValueError(f"the transaction lacks field {field!r} named by the schema")
        features = self.state.update(transaction)
        return self._score_row(transaction, features)

    def score_many(self, records):
        """Score a batch of transactions (a list of dicts, or a DataFrame) in
        order, each against the history and the batch's earlier rows, then
        add them all; a bad record refuses the whole batch (ValueError
        naming it), which changes nothing.

        Returns
        -------
        list of dict
            One per transaction, as score_one.
        """
        if isinstance(records, pd.DataFrame):
            frame = records.reset_index(drop=True)
            raws = None
        else:
            raws = [r if type(r) is dict else _as_dict(r, i) for i, r in enumerate(records)]
            if not raws:
                return []
            if len(raws) == 1:
                try:
                    return [self.score_one(raws[0])]
                except ValueError as exc:
                    raise ValueError(f"record 0: {exc}") from None
            frame = self._frame(raws)
        if len(frame) == 0:
            return []
        features = self.state.update(frame)
        return self._score_frame(frame, features, raws)

    # -- internals -------------------------------------------------------------

    def _frame(self, records_or_frame):
        """A DataFrame of transactions (index 0..n-1), every field the schema
        names present (else ValueError naming the first record without it)."""
        if isinstance(records_or_frame, pd.DataFrame):
            frame = records_or_frame.reset_index(drop=True)
        else:
            rows = [
                r if type(r) is dict else _as_dict(r, i) for i, r in enumerate(records_or_frame)
            ]
            for i, row in enumerate(rows):
                for field in self._required:
                    if field not in row:
                        raise ValueError(f"record {i} lacks field {field!r} named by the schema")
            frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
        if len(frame):
            self.detector.schema.validate(frame)
        return frame

    def _cancellation(self, transaction):
        """Whether the schema marks ``transaction`` as a cancellation."""
        schema = self.detector.schema
        if not schema.has_cancellations:
            return False
        columns = [
            c for c in (schema.cancellation, schema.amount, schema.quantity, schema.unit_price) if c
        ]
        return bool(schema.cancellations(pd.DataFrame({c: [transaction[c]] for c in columns}))[0])

    def _score_row(self, transaction, features):
        """The result of one transaction from its features (a dict in the
        detector's feature order): one native call, then the levels."""
        detector = self.detector
        x = np.fromiter(features.values(), dtype=np.float64, count=len(self._names))
        # the log map as FraudDetector._inputs computes it (NumPy's log1p)
        logged = (np.sign(x) * np.log1p(np.abs(x)) - self._log_center) / self._log_scale
        mapped = np.empty(len(self._names))
        final, risk, confidence, *normed = self._native.score(x, logged, mapped)
        cancelled = self._cancellation(transaction)
        alert = risk >= detector.threshold_ and (detector.alert_cancellations or not cancelled)
        out = {c: transaction[c] for c in self._identifiers}
        out["risk_score"] = risk
        if detector.supervised_ is not None:
            out["fraud_probability"] = float(detector.supervised_._calibrated(final))
        for name, value in zip(self._scores, normed):
            out[name] = value
        if detector.schema.has_cancellations:
            out["is_cancellation"] = cancelled
        out["is_alert"] = alert
        level = next(level for level, cut in RISK_LEVELS if risk >= cut)
        out["risk_level"] = level
        out["priority"] = _PRIORITY[level] if alert else 5
        out["confidence"] = confidence
        details = []
        if self.reasons == "all" or (alert and self.reasons == "alerts"):
            X = x[None, :]
            maps = {"log": logged[None, :], "quantile": mapped[None, :]}
            (details,) = detector._explain(
                X,
                {name: maps[kind] for name, kind in self._input_kinds.items()},
                {name: np.array([v]) for name, v in zip(detector.models_, normed)},
                [features],
                [transaction],
                [cancelled],
                details=True,
                population=self._population,
            )
        out["reasons"] = [d["text"] for d in details]
        out["features"] = features
        out["reason_details"] = details
        return out

    def _score_frame(self, frame, features, raws):
        """The results of a batch from its features (a DataFrame)."""
        detector = self.detector
        X = features.to_numpy(dtype=np.float64)
        inputs = detector._inputs(X)
        raw = {name: _risk(model, inputs[name]) for name, model in detector.models_.items()}
        cancellation = detector.schema.cancellations(frame)
        columns, normed = detector._decide(X, raw, cancellation)
        alert = columns["is_alert"]
        explain = (
            alert
            if self.reasons == "alerts"
            else np.ones(len(alert), bool)
            if self.reasons == "all"
            else np.zeros(len(alert), bool)
        )
        details = {}
        rows = np.flatnonzero(explain)
        if rows.size:
            found = detector._explain_rows(
                rows, X, inputs, normed, features, frame, cancellation, details=True
            )
            details = dict(zip(rows.tolist(), found))
        identifiers = {c: frame[c].tolist() for c in self._identifiers}
        if raws is not None:  # the values as given, not as pandas holds them
            identifiers = {c: [r[c] for r in raws] for c in self._identifiers}
        values = {name: v.tolist() for name, v in columns.items()}
        names = list(features.columns)
        out = []
        for i, row in enumerate(X.tolist()):
            result = {c: identifiers[c][i] for c in self._identifiers}
            for name, column in values.items():
                result[name] = column[i]
            found = details.get(i, [])
            result["reasons"] = [d["text"] for d in found]
            result["features"] = dict(zip(names, row))
            result["reason_details"] = found
            out.append(result)
        return out


_PRIORITY = {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 3, "LOW": 4}


def _input_kind(name):
    """The feature map detector `name` sees (see FraudDetector._inputs)."""
    return "log" if name == "isolation_forest" else "quantile"


def _native_scoring(detector):
    """The detector's single-row pipeline as a native OnlineScoringModel."""
    names = list(detector.models_)
    tables, kinds, a, b = [], [], [], []
    for name in names:
        kind, first, second = detector.normalizers_[name]
        n = len(detector._training_sorted[name])
        # FraudDetector._normalize's ndtri((below + 0.5) / (n + 1)), for every below
        tables.append(ndtri((np.arange(n + 1) + 0.5) / (n + 1.0)) if kind == "normal" else None)
        kinds.append(_NORMALIZATIONS.index(kind))
        a.append(first)
        b.append(second)
    stage = detector.supervised_
    return _core.OnlineScoringModel(
        detector.quantiles_,
        [detector.models_[name]._native for name in names],
        [_input_kind(name) == "quantile" for name in names],
        [detector._training_sorted[name] for name in names],
        kinds,
        a,
        b,
        tables,
        [detector.weights_[name] for name in names],
        detector._reference,
        None if stage is None else stage._native,
        detector.threshold_,
    )


def _as_dict(transaction, index=None):
    if isinstance(transaction, pd.Series):
        return transaction.to_dict()
    if isinstance(transaction, dict):
        return transaction
    where = "" if index is None else f"record {index}: "
    raise TypeError(f"{where}a transaction must be a dict, got {type(transaction).__name__}")


def _check_state(state, detector):
    """ValueError unless ``state`` computes the detector's features."""
    if not isinstance(state, FeatureState):
        raise ValueError(f"state must be a fraudcore.FeatureState, got {state!r}")
    mine = _config(detector.schema, detector.windows, detector.night_hours, 3.0)
    try:
        theirs = _config(state.schema, state.windows, state.night_hours, state.spike_sigmas)
    except ValueError as exc:
        raise ValueError(f"state has invalid settings: {exc}") from None
    differ = [
        what
        for what, same in (
            ("schema", state.schema == detector.schema),
            ("windows", theirs.windows_ns == mine.windows_ns),
            (
                "night_hours",
                (theirs.night_start_hour, theirs.night_end_hour)
                == (mine.night_start_hour, mine.night_end_hour),
            ),
            ("spike_sigmas", math.isclose(theirs.spike_sigmas, mine.spike_sigmas, rel_tol=0.0)),
        )
        if not same
    ]
    if differ:
        raise ValueError(
            f"the state's {', '.join(differ)} differ from the detector's; its features "
            "would not be the ones the detector was fitted on"
        )
