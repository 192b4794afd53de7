"""pickle and save/load share one checksummed binary format."""

import os
import pickle

import numpy as np
import pytest

import fraudcore
from fraudcore import IsolationForest, ModelFormatError


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(1).normal(size=(500, 5))


@pytest.fixture(scope="module", params=[0, 2], ids=["axis", "extended"])
def model(request, data):
    return IsolationForest(
        n_estimators=30, contamination=0.1, extension_level=request.param, random_state=0
    ).fit(data)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_every_protocol(model, data, protocol):
    twin = pickle.loads(pickle.dumps(model, protocol=protocol))
    np.testing.assert_array_equal(twin.score_samples(data), model.score_samples(data))
    assert twin.offset_ == model.offset_
    assert twin.get_params() == model.get_params()


def test_pickle_embeds_the_binary_format(model):
    state = model.__getstate__()
    assert set(state) == {"fraudcore_model"}
    assert state["fraudcore_model"][:4] == b"\x89FRC"


def test_save_load_round_trip(model, data, tmp_path):
    path = model.save(tmp_path / "forest.fc")
    for loaded in (fraudcore.load(path), IsolationForest.load(path)):
        np.testing.assert_array_equal(loaded.score_samples(data), model.score_samples(data))
        np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
        assert loaded.max_samples_ == model.max_samples_


