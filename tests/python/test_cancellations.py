"""Cancellations and returns: a concept of the schema, quiet by default in FraudDetector.

The unit tests run on Online Retail-shaped tables (conftest.retail_table:
"C" invoices returning an earlier purchase with a negative quantity); the real-file
tests run where the project's shared data folder sits beside the
repository and skip with the reason otherwise.
"""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import retail_table

import fraudcore
from fraudcore import FraudDetector, Schema, _core, build_features
from fraudcore.datasets import load_online_retail

RETAIL = Schema.online_retail()


@pytest.fixture(scope="module")
def table():
    return retail_table()


@pytest.fixture(scope="module")
def split(table):
    return int(0.7 * len(table))


@pytest.fixture(scope="module")
def quiet(table, split):
    return FraudDetector(RETAIL, random_state=0).fit(table.iloc[:split])


@pytest.fixture(scope="module")
def alerting(table, split):
    return FraudDetector(RETAIL, alert_cancellations=True, random_state=0).fit(table.iloc[:split])


# -- the schema ----------------------------------------------------------------


def test_online_retail_cancellations_are_the_c_invoices(table):
    cancelled = RETAIL.cancellations(table)
    np.testing.assert_array_equal(cancelled, table["InvoiceNo"].str.startswith("C").to_numpy())
    assert RETAIL.has_cancellations and not Schema.transactions().has_cancellations
    assert not Schema.transactions().cancellations(table.assign(timestamp=0, amount=-1.0)).any()


def test_online_retail_schema_reads_the_loader_output_and_the_file_alike(table, tmp_path):
    raw = table.assign(InvoiceDate=table["InvoiceDate"].dt.strftime("%m/%d/%Y %H:%M"))
    raw.loc[5, "CustomerID"] = np.nan  # dropped by the loader
    raw.to_csv(tmp_path / "retail.csv", index=False)
    loaded, _ = load_online_retail(tmp_path / "retail.csv")
    plain = pd.read_csv(tmp_path / "retail.csv", dtype={"InvoiceNo": str})
    np.testing.assert_array_equal(RETAIL.cancellations(loaded), loaded["is_cancellation"])
    np.testing.assert_array_equal(
        RETAIL.cancellations(plain), plain["InvoiceNo"].str.startswith("C")
    )
    np.testing.assert_array_equal(
        RETAIL.cancellations(plain)[loaded.index], RETAIL.cancellations(loaded)
    )


def test_negative_rule_and_flag_column():
    frame = pd.DataFrame(
        {
            "t": 0,
            "a": [5.0, -2.0, 0.0, 3.0],
            "q": [1, -1, -2, 2],
            "p": [5.0, 2.0, 0.0, -1.5],
            "flag": [True, False, None, False],
            "code": [0, 1, 0, np.nan],
        }
    )
    by_amount = Schema(timestamp="t", amount="a", negative_is_cancellation=True)
    assert by_amount.cancellations(frame).tolist() == [False, True, False, False]
    # Quantity x unit price < 0, or a negative quantity (a free item returned).
    by_quantity = Schema(timestamp="t", quantity="q", unit_price="p", negative_is_cancellation=True)
    assert by_quantity.cancellations(frame).tolist() == [False, True, True, True]
    flagged = Schema(timestamp="t", amount="a", cancellation="flag")
    assert flagged.cancellations(frame).tolist() == [True, False, False, False]
    coded = Schema(timestamp="t", amount="a", cancellation="code", negative_is_cancellation=True)
    assert coded.cancellations(frame).tolist() == [False, True, False, False]
    assert Schema(timestamp="t", amount="a", cancellation="code").cancellations(frame).tolist() == [
        False,
        True,
        False,
        False,
    ]
    with pytest.raises(
        ValueError, match="cancellation column 'q' must hold booleans or 0 / 1, got -1"
    ):
        Schema(timestamp="t", amount="a", cancellation="q").cancellations(frame)
    with pytest.raises(ValueError, match="negative_is_cancellation must be True or False"):
        Schema(timestamp="t", amount="a", negative_is_cancellation="yes")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['returned'\]"):
        build_features(frame, Schema(timestamp="t", amount="a", cancellation="returned"))


def test_identifiers_are_the_transaction_entity_and_invoice():
    assert Schema.transactions().identifiers == ["transaction_id", "customer_id"]
    assert RETAIL.identifiers == ["CustomerID", "InvoiceNo"]
    assert Schema.creditcard().identifiers == []
    assert Schema(timestamp="t", amount="a", entity="c", invoice="c").identifiers == ["c"]


# -- the detector ----------------------------------------------------------------


def test_by_default_cancellations_raise_no_alert_and_train_nothing(quiet, alerting, table, split):
    cancelled = RETAIL.cancellations(table)
    out = quiet.score(table)
    assert (out["is_cancellation"].to_numpy() == cancelled).all()
    assert not out.loc[cancelled, "is_alert"].any() and out["is_alert"].any()
    assert (out.loc[cancelled, "priority"] == 5).all() and (
        out.loc[cancelled, "reasons"].map(len) == 0
    ).all()
    # Not for lack of risk: the model still finds them unusual.
    assert (out.loc[cancelled, "risk_score"] >= quiet.threshold_).mean() > 0.2
    assert quiet.n_training_rows_ == int((~cancelled[:split]).sum())
    assert alerting.n_training_rows_ == split
    # contamination is the share of the training purchases that alert.
    train = out.iloc[:split]
    assert train.loc[~cancelled[:split], "is_alert"].mean() == pytest.approx(
        quiet.contamination, abs=0.003
    )


