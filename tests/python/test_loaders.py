"""Data loaders: cleaning rules and their reports, formats, bad input.

Unit tests write small files to tmp_path. The real-file tests run only where
the project's shared data folder sits beside the repository and skip with
the reason otherwise; their figures are the published ones (MANIFEST.md).
"""

import gzip

import numpy as np
import pandas as pd
import pytest

from fraudcore._loaders import (
    CleaningReport,
    load_adbench,
    load_creditcard,
    load_fraud_data,
    load_online_retail,
)

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
FRAUD_HEADER = (
    "user_id,signup_time,purchase_time,purchase_value,device_id,source,browser,sex,age,"
    "ip_address,class"
)


def write(path, lines, encoding="utf-8"):
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding=encoding) as f:
            f.write(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


def retail_file(tmp_path, rows, name="retail.csv"):
    return write(tmp_path / name, [RETAIL_HEADER, *rows])


def fraud_file(tmp_path, rows, name="fraud.csv"):
    return write(tmp_path / name, [FRAUD_HEADER, *rows])


def assert_consistent(data, report):
    """rows = raw_rows - everything the applied rules dropped = len(data)."""
    dropped = sum(rule.count for rule in report.rules if rule.applied)
    assert report.rows == report.raw_rows - dropped == len(data)
    # Each row keeps its 0-based position among the file's data rows.
    index = data.index
    assert index.name == "source_row" and index.dtype == np.int64
    assert index.is_unique and index.is_monotonic_increasing
    assert len(index) == 0 or (index[0] >= 0 and index[-1] < report.raw_rows)


# --------------------------------------------------------------------------
# Online Retail, small files
# --------------------------------------------------------------------------

RETAIL_ROWS = [
    "536365,85123A,HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom",
    "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom",
    "536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom",
    "536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,1/13/2011 14:05,2.51,,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",
    "536370,22728,ALARM CLOCK BAKELIKE PINK,24,not a date,3.75,12583,France",
    "536370,22727,ALARM CLOCK BAKELIKE RED,24,2010-12-01 08:45:00,-3.75,12583,France",
]


def test_online_retail_small_file_default_rules(tmp_path):
    data, report = load_online_retail(retail_file(tmp_path, RETAIL_ROWS))
    assert report.raw_rows == 8
    assert [(r.name, r.applied, r.count) for r in report.rules] == [
        ("missing_customer", True, 2),
        ("unparseable_dates", True, 1),
        ("duplicates", True, 1),  # row 6 repeats row 2 with the date written the other way
        ("cancellations", False, 1),
        ("nonpositive_price", False, 1),
    ]
    assert_consistent(data, report)
    assert data["InvoiceNo"].tolist() == ["536365", "536365", "C536379", "536370"]
    assert data.index.tolist() == [0, 1, 2, 7]  # the rows of RETAIL_ROWS they come from
    assert data["StockCode"].tolist() == ["85123A", "71053", "D", "22727"]
    assert data["is_cancellation"].tolist() == [False, False, True, False]
    assert data["InvoiceDate"].tolist() == [
        pd.Timestamp("2010-12-01 08:26"),
        pd.Timestamp("2010-12-01 08:26"),
        pd.Timestamp("2010-12-01 09:41"),
        pd.Timestamp("2010-12-01 08:45"),
    ]
    np.testing.assert_array_equal(data["TotalSpent"], [6 * 2.55, 6 * 3.39, -1 * 27.5, 24 * -3.75])
    assert list(data.columns) == [*RETAIL_HEADER.split(","), "TotalSpent", "is_cancellation"]
    assert data.dtypes.to_dict() == {
        "InvoiceNo": data["InvoiceNo"].dtype,
        "StockCode": data["StockCode"].dtype,
        "Description": data["Description"].dtype,
        "Quantity": np.dtype("int64"),
        "InvoiceDate": np.dtype("datetime64[ns]"),
        "UnitPrice": np.dtype("float64"),
        "CustomerID": np.dtype("int64"),
        "Country": data["Country"].dtype,
        "TotalSpent": np.dtype("float64"),
        "is_cancellation": np.dtype("bool"),
    }
    for column in ("InvoiceNo", "StockCode", "Description", "Country"):
        assert pd.api.types.is_string_dtype(data[column]), column


def test_online_retail_every_rule_switches(tmp_path):
    path = retail_file(tmp_path, RETAIL_ROWS)
    data, report = load_online_retail(
        path,
        drop_missing_customer=False,
        drop_duplicates=False,
        drop_unparseable_dates=False,
    )
    assert len(data) == 8 and not any(rule.applied for rule in report.rules)
    counts = [report[name] for name in ("missing_customer", "unparseable_dates", "duplicates")]
    assert counts == [2, 1, 1]
    assert report["cancellations"] == 1 and report["nonpositive_price"] == 2
    assert data["CustomerID"].dtype == "Int64" and data["CustomerID"].isna().sum() == 2
    assert data["InvoiceDate"].isna().tolist() == [False] * 6 + [True, False]
    assert data["Description"].isna().sum() == 1
    assert_consistent(data, report)

    data, report = load_online_retail(path, drop_cancellations=True, drop_nonpositive_price=True)
    assert report["cancellations"] == 1 and report["nonpositive_price"] == 1
    assert data["InvoiceNo"].tolist() == ["536365", "536365"]
    assert not data["is_cancellation"].any()
    assert_consistent(data, report)


def test_online_retail_rule_counts_follow_the_order(tmp_path):
    # The missing-customer row is also a cancellation, a duplicate candidate
    # and free: once dropped, the later rules do not count it.
    rows = [
        "C1,A,x,-1,2011-01-01 10:00:00,0,,UK",
        "C1,A,x,-1,2011-01-01 10:00:00,0,,UK",
        "2,A,x,1,2011-01-01 10:00:00,1.5,7,UK",
    ]
    _, report = load_online_retail(retail_file(tmp_path, rows))
    assert report["missing_customer"] == 2
    assert report["duplicates"] == report["cancellations"] == report["nonpositive_price"] == 0
    _, report = load_online_retail(retail_file(tmp_path, rows), drop_missing_customer=False)
    assert report["duplicates"] == 1
    assert report["cancellations"] == 1 and report["nonpositive_price"] == 1


@pytest.mark.parametrize(
    "dates",
    [
        ["2010-12-01 08:26:00", "2011-01-13 14:05:00", "2011-12-09 12:50:00"],
        ["12/1/2010 8:26", "1/13/2011 14:05", "12/9/2011 12:50"],
        ["12/1/2010 8:26", "2011-01-13 14:05:00", "12/9/2011 12:50"],
        ["2010-12-01 08:26", "1/13/2011 14:05:00", "2011-12-09 12:50:00"],
    ],
    ids=["iso", "original", "mixed", "without-and-with-seconds"],
)
def test_online_retail_date_formats(tmp_path, dates):
    rows = [f"{i},A,x,1,{d},1.0,{i},UK" for i, d in enumerate(dates)]
    data, report = load_online_retail(retail_file(tmp_path, rows))
    assert report["unparseable_dates"] == 0
    assert data["InvoiceDate"].dtype == "datetime64[ns]"
    assert data["InvoiceDate"].tolist() == [
        pd.Timestamp("2010-12-01 08:26"),
        pd.Timestamp("2011-01-13 14:05"),
        pd.Timestamp("2011-12-09 12:50"),
    ]


def test_online_retail_unparseable_dates(tmp_path):
    # Day/month swapped (13 is no month), a word, missing, a year ns cannot hold.
    bad = ["13/1/2011 8:26", "yesterday", "", "9999-01-01 00:00:00", "2011-02-30 10:00:00"]
    rows = [f"{i},A,x,1,{d},1.0,{i},UK" for i, d in enumerate(["2011-01-01 10:00:00", *bad])]
    data, report = load_online_retail(retail_file(tmp_path, rows))
    assert report["unparseable_dates"] == len(bad)
    assert data["InvoiceNo"].tolist() == ["0"]
    data, report = load_online_retail(retail_file(tmp_path, rows), drop_unparseable_dates=False)
    assert report["unparseable_dates"] == len(bad) and len(data) == 6
    assert data["InvoiceDate"].isna().sum() == len(bad)


def test_online_retail_duplicates_are_exact_and_keep_the_first(tmp_path):
    rows = [
        "1,A,x,1,2011-01-01 10:00:00,1.0,5,UK",
        "1,A,y,1,2011-01-01 10:00:00,1.0,5,UK",  # another Description: kept
        "1,A,x,1,2011-01-01 10:00:00,1.0,5,UK",  # dropped
        "1,A,,1,2011-01-01 10:00:00,1.0,5,UK",
        "1,A,,1,2011-01-01 10:00:00,1.0,5,UK",  # missing equals missing: dropped
        "1,A,x,1,2011-01-01 10:00:00,1.0,5,France",  # another Country: kept
        "1,A,x,2,2011-01-01 10:00:00,1.0,5,UK",  # another Quantity: kept
    ]
    data, report = load_online_retail(retail_file(tmp_path, rows))
    assert report["duplicates"] == 2
    assert data["Description"].fillna("-").tolist() == ["x", "y", "-", "x", "x"]
    assert data["Country"].tolist() == ["UK", "UK", "UK", "France", "UK"]
    assert data["Quantity"].tolist() == [1, 1, 1, 1, 2]
    data, report = load_online_retail(retail_file(tmp_path, rows), drop_duplicates=False)
    assert report["duplicates"] == 2 and len(data) == 7


def test_online_retail_duplicates_match_pandas(tmp_path):
    """The two-stage duplicate search equals DataFrame.drop_duplicates."""
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame(
        {
            "InvoiceNo": rng.choice(["1", "2", "C3"], n),
            "StockCode": rng.choice(["A", "B", "C", "D"], n),
            "Description": rng.choice(["x", "y", None], n),
            "Quantity": rng.integers(-1, 3, n),
            "InvoiceDate": rng.choice(["2011-01-01 10:00:00", "1/1/2011 11:00"], n),
            "UnitPrice": rng.choice([0.5, 1.0, 2.25], n),
            "CustomerID": rng.choice([1.0, 2.0, 3.0], n),
            "Country": rng.choice(["UK", "France", "EIRE"], n),
        }
    )
    path = tmp_path / "random.csv"
    frame.to_csv(path, index=False)
    data, report = load_online_retail(path)
    expected = pd.read_csv(path, dtype={"InvoiceNo": str}).drop_duplicates()
    assert 0 < report["duplicates"] == n - len(expected)
    np.testing.assert_array_equal(data["InvoiceNo"], expected["InvoiceNo"])
    np.testing.assert_array_equal(data["Quantity"], expected["Quantity"])
    np.testing.assert_array_equal(data["Description"].isna(), expected["Description"].isna())


def test_online_retail_compressed_and_latin1(tmp_path):
    rows = ["1,A,PAPER CHAIN £1,1,2011-01-01 10:00:00,1.0,5,UK"]
    for name, encoding in (("a.csv.gz", "utf-8"), ("b.csv", "latin-1")):
        path = write(tmp_path / name, [RETAIL_HEADER, *rows], encoding=encoding)
        data, _ = load_online_retail(path)
        assert data["Description"].tolist() == ["PAPER CHAIN £1"]


def test_online_retail_ignores_extra_columns(tmp_path):
    path = write(
        tmp_path / "extra.csv",
        [f"Extra,{RETAIL_HEADER}", "zz,1,A,x,1,2011-01-01 10:00:00,1.0,5,UK"],
    )
    data, _ = load_online_retail(path)
    assert "Extra" not in data.columns and data["StockCode"].tolist() == ["A"]


def test_online_retail_bad_input(tmp_path):
    missing = tmp_path / "nowhere" / "retail.csv"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_online_retail(missing)
    write(
        tmp_path / "no_price.csv",
        [
            RETAIL_HEADER.replace(",UnitPrice", "").replace(",Country", ""),
            "1,A,x,1,2011-01-01 10:00:00,5",
        ],
    )
    with pytest.raises(ValueError, match=r"Online Retail.*UnitPrice, Country"):
        load_online_retail(tmp_path / "no_price.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="no rows"):
        load_online_retail(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="no rows"):
        load_online_retail(retail_file(tmp_path, [], name="header_only.csv"))
    bad_quantity = ["1,A,x,1,2011-01-01 10:00:00,1.0,5,UK", "1,A,x,two,2011-01-01 10:00:00,1,5,UK"]
    with pytest.raises(
        ValueError,
        match=r"q\.csv \(Online Retail\): column Quantity.*not numbers.*data row 2.*'two'",
    ):
        load_online_retail(retail_file(tmp_path, bad_quantity, name="q.csv"))
    fractional = ["1,A,x,1.5,2011-01-01 10:00:00,1.0,5,UK"]
    with pytest.raises(ValueError, match=r"Quantity.*not integers.*data row 1"):
        load_online_retail(retail_file(tmp_path, fractional, name="f.csv"))


# --------------------------------------------------------------------------
# Fraud_Data and the IP lookup, small files
# --------------------------------------------------------------------------

IP_TABLE = [
    "lower_bound_ip_address,upper_bound_ip_address,country",
    "300,399,Japan",  # unsorted on purpose
    "100,199,France",
    "200,249,Chile",
]


def fraud_row(user, ip, value=20, signup="2015-02-24 22:55:49", purchase="2015-04-18 02:47:11"):
    return f"{user},{signup},{purchase},{value},DEV{user},SEO,Chrome,M,39,{ip},0"


def test_fraud_data_ip_lookup_edge_cases(tmp_path):
    ips = {
        "lower bound": ("100", "France"),
        "upper bound": ("199", "France"),
        "inside": ("150.5", "France"),
        "next range": ("200", "Chile"),
        "between ranges": ("249.5", "Unknown"),
        "gap": ("250", "Unknown"),
        "last upper": ("399", "Japan"),
        "above all": ("400", "Unknown"),
        "below all": ("99.9", "Unknown"),
        "missing": ("", "Unknown"),
    }
    path = fraud_file(tmp_path, [fraud_row(i, ip) for i, (ip, _) in enumerate(ips.values())])
    table = write(tmp_path / "ip.csv", IP_TABLE)
    data, report = load_fraud_data(path, table)
    assert dict(zip(ips, data["country"])) == {k: country for k, (_, country) in ips.items()}
    assert pd.api.types.is_string_dtype(data["country"])
    assert report.rows == len(ips)
    data, _ = load_fraud_data(path)
    assert "country" not in data.columns


def test_fraud_data_rows_keep_their_file_position_and_country(tmp_path):
    rows = [fraud_row("", 150), fraud_row(1, 200), fraud_row(2, 300), fraud_row(2, 300)]
    data, report = load_fraud_data(fraud_file(tmp_path, rows), write(tmp_path / "ip.csv", IP_TABLE))
    assert_consistent(data, report)
    assert data.index.tolist() == [1, 2]  # the first row (no user) and the duplicate dropped
    assert data["user_id"].tolist() == [1, 2] and data["country"].tolist() == ["Chile", "Japan"]


def test_fraud_data_bad_ip_tables(tmp_path):
    path = fraud_file(tmp_path, [fraud_row(1, 150)])
    overlapping = write(tmp_path / "overlap.csv", [*IP_TABLE, "190,205,Peru"])
    with pytest.raises(ValueError, match="overlap.csv.*sorting.*IP range 1 starts at 190"):
        load_fraud_data(path, overlapping)
    no_country = write(tmp_path / "nc.csv", ["lower_bound_ip_address,upper_bound_ip_address"])
    with pytest.raises(ValueError, match="IpAddress_to_Country.*country"):
        load_fraud_data(path, no_country)
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_fraud_data(path, tmp_path / "absent.csv")


def test_fraud_data_rules_and_times(tmp_path):
    rows = [
        fraud_row(1, 150, signup="2015-02-24 22:55:49", purchase="2015-04-18 02:47:11"),
        fraud_row(2, 150, signup="2015-02-24 22:55", purchase="2015-04-18 02:47"),
        fraud_row(2, 150, signup="2015-02-24 22:55", purchase="2015-04-18 02:47"),
        fraud_row("", 150),
        fraud_row(4, 150, value=0),
        fraud_row(5, 150, purchase="18/04/2015 02:47"),
    ]
    data, report = load_fraud_data(fraud_file(tmp_path, rows))
    assert [(r.name, r.applied, r.count) for r in report.rules] == [
        ("missing_user", True, 1),
        ("unparseable_dates", True, 1),
        ("duplicates", True, 1),
        ("nonpositive_value", True, 1),
    ]
    assert_consistent(data, report)
    assert data["user_id"].tolist() == [1, 2]
    assert data["signup_time"].tolist() == [
        pd.Timestamp("2015-02-24 22:55:49"),
        pd.Timestamp("2015-02-24 22:55"),
    ]
    assert data["purchase_time"].dtype == "datetime64[ns]"
    assert {
        c: str(data[c].dtype) for c in ("user_id", "purchase_value", "age", "ip_address", "class")
    } == {
        "user_id": "int64",
        "purchase_value": "float64",
        "age": "int64",
        "ip_address": "float64",
        "class": "int64",
    }

    data, report = load_fraud_data(
        fraud_file(tmp_path, rows),
        drop_missing_user=False,
        drop_duplicates=False,
        drop_unparseable_dates=False,
        drop_nonpositive_value=False,
    )
    assert len(data) == 6 and [r.count for r in report.rules] == [1, 1, 1, 1]
    assert data["user_id"].dtype == "Int64"


def test_fraud_data_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="fraud.csv"):
        load_fraud_data(tmp_path / "fraud.csv")
    path = write(tmp_path / "f.csv", [FRAUD_HEADER.replace(",class", ""), "1"])
    with pytest.raises(ValueError, match="Fraud_Data.*class"):
        load_fraud_data(path)
    with pytest.raises(ValueError, match="no rows"):
        load_fraud_data(fraud_file(tmp_path, []))


# --------------------------------------------------------------------------
# Credit card (ULB layout), made here with NumPy
# --------------------------------------------------------------------------

CREDITCARD_COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]


