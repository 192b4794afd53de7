"""Labelled synthetic e-commerce card transactions, with five fraud patterns.

Contract
--------
``make_transactions`` returns one pandas DataFrame with exactly the columns
of ``TRANSACTION_COLUMNS``, in that order:

=================  ==============  ==============================================
column             dtype           meaning
=================  ==============  ==============================================
transaction_id     int64           0 .. n_transactions - 1, in row order
customer_id        int64           0 .. n_customers - 1 (the card holder)
timestamp          datetime64[ns]  naive local wall-clock time in [start, start + days)
amount             float64         > 0, rounded to cents
country            str             two-letter code from ``COUNTRY_CODES``
device_id          str             "D" followed by digits, e.g. "D004711"
ip_address         str             dotted quad "a.b.c.d"
merchant           str             one of ``MERCHANT_CATEGORIES``
signup_time        datetime64[ns]  the customer's sign-up, before their first row
is_fraud           int8            1 for fraud, 0 for legitimate
fraud_pattern      str             "" when legitimate, else one of ``FRAUD_PATTERNS``
=================  ==============  ==============================================

Rows are sorted by timestamp (a stable sort: ties keep generation order) and
carry a RangeIndex. There are exactly ``n_transactions`` rows, of which
``fraud_rate * n_transactions`` (rounded half up) are fraud. The same seed
gives the same frame. Only NumPy and pandas are used, vectorised throughout: a
million rows take about a second.

How the data are made
---------------------
Every customer has habits: a home country (a few countries hold most
customers), a spend level (the median amount varies across customers by about
two orders of magnitude), an activity level (lognormal, so a few customers make
many of the transactions), a daytime or evening window of active hours, one to
three personal devices, a household IP address (a few households hold two
customers) plus up to two more IP addresses, and merchant preferences. A
quarter of the customers travel once: during the trip most of their rows come
from one foreign country and a hotel IP address. A fifth of the customers sign
up during the period; the others before it.

Every fraud row is added to the history of an existing customer (the victim)
who already has at least ``MIN_VICTIM_HISTORY`` legitimate rows on an earlier
day, so point-in-time behaviour features (counts per hour or day, amount
against the running mean, hour of day, new device / country / IP, customers
per device or IP) expose it. Device and IP identifiers are shuffled so that
their numbering says nothing about fraud.
"""

from dataclasses import dataclass, fields
from functools import partial
from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = [
    "COUNTRY_CODES",
    "FRAUD_PATTERNS",
    "MERCHANT_CATEGORIES",
    "MIN_VICTIM_HISTORY",
    "TRANSACTION_COLUMNS",
    "make_transactions",
]

TRANSACTION_COLUMNS = (
    "transaction_id",
    "customer_id",
    "timestamp",
    "amount",
    "country",
    "device_id",
    "ip_address",
    "merchant",
    "signup_time",
    "is_fraud",
    "fraud_pattern",
)

# Ordered by how many customers live there: with ``n_countries = k`` the first
# k codes are used, with Zipf-like shares.
COUNTRY_CODES = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "IN", "AU",
    "MX", "PL", "SE", "JP", "BE", "CH", "AT", "IE", "PT", "DK", "NO",
    "FI", "CZ", "RO", "GR", "TR", "ZA", "SG", "NZ", "AR", "KR",
)  # fmt: skip

MERCHANT_CATEGORIES = (
    "grocery",
    "restaurants",
    "transport",
    "fashion",
    "electronics",
    "travel",
    "entertainment",
    "health",
    "home_garden",
    "digital_goods",
)
# How often the average customer shops in each category, and how a
# category's prices compare with the customer's median spend.
_CATEGORY_POPULARITY = np.array([0.22, 0.16, 0.10, 0.09, 0.05, 0.04, 0.09, 0.07, 0.06, 0.12])
_CATEGORY_PRICE_FACTOR = np.array([1.0, 0.7, 0.5, 1.6, 3.0, 4.0, 0.8, 0.9, 1.8, 0.4])
_CATEGORY = {name: code for code, name in enumerate(MERCHANT_CATEGORIES)}

