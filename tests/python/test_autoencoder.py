"""AutoEncoder: the native network against a NumPy reference, and the
estimator contract (determinism, early stopping, callbacks, interruption,
persistence, errors)."""

import pickle

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import fraudcore
from fraudcore import AutoEncoder, _core

ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, h: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z, h: np.where(z > 0, 1.0, 0.01)),
    "tanh": (np.tanh, lambda z, h: 1 - h**2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, h: h * (1 - h)),
}
CODES = {"relu": 0, "tanh": 1, "sigmoid": 2, "leaky_relu": 3}


def native_layers(native, n_layers):
    return [native.layer(l) for l in range(n_layers)]


def reference_step(X, layers, activation, lr, l2):
    """One full-batch Adam step (t = 1) on the mean squared error, in NumPy."""
    f, df = ACTIVATIONS[activation]
    acts, zs, hs = [X], [], []
    for i, (W, b) in enumerate(layers):
        z = acts[-1] @ W.T + b
        zs.append(z)
        if i < len(layers) - 1:
            hs.append(f(z))
            acts.append(hs[-1])
        else:
            acts.append(z)
    delta = 2 * (acts[-1] - X) / X.size
    new = []
    for i in reversed(range(len(layers))):
        W, b = layers[i]
        gW, gb = delta.T @ acts[i] + l2 * W, delta.sum(axis=0) + l2 * b
        if i > 0:
            delta = (delta @ W) * df(zs[i - 1], hs[i - 1])
        # Adam's first step: m = 0.1 g, v = 0.001 g^2, both bias-corrected.
        new.append((W - lr * gW / (np.abs(gW) + 1e-8), b - lr * gb / (np.abs(gb) + 1e-8)))
    return new[::-1], float(np.mean((acts[-1] - X) ** 2))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_one_adam_step_equals_the_numpy_reference(activation):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5)) * [1, 2, 3, 4, 5] + 7
    sizes = [5, 8, 3, 8, 5]
    native = _core.AutoEncoderModel()
    native.initialize(X, sizes, CODES[activation], 0.0, 1e-3, 0.01, 150, True, 7, True)
    before = native_layers(native, 4)
    Xs = (X - X.mean(0)) / X.std(0)
    np.testing.assert_allclose(native.input_mean, X.mean(0), rtol=1e-14)
    expected, loss = reference_step(Xs, before, activation, lr=0.01, l2=1e-3)
    assert native.train_epoch(X, 2) == pytest.approx(loss, rel=1e-12)
    for (W, b), (W_ref, b_ref) in zip(native_layers(native, 4), expected):
        np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, b_ref, rtol=1e-9, atol=1e-12)
    # Scores: the mean squared error of the reference forward pass.
    h = Xs
    for i, (W, b) in enumerate(native_layers(native, 4)):
        h = h @ W.T + b
        if i < 3:
            h = ACTIVATIONS[activation][0](h)
    np.testing.assert_allclose(native.row_errors(X, 1), ((h - Xs) ** 2).mean(axis=1), rtol=1e-10)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_float32_step_is_the_float64_step_to_float32_precision(activation):
    # float32 runs on the CPU's vector kernels (AVX-512 / AVX2), float64 on
    # Eigen: after one full-batch step both must equal the reference.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 18))
    sizes = [18, 64, 32, 64, 18]
    native = _core.AutoEncoderModel()
    native.initialize(X, sizes, CODES[activation], 0.0, 0.0, 1e-3, 300, False, 11, True)
    before = native_layers(native, 4)
    Xs = (X - X.mean(0)) / X.std(0)
    expected, loss = reference_step(Xs, before, activation, lr=1e-3, l2=0.0)
    assert native.train_epoch(X.astype(np.float32), 2) == pytest.approx(loss, rel=1e-5)
    for (W, b), (W_ref, b_ref) in zip(native_layers(native, 4), expected):
        # Adam's first step moves each weight by about lr * sign(gradient).
        np.testing.assert_allclose(W, W_ref, atol=2e-6)
        np.testing.assert_allclose(b, b_ref, atol=2e-6)


def test_layer_layout_and_initialisation():
    model = AutoEncoder(hidden_layers=(16, 4), epochs=1, random_state=0).fit(np.eye(10))
    assert model.layers_ == (10, 16, 4, 16, 10)
    model = AutoEncoder(hidden_layers=(7, 3, 9), mirror=False, epochs=1).fit(np.eye(10))
    assert model.layers_ == (10, 7, 3, 9, 10)
    native = _core.AutoEncoderModel()
    native.initialize(
        np.random.default_rng(0).normal(size=(50, 300)),
        [300, 200, 300],
        0,
        0.0,
        0.0,
        1e-3,
        32,
        True,
        1,
        True,
    )
    W, b = native.layer(0)  # He-normal: std sqrt(2 / fan_in); zero biases
    assert W.std() == pytest.approx(np.sqrt(2 / 300), rel=0.02) and not b.any()