def test_cancellations_feed_the_history_of_the_next_purchases(quiet, table):
    cancelled = RETAIL.cancellations(table)
    _, _, features = quiet._scored(table, "alerts", "score")
    pd.testing.assert_frame_equal(features, build_features(table, RETAIL))
    # The purchases after a customer's cancellation see it in their history ...
    first_cancel = table[cancelled].groupby("CustomerID")["InvoiceDate"].min()
    after = (~cancelled & (table["InvoiceDate"] > table["CustomerID"].map(first_cancel))).to_numpy()
    assert after.sum() > 100
    without = build_features(table[~cancelled], RETAIL)
    assert (
        features.loc[after, "entity_count"] > without.loc[table.index[after], "entity_count"]
    ).all()
    # ... and so score as they do with the cancellation in the input.
    full = quiet.score(table, reasons=None)
    alone = quiet.score(table[~cancelled], reasons=None)
    assert not np.allclose(
        full.loc[after, "risk_score"], alone.loc[table.index[after], "risk_score"]
    )
    np.testing.assert_array_equal(
        full.loc[~cancelled & ~after, "risk_score"],
        alone.loc[table.index[~cancelled & ~after], "risk_score"],
    )


def test_switched_on_cancellation_alerts_say_so_first(alerting, table):
    cancelled = RETAIL.cancellations(table)
    out = alerting.score(table)
    shown = out["is_alert"].to_numpy() & cancelled
    assert shown.sum() > 10
    assert (out.loc[shown, "reasons"].map(lambda r: r[0]) == "cancellation").all()
    assert out.loc[shown, "reasons"].map(len).between(2, 4).all()
    others = out["is_alert"].to_numpy() & ~cancelled
    assert others.any() and not out.loc[others, "reasons"].map(lambda r: "cancellation" in r).any()
    every = alerting.score(table, reasons="all")
    assert (every.loc[cancelled, "reasons"].map(lambda r: r[0]) == "cancellation").all()


def test_the_switch_survives_save_and_load(alerting, quiet, table, tmp_path):
    for model in (alerting, quiet):
        loaded = fraudcore.load(model.save(tmp_path / "m.fc"))
        assert loaded.alert_cancellations is model.alert_cancellations
        assert loaded.schema == RETAIL and loaded.schema.negative_is_cancellation
        pd.testing.assert_frame_equal(loaded.score(table), model.score(table))
    with pytest.raises(ValueError, match="alert_cancellations must be True or False"):
        FraudDetector(RETAIL, alert_cancellations="no").fit(table)


def test_a_file_written_before_cancellations_loads_and_scores_as_before(table, split, tmp_path):
    """A file of an older fraudcore has neither the parameter nor the schema fields."""
    old_schema = Schema(**{**RETAIL.to_dict(), "negative_is_cancellation": False})
    model = FraudDetector(old_schema, random_state=0).fit(table.iloc[:split])
    _, kind, meta, body = _core.unpack_envelope(model._to_bytes())
    meta = json.loads(meta)
    del meta["params"]["alert_cancellations"]
    schema = meta["params"]["schema"]["__schema__"]
    for field in ("transaction_id", "cancellation", "negative_is_cancellation"):
        del schema[field]
    (tmp_path / "old.fc").write_bytes(_core.pack_envelope(kind, json.dumps(meta).encode(), body))
    loaded = fraudcore.load(tmp_path / "old.fc")
    assert loaded.alert_cancellations is False and not loaded.schema.has_cancellations
    out = loaded.score(table)
    pd.testing.assert_frame_equal(out, model.score(table))
    assert (
        "is_cancellation" not in out.columns
        and out.loc[RETAIL.cancellations(table), "is_alert"].any()
    )


def test_too_few_purchases_to_train_says_why(table):
    few = pd.concat(
        [table[~RETAIL.cancellations(table)].iloc[:20], table[RETAIL.cancellations(table)]]
    )
    with pytest.raises(ValueError, match=r"got 20; its \d+ cancellations are left out"):
        FraudDetector(RETAIL).fit(few)


# -- the real file ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_retail(shared_data):
    return load_online_retail(shared_data / "online_retail.csv.gz")[0]


def test_real_online_retail_cancellations_by_either_read(real_retail, shared_data):
    assert RETAIL.cancellations(real_retail).sum() == 8_872
    np.testing.assert_array_equal(RETAIL.cancellations(real_retail), real_retail["is_cancellation"])
    plain = pd.read_csv(
        shared_data / "online_retail.csv.gz", dtype={"InvoiceNo": str}, encoding="latin-1"
    )
    customers = plain["CustomerID"].notna().to_numpy()
    np.testing.assert_array_equal(
        RETAIL.cancellations(plain)[customers],
        plain["InvoiceNo"].str.startswith("C").to_numpy()[customers],
    )


def test_real_online_retail_alerts_leave_cancellations_out(real_retail):
    data = real_retail.iloc[:40_000]
    cancelled = RETAIL.cancellations(data)
    quiet = FraudDetector(RETAIL, random_state=0).fit(data.iloc[:30_000])
    out = quiet.score(data)
    assert out["is_alert"].sum() > 100 and not out.loc[cancelled, "is_alert"].any()
    shown = FraudDetector(RETAIL, alert_cancellations=True, random_state=0).fit(data.iloc[:30_000])
    shown = shown.score(data)
    alerts = shown[shown["is_alert"]]
    assert alerts["is_cancellation"].mean() > 0.2  # what the default keeps out of the queue
    assert (
        alerts.loc[alerts["is_cancellation"], "reasons"].map(lambda r: r[0]) == "cancellation"
    ).all()