FRAUD_PATTERNS = (
    "card_testing",
    "account_takeover",
    "amount_spike",
    "night_activity",
    "shared_device",
)
# Legitimate rows have pattern code 0, fraud pattern p has code 1 + its index.
_PATTERN_LABELS = ("",) + FRAUD_PATTERNS

MIN_VICTIM_HISTORY = 3
_SECONDS_PER_DAY = 86_400
_SECONDS_PER_HOUR = 3_600


def make_transactions(
    n_customers=2_000,
    n_transactions=100_000,
    fraud_rate=0.01,
    seed=None,
    *,
    start="2024-01-01",
    days=90,
    n_countries=20,
    shared_device_accounts=(10, 40),
    pattern_weights=None,
):
    """Labelled e-commerce card transactions with realistic fraud patterns.

    Legitimate rows follow per-customer habits (spend level, activity, active
    hours, home country, devices, IP addresses, merchant preferences). Fraud
    rows are inserted into victims' histories after at least
    ``MIN_VICTIM_HISTORY`` legitimate rows, in five patterns:

    ``card_testing``
        Bursts of 5-20 transactions of 0.50-5.00 within ten minutes, mostly
        at ``digital_goods`` merchants, from a device and IP new to the victim.
    ``account_takeover``
        Sessions of 1-3 transactions within an hour from a new device, a new
        IP and a country that is neither the victim's home nor travel country,
        for 5-20 times the victim's typical amount, usually around the hour
        opposite the victim's habits.
    ``amount_spike``
        One transaction from the victim's own main device, home IP and home
        country, at a habitual hour, for 8-30 times the typical amount.
    ``night_activity``
        1-4 transactions between 01:00 and 05:00 from a new device and IP,
        in the home country, for 3-10 times the typical amount.
    ``shared_device``
        Fraud rings: one device and IP used by ``shared_device_accounts``
        different victims, one transaction each, within at most six hours, in
        one country, for 2-8 times each victim's typical amount.

    Parameters
    ----------
    n_customers : int, default=2_000
        Card holders, >= 1. When there are at least as many legitimate rows
        as customers, every customer has at least one legitimate row.
    n_transactions : int, default=100_000
        Rows in the result (exactly), >= 1.
    fraud_rate : float in [0, 0.5], default=0.01
        Share of fraud rows; ``fraud_rate * n_transactions`` rounded half up
        rows are fraud.
    seed : int, numpy.random.Generator or None, default=None
        Seeds :func:`numpy.random.default_rng`; a Generator is used as is.
    start : str, date, datetime or pandas.Timestamp, default="2024-01-01"
        First day of the period, at midnight and without a time zone.
    days : int, default=90
        Length of the period in days, >= 1 (>= 2 when there is fraud, which
        comes on a later day than the victim's history).
    n_countries : int, default=20
        Countries used, the first ``n_countries`` of ``COUNTRY_CODES``, from
        3 to ``len(COUNTRY_CODES)``.
    shared_device_accounts : (int, int), default=(10, 40)
        Smallest and largest number of victims per ``shared_device`` ring,
        2 <= low <= high. Rings keep within these bounds whenever the
        pattern's share of rows and the number of eligible victims allow it.
    pattern_weights : mapping of str to float or None, default=None
        Relative share of each fraud pattern (missing patterns get 0);
        None splits the fraud rows equally across the five patterns.

    Returns
    -------
    transactions : pandas.DataFrame
        The columns of ``TRANSACTION_COLUMNS``, sorted by timestamp; see the
        module docstring for dtypes.

    Raises
    ------
    ValueError
        If a parameter is out of range, or when fraud is requested but no
        customer has ``MIN_VICTIM_HISTORY`` legitimate rows before the last
        day to be its victim (too few rows for the number of customers).

    Examples
    --------
    >>> from fraudcore._synthetic_transactions import make_transactions
    >>> frame = make_transactions(200, 5_000, fraud_rate=0.02, seed=0)
    >>> len(frame), int(frame["is_fraud"].sum())
    (5000, 100)
    """
    start_day = _check_start(start)
    _check_int("n_customers", n_customers, low=1)
    _check_int("n_transactions", n_transactions, low=1)
    _check_int("days", days, low=1)
    _check_int("n_countries", n_countries, low=3, high=len(COUNTRY_CODES))
    if isinstance(fraud_rate, bool) or not isinstance(fraud_rate, Real):
        raise ValueError(f"fraud_rate must be a number in [0, 0.5], got {fraud_rate!r}")
    if not 0.0 <= fraud_rate <= 0.5:
        raise ValueError(f"fraud_rate must be in [0, 0.5], got {fraud_rate!r}")
    ring_low, ring_high = _check_ring_sizes(shared_device_accounts)
    weights = _check_pattern_weights(pattern_weights)

    n_fraud = int(np.floor(fraud_rate * n_transactions + 0.5))
    if n_fraud > 0 and days < 2:
        raise ValueError(
            f"days must be >= 2 when there is fraud (fraud comes on a later day than the "
            f"victim's legitimate history), got days={days}"
        )
    rows_per_pattern = _split_by_weights(n_fraud, weights)

    rng = np.random.default_rng(seed)
    devices, ips = _IdCounter(), _IdCounter()
    customers = _draw_customers(rng, n_customers, days, n_countries, devices, ips)
    legit, legit_counts = _legit_rows(rng, customers, n_transactions - n_fraud, days)

    parts = [legit]
    if n_fraud > 0:
        victims = _eligible_victims(legit, legit_counts, days)
        if victims.size == 0:
            raise ValueError(
                f"no customer has {MIN_VICTIM_HISTORY} legitimate transactions before the last "
                f"day to be a fraud victim with n_customers={n_customers}, "
                f"n_transactions={n_transactions}, days={days}; raise n_transactions or days, "
                "or lower n_customers or fraud_rate"
            )
        world = _FraudWorld(rng, customers, victims, days, n_countries, devices, ips)
        makers = (
            _card_testing,
            _account_takeover,
            _amount_spike,
            _night_activity,
            partial(_shared_device, ring_low=ring_low, ring_high=ring_high),
        )
        for make_pattern, n_rows in zip(makers, rows_per_pattern):
            if n_rows > 0:
                parts.append(make_pattern(world, n_rows))
    rows = _Rows.concatenate(parts)
    return _to_frame(rng, rows, customers, start_day, devices.next_id, ips.next_id)