def creditcard_file(tmp_path, n=200, seed=0, columns=CREDITCARD_COLUMNS):
    """The ULB file's layout: quoted header, Class quoted as "0" / "1"."""
    rng = np.random.default_rng(seed)
    time = np.sort(rng.integers(0, 172_792, n)).astype(float)
    v = rng.normal(size=(n, 28))
    amount = np.round(rng.exponential(88.0, n), 2)
    label = (rng.random(n) < 0.05).astype(int)
    lines = [",".join(f'"{c}"' for c in columns)]
    for i in range(n):
        values = {"Time": f"{time[i]:g}", "Amount": f"{amount[i]:.2f}", "Class": f'"{label[i]}"'}
        values.update({f"V{j + 1}": repr(float(v[i, j])) for j in range(28)})
        lines.append(",".join(values[c] for c in columns))
    lines.append(lines[5])  # the real file has duplicate rows too
    return write(tmp_path / "creditcard.csv", lines), time, v, amount, label


def test_creditcard_layout(tmp_path):
    path, time, v, amount, label = creditcard_file(tmp_path)
    data, report = load_creditcard(path)
    assert list(data.columns) == CREDITCARD_COLUMNS
    assert (data.dtypes[:-1] == np.float64).all() and data["Class"].dtype == np.int64
    np.testing.assert_array_equal(data["Time"][:200], time)
    np.testing.assert_array_equal(data[[f"V{j}" for j in range(1, 29)]][:200], v)
    np.testing.assert_array_equal(data["Amount"][:200], amount)
    np.testing.assert_array_equal(data["Class"][:200], label)
    assert report["duplicates"] == 1 and len(data) == 201  # counted, kept by default
    data, report = load_creditcard(path, drop_duplicates=True)
    assert report["duplicates"] == 1 and len(data) == 200
    assert_consistent(data, report)


