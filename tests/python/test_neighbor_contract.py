"""The contract every neighbour detector keeps: clear errors for bad input,
and pickle / save / load through the checksummed binary format."""

import pickle

import numpy as np
import pytest

import fraudcore
from fraudcore import KNNDetector, LocalOutlierFactor, ModelFormatError, _core

DETECTORS = [LocalOutlierFactor, KNNDetector]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(9)
    return rng.normal(size=(300, 4)), rng.normal(size=(40, 4))


@pytest.fixture(
    scope="module",
    params=[(cls, algo) for cls in DETECTORS for algo in ("brute", "kd_tree")],
    ids=lambda p: f"{p[0].__name__}-{p[1]}",
)
def novelty_model(request, data):
    cls, algorithm = request.param
    return cls(n_neighbors=7, novelty=True, algorithm=algorithm, contamination=0.1).fit(data[0])


def training_scores(model):
    return getattr(model, model._training_scores_attribute)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_every_protocol(novelty_model, data, protocol):
    twin = pickle.loads(pickle.dumps(novelty_model, protocol=protocol))
    np.testing.assert_array_equal(twin.score_samples(data[1]), novelty_model.score_samples(data[1]))
    np.testing.assert_array_equal(training_scores(twin), training_scores(novelty_model))
    assert twin.get_params() == novelty_model.get_params()
    assert twin.offset_ == novelty_model.offset_


def test_save_load_round_trip(novelty_model, data, tmp_path):
    path = novelty_model.save(tmp_path / "model.fc")
    for loaded in (fraudcore.load(path), type(novelty_model).load(path)):
        np.testing.assert_array_equal(
            loaded.score_samples(data[1]), novelty_model.score_samples(data[1])
        )
        np.testing.assert_array_equal(loaded.predict(data[1]), novelty_model.predict(data[1]))
        assert loaded.fit_algorithm_ == novelty_model.fit_algorithm_
        assert loaded.n_neighbors_ == novelty_model.n_neighbors_


@pytest.mark.parametrize("cls", DETECTORS)
def test_outlier_mode_and_unfitted_models_round_trip(cls, data, tmp_path):
    model = cls(n_neighbors=5).fit(data[0])
    loaded = fraudcore.load(model.save(tmp_path / "m.fc"))
    np.testing.assert_array_equal(training_scores(loaded), training_scores(model))
    assert not fraudcore.load(cls(p=1).save(tmp_path / "u.fc")).__sklearn_is_fitted__()


def test_every_truncation_and_flipped_byte_is_a_clear_error(novelty_model):
    cls = type(novelty_model)
    data = novelty_model.__getstate__()["fraudcore_model"]
    for cut in range(0, len(data), max(1, len(data) // 300)):
        with pytest.raises(ModelFormatError):
            cls().__setstate__({"fraudcore_model": data[:cut]})
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, len(data), 200).tolist():
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(ModelFormatError):
            cls().__setstate__({"fraudcore_model": bytes(bad)})


def _rewrite_body(model, offset_from_end, value):
    """The model's envelope with body bytes replaced and a valid checksum."""
    _version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    hostile = bytearray(body)
    at = offset_from_end if offset_from_end >= 0 else len(hostile) + offset_from_end
    raw = value.tobytes()
    hostile[at : at + len(raw)] = raw
    return {"fraudcore_model": _core.pack_envelope(kind, meta, bytes(hostile))}


@pytest.mark.parametrize(
    "offset, value, what",
    [
        (0, np.float64(0.5), "p below 1"),
        (8, np.int32(7), "unknown algorithm"),
        (20, np.int64(2**40), "row count beyond the data"),
        (28, np.int64(0), "no columns"),
        (36, np.float64(np.nan), "a NaN training value"),
        (-8, np.float64(-1.0), "a negative score input"),
    ],
)
def test_hostile_bodies_with_a_valid_checksum(novelty_model, offset, value, what):
    # Offsets into the index header (p, algorithm, leaf size, rows, columns,
    # first value) and the last array value (lrd or a distance): each is
    # refused on load instead of producing wrong scores or a crash.
    if what == "a negative score input" and isinstance(novelty_model, LocalOutlierFactor):
        value = np.float64(np.inf)  # the last value is a score: must be finite
    with pytest.raises(ModelFormatError, match="inconsistent|truncated|invalid|non-finite"):
        type(novelty_model)().__setstate__(_rewrite_body(novelty_model, offset, value))


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(cls, bad, data):
    X = data[0].copy()
    X[5, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        cls().fit(X)
    model = cls(novelty=True).fit(data[0])
    for dtype in (np.float64, np.float32):
        with pytest.raises(ValueError, match="NaN|infinity"):
            model.score_samples(X.astype(dtype))


@pytest.mark.parametrize("cls", DETECTORS)
def test_shapes(cls, data):
    model = cls(novelty=True).fit(data[0])
    with pytest.raises(ValueError, match=f"X has 5 features, but {cls.__name__} is expecting 4"):
        model.score_samples(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="1 sample"):
        cls().fit(np.ones((1, 4)))
    with pytest.raises(ValueError, match="0 sample"):
        model.score_samples(np.empty((0, 4)))
    with pytest.raises(ValueError, match="2D array"):
        model.score_samples(np.zeros(4))


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_neighbors": 0}, "n_neighbors must be >= 1"),
        ({"n_neighbors": 2.0}, "n_neighbors must be an integer"),
        ({"leaf_size": 0}, "leaf_size must be >= 1"),
        ({"p": 0.5}, "p must be a number >= 1"),
        ({"metric": "cosine"}, "metric 'cosine' is not supported"),
        ({"metric_params": {"w": [1, 2]}}, "metric_params may only hold 'p'"),
        ({"algorithm": "ball_tree"}, "'ball_tree' is not available"),
        ({"algorithm": "fast"}, "algorithm must be one of"),
        ({"contamination": 0.6}, "contamination must be"),
        ({"novelty": "yes"}, "novelty must be True or False"),
        ({"n_jobs": 0}, "n_jobs == 0"),
    ],
)
def test_invalid_parameters(cls, params, message, data):
    with pytest.raises(ValueError, match=message):
        cls(**params).fit(data[0])


def test_unknown_knn_method(data):
    with pytest.raises(ValueError, match="method must be one of"):
        KNNDetector(method="max").fit(data[0])


@pytest.mark.parametrize("cls", DETECTORS)
def test_unfitted_use(cls):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        cls(novelty=True).score_samples(np.zeros((2, 2)))