# --------------------------------------------------------------------------
# Parameter checks


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")


def _check_start(start):
    try:
        start_day = pd.Timestamp(start)
    except (TypeError, ValueError) as error:
        raise ValueError(f"start must be a date such as '2024-01-01', got {start!r}") from error
    if start_day is pd.NaT:
        raise ValueError(f"start must be a date such as '2024-01-01', got {start!r}")
    if start_day.tzinfo is not None:
        raise ValueError(f"start must be a naive (local wall-clock) date, got {start!r}")
    if start_day != start_day.normalize():
        raise ValueError(f"start must be at midnight, got {start!r}")
    return start_day


def _check_ring_sizes(shared_device_accounts):
    try:
        low, high = shared_device_accounts
    except (TypeError, ValueError):
        raise ValueError(
            f"shared_device_accounts must be a pair (low, high), got {shared_device_accounts!r}"
        ) from None
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, Integral):
            raise ValueError(
                f"shared_device_accounts must hold integers, got {shared_device_accounts!r}"
            )
    if not 2 <= low <= high:
        raise ValueError(
            f"shared_device_accounts must satisfy 2 <= low <= high, got {shared_device_accounts!r}"
        )
    return int(low), int(high)


def _check_pattern_weights(pattern_weights):
    if pattern_weights is None:
        return np.ones(len(FRAUD_PATTERNS))
    unknown = sorted(set(pattern_weights) - set(FRAUD_PATTERNS))
    if unknown:
        raise ValueError(
            f"pattern_weights has unknown pattern(s) {unknown}; known: {list(FRAUD_PATTERNS)}"
        )
    weights = np.array([pattern_weights.get(name, 0.0) for name in FRAUD_PATTERNS], dtype=float)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            "pattern_weights must be finite and >= 0 with a positive sum, "
            f"got {dict(pattern_weights)!r}"
        )
    return weights


def _split_by_weights(total, weights):
    """Integer shares of ``total`` proportional to ``weights`` (largest remainders)."""
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    left = total - int(shares.sum())
    shares[np.argsort(-(exact - shares), kind="stable")[:left]] += 1
    return shares