def test_creditcard_bad_input(tmp_path):
    columns = [c for c in CREDITCARD_COLUMNS if c != "V7"]
    path, *_ = creditcard_file(tmp_path, n=10, columns=columns)
    with pytest.raises(ValueError, match=r"creditcard.*missing column\(s\) V7\b"):
        load_creditcard(path)
    write(path, [",".join(CREDITCARD_COLUMNS), ",".join(["1"] * 30 + ["2"])])
    with pytest.raises(ValueError, match=r"Class must be 0 or 1, found \[2\]"):
        load_creditcard(path)
    write(path, [",".join(CREDITCARD_COLUMNS), ",".join(["1"] * 3 + [""] + ["1"] * 27)])
    with pytest.raises(ValueError, match="V3 has 1 missing"):
        load_creditcard(path)
    with pytest.raises(FileNotFoundError):
        load_creditcard(tmp_path / "absent.csv")


# --------------------------------------------------------------------------
# ADBench .npz, small files
# --------------------------------------------------------------------------


def test_adbench_small_file(tmp_path):
    X = np.asfortranarray(np.arange(12, dtype=np.uint8).reshape(4, 3))
    np.savez(tmp_path / "a.npz", X=X, y=np.array([0.0, 1.0, 0.0, 0.0]))
    (X_loaded, y), report = load_adbench(tmp_path / "a.npz")
    assert X_loaded.dtype == np.float64 and X_loaded.flags.c_contiguous
    np.testing.assert_array_equal(X_loaded, X)
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 0, 0]
    assert report.raw_rows == report.rows == 4 and report.rules == []


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"X": np.zeros((3, 2))}, "missing key.*y"),
        ({"data": np.zeros((3, 2)), "labels": np.zeros(3)}, "missing key.*X, y"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(4)}, "3 rows but y has 4"),
        ({"X": np.array([[0.0, np.nan], [1, 2]]), "y": np.zeros(2)}, "NaN"),
        ({"X": np.zeros(3), "y": np.zeros(3)}, "2-D"),
        ({"X": np.zeros((2, 2)), "y": np.array([0, 2])}, "only 0 and 1"),
        ({"X": np.array([[{}], [{}]], dtype=object), "y": np.zeros(2)}, "pickle"),
    ],
    ids=["no-y", "no-X-y", "lengths", "nan", "1-d", "labels", "pickle"],
)
def test_adbench_rejects(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_adbench(tmp_path / "bad.npz")


def test_adbench_not_npz(tmp_path):
    (tmp_path / "x.npz").write_text("not numpy")
    with pytest.raises(ValueError, match="x.npz"):
        load_adbench(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match="y.npz"):
        load_adbench(tmp_path / "y.npz")


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


def test_report_lookup_text_and_dict(tmp_path):
    _, report = load_online_retail(retail_file(tmp_path, RETAIL_ROWS))
    assert isinstance(report, CleaningReport)
    assert "duplicates" in report and "nothing" not in report
    with pytest.raises(KeyError, match="nothing.*missing_customer"):
        report["nothing"]
    text = str(report)
    assert text == repr(report)
    assert str(tmp_path / "retail.csv") in text.splitlines()[0]
    for rule in report.rules:
        assert rule.name in text and rule.doc in text
    assert "dropped" in text and "counted" in text
    as_dict = report.to_dict()
    assert as_dict["raw_rows"] == 8 and as_dict["rows"] == 4
    assert as_dict["rules"][0] == {
        "name": "missing_customer",
        "doc": "rows without a CustomerID",
        "applied": True,
        "count": 2,
    }


@pytest.mark.parametrize(
    "loader, switches",
    [
        (
            load_online_retail,
            {
                "missing_customer": "drop_missing_customer",
                "unparseable_dates": "drop_unparseable_dates",
                "duplicates": "drop_duplicates",
                "cancellations": "drop_cancellations",
                "nonpositive_price": "drop_nonpositive_price",
            },
        ),
        (
            load_fraud_data,
            {
                "missing_user": "drop_missing_user",
                "unparseable_dates": "drop_unparseable_dates",
                "duplicates": "drop_duplicates",
                "nonpositive_value": "drop_nonpositive_value",
            },
        ),
        (load_creditcard, {"duplicates": "drop_duplicates"}),
    ],
)
def test_every_rule_is_documented_with_its_switch(loader, switches):
    for rule, switch in switches.items():
        assert f"``{rule}`` (``{switch}``" in loader.__doc__


# --------------------------------------------------------------------------
# The real files
# --------------------------------------------------------------------------


def test_real_online_retail_published_figures(shared_data):
    path = shared_data / "online_retail.csv.gz"
    data, report = load_online_retail(path)
    assert report.raw_rows == 541_909
    assert report.raw_rows - report["missing_customer"] == 406_829
    assert report["unparseable_dates"] == 0
    assert len(data) == report.rows == 401_604
    assert data["CustomerID"].nunique() == 4_372
    assert report["cancellations"] == data["is_cancellation"].sum() == 8_872
    assert report["nonpositive_price"] == (data["UnitPrice"] <= 0).sum() == 40
    assert not report.rules[3].applied and not report.rules[4].applied
    assert data["InvoiceDate"].min() == pd.Timestamp("2010-12-01 08:26")
    assert data["InvoiceDate"].max() == pd.Timestamp("2011-12-09 12:50")
    assert data["CustomerID"].dtype == np.int64

    # The same rows, in the same order, as pandas' dropna + drop_duplicates.
    expected = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str})
    expected = expected.dropna(subset=["CustomerID"]).drop_duplicates()
    for column in ("InvoiceNo", "StockCode", "Quantity", "UnitPrice", "Country"):
        np.testing.assert_array_equal(data[column], expected[column], err_msg=column)
    np.testing.assert_array_equal(
        data["InvoiceDate"], pd.to_datetime(expected["InvoiceDate"]).astype("datetime64[ns]")
    )
    np.testing.assert_array_equal(data["CustomerID"], expected["CustomerID"].astype(np.int64))
    np.testing.assert_array_equal(data["TotalSpent"], expected["Quantity"] * expected["UnitPrice"])
    # source_row: pandas' row label of the same row in the file as it is.
    np.testing.assert_array_equal(data.index, expected.index)


