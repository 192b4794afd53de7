"""`fraudcore retrain --db URL`: the labels and the analysts' decisions come
from the alert store (SQLite), matched on the transaction id."""

import json

import numpy as np
import pytest
from _scored import scored_item

pytest.importorskip("sqlalchemy", reason="the service extra is not installed")

import fraudcore
from fraudcore.cli import main
from fraudcore.datasets import make_transactions
from fraudcore.service.store import AlertStore


def _scored_item(row):
    event_id = str(row.transaction_id)
    return scored_item(event_id, str(row.customer_id), row.timestamp, float(row.amount))


def test_retrain_takes_labels_and_decisions_from_the_store(tmp_path, capsys):
    data = make_transactions(n_customers=400, n_transactions=20_000, fraud_rate=0.03, seed=5)
    first, later = data.iloc[:10_000], data.iloc[10_000:]
    first.drop(columns="is_fraud").to_csv(tmp_path / "first.csv", index=False)
    later.drop(columns="is_fraud").to_csv(tmp_path / "later.csv", index=False)
    assert (
        main(["train", str(tmp_path / "first.csv"), "--out", str(tmp_path / "m.fc"), "--quiet"])
        == 0
    )

    # 60% of the later rows labelled: a third of those as analysts' decisions on
    # alerts, the rest as chargebacks, and one label of an event scored elsewhere.
    rng = np.random.default_rng(0)
    labelled = later.iloc[np.sort(rng.choice(len(later), int(0.6 * len(later)), replace=False))]
    decided, external = labelled.iloc[::3], labelled.drop(labelled.index[::3])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with AlertStore(url) as store:
        ids = store.write_scored([_scored_item(r) for r in decided.itertuples()])
        for alert_id, fraud in zip(ids, decided["is_fraud"]):
            store.move_alert(
                alert_id, "CONFIRMED_FRAUD" if fraud else "FALSE_POSITIVE", analyst="a"
            )
        store.add_labels(
            [
                {"event_id": str(i), "label": int(y), "source": "chargeback"}
                for i, y in zip(external["transaction_id"], external["is_fraud"])
            ]
            + [{"event_id": "scored-elsewhere", "label": 1}]
        )
        frame = store.labels_frame()
    assert len(frame) == len(labelled) + 1

    args = ["retrain", str(tmp_path / "m.fc"), str(tmp_path / "later.csv"), "--db", url]
    assert main([*args, "--target-recall", "0.8", "--out", str(tmp_path / "m2.fc")]) == 0
    out = capsys.readouterr().out
    n_fraud = int(labelled["is_fraud"].sum())
    assert f"{len(labelled):,} of {len(later):,} rows labelled ({n_fraud:,} fraud)" in out
    assert "1 of the store's labelled events are not in the data" in out
    report = json.loads((tmp_path / "m2.fc.metrics.json").read_text())
    assert 0.2 < report["rows"] / len(labelled) < 0.4  # the held-out customers
    assert report["new"]["pr_auc"] > 0.5
    assert fraudcore.load(tmp_path / "m2.fc").supervised_ is not None

    # --labels and --db are exclusive, and one of them is needed.
    with pytest.raises(SystemExit):
        main([*args, "--labels", "x.csv", "--out", str(tmp_path / "m3.fc")])
    with pytest.raises(SystemExit):
        main(args[:3] + ["--out", str(tmp_path / "m3.fc")])