# --------------------------------------------------------------------------
# Customers and their legitimate transactions


class _IdCounter:
    """Hands out consecutive integer ids (devices or IP addresses)."""

    def __init__(self):
        self.next_id = 0

    def take(self, count):
        ids = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
        self.next_id += int(count)
        return ids


@dataclass
class _Customers:
    """Per-customer habits; every array is indexed by customer id."""

    home_country: np.ndarray
    travel_country: np.ndarray
    is_traveller: np.ndarray
    trip_first_day: np.ndarray
    trip_end_day: np.ndarray  # exclusive
    signup_seconds: np.ndarray  # from the start of the period; negative = before it
    first_active_day: np.ndarray
    median_amount: np.ndarray
    amount_sigma: np.ndarray
    typical_amount: np.ndarray  # median spend averaged over the customer's categories
    hour_centre: np.ndarray
    hour_spread: np.ndarray
    merchant_preference: np.ndarray  # (n_customers, n_categories), rows sum to 1
    first_device: np.ndarray  # the main device; others follow it
    device_count: np.ndarray
    home_ip: np.ndarray  # shared by the customers of a household
    first_extra_ip: np.ndarray
    extra_ip_count: np.ndarray
    travel_ip: np.ndarray


def _draw_customers(rng, n_customers, days, n_countries, devices, ips):
    country_share = 1.0 / np.arange(1, n_countries + 1) ** 1.2
    home_country = rng.choice(n_countries, size=n_customers, p=country_share / country_share.sum())
    travel_country = _country_other_than(rng, n_countries, home_country)

    # A fifth of the customers sign up during the period (on a day that leaves
    # them at least one more day), the rest up to two years before it.
    joins_in_period = (rng.random(n_customers) < 0.2) & (days >= 2)
    signup_day = rng.integers(0, max(1, int(0.75 * days)), size=n_customers)
    signup_in_period = signup_day * _SECONDS_PER_DAY + rng.integers(
        7 * _SECONDS_PER_HOUR, 23 * _SECONDS_PER_HOUR, size=n_customers
    )
    signup_before = -rng.integers(1, 730 * _SECONDS_PER_DAY, size=n_customers)
    signup_seconds = np.where(joins_in_period, signup_in_period, signup_before)
    first_active_day = np.where(joins_in_period, signup_day + 1, 0)

    is_traveller = rng.random(n_customers) < 0.25
    trip_first_day = first_active_day + (
        rng.random(n_customers) * (days - first_active_day)
    ).astype(np.int64)
    trip_end_day = trip_first_day + rng.integers(3, 15, size=n_customers)

    median_amount = np.exp(rng.normal(np.log(35.0), 0.9, size=n_customers))
    amount_sigma = rng.uniform(0.25, 0.65, size=n_customers)
    merchant_preference = rng.dirichlet(8.0 * _CATEGORY_POPULARITY, size=n_customers)
    typical_amount = median_amount * (merchant_preference @ _CATEGORY_PRICE_FACTOR)

    device_count = rng.choice([1, 2, 3], size=n_customers, p=[0.55, 0.33, 0.12])
    first_device = devices.take(device_count.sum())[np.cumsum(device_count) - device_count]

    # About 8% of the customers live with another customer and share their IP.
    household = np.arange(n_customers)
    shares_home = rng.random(n_customers) < 0.08
    household[shares_home] = rng.integers(0, n_customers, size=int(shares_home.sum()))
    home_ip = ips.take(n_customers)[household]
    extra_ip_count = rng.choice([0, 1, 2], size=n_customers, p=[0.45, 0.40, 0.15])
    first_extra_ip = ips.next_id + np.cumsum(extra_ip_count) - extra_ip_count
    ips.take(extra_ip_count.sum())
    travel_ip = ips.take(n_customers)

    return _Customers(
        home_country=home_country,
        travel_country=travel_country,
        is_traveller=is_traveller,
        trip_first_day=trip_first_day,
        trip_end_day=trip_end_day,
        signup_seconds=signup_seconds,
        first_active_day=first_active_day,
        median_amount=median_amount,
        amount_sigma=amount_sigma,
        typical_amount=typical_amount,
        hour_centre=rng.uniform(9.5, 19.5, size=n_customers),
        hour_spread=rng.uniform(1.0, 2.25, size=n_customers),
        merchant_preference=merchant_preference,
        first_device=first_device,
        device_count=device_count,
        home_ip=home_ip,
        first_extra_ip=first_extra_ip,
        extra_ip_count=extra_ip_count,
        travel_ip=travel_ip,
    )


