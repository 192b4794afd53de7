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
    return IsolationForest(n_estimators=30, contamination=0.1, extension_level=request.param,
                           random_state=0).fit(data)


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
    cuts = sorted(set(range(0, 64)) | set(range(64, len(data), max(1, len(data) // 200))))
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

    version, kind, meta, body = _core.unpack_envelope(model.__getstate__()["fraudcore_model"])
    native = _core.IsolationForestModel.deserialize(body)
    inner, leaf = _first_inner_and_leaf(native)
    hostile = bytearray(body)
    if attack == "self-loop":  # an inner node that is its own child
        at = _node_record_offset(native, inner) + 4
        hostile[at:at + 4] = np.int32(inner).tobytes()
    elif attack == "int32-max child":  # left + 1 overflows 32 bits
        at = _node_record_offset(native, inner) + 4
        hostile[at:at + 4] = np.int32(2**31 - 1).tobytes()
    elif attack == "inner path NaN":
        at = _node_record_offset(native, inner) + 16
        hostile[at:at + 8] = np.float64(np.nan).tobytes()
    else:  # the stored depth of tree 0 understates the tree
        at = 8 + 8 + 4 + (8 + 8 * native.n_estimators) + 8
        hostile[at:at + 4] = np.int32(0).tobytes()
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
