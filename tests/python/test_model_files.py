"""Damaged model files: each loads to a model that works, or raises ModelFormatError.

For every model kind, a few hundred seeded mutations of a small fitted
model's file: truncations, byte flips and overwritten length fields in the
native body and in the JSON metadata (the checksum recomputed, so the
parsers behind it are reached), and edits of the metadata's JSON (wrong
types, negative, huge and non-finite values, missing, unknown and nested
keys, arrays declaring a giant dtype). Each must either load to a model that
scores finite values on finite input of the model's width, or raise
ModelFormatError: never another exception, a crash, a hang or a large
allocation. The batch runs in a subprocess under an address-space cap
(RLIMIT_AS), so a crash or an allocation beyond the cap fails the test
instead of the test run.
"""

import json
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

KINDS = (
    "IsolationForest",
    "LocalOutlierFactor",
    "KNNDetector",
    "AutoEncoder",
    "FeatureState",
    "FraudDetector",
)
MUTATIONS = 300  # per kind, besides the truncations
HEADROOM = 512 << 20  # bytes of address space the batch may add to what its setup holds
MARKER = "MUTATION-RESULT "


@pytest.mark.parametrize("kind", KINDS)
def test_every_damaged_file_loads_to_a_working_model_or_is_refused(kind):
    env = {**os.environ, "SKBUILD_EDITABLE_VERBOSE": "0", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, __file__, kind, str(MUTATIONS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith(MARKER)]
    assert run.returncode == 0 and lines, (
        f"the batch died (exit {run.returncode}):\n{run.stderr[-3000:]}"
    )
    result = json.loads(lines[-1][len(MARKER) :])
    assert result["failures"] == [], "\n".join(result["failures"][:20])
    # The batch exercised both outcomes, and most mutations got past the checksum.
    assert result["refused"] > 0.3 * result["total"] and result["loaded"] > 0, result
    assert result["total"] >= MUTATIONS


# -- the batch (run as a script in the subprocess) ----------------------------

JUNK = [
    "x",
    "",
    -1,
    0,
    1,
    -0.0,
    0.5,
    1e308,
    -1e308,
    2**63,
    -(2**63),
    10**30,
    None,
    True,
    False,
    [],
    {},
    [1, 2, 3],
    ["a"],
    {"a": 1},
    float("nan"),
    float("inf"),
    float("-inf"),
    [[[[[[[[[[[]]]]]]]]]]],
    {"__tuple__": [1, 2]},
    {"__tuple__": "no"},
    {"__dict__": {"a": [None]}},
    {"__dict__": 3},
    {"__ndarray__": ["a", "b", "c"], "dtype": "U100000000"},
    {"__ndarray__": [1, 2, 3], "dtype": "V1000000000"},
    {"__ndarray__": [], "dtype": "S2000000000"},
    {"__ndarray__": [1.5, 2.5], "dtype": "float64"},
    {"__ndarray__": [10**30], "dtype": "int64"},
    {"__ndarray__": [[1, 2], [3]], "dtype": "float64"},
    {"__ndarray__": "abc", "dtype": "object"},
    {"__ndarray__": ["a"], "dtype": ["f8"]},
    {"__ndarray__": [1], "dtype": "float64", "extra": 1},
    {"__random_state__": ["MT19937", [1] * 624, 0, 0, 0.0]},
    {"__random_state__": ["MT19937", [1] * 10, 700, 2, "x"]},
    {"__schema__": {"timestamp": "t", "amount": "a"}},
    {"__schema__": {"timestamp": 3}},
    {"__schema__": {"nonsense": 1}},
    {"__schema__": []},
]


def _small_models():
    import pandas as pd

    import fraudcore
    from fraudcore.datasets import make_transactions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    tx = make_transactions(30, 400, seed=0)
    state = fraudcore.FeatureState(fraudcore.Schema.transactions())
    state.update(tx.iloc[:40])
    return {
        "IsolationForest": (
            fraudcore.IsolationForest(n_estimators=4, contamination=0.1, random_state=0).fit(frame),
            X,
        ),
        "LocalOutlierFactor": (fraudcore.LocalOutlierFactor(n_neighbors=5, novelty=True).fit(X), X),
        "KNNDetector": (fraudcore.KNNDetector(n_neighbors=3).fit(X), X),
        "AutoEncoder": (
            fraudcore.AutoEncoder(hidden_layers=(4, 2), epochs=2, random_state=0).fit(X),
            X,
        ),
        "FeatureState": (state, tx.iloc[40:42]),
        "FraudDetector": (
            fraudcore.FraudDetector(
                fraudcore.Schema.transactions(),
                detectors=("isolation_forest", "lof", "knn", "autoencoder"),
                detector_params={
                    "isolation_forest": {"n_estimators": 4},
                    "autoencoder": {"epochs": 1, "hidden_layers": (4,)},
                },
                random_state=0,
                n_jobs=1,
            ).fit(tx),
            tx.iloc[:30],
        ),
    }


def _conform(data, schema, reference):
    """``data`` (columns of ``reference``) with the columns ``schema`` names,
    or None when the schema gives two roles one column (no valid input then)."""
    import pandas as pd

    columns = [c for role, c in schema.roles.items() if role != "label"] + list(schema.passthrough)
    if len(set(columns)) != len(columns):
        return None
    out = pd.DataFrame(index=data.index)
    known = reference.roles
    for role, column in schema.roles.items():
        if role in known:
            out[column] = data[known[role]].to_numpy()
        elif role in ("signup_time", "timestamp"):
            out[column] = data[known["timestamp"]].to_numpy()
        elif role in ("quantity", "unit_price", "amount", "label"):
            out[column] = 1.0
        elif role == "cancellation":  # a flag column
            out[column] = False
        else:
            out[column] = "v"
    for column in schema.passthrough:
        out[column] = 0.5
    if schema.time_unit != "ns" and "timestamp" in schema.roles:  # numeric times in that unit
        out[schema.timestamp] = np.arange(len(out), dtype=float)
    return out


def _works(model, data, reference):
    """Raise unless the loaded model does its job on valid input."""
    import pandas as pd

    import fraudcore

    if (
        isinstance(model, (fraudcore.FraudDetector, fraudcore.FeatureState))
        and model.schema != reference.schema
    ):
        data = _conform(data, model.schema, reference.schema)
        if data is None:
            return
    if isinstance(model, fraudcore.FraudDetector):
        scored = model.score(data)
        ok = np.isfinite(scored["risk_score"]).all()
    elif isinstance(model, fraudcore.FeatureState):
        transaction = data.iloc[0].to_dict()
        if model.schema.time_unit == "ns":  # later than any history a state may hold
            transaction[model.schema.timestamp] = pd.Timestamp.max
        out = model.update(transaction)
        ok = all(np.isfinite(v) for v in out.values())
    elif hasattr(model, "score_samples"):
        ok = (
            np.isfinite(model.score_samples(data[:7])).all()
            and np.isfinite(model.predict(data[:7])).all()
        )
    else:  # a neighbour detector in outlier mode: its training scores
        ok = np.isfinite(getattr(model, model._training_scores_attribute)).all()
    if not ok:
        raise AssertionError("the loaded model scores non-finite values")


def _paths(node, prefix=()):
    """Every (path, value) of a JSON tree, containers included."""
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _edit_json(meta, rng):
    """A copy of meta with one random edit, and its description."""
    meta = json.loads(json.dumps(meta))
    paths = [p for p, _ in _paths(meta) if p]
    path = paths[int(rng.integers(len(paths)))]
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    op = rng.choice(["replace", "replace", "replace", "delete", "add", "wrap"])
    if op == "replace":
        junk = JUNK[int(rng.integers(len(JUNK)))]
        parent[path[-1]] = junk
        return meta, f"set {path} = {json.dumps(junk)[:60]}"
    if op == "delete":
        del parent[path[-1]]
        return meta, f"delete {path}"
    if op == "wrap":
        inner = parent[path[-1]]
        parent[path[-1]] = {"__tuple__": [inner]} if rng.random() < 0.5 else [inner]
        return meta, f"wrap {path}"
    if isinstance(parent, dict):
        parent["unknown_field_"] = JUNK[int(rng.integers(len(JUNK)))]
    else:
        parent.append(JUNK[int(rng.integers(len(JUNK)))])
    return meta, f"add next to {path}"


def _flip(data, rng):
    """data with a few bytes changed: a bit flipped, a random byte, or 8 bytes
    made a huge or negative count."""
    data = bytearray(data)
    if not data:
        return bytes(data), "empty"
    how = rng.choice(["bit", "byte", "count"])
    at = int(rng.integers(len(data)))
    if how == "bit":
        data[at] ^= 1 << int(rng.integers(8))
    elif how == "byte":
        data[at] = int(rng.integers(256))
    else:
        value = [2**64 - 1, 2**63, 2**40, 2**31, 2**32 - 1, 1 << 20][int(rng.integers(6))]
        data[at : at + 8] = value.to_bytes(8, "little")[: len(data) - at]
    return bytes(data), f"{how} at {at}"


def _mutations(data, kind_name, n, rng):
    from fraudcore import _core

    _, kind, meta_bytes, body = _core.unpack_envelope(data)
    meta = json.loads(meta_bytes)
    pack = _core.pack_envelope
    for cut in sorted(set(rng.integers(0, len(data), 20).tolist())):
        yield f"truncated at {cut}", data[:cut]
    for i in range(n):
        family = i % 3
        if family == 0 and body:  # the native body, checksum recomputed
            bad, how = _flip(body, rng)
            yield f"body {how}", pack(kind, meta_bytes, bad)
        elif family == 1 and kind_name == "FraudDetector" and rng.random() < 0.5:
            yield from _inner_mutation(meta_bytes, body, rng)
        elif family == 1:  # the JSON text
            bad, how = _flip(meta_bytes, rng)
            yield f"metadata {how}", pack(kind, bad, body)
        else:
            edited, how = _edit_json(meta, rng)
            yield f"json {how}", pack(kind, json.dumps(edited).encode(), body)


def _inner_mutation(meta_bytes, body, rng):
    """A FraudDetector whose part (a detector's envelope or an array) is damaged."""
    from fraudcore import _core
    from fraudcore.detector import _split_parts

    parts = _split_parts(body)
    i = int(rng.integers(len(parts)))
    if parts[i][:4] == b"\x89FRC" and rng.random() < 0.7:
        _, kind, inner_meta, inner_body = _core.unpack_envelope(parts[i])
        if rng.random() < 0.5:
            edited, how = _edit_json(json.loads(inner_meta), rng)
            parts[i] = _core.pack_envelope(kind, json.dumps(edited).encode(), inner_body)
        else:
            bad, how = _flip(inner_body, rng)
            parts[i] = _core.pack_envelope(kind, inner_meta, bad)
    else:
        parts[i], how = _flip(parts[i], rng)
        if rng.random() < 0.3:
            parts[i] = parts[i][: int(rng.integers(len(parts[i]) + 1))]
    body = b"".join(struct.pack("<Q", len(p)) + p for p in parts)
    yield f"part {i} {how}", _core.pack_envelope("FraudDetector", meta_bytes, body)


def _run_batch(kind_name, n):
    import resource
    import traceback

    import fraudcore

    model, data = _small_models()[kind_name]
    original = model.__getstate__()["fraudcore_model"]
    _works(model, data, model)
    rng = np.random.default_rng(sum(map(ord, kind_name)))
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + HEADROOM, vm + HEADROOM))
    counts = {"loaded": 0, "refused": 0, "total": 0}
    failures = []
    cls = type(model)
    for what, data_bytes in _mutations(original, kind_name, n, rng):
        counts["total"] += 1
        try:
            loaded = cls.__new__(cls)
            loaded.__setstate__({"fraudcore_model": data_bytes})
        except fraudcore.ModelFormatError:
            counts["refused"] += 1
            continue
        except BaseException as exc:  # noqa: BLE001 (any other exception is the finding)
            failures.append(
                f"{what}: load raised {exc!r}"[:400] + "\n" + traceback.format_exc()[-600:]
            )
            continue
        try:
            _works(loaded, data, model)
            counts["loaded"] += 1
        except BaseException as exc:  # noqa: BLE001
            failures.append(
                f"{what}: the loaded model failed: {exc!r}"[:400]
                + "\n"
                + traceback.format_exc()[-600:]
            )
    print(MARKER + json.dumps({**counts, "failures": failures}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    _run_batch(sys.argv[1], int(sys.argv[2]))