@dataclass
class _Rows:
    """Transactions under construction, one array per field, in generation order."""

    customer: np.ndarray
    seconds: np.ndarray  # from the start of the period
    amount: np.ndarray
    country: np.ndarray  # index into COUNTRY_CODES
    device: np.ndarray  # internal device id
    ip: np.ndarray  # internal IP id
    merchant: np.ndarray  # index into MERCHANT_CATEGORIES
    pattern: np.ndarray  # index into _PATTERN_LABELS

    @classmethod
    def concatenate(cls, parts):
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


def _legit_rows(rng, customers, n_rows, days):
    """Legitimate rows, grouped by customer, and the number per customer."""
    n_customers = customers.home_country.size
    active_days = days - customers.first_active_day
    activity = rng.lognormal(0.0, 1.0, size=n_customers) * active_days / days
    at_least = 1 if n_rows >= n_customers else 0
    counts = at_least + rng.multinomial(n_rows - at_least * n_customers, activity / activity.sum())
    customer = np.repeat(np.arange(n_customers), counts)

    day = customers.first_active_day[customer] + (
        rng.random(n_rows) * active_days[customer]
    ).astype(np.int64)
    hour = _habitual_hours(rng, customers, customer)
    off_habit = rng.random(n_rows) < 0.015
    hour[off_habit] = rng.uniform(0.0, 24.0, size=int(off_habit.sum()))
    seconds = day * _SECONDS_PER_DAY + _seconds_of_hour(hour)

    # Categories per customer from their preferences; the order of a
    # customer's rows carries no meaning, as their times are independent.
    per_category = rng.multinomial(counts, customers.merchant_preference)
    n_categories = len(MERCHANT_CATEGORIES)
    merchant = np.repeat(np.tile(np.arange(n_categories), n_customers), per_category.ravel())

    amount = _to_cents(
        customers.median_amount[customer]
        * _CATEGORY_PRICE_FACTOR[merchant]
        * np.exp(customers.amount_sigma[customer] * rng.standard_normal(n_rows))
    )

    device_count = customers.device_count[customer]
    on_other_device = (rng.random(n_rows) >= 0.7) & (device_count > 1)
    other_device = 1 + (rng.random(n_rows) * (device_count - 1)).astype(np.int64)
    device = customers.first_device[customer] + np.where(on_other_device, other_device, 0)

    extra_ip_count = customers.extra_ip_count[customer]
    on_extra_ip = (rng.random(n_rows) >= 0.65) & (extra_ip_count > 0)
    extra_ip = customers.first_extra_ip[customer] + (rng.random(n_rows) * extra_ip_count).astype(
        np.int64
    )
    ip = np.where(on_extra_ip, extra_ip, customers.home_ip[customer])

    abroad = (
        customers.is_traveller[customer]
        & (day >= customers.trip_first_day[customer])
        & (day < customers.trip_end_day[customer])
        & (rng.random(n_rows) < 0.85)
    )
    country = np.where(abroad, customers.travel_country[customer], customers.home_country[customer])
    ip = np.where(abroad, customers.travel_ip[customer], ip)

    rows = _Rows(
        customer=customer,
        seconds=seconds,
        amount=amount,
        country=country,
        device=device,
        ip=ip,
        merchant=merchant,
        pattern=np.zeros(n_rows, dtype=np.int8),
    )
    return rows, counts


def _habitual_hours(rng, customers, customer):
    """Hours of day around each customer's centre, at most two spreads away."""
    spread = rng.standard_normal(customer.size)
    too_far = np.abs(spread) > 2.0
    spread[too_far] = rng.uniform(-2.0, 2.0, size=int(too_far.sum()))
    hour = customers.hour_centre[customer] + customers.hour_spread[customer] * spread
    return np.mod(hour, 24.0)