def test_round_trip_keeps_feature_names(data, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(data, columns=list("abcde"))
    model = IsolationForest(n_estimators=5, random_state=0).fit(df)
    loaded = fraudcore.load(model.save(tmp_path / "m.fc"))
    assert list(loaded.feature_names_in_) == list("abcde")
    np.testing.assert_array_equal(loaded.score_samples(df), model.score_samples(df))


def test_unfitted_and_random_state_objects_survive(tmp_path):
    rs = np.random.RandomState(42)
    model = IsolationForest(random_state=rs)
    loaded = fraudcore.load(model.save(tmp_path / "unfitted.fc"))
    assert not loaded.__sklearn_is_fitted__()
    assert loaded.random_state.get_state()[1].tolist() == rs.get_state()[1].tolist()
    twin = pickle.loads(pickle.dumps(model))
    assert isinstance(twin.random_state, np.random.RandomState)


def test_every_truncation_is_a_clear_error(model):
    data = model.__getstate__()["fraudcore_model"]
    cuts = sorted(set(range(64)) | set(range(64, len(data), max(1, len(data) // 200))))
    for cut in cuts:
        with pytest.raises(ModelFormatError, match="truncated|magic|corrupted"):
            IsolationForest().__setstate__({"fraudcore_model": data[:cut]})


def test_every_flipped_byte_is_a_clear_error(model):
    data = bytearray(model.__getstate__()["fraudcore_model"])
    rng = np.random.default_rng(0)
    positions = sorted(set(range(40)) | set(rng.integers(0, len(data), 300).tolist()))
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(ModelFormatError):
            IsolationForest().__setstate__({"fraudcore_model": bytes(bad)})


def _node_record_offset(native, node):
    """Byte offset of node `node`'s record in a serialized forest body."""
    n = native.n_estimators
    return 8 + 8 + 4 + (8 + 8 * n) + (8 + 4 * n) + 8 + node * 24


def _first_inner_and_leaf(native):
    tree = native.export_tree(0)
    own = np.arange(len(tree["left"]))
    return int(np.flatnonzero(tree["left"] != own)[0]), int(np.flatnonzero(tree["left"] == own)[0])


@pytest.mark.parametrize("attack", ["self-loop", "int32-max child", "inner path NaN", "depth"])
def test_structurally_hostile_body_with_a_valid_checksum(model, attack):
    # Bodies whose checksum is right but whose trees would send the walk out
    # of bounds, round in circles, or to a wrong answer: refused on load.
    from fraudcore import _core

    _version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    native = _core.IsolationForestModel.deserialize(body)
    inner, _leaf = _first_inner_and_leaf(native)
    hostile = bytearray(body)
    if attack == "self-loop":  # an inner node that is its own child
        at = _node_record_offset(native, inner) + 4
        hostile[at : at + 4] = np.int32(inner).tobytes()
    elif attack == "int32-max child":  # left + 1 overflows 32 bits
        at = _node_record_offset(native, inner) + 4
        hostile[at : at + 4] = np.int32(2**31 - 1).tobytes()
    elif attack == "inner path NaN":
        at = _node_record_offset(native, inner) + 16
        hostile[at : at + 8] = np.float64(np.nan).tobytes()
    else:  # the stored depth of tree 0 understates the tree
        at = 8 + 8 + 4 + (8 + 8 * native.n_estimators) + 8
        hostile[at : at + 4] = np.int32(0).tobytes()
    envelope = _core.pack_envelope(kind, meta, bytes(hostile))
    with pytest.raises(ModelFormatError, match="corrupted"):
        IsolationForest().__setstate__({"fraudcore_model": envelope})


def test_saved_file_follows_the_umask_and_keeps_an_existing_mode(model, tmp_path):
    old = os.umask(0o022)
    try:
        path = model.save(tmp_path / "new.fc")
        assert os.stat(path).st_mode & 0o777 == 0o644
        os.chmod(path, 0o640)
        model.save(path)
        assert os.stat(path).st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_newer_format_and_wrong_kind(model, tmp_path):
    from fraudcore import _core

    data = bytearray(model.__getstate__()["fraudcore_model"])
    data[8:12] = (_core.FORMAT_VERSION + 1).to_bytes(4, "little")
    data[-4:] = _core.crc32(bytes(data[:-4])).to_bytes(4, "little")
    with pytest.raises(ModelFormatError, match="newer"):
        IsolationForest().__setstate__({"fraudcore_model": bytes(data)})
    other = _core.pack_envelope("GradientBoostedUnicorn", b"{}", b"")
    path = tmp_path / "other.fc"
    path.write_bytes(other)
    with pytest.raises(ModelFormatError, match="unknown model kind"):
        fraudcore.load(path)
    path.write_bytes(b"hello, I am a CSV file\n")
    with pytest.raises(ModelFormatError, match="not a fraudcore model"):
        fraudcore.load(path)
    with pytest.raises(FileNotFoundError):
        fraudcore.load(tmp_path / "missing.fc")


def test_failed_save_leaves_the_previous_file_intact(model, tmp_path, monkeypatch):
    path = tmp_path / "forest.fc"
    model.save(path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        IsolationForest(n_estimators=3, random_state=1).fit(np.eye(4)).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forest.fc"]


# -- hostile and edited metadata ------------------------------------------------


def _edited(model, edit):
    """The model's file with its JSON metadata changed by ``edit`` (checksum recomputed)."""
    import json

    from fraudcore import _core

    _version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    meta = json.loads(meta)
    edit(meta)
    return _core.pack_envelope(kind, json.dumps(meta).encode(), body)


def _load_bytes(data, tmp_path):
    path = tmp_path / "edited.fc"
    path.write_bytes(data)
    return fraudcore.load(path)


@pytest.mark.parametrize(
    "dtype",
    [
        "U100000000",
        "<U100000000",
        "V400000000",
        "S400000000",
        "complex128",
        "datetime64[ns]",
        "f8,i4",
        "float128",
        "no such dtype",
    ],
)
def test_an_array_dtype_in_the_metadata_cannot_allocate(model, tmp_path, dtype):
    # Three short strings declared 'U100000000' made load() allocate 1.2 GB.
    import tracemalloc

    names = {"__ndarray__": ["a", "b", "c"], "dtype": dtype}
    data = _edited(model, lambda meta: meta["attributes"].__setitem__("feature_names_in_", names))
    tracemalloc.start()
    try:
        with pytest.raises(
            ModelFormatError, match=r"field 'attributes.feature_names_in_': array dtype"
        ):
            _load_bytes(data, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * len(data)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda m: m["params"].__setitem__("n_estimators", "many"), "params.n_estimators"),
        (lambda m: m["params"].__setitem__("n_estimators", -3), "params.n_estimators"),
        (
            lambda m: m["params"].__setitem__("n_estimators", 7),
            "params.n_estimators",
        ),  # not the forest's
        (lambda m: m["params"].__setitem__("contamination", 2.0), "params.contamination"),
        (lambda m: m["params"].__setitem__("bootstrap", "yes"), "params.bootstrap"),
        (lambda m: m["params"].__setitem__("max_samples", [1]), "params.max_samples"),
        (lambda m: m["params"].__setitem__("n_jobs", 0), "params.n_jobs"),
        (
            lambda m: m["params"].__setitem__("random_state", {"__random_state__": [1, 2]}),
            "params.random_state",
        ),
        (lambda m: m["params"].__setitem__("n_trees", 3), "params.n_trees"),
        (
            lambda m: m["attributes"].__setitem__("n_features_in_", -0.0),
            "attributes.n_features_in_",
        ),
        (lambda m: m["attributes"].__setitem__("n_features_in_", 4), "attributes.n_features_in_"),
        (lambda m: m["attributes"].pop("offset_"), "attributes.offset_"),
        (lambda m: m["attributes"].__setitem__("offset_", "low"), "attributes.offset_"),
        (lambda m: m["attributes"].__setitem__("offset_", float("nan")), "attributes.offset_"),
        (lambda m: m["attributes"].__setitem__("offset_", 10**30), "attributes.offset_"),
        (lambda m: m["attributes"].__setitem__("max_samples_", 1), "attributes.max_samples_"),
        (lambda m: m["attributes"].__setitem__("max_features_", 99), "attributes.max_features_"),
        (
            lambda m: m["attributes"].__setitem__("max_features_", {"__tuple__": []}),
            "attributes.max_features_",
        ),
        (
            lambda m: m["attributes"].__setitem__(
                "feature_names_in_", {"__ndarray__": [1.0] * 5, "dtype": "float64"}
            ),
            "attributes.feature_names_in_",
        ),
        (
            lambda m: m["attributes"].__setitem__(
                "feature_names_in_", {"__ndarray__": ["a"], "dtype": "object", "shape": [10**12]}
            ),
            "attributes.feature_names_in_",
        ),
        (
            lambda m: m["attributes"].__setitem__(
                "offset_", {"__dict__": {"a": {"b": {"nested": 1}}}}
            ),
            "attributes.offset_",
        ),
        (lambda m: m.__setitem__("params", [1, 2]), "params"),
        (lambda m: m.pop("attributes"), "attributes"),
        (lambda m: m.__setitem__("extra", 1), "extra"),
    ],
)
def test_edited_metadata_is_refused_naming_the_field(model, tmp_path, edit, field):
    # Before: TypeError, AttributeError, IndexError, or a model that failed
    # later with "expecting -0.0 features".
    data = _edited(model, edit)
    with pytest.raises(ModelFormatError, match=rf"fraudcore model metadata field '{field}['.\[]"):
        _load_bytes(data, tmp_path)


def test_metadata_json_with_a_huge_integer_is_refused(model, tmp_path):
    from fraudcore import _core

    _version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    meta = meta.replace(b'"n_jobs": null', b'"n_jobs": ' + b"9" * 5000)
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        _load_bytes(_core.pack_envelope(kind, meta, body), tmp_path)


@pytest.mark.parametrize("depth", [900, 990, 5000])
def test_deeply_nested_metadata_is_refused(model, tmp_path, depth):
    from fraudcore import _core

    _version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    meta = meta.replace(b'"n_jobs": null', b'"n_jobs": ' + b"[" * depth + b"]" * depth)
    with pytest.raises(ModelFormatError, match="nested too deeply|not valid JSON"):
        _load_bytes(_core.pack_envelope(kind, meta, body), tmp_path)


def _neighbor_and_autoencoder_models():
    from fraudcore import AutoEncoder, KNNDetector, LocalOutlierFactor

    X = np.random.default_rng(3).normal(size=(40, 3))
    return {
        "lof": LocalOutlierFactor(n_neighbors=5, novelty=True).fit(X),
        "knn": KNNDetector(n_neighbors=3, method="mean").fit(X),
        "ae": AutoEncoder(hidden_layers=(4, 2), epochs=2, random_state=0).fit(X),
    }


@pytest.mark.parametrize(
    "kind, edit, field",
    [
        (
            "lof",
            lambda m: m["attributes"].__setitem__("n_neighbors_", 7),
            "attributes.n_neighbors_",
        ),
        (
            "lof",
            lambda m: m["attributes"].__setitem__("n_samples_fit_", 41),
            "attributes.n_samples_fit_",
        ),
        (
            "lof",
            lambda m: m["attributes"].__setitem__("effective_p_", 1.0),
            "attributes.effective_p_",
        ),
        ("lof", lambda m: m["params"].__setitem__("p", 3), "attributes.effective_p_"),
        ("lof", lambda m: m["params"].__setitem__("metric", "cosine"), "params.metric"),
        ("lof", lambda m: m["params"].__setitem__("leaf_size", 5), "params.leaf_size"),
        (
            "lof",
            lambda m: m["params"].__setitem__("algorithm", "brute"),
            "attributes.fit_algorithm_",
        ),
        (
            "lof",
            lambda m: m["attributes"].__setitem__(
                "effective_metric_params_", {"__dict__": {"p": 9}}
            ),
            "attributes.effective_metric_params_",
        ),
        ("knn", lambda m: m["params"].__setitem__("method", "largest"), "params.method"),
        ("knn", lambda m: m["params"].__setitem__("method", 1), "params.method"),
        (
            "ae",
            lambda m: m["attributes"].__setitem__("layers_", {"__tuple__": [3, 4, 3]}),
            "attributes.layers_",
        ),
        (
            "ae",
            lambda m: m["params"].__setitem__("hidden_layers", {"__tuple__": [5, 2]}),
            "params.hidden_layers",
        ),
        ("ae", lambda m: m["params"].__setitem__("dtype", "float64"), "params.dtype"),
        ("ae", lambda m: m["params"].__setitem__("callback", "print"), "params.callback"),
        ("ae", lambda m: m["attributes"].__setitem__("n_epochs_", 1), "attributes.n_epochs_"),
        (
            "ae",
            lambda m: m["attributes"].__setitem__("loss_curve_", ["x"]),
            "attributes.loss_curve_",
        ),
        ("ae", lambda m: m["attributes"].__setitem__("interrupted_", 0), "attributes.interrupted_"),
    ],
)
def test_edited_metadata_of_every_estimator_is_refused_naming_the_field(
    tmp_path, kind, edit, field
):
    data = _edited(_neighbor_and_autoencoder_models()[kind], edit)
    with pytest.raises(ModelFormatError, match=rf"fraudcore model metadata field '{field}['.\[]"):
        _load_bytes(data, tmp_path)


def test_a_float32_network_whose_saved_weight_overflows_is_refused(tmp_path):
    from fraudcore import _core

    model = _neighbor_and_autoencoder_models()["ae"]
    _version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    # The last 8 bytes are the output layer's last bias, stored as float64.
    hostile = body[:-8] + np.float64(1e300).tobytes()
    with pytest.raises(ModelFormatError, match="NaN or infinite in float32"):
        _load_bytes(_core.pack_envelope(kind, meta, hostile), tmp_path)


@pytest.fixture(scope="module")
def pipeline_models():
    from fraudcore import FeatureState, FraudDetector, Schema
    from fraudcore.datasets import make_transactions

    tx = make_transactions(30, 400, seed=0)
    state = FeatureState(Schema.transactions())
    state.update(tx.iloc[:40])
    detector = FraudDetector(
        Schema.transactions(),
        detector_params={"isolation_forest": {"n_estimators": 4}},
        random_state=0,
        n_jobs=1,
    ).fit(tx)
    return {"state": state, "detector": detector}


@pytest.mark.parametrize(
    "kind, edit, field",
    [
        (
            "state",
            lambda m: m["attributes"]["vocabularies_"]["__dict__"]["country"].append("US"),
            "attributes.vocabularies_.country",
        ),
        (
            "state",
            lambda m: m["attributes"]["vocabularies_"]["__dict__"].__setitem__("colour", []),
            "attributes.vocabularies_.colour",
        ),
        (
            "state",
            lambda m: m["attributes"]["vocabularies_"]["__dict__"].__setitem__("entity", []),
            "attributes.vocabularies_.entity",
        ),
        (
            "state",
            lambda m: m["params"].__setitem__("windows", {"__tuple__": ["2h"]}),
            "params.windows",
        ),
        (
            "state",
            lambda m: m["params"].__setitem__("night_hours", {"__tuple__": [0, 99]}),
            "params.night_hours",
        ),
        (
            "state",
            lambda m: m["params"].__setitem__("schema", {"__schema__": {"timestamp": "t"}}),
            "params.schema",
        ),
        (
            "detector",
            lambda m: m["params"].__setitem__("detectors", {"__tuple__": ["lof", "lof"]}),
            "params.detectors",
        ),
        (
            "detector",
            lambda m: m["params"].__setitem__("contamination", "high"),
            "params.contamination",
        ),
        (
            "detector",
            lambda m: m["params"].__setitem__("detector_params", {"__dict__": {"lof": 3}}),
            "params.detector_params",
        ),
        ("detector", lambda m: m["params"].__setitem__("target_recall", 7), "params.target_recall"),
        (
            "detector",
            lambda m: m["attributes"].__setitem__("weights_", {"__dict__": {"lof": 1.0}}),
            "attributes.weights_",
        ),
        (
            "detector",
            lambda m: m["attributes"].__setitem__("threshold_", "x"),
            "attributes.threshold_",
        ),
        (
            "detector",
            lambda m: m["attributes"]["feature_names_"].pop(),
            "attributes.feature_names_",
        ),
        (
            "detector",
            lambda m: m["params"].__setitem__("normalization", "rank"),
            "attributes.normalizers_",
        ),
        (
            "detector",
            lambda m: m["attributes"].__setitem__("n_training_rows_", 5),
            "attributes.n_training_rows_",
        ),
    ],
)
def test_edited_pipeline_metadata_is_refused_naming_the_field(
    pipeline_models, tmp_path, kind, edit, field
):
    data = _edited(pipeline_models[kind], edit)
    with pytest.raises(ModelFormatError, match=rf"fraudcore model metadata field '{field}['.\[]"):
        _load_bytes(data, tmp_path)


def test_pipeline_arrays_must_agree_with_the_metadata(pipeline_models, tmp_path):
    data = _edited(
        pipeline_models["detector"], lambda m: m["attributes"].__setitem__("n_training_rows_", 399)
    )
    with pytest.raises(ModelFormatError, match="model body part 'training_scores.ensemble'"):
        _load_bytes(data, tmp_path)


# -- the atomic save ---------------------------------------------------------------


def test_save_sets_the_mode_on_the_open_file_not_by_path(model, tmp_path, monkeypatch):
    # A chmod by path follows whatever the temporary name points to by then
    # (a swapped-in symlink); fchmod acts on the file save opened.
    def chmod_by_path(*args, **kwargs):
        raise AssertionError("save changed a mode by path")

    monkeypatch.setattr(os, "chmod", chmod_by_path)
    old = os.umask(0o027)
    try:
        path = model.save(tmp_path / "m.fc")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    import signal
    import subprocess
    import sys

    model = IsolationForest(n_estimators=3, random_state=0).fit(np.eye(4))

    path = tmp_path / "forest.fc"
    model.save(path)
    # A save killed (SIGKILL) between writing its temporary and renaming it.
    script = (
        "import os, signal, pickle, sys\n"
        "model = pickle.loads(sys.stdin.buffer.read())\n"
        "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"model.save({str(path)!r})\n"
    )
    env = {**os.environ, "SKBUILD_EDITABLE_VERBOSE": "0"}
    run = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(model),
        env=env,
        capture_output=True,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]
    stale = [p.name for p in tmp_path.iterdir() if p.name != "forest.fc"]
    assert (
        len(stale) == 1
        and stale[0].startswith(".forest.fc.fraudcore-")
        and stale[0].endswith(".tmp")
    )
    # A live saver's temporary (this process) and another file's stay.
    parts = stale[0].split("-")  # .forest.fc.fraudcore, host, pid, random.tmp
    live = tmp_path / "-".join([*parts[:2], str(os.getpid()), *parts[3:]])
    live.write_bytes(b"being written")
    other = tmp_path / stale[0].replace(".forest.fc.", ".other.fc.", 1)
    other.write_bytes(b"someone else's")
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["forest.fc", live.name, other.name]
    )
    assert fraudcore.load(path).n_features_in_ == model.n_features_in_