def test_real_online_retail_counts_without_dropping(shared_data):
    data, report = load_online_retail(
        shared_data / "online_retail.csv.gz",
        drop_missing_customer=False,
        drop_duplicates=False,
        drop_unparseable_dates=False,
    )
    assert len(data) == 541_909
    assert report["missing_customer"] == data["CustomerID"].isna().sum() == 135_080
    assert report["duplicates"] == 5_268
    assert report["cancellations"] == 9_288  # MANIFEST.md: all rows
    assert report["nonpositive_price"] == 2_517
    assert (data["Quantity"] < 0).sum() == 10_624
    assert data["Description"].isna().sum() == 1_454
    assert data["InvoiceNo"].nunique() == 25_900 and data["StockCode"].nunique() == 4_070
    assert data["Quantity"].sum() == 5_176_450
    assert round(data["UnitPrice"].sum(), 2) == 2_498_803.97


def test_real_fraud_data_with_countries(shared_data):
    ip_path = shared_data / "ip_to_country_subset.csv.gz"
    data, report = load_fraud_data(shared_data / "fraud_data_subset.csv.gz", ip_path)
    assert report.raw_rows == len(data) == 51_689
    assert all(rule.count == 0 for rule in report.rules)
    assert data["class"].sum() == 4_832
    assert data["ip_address"].notna().sum() == 30_189
    assert (data["country"] != "Unknown").sum() == 22_799
    assert data["signup_time"].min() == pd.Timestamp("2015-01-01")
    assert data["purchase_time"].min().date() == pd.Timestamp("2015-01-01").date()
    assert data["purchase_time"].max().date() == pd.Timestamp("2015-12-14").date()
    assert (data["purchase_time"] >= data["signup_time"]).all()
    assert (data["purchase_time"].dt.second == 0).all()  # this copy lost the seconds

    # The native lookup against a binary search in NumPy.
    table = pd.read_csv(ip_path).sort_values("lower_bound_ip_address")
    lower = table["lower_bound_ip_address"].to_numpy(float)
    upper = table["upper_bound_ip_address"].to_numpy(float)
    ips = data["ip_address"].to_numpy()
    at = np.searchsorted(lower, ips, side="right") - 1
    inside = (at >= 0) & (ips <= upper[np.maximum(at, 0)])
    expected = np.where(inside, table["country"].to_numpy(object)[np.maximum(at, 0)], "Unknown")
    np.testing.assert_array_equal(data["country"].to_numpy(object), expected)


def test_real_adbench_files(shared_data):
    # (rows, columns, anomalies) from MANIFEST.md, for a few of the files.
    known = {
        "4_breastw.npz": (683, 9, 239),
        "1_ALOI.npz": (49_534, 27, 1_508),
        "17_InternetAds.npz": (1_966, 1_555, 368),
        "33_skin.npz": (245_057, 3, 50_859),
    }
    files = sorted((shared_data / "adbench").glob("*.npz"))
    assert len(files) >= 20
    for path in files:
        (X, y), report = load_adbench(path)
        assert X.dtype == np.float64 and X.flags.c_contiguous and y.dtype == np.int64
        assert report.rows == len(X) == len(y) and set(np.unique(y)) <= {0, 1}
        if path.name in known:
            assert (*X.shape, int(y.sum())) == known[path.name], path.name