def _seconds_of_hour(hour):
    return np.minimum((hour * _SECONDS_PER_HOUR).astype(np.int64), _SECONDS_PER_DAY - 1)


def _to_cents(amount):
    return np.maximum(np.round(amount, 2), 0.01)


def _country_other_than(rng, n_countries, *excluded):
    """A uniform country index per row that differs from each excluded array.

    The excluded arrays must differ from each other row by row.
    """
    country = rng.integers(0, n_countries - len(excluded), size=excluded[0].size)
    for skipped in np.sort(np.stack(excluded), axis=0):
        country += country >= skipped
    return country


# --------------------------------------------------------------------------
# Fraud


def _eligible_victims(legit, legit_counts, days):
    """Customers with MIN_VICTIM_HISTORY legitimate rows before the last day.

    Returns a structured array with each victim's ``customer`` and
    ``anchor_day``, the day of their MIN_VICTIM_HISTORY-th legitimate row;
    their fraud comes on a later day.
    """
    period = days * _SECONDS_PER_DAY
    # Legitimate rows are grouped by customer, so sorting this key orders the
    # rows of each customer by time without mixing customers.
    ordered = np.sort(legit.customer * period + legit.seconds)
    first_row = np.cumsum(legit_counts) - legit_counts
    customer = np.flatnonzero(legit_counts >= MIN_VICTIM_HISTORY)
    anchor_seconds = ordered[first_row[customer] + MIN_VICTIM_HISTORY - 1] - customer * period
    anchor_day = anchor_seconds // _SECONDS_PER_DAY
    keep = anchor_day <= days - 2
    victims = np.empty(int(keep.sum()), dtype=[("customer", np.int64), ("anchor_day", np.int64)])
    victims["customer"] = customer[keep]
    victims["anchor_day"] = anchor_day[keep]
    return victims


@dataclass
class _FraudWorld:
    """What every fraud pattern draws from."""

    rng: np.random.Generator
    customers: _Customers
    victims: np.ndarray
    days: int
    n_countries: int
    devices: _IdCounter
    ips: _IdCounter

    def pick_victims(self, count):
        """Victims and a day after their history, spread over distinct victims when possible."""
        chosen = self.victims[
            self.rng.choice(self.victims.size, size=count, replace=count > self.victims.size)
        ]
        room = self.days - 1 - chosen["anchor_day"]
        day = chosen["anchor_day"] + 1 + (self.rng.random(count) * room).astype(np.int64)
        return chosen["customer"], day

    def any_of(self, categories, count):
        codes = np.array([_CATEGORY[name] for name in categories])
        return codes[self.rng.integers(0, codes.size, size=count)]

    def rows(self, pattern, **columns):
        return _Rows(pattern=np.full(columns["customer"].size, pattern, dtype=np.int8), **columns)


