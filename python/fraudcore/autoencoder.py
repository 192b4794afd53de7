"""A dense autoencoder anomaly detector with a native training loop."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state

from fraudcore import _core
from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import (
    MetadataError,
    NativeModelMixin,
    _blank,
    fitted,
    fitted_equal,
    fitted_feature_names,
    fitted_float,
    register,
)
from fraudcore._thresholds import ThresholdMixin
from fraudcore._validation import (
    check_fraction,
    check_int,
    validate_fit_input,
    validate_score_input,
)

__all__ = ["AutoEncoder"]

_ACTIVATIONS = {"relu": 0, "tanh": 1, "sigmoid": 2, "leaky_relu": 3}
_DTYPES = {"float32": False, "float64": True}


@register
class AutoEncoder(ThresholdMixin, NativeModelMixin, OutlierMixin, BaseEstimator):
    """Autoencoder anomaly detector: rows it reconstructs badly are anomalies.

    A dense network trained with Adam to reproduce its (standardised) input
    through a narrow hidden layer; forward and backward passes run in C++ on
    Eigen with OpenMP, the GIL released, no deep-learning framework needed.

    Parameters
    ----------
    hidden_layers : sequence of int, default=(64, 32)
        Hidden layer sizes. With ``mirror=True`` these are the encoder and
        are mirrored into the decoder (64-32-64 by default); with
        ``mirror=False`` they are the full hidden stack.
    mirror : bool, default=True
    activation : {"relu", "tanh", "sigmoid", "leaky_relu"}, default="relu"
        Of the hidden layers; the output layer is linear.
    dropout : float in [0, 1), default=0.2
        Inverted dropout after every hidden layer while training.
    l2 : float >= 0, default=1e-5
        L2 penalty added to every gradient (PyTorch's ``weight_decay``).
    learning_rate : float > 0, default=1e-3
        Adam's step size.
    batch_size : int, default=32
    epochs : int, default=10
        Passes over the training rows (fewer with early stopping).
    validation_fraction : float in [0, 1), default=0.1
        Share of rows held out to compute ``validation_scores_``; 0 trains on
        every row.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved for ``patience``
        epochs, keeping the weights of the best epoch.
    patience : int, default=5
    standardize : bool, default=True
        Standardise features with the training mean and standard deviation
        (stored with the model).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the network's arithmetic.
    contamination : float in (0, 0.5], default=0.1
        Share of outliers: the threshold is that percentile of the training
        scores.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split.
    n_jobs : int or None, default=None
        Threads (None = 1, -1 = all cores). A given ``random_state`` gives
        the same model for every ``n_jobs``.
    verbose : bool, default=False
        Show a progress bar (tqdm) with the losses.
    callback : callable or None, default=None
        Called after every epoch as ``callback(epoch, train_loss,
        validation_loss)`` (validation_loss is None without a validation
        set). Not saved with the model.

    Attributes
    ----------
    loss_curve_ : list of float
        Mean training loss (squared error per value) of every epoch.
    validation_scores_ : list of float
        Mean validation loss of every epoch (empty without validation rows).
    n_epochs_ : int
        Epochs the kept weights were trained for.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    layers_ : tuple of int
        Every layer's width, input to output.
    n_features_in_, feature_names_in_

    Notes
    -----
    ``score_samples(X)`` is minus the mean squared reconstruction error of
    each row, in standardised units: higher is more normal.
    ``reconstruction_errors(X)`` gives the per-feature squared errors.

    Scores are finite for every row within a million standard deviations of
    the training mean (in every feature); a fitted or loaded model is
    checked to guarantee it, and a file that does not is refused with
    ``ModelFormatError``. A row beyond that whose reconstruction overflows
    scores ``-inf`` (an outlier), never NaN.

    Interrupting ``fit`` (Ctrl-C, KeyboardInterrupt) stops training at the
    end of the running epoch: the estimator keeps the weights of the last
    complete epoch and is usable (``interrupted_`` is True), or stays
    unfitted if no epoch completed; the KeyboardInterrupt is then re-raised.
    """

    _native_type = _core.AutoEncoderModel
    _unsaved_params = ("callback",)
    _fitted_attributes = (
        "loss_curve_",
        "validation_scores_",
        "n_epochs_",
        "offset_",
        "layers_",
        "interrupted_",
        "n_features_in_",
        "feature_names_in_",
    )

    def __init__(
        self,
        *,
        hidden_layers=(64, 32),
        mirror=True,
        activation="relu",
        dropout=0.2,
        l2=1e-5,
        learning_rate=1e-3,
        batch_size=32,
        epochs=10,
        validation_fraction=0.1,
        early_stopping=False,
        patience=5,
        standardize=True,
        dtype="float32",
        contamination=0.1,
        random_state=None,
        n_jobs=None,
        verbose=False,
        callback=None,
    ):
        self.hidden_layers = hidden_layers
        self.mirror = mirror
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.standardize = standardize
        self.dtype = dtype
        self.contamination = contamination
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.callback = callback

    def _layers(self, n_features):
        hidden = self.hidden_layers
        if isinstance(hidden, (Integral, str)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden_layers must be a sequence of ints, got {hidden!r}")
        hidden = [check_int("every hidden layer size", h, 1) for h in hidden]
        if not hidden:
            raise ValueError("hidden_layers must name at least one layer")
        if self.mirror:
            hidden = hidden + hidden[-2::-1]
        return [n_features, *hidden, n_features]

    def _check_params(self):
        for name in ("mirror", "early_stopping", "standardize", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for name, low, high in (("dropout", 0.0, 1.0), ("validation_fraction", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not (low <= value < high):
                raise ValueError(f"{name} must be in [{low}, {high}), got {value!r}")
        for name, smallest, kind in (
            ("l2", 0.0, "non-negative"),
            ("learning_rate", 0.0, "positive"),
        ):
            value = getattr(self, name)
            finite = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
            if not finite or value < smallest or (kind == "positive" and value == smallest):
                raise ValueError(f"{name} must be a {kind} number, got {value!r}")
        check_int("batch_size", self.batch_size, 1)
        check_int("epochs", self.epochs, 1)
        check_int("patience", self.patience, 1)
        check_fraction("contamination", self.contamination, 0.0, 0.5)
        if self.callback is not None and not callable(self.callback):
            raise ValueError(f"callback must be callable or None, got {self.callback!r}")

    def fit(self, X, y=None):
        """Train the network to reconstruct X.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Numeric, finite training data.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If training diverges (a NaN or infinite loss or weight, weights
            too large to score finitely, or training rows whose error
            overflows), naming the epoch: lower ``learning_rate`` or keep
            the inputs moderate (``standardize=True``). The estimator is
            then left unfitted.
        """
        self._check_params()
        n_threads = resolve_n_jobs(self.n_jobs)
        X = validate_fit_input(self, X, min_samples=1)
        layers = self._layers(X.shape[1])
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train, valid = self._split(X, rng)

        native = _core.AutoEncoderModel()
        native.initialize(
            train,
            layers,
            _ACTIVATIONS[self.activation],
            float(self.dropout),
            float(self.l2),
            float(self.learning_rate),
            int(self.batch_size),
            _DTYPES[self.dtype],
            seed,
            bool(self.standardize),
        )
        self._native = None
        self.loss_curve_, self.validation_scores_ = [], []
        self.layers_ = tuple(layers)
        self.interrupted_ = False
        best = (np.inf, None, 0)  # validation loss, weights, epoch
        progress = self._progress_bar()
        try:
            for epoch in range(self.epochs):
                loss = native.train_epoch(train, n_threads)
                self.loss_curve_.append(float(loss))
                val = None
                if valid is not None:
                    val = float(np.mean(native.row_errors(valid, n_threads)))
                    self.validation_scores_.append(val)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(
                        loss=f"{loss:.4g}", **({"val": f"{val:.4g}"} if val is not None else {})
                    )
                if self.callback is not None:
                    self.callback(epoch, float(loss), val)
                if self.early_stopping and val is not None:
                    if val < best[0]:
                        best = (val, native.serialize(), epoch + 1)
                    elif epoch + 1 - best[2] >= self.patience:
                        break
        except KeyboardInterrupt:
            self.interrupted_ = True
            if native.epochs_trained == 0:
                raise
            self._finish(native, best, X, n_threads)
            warnings.warn(
                f"training interrupted: the model keeps the weights of epoch {self.n_epochs_}",
                UserWarning,
                stacklevel=2,
            )
            raise
        finally:
            if progress is not None:
                progress.close()
        self._finish(native, best, X, n_threads)
        return self

    def _split(self, X, rng):
        """(training rows, validation rows or None)."""
        n_valid = int(round(self.validation_fraction * X.shape[0]))
        if n_valid < 1 or X.shape[0] - n_valid < 1:
            return X, None
        order = rng.permutation(X.shape[0])
        return np.ascontiguousarray(X[order[n_valid:]]), np.ascontiguousarray(X[order[:n_valid]])

    def _progress_bar(self):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.epochs, desc="AutoEncoder", unit="epoch")

    def _finish(self, native, best, X, n_threads):
        """Keep the best weights (early stopping) and set the threshold."""
        if self.early_stopping and best[1] is not None:
            native = _core.AutoEncoderModel.deserialize(best[1])
        self.n_epochs_ = native.epochs_trained
        scores = -native.row_errors(X, n_threads)
        overflowing = int(np.count_nonzero(~np.isfinite(scores)))
        if overflowing:
            # The native bound covers inputs within kSafeInputRadius; rows
            # beyond it (unstandardised, huge) can still overflow.
            raise ValueError(
                f"AutoEncoder training diverged: after epoch {self.n_epochs_} the reconstruction error "
                f"of {overflowing} of the {len(scores)} training rows overflows; lower learning_rate "
                f"(now {self.learning_rate!r}) or bring the inputs to a moderate scale (keep standardize on)"
            )
        self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        self._native = native

    def _body(self):
        # The native model refuses to serialise weights its loader would
        # refuse; the threshold lives in the metadata, so it is checked here.
        if not np.isfinite(self.offset_):
            raise ValueError(
                f"the AutoEncoder cannot be saved: its offset_ is {self.offset_!r}, not finite"
            )
        return self._native.serialize()

    def score_samples(self, X):
        """Minus the mean squared reconstruction error of each row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Higher is more normal.
        """
        X = validate_score_input(self, X)
        return -self._native.row_errors(X, resolve_n_jobs(self.n_jobs))

    def reconstruction_errors(self, X):
        """Squared reconstruction error of every value, in standardised units.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            Row i's mean is ``-score_samples(X)[i]``; a large entry names the
            feature the model could not explain.
        """
        X = validate_score_input(self, X)
        return self._native.value_errors(X, resolve_n_jobs(self.n_jobs))

    # -- loading -----------------------------------------------------------------

    def _validate_params(self):
        """The checks that need no data (load runs them; fit makes the same)."""
        self._check_params()
        self._layers(1)
        resolve_n_jobs(self.n_jobs)
        check_random_state(self.random_state)

    def _check_fitted_attributes(self, params, attributes, native):
        settings = native.settings
        n_features = fitted_equal(attributes, "n_features_in_", native.n_features, "the network")
        fitted_feature_names(attributes, n_features)
        layers = fitted_equal(attributes, "layers_", tuple(settings["layers"]), "the network")
        if tuple(_blank(type(self), params)._layers(n_features)) != layers:
            raise MetadataError(
                "params.hidden_layers",
                f"{params['hidden_layers']!r} (mirror="
                f"{params['mirror']!r}) disagrees with the network's layers {layers}",
            )
        saved = {
            "activation": _ACTIVATIONS[params["activation"]],
            "float64": _DTYPES[params["dtype"]],
            "dropout": float(params["dropout"]),
            "l2": float(params["l2"]),
            "learning_rate": float(params["learning_rate"]),
            "batch_size": int(params["batch_size"]),
        }
        for name, value in saved.items():
            if settings[name] != value:
                field = {"float64": "dtype"}.get(name, name)
                raise MetadataError(
                    f"params.{field}", f"{params[field]!r} disagrees with the network's setting"
                )
        # The native loader refused weights with which any input near the
        # training data could score non-finitely (autoencoder.hpp). A
        # subnormal scale would send every input out of range.
        if not (native.input_scale >= np.finfo(params["dtype"]).tiny).all():
            raise MetadataError("body.standardisation", "holds a subnormal scale")
        epochs = fitted_equal(attributes, "n_epochs_", native.epochs_trained, "the network")
        for name in ("loss_curve_", "validation_scores_"):
            curve = fitted(attributes, name)
            if not (
                isinstance(curve, list)
                and len(curve) <= params["epochs"]
                and all(isinstance(v, float) and v >= 0 and np.isfinite(v) for v in curve)
            ):
                raise MetadataError(
                    f"attributes.{name}", "must be a list of at most `epochs` finite losses >= 0"
                )
        n_run = len(attributes["loss_curve_"])
        if n_run < epochs or len(attributes["validation_scores_"]) not in (0, n_run):
            raise MetadataError(
                "attributes.loss_curve_",
                f"has {n_run} epochs, {epochs} kept and "
                f"{len(attributes['validation_scores_'])} validation losses",
            )
        if type(fitted(attributes, "interrupted_")) is not bool:
            raise MetadataError("attributes.interrupted_", "must be true or false")
        fitted_float(attributes, "offset_")