def test_learns_and_finds_the_anomalies(blobs):
    X, y = blobs
    model = AutoEncoder(epochs=15, random_state=0, n_jobs=2).fit(X)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]
    assert len(model.validation_scores_) == 15
    assert roc_auc_score(y, -model.score_samples(X)) > 0.95
    errors = model.reconstruction_errors(X[:50])
    np.testing.assert_allclose(errors.mean(axis=1), -model.score_samples(X[:50]), rtol=1e-12)
    assert abs(np.mean(model.predict(X) == -1) - 0.1) < 0.01


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_model_for_every_thread_count(blobs, dtype):
    X, _ = blobs
    runs = [
        AutoEncoder(
            batch_size=256, epochs=3, dropout=0.3, dtype=dtype, random_state=5, n_jobs=j
        ).fit(X)
        for j in (1, 2, 3)
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.score_samples(X), runs[0].score_samples(X))
        assert other.loss_curve_ == runs[0].loss_curve_
    different = AutoEncoder(batch_size=256, epochs=3, dtype=dtype, random_state=6).fit(X)
    assert not np.array_equal(different.score_samples(X), runs[0].score_samples(X))


def test_early_stopping_keeps_the_best_epoch(blobs):
    X, _ = blobs
    model = AutoEncoder(
        epochs=200, early_stopping=True, patience=3, learning_rate=0.01, random_state=0
    ).fit(X)
    assert model.n_epochs_ < 200
    best = int(np.argmin(model.validation_scores_)) + 1
    assert model.n_epochs_ == best
    assert len(model.validation_scores_) == best + 3


def test_callback_progress_bar_and_interruption(blobs):
    X, _ = blobs
    seen = []
    AutoEncoder(epochs=4, verbose=True, callback=lambda *a: seen.append(a)).fit(X)
    assert [s[0] for s in seen] == [0, 1, 2, 3] and all(s[2] is not None for s in seen)

    def interrupt(epoch, loss, val):
        if epoch == 2:
            raise KeyboardInterrupt

    model = AutoEncoder(epochs=10, callback=interrupt, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"), pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert model.interrupted_ and model.n_epochs_ == 3
    assert model.score_samples(X[:5]).shape == (5,)


def test_persistence(blobs, tmp_path):
    X, _ = blobs
    model = AutoEncoder(epochs=2, random_state=0, callback=print).fit(X)
    for twin in (pickle.loads(pickle.dumps(model)), fraudcore.load(model.save(tmp_path / "ae.fc"))):
        np.testing.assert_array_equal(twin.score_samples(X), model.score_samples(X))
        assert twin.loss_curve_ == model.loss_curve_ and twin.layers_ == model.layers_
        assert twin.callback is None  # a callback is not model state
    data = model.__getstate__()["fraudcore_model"]
    for cut in range(0, len(data), max(1, len(data) // 200)):
        with pytest.raises(fraudcore.ModelFormatError):
            AutoEncoder().__setstate__({"fraudcore_model": data[:cut]})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden_layers": (64, 0)}, "every hidden layer size must be >= 1"),
        ({"hidden_layers": ()}, "at least one layer"),
        ({"hidden_layers": 64}, "sequence of ints"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"dropout": 1.0}, r"dropout must be in \[0.0, 1.0\)"),
        ({"learning_rate": 0}, "learning_rate must be a positive number"),
        ({"l2": -1}, "l2 must be a non-negative number"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"dtype": "float16"}, "dtype must be"),
        ({"contamination": 0.9}, "contamination must be in"),
        ({"callback": 3}, "callback must be callable"),
    ],
)
def test_invalid_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        AutoEncoder(**params).fit(np.random.default_rng(0).normal(size=(20, 3)))


def test_bad_input():
    model = AutoEncoder(epochs=1).fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ValueError, match="NaN|infinity"):
        AutoEncoder().fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="NaN|infinity"):
        model.score_samples(np.array([[1.0, np.inf, 0.0]]))
    with pytest.raises(ValueError, match="X has 4 features, but AutoEncoder is expecting 3"):
        model.score_samples(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="0 sample"):
        AutoEncoder().fit(np.empty((0, 3)))
    # finite, but beyond float32 once standardised: an error, not inf scores
    with pytest.raises(ValueError, match=r"X\[0, 1\] = 1e\+300 is out of range once standardised"):
        model.score_samples(np.array([[0.0, 1e300, 0.0]]))
    with pytest.raises(ValueError, match="out of range once standardised"):
        AutoEncoder(standardize=False).fit(np.full((5, 2), 1e39))
    assert np.isfinite(
        AutoEncoder(standardize=False, dtype="float64", epochs=1)
        .fit(np.full((5, 2), 1e39))
        .score_samples(np.full((1, 2), 1e39))
    )


# -- divergence and the finite-score guarantee (issue 12) ---------------------------------