def _split_into_groups(rng, total, low, high):
    """Random group sizes that sum to ``total``, each in [low, high] when possible.

    A total below ``low`` is one group. When no split fits both bounds, the
    sizes stay <= high and as even as possible.
    """
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    if total < low:
        return np.array([total], dtype=np.int64)
    fewest, most = -(-total // high), total // low
    if fewest > most:
        sizes = np.full(fewest, total // fewest, dtype=np.int64)
        sizes[: total % fewest] += 1
        return rng.permutation(sizes)
    n_groups = int(np.clip(round(2 * total / (low + high)), fewest, most))
    room = high - low
    extra = rng.multinomial(total - n_groups * low, rng.dirichlet(np.ones(n_groups)))
    overflow = int(np.maximum(extra - room, 0).sum())
    if overflow:
        # Pour what spilled over into the groups with room left, in random order.
        extra = np.minimum(extra, room)
        order = rng.permutation(n_groups)
        free = room - extra[order]
        poured_before = np.cumsum(free) - free
        extra[order] += np.clip(overflow - poured_before, 0, free)
    return low + extra.astype(np.int64)


def _offsets_within_groups(rng, sizes, shortest_gap, longest_gap):
    """Seconds from each group's first row, with random gaps between rows."""
    gaps = rng.integers(shortest_gap, longest_gap + 1, size=int(sizes.sum()))
    first = np.cumsum(sizes) - sizes
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    return elapsed - np.repeat(elapsed[first], sizes)


def _card_testing(world, n_rows):
    rng, customers = world.rng, world.customers
    sizes = _split_into_groups(rng, n_rows, 5, 20)
    victim, day = world.pick_victims(sizes.size)
    # 19 gaps of at most 25 s keep each burst within eight minutes of its day.
    burst_start = day * _SECONDS_PER_DAY + rng.integers(0, _SECONDS_PER_DAY - 600, size=sizes.size)
    return world.rows(
        1 + FRAUD_PATTERNS.index("card_testing"),
        customer=np.repeat(victim, sizes),
        seconds=np.repeat(burst_start, sizes) + _offsets_within_groups(rng, sizes, 3, 25),
        amount=_to_cents(rng.uniform(0.5, 5.0, size=n_rows)),
        country=np.repeat(customers.home_country[victim], sizes),
        device=np.repeat(world.devices.take(sizes.size), sizes),
        ip=np.repeat(world.ips.take(sizes.size), sizes),
        merchant=np.where(
            rng.random(n_rows) < 0.8, _CATEGORY["digital_goods"], _CATEGORY["entertainment"]
        ),
    )


def _account_takeover(world, n_rows):
    rng, customers = world.rng, world.customers
    sizes = _split_into_groups(rng, n_rows, 1, 3)
    victim, day = world.pick_victims(sizes.size)
    # Mostly around the hour opposite the victim's habits, else at any hour.
    shift = 12.0 + rng.uniform(-2.0, 2.0, size=sizes.size)
    opposite_hour = np.mod(customers.hour_centre[victim] + shift, 24.0)
    hour = np.where(rng.random(sizes.size) < 0.6, opposite_hour, rng.uniform(0, 24, sizes.size))
    session_start = day * _SECONDS_PER_DAY + np.minimum(
        _seconds_of_hour(hour), _SECONDS_PER_DAY - 2 * 1800 - 1
    )
    country = _country_other_than(
        rng, world.n_countries, customers.home_country[victim], customers.travel_country[victim]
    )
    customer = np.repeat(victim, sizes)
    return world.rows(
        1 + FRAUD_PATTERNS.index("account_takeover"),
        customer=customer,
        seconds=np.repeat(session_start, sizes) + _offsets_within_groups(rng, sizes, 60, 1800),
        amount=_to_cents(customers.typical_amount[customer] * rng.uniform(5, 20, size=n_rows)),
        country=np.repeat(country, sizes),
        device=np.repeat(world.devices.take(sizes.size), sizes),
        ip=np.repeat(world.ips.take(sizes.size), sizes),
        merchant=world.any_of(("electronics", "travel", "digital_goods"), n_rows),
    )


def _amount_spike(world, n_rows):
    rng, customers = world.rng, world.customers
    victim, day = world.pick_victims(n_rows)
    hour = _habitual_hours(rng, customers, victim)
    return world.rows(
        1 + FRAUD_PATTERNS.index("amount_spike"),
        customer=victim,
        seconds=day * _SECONDS_PER_DAY + _seconds_of_hour(hour),
        amount=_to_cents(customers.typical_amount[victim] * rng.uniform(8, 30, size=n_rows)),
        country=customers.home_country[victim],
        device=customers.first_device[victim],
        ip=customers.home_ip[victim],
        merchant=world.any_of(("electronics", "travel", "home_garden", "fashion"), n_rows),
    )


def _night_activity(world, n_rows):
    rng, customers = world.rng, world.customers
    sizes = _split_into_groups(rng, n_rows, 1, 4)
    victim, day = world.pick_victims(sizes.size)
    # Starts before 03:54 and three gaps of at most 18 minutes end before 05:00.
    night_start = day * _SECONDS_PER_DAY + rng.integers(
        _SECONDS_PER_HOUR, int(3.9 * _SECONDS_PER_HOUR), size=sizes.size
    )
    customer = np.repeat(victim, sizes)
    return world.rows(
        1 + FRAUD_PATTERNS.index("night_activity"),
        customer=customer,
        seconds=np.repeat(night_start, sizes) + _offsets_within_groups(rng, sizes, 120, 1080),
        amount=_to_cents(customers.typical_amount[customer] * rng.uniform(3, 10, size=n_rows)),
        country=customers.home_country[customer],
        device=np.repeat(world.devices.take(sizes.size), sizes),
        ip=np.repeat(world.ips.take(sizes.size), sizes),
        merchant=world.any_of(("electronics", "digital_goods", "fashion"), n_rows),
    )


def _shared_device(world, n_rows, ring_low, ring_high):
    rng, customers, victims = world.rng, world.customers, world.victims
    ring_high = min(ring_high, victims.size)
    sizes = _split_into_groups(rng, n_rows, min(ring_low, ring_high), ring_high)
    anchor_days_sorted = np.sort(victims["anchor_day"])
    members, seconds = [], []
    for size in sizes:
        # The ring strikes on a day after the history of all its members.
        day = rng.integers(anchor_days_sorted[size - 1] + 1, world.days)
        candidates = victims["customer"][victims["anchor_day"] < day]
        members.append(rng.choice(candidates, size=size, replace=False))
        window = int(rng.integers(1800, 6 * _SECONDS_PER_HOUR + 1))
        ring_start = day * _SECONDS_PER_DAY + rng.integers(0, _SECONDS_PER_DAY - window)
        seconds.append(ring_start + np.sort(rng.integers(0, window, size=size)))
    customer = np.concatenate(members)
    return world.rows(
        1 + FRAUD_PATTERNS.index("shared_device"),
        customer=customer,
        seconds=np.concatenate(seconds),
        amount=_to_cents(customers.typical_amount[customer] * rng.uniform(2, 8, size=n_rows)),
        country=np.repeat(rng.integers(0, world.n_countries, size=sizes.size), sizes),
        device=np.repeat(world.devices.take(sizes.size), sizes),
        ip=np.repeat(world.ips.take(sizes.size), sizes),
        merchant=world.any_of(("electronics", "digital_goods", "fashion"), n_rows),
    )


# --------------------------------------------------------------------------
# The DataFrame


def _public_ip_addresses(rng, count):
    """``count`` distinct dotted quads outside private, loopback and link-local blocks."""
    reserved_first_octets = np.array([10, 100, 127, 169, 172, 192])
    chosen = np.zeros(0, dtype=np.int64)
    while chosen.size < count:
        drawn = rng.integers(1 << 24, 224 << 24, size=count + count // 8 + 16)
        drawn = drawn[~np.isin(drawn >> 24, reserved_first_octets)]
        merged = np.concatenate([chosen, drawn])
        _, first_seen = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first_seen)]
    chosen = chosen[:count]
    octets = [(chosen >> shift) & 255 for shift in (24, 16, 8, 0)]
    return np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(*map(list, octets))], dtype=object)


def _device_names(rng, count):
    """Names for internal device ids, shuffled so numbering carries no signal."""
    width = max(6, len(str(count - 1)))
    names = np.array([f"D{number:0{width}d}" for number in range(count)], dtype=object)
    return names[rng.permutation(count)]


def _to_frame(rng, rows, customers, start_day, n_devices, n_ips):
    order = np.argsort(rows.seconds, kind="stable")
    customer = rows.customer[order]
    start = np.datetime64(start_day.to_datetime64(), "ns")
    pattern = rows.pattern[order]
    return pd.DataFrame(
        {
            "transaction_id": np.arange(order.size, dtype=np.int64),
            "customer_id": customer.astype(np.int64),
            "timestamp": start + rows.seconds[order].astype("timedelta64[s]"),
            "amount": rows.amount[order].astype(np.float64),
            "country": np.array(COUNTRY_CODES, dtype=object)[rows.country[order]],
            "device_id": _device_names(rng, n_devices)[rows.device[order]],
            "ip_address": _public_ip_addresses(rng, n_ips)[rows.ip[order]],
            "merchant": np.array(MERCHANT_CATEGORIES, dtype=object)[rows.merchant[order]],
            "signup_time": start + customers.signup_seconds[customer].astype("timedelta64[s]"),
            "is_fraud": (pattern > 0).astype(np.int8),
            "fraud_pattern": np.array(_PATTERN_LABELS, dtype=object)[pattern],
        },
        columns=list(TRANSACTION_COLUMNS),
    )