def _rewrite_weights(data, new_weights):
    """A model file's bytes with every weight and bias replaced by new_weights(layers, flat
    float64 array) and the checksum made right again: a file only a hand could write."""
    _, kind, meta, body = _core.unpack_envelope(data)
    # The body opens with the layer count (u64) and sizes (i64); the weights close it.
    (n_sizes,) = np.frombuffer(body[:8], dtype="<u8")
    sizes = [int(s) for s in np.frombuffer(body[8 : 8 + 8 * int(n_sizes)], dtype="<i8")]
    count = sum(out * (fan_in + 1) for fan_in, out in zip(sizes[:-1], sizes[1:]))
    flat = np.frombuffer(body[-8 * count :], dtype="<f8").copy()
    flat = np.asarray(new_weights(sizes, flat), dtype="<f8")
    return _core.pack_envelope(kind, meta, body[: -8 * count] + flat.tobytes())


@pytest.mark.parametrize(
    "params, scale",
    [({"learning_rate": 1e6}, 1.0), ({"standardize": False}, 1e20)],
    ids=["huge-learning-rate", "unscaled-huge-inputs"],
)
def test_divergence_is_an_error_naming_the_epoch(blobs, tmp_path, params, scale):
    X, _ = blobs
    model = AutoEncoder(epochs=3, random_state=0, **params)
    with pytest.raises(
        ValueError, match=r"diverged in epoch 1\b.*lower learning_rate.*standardize"
    ):
        model.fit(X * scale)
    assert not model.__sklearn_is_fitted__()  # nothing to score
    # What is saved now is the unfitted estimator, and it loads.
    assert not fraudcore.load(model.save(tmp_path / "ae.fc")).__sklearn_is_fitted__()


def test_save_refuses_what_load_would_refuse(blobs, tmp_path):
    X, _ = blobs
    model = AutoEncoder(epochs=1, random_state=0).fit(X)
    model.offset_ = float("nan")
    with pytest.raises(ValueError, match="offset_ is nan"):
        model.save(tmp_path / "bad.fc")
    with pytest.raises(ValueError, match="offset_ is nan"):
        pickle.dumps(model)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value", [1e300, 1e30])
def test_load_refuses_finite_weights_that_overflow(blobs, dtype, value):
    X, _ = blobs
    data = (
        AutoEncoder(epochs=1, dtype=dtype, random_state=0).fit(X).__getstate__()["fraudcore_model"]
    )
    if dtype == "float64" and value == 1e30:
        value = 1e160  # float64's limit for the squared error is ~1e154
    bad = _rewrite_weights(data, lambda sizes, w: np.full_like(w, value))
    with pytest.raises(fraudcore.ModelFormatError, match="too large|NaN or infinite in float32"):
        AutoEncoder().__setstate__({"fraudcore_model": bad})


def test_a_model_at_the_edge_of_the_bound_loads_and_scores_finite_values():
    # Equal positive weights, zero biases, relu: the bound is exact for an input
    # of +radius in every feature, so the file just inside loads and scores that
    # row finitely, and the one just outside is refused (before the fix: -inf).
    X = np.random.default_rng(0).normal(size=(200, 6))
    model = AutoEncoder(epochs=1, dropout=0.0, random_state=0).fit(X)
    sizes = model.layers_
    data = model.__getstate__()["fraudcore_model"]
    radius = 1e6
    edge = model._native.input_mean + radius * model._native.input_scale
    fan_ins = np.prod(np.asarray(sizes[:-1], dtype=float))  # the output is w^L * fan_ins * radius
    n_layers = len(sizes) - 1
    largest = float(np.finfo(np.float32).max)

    def constant(target):
        w = (target / (radius * fan_ins)) ** (1.0 / n_layers)
        return lambda s, flat: np.concatenate(
            [np.concatenate([np.full(o * i, w), np.zeros(o)]) for i, o in zip(s[:-1], s[1:])]
        )

    inside = AutoEncoder()
    inside.__setstate__({"fraudcore_model": _rewrite_weights(data, constant(0.5 * largest))})
    score = inside.score_samples(edge[None, :])
    assert np.isfinite(score).all() and score[0] < -1e70
    with pytest.raises(fraudcore.ModelFormatError, match="too large"):
        AutoEncoder().__setstate__(
            {"fraudcore_model": _rewrite_weights(data, constant(2.0 * largest))}
        )


def test_loaded_model_scores_finite_values(blobs, tmp_path):
    X, _ = blobs
    for dtype in ("float32", "float64"):
        model = fraudcore.load(
            AutoEncoder(epochs=3, dtype=dtype, random_state=0).fit(X).save(tmp_path / "ae.fc")
        )
        far = model._native.input_mean + 1e6 * model._native.input_scale * np.sign(X[:20])
        scores = model.score_samples(np.vstack([X, far]))
        assert np.isfinite(scores).all()
        # Beyond the guaranteed radius an overflow scores -inf (an outlier), never NaN.
        beyond = model.score_samples(
            np.full((1, X.shape[1]), 1e300 if dtype == "float64" else 1e30)
        )
        assert not np.isnan(beyond).any() and beyond[0] < model.offset_
        assert (
            model.predict(np.full((1, X.shape[1]), 1e300 if dtype == "float64" else 1e30))[0] == -1
        )
