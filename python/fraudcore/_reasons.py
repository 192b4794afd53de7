"""Reason codes: the deviations behind an alert, in words an analyst reads.

:func:`describe` takes, per alert, each feature's share of the row's
unusualness (from the detectors, see FraudDetector._attribution) and, in
that order, asks each feature whether its value is a deviation worth
naming. A reason says how far the value is from this customer's usual or
how rare it is among all training transactions, or both ("amount 800.00 is
40x this customer's average of 20.00", "bought 0 s after signing up; 95%
of purchases come later", "device shared by 4 accounts; 99.2% of
transactions are on a device with fewer accounts", "amount 9,990.50,
higher than 99.9% of transactions"), in plain ASCII punctuation. A feature
whose value is ordinary yields nothing and the next feature is asked; a
neutral fact ("on a Monday", "0 earlier transactions") is never a reason.

When is a value unusual
-----------------------
- **Against everyone** (the training quantile grid, ``population``): the
  value lies in a tail holding at most ``TAIL`` (5%) of the training
  transactions, counted with ties: a high value is unusual when at least
  95% of training transactions are strictly below it, a low one when at
  least 95% are strictly above it. A point mass therefore never makes its
  own value rare: with 94.6% of transactions on a device of one account,
  1 is not unusual and 2 is not either (only 94.6% are strictly below);
  with 4.9% of purchases made 0 s after signup, 0 s is (95.1% are above).
  Counts, sums and the customer's history are unusual only on the high
  side (a low count is "nothing happened", which explains nothing).
- **Hour and weekday** are read as categories, not tails: an hour is
  unusual when at most a quarter of an even spread's share of training
  transactions (1/96) falls in it, a weekday likewise (1/28).
- **Against the customer's usual**: the amount is at least 3x or at most
  a third of the customer's average (``amount_to_mean``, with history), or
  at least 3 standard deviations from it (``amount_zscore``, with 2 or more
  earlier transactions); a first country or device is a deviation by
  definition, as is a quantity spike.

Shares are read from the grid conservatively (never overstating rarity,
to within one training row that the grid's interpolation blurs) and
written rounded down to 0.1%: "99.9%" means at least 99.9%; "all" means
beyond every value of the grid.

A row with no unusual value gets the single sentence :data:`NOTHING_RARE`
("no single value is rare on its own"): true of any row, and for an alert
it says what the analyst needs, that the combination of its values is
what the detectors found unusual. It is never a neutral fact dressed as a
reason.
"""

import bisect
import math

import numpy as np

__all__ = ["NOTHING_RARE", "TAIL", "describe"]

TAIL = 0.05  # the share of training transactions a tail may hold
NOTHING_RARE = "no single value is rare on its own"
_FAR_FROM_MEAN = 3.0  # amount_to_mean at least this, or at most its inverse
_FAR_ZSCORE = 3.0
_WINDOW_WORDS = {"1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days"}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _window(label):
    return _WINDOW_WORDS.get(label, f"the last {label}")


def _duration(seconds):
    """A time span in the unit an analyst would use: "40 s", "12 min", "5.5 h", "38 days".
    Each unit is kept below where the next one starts, after rounding."""
    if not np.isfinite(seconds):
        return "an unknown time"
    for unit, size, limit, digits in (("s", 1, 120, 0), ("min", 60, 120, 0), ("h", 3_600, 48, 1)):
        value = round(seconds / size, digits)
        if value < limit:
            return f"{value:.{digits}f} {unit}"
    days = seconds / 86_400
    return f"{days:.1f} days" if round(days, 1) < 10 else f"{days:,.0f} days"


def _count(n, noun, plural=None):
    """ "1 account", "4 accounts", "1,200 earlier transactions"."""
    n = int(round(n))
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _number(v):
    """A passthrough value: three significant digits, thousands in full."""
    return f"{v:,.0f}" if abs(v) >= 1_000 else f"{v:.3g}"


class _Population:
    """The training quantile grid read as shares of training transactions.

    Row k of the grid is the k/m quantile (m = rows - 1). For a value v,
    ``below`` counts the grid steps certainly below v: if the grid's first
    `lo` points are < v, at least (lo - 1)/m of the training rows are, so
    below = max(lo - 1, 0) out of m; ``above`` likewise. Shares are these
    counts over m, so they never overstate how rare a value is.
    """

    def __init__(self, names, grid):
        self.index = {name: j for j, name in enumerate(names)}
        self.grid = grid
        self.columns = {}  # made on first use, see column
        self.steps = grid.shape[0] - 1
        self.limit = self.steps - int(round(TAIL * self.steps))  # steps a tail's far side needs

    def column(self, name):
        """A feature's grid as a list of floats: bisect searches it as
        np.searchsorted would, without NumPy's per-call overhead."""
        found = self.columns.get(name)
        if found is None:
            found = self.columns[name] = self.grid[:, self.index[name]].tolist()
        return found

    def below(self, name, v):
        return max(bisect.bisect_left(self.column(name), float(v)) - 1, 0)

    def above(self, name, v):
        return max(self.steps - bisect.bisect_right(self.column(name), float(v)), 0)

    def at(self, name, v):
        """Grid steps that may hold v itself (an upper bound)."""
        return self.steps - self.below(name, v) - self.above(name, v)

    def median(self, name):
        return float(self.grid[self.steps // 2, self.index[name]])

    def tail(self, name, v, least=None):
        """("high", steps strictly below v) or ("low", steps strictly above v)
        when v lies in a tail holding at most TAIL of the transactions, else
        None. With `least`, only the transactions at or above it count (-1
        marks "none" in seconds_since_prev and signup_delay_s). The count
        is returned out of ``self.steps``."""
        if name not in self.index or not np.isfinite(v):
            return None
        below, above, total = self.below(name, v), self.above(name, v), self.steps
        if least is not None:
            before = self.below(name, least)
            total -= before
            if total <= 0:
                return None
            # rescaled to steps, rounded down
            below, above = (below - before) * self.steps // total, above * self.steps // total
        if below >= self.limit:
            return "high", below
        if above >= self.limit:
            return "low", above
        return None

    def share(self, steps, noun="transactions"):
        """ "99.9% of transactions", "95% of transactions" (rounded down) or
        "all transactions" (beyond every value of the grid)."""
        if steps >= self.steps:
            return f"all {noun}"
        return f"{math.floor(1000 * steps / self.steps) / 10:g}% of {noun}"


def _amount_against_everyone(row, population):
    amount = float(row["amount"])
    tail = population.tail("amount", amount)
    if tail is None:
        return None
    side, steps = tail
    return f"amount {amount:,.2f}, {'higher' if side == 'high' else 'lower'} than {population.share(steps)}"


def _ratio(r):
    return f"{r:,.0f}x" if r >= 10 else f"{r:.1f}x" if r >= 1 else f"{r:.2g}x"


def _amount_against_customer(row):
    """The amount against the customer's own average: one sentence for
    amount_to_mean and amount_zscore alike, so the two are said once."""
    n, mean, amount = float(row["entity_count"]), float(row["entity_mean"]), float(row["amount"])
    r, z = float(row["amount_to_mean"]), float(row["amount_zscore"])
    far_ratio = n >= 1 and mean > 0 and (r >= _FAR_FROM_MEAN or r <= 1 / _FAR_FROM_MEAN)
    far_z = n >= 2 and abs(z) >= _FAR_ZSCORE
    if not (far_ratio or far_z):
        return None
    average = f"this customer's average of {mean:,.2f}"
    parts = []
    if far_ratio:
        parts.append(
            f"{'negative' if r < 0 else 'zero'}, against {average}"
            if r <= 0
            else f"{_ratio(r)} {average}"
        )
    if far_z:
        side = "above" if z > 0 else "below"
        parts.append(f"{abs(z):.1f} standard deviations {side} " + ("it" if parts else average))
    return f"amount {amount:,.2f} is " + " and ".join(parts)


def _hour(row, population, night_only=False):
    hour = int(row["hour"])
    night = bool(row.get("is_night", 0))
    if night_only and not night:
        return None
    if "is_night" in row and population.tail("is_night", float(night)) is not None:
        steps = population.steps - population.at("is_night", float(night))
        when = "by day" if night else "at night"
        return f"{'at night' if night else 'by day'} ({hour:02d}:00); {population.share(steps)} are {when}"
    if night_only or population.at("hour", hour) * 96 > population.steps:
        return None
    other = population.steps - population.at("hour", hour)
    return f"transaction at {hour:02d}:00; {population.share(other)} are at other hours"


def _weekday(row, population):
    day = int(row["day_of_week"]) % 7
    weekend = bool(row.get("is_weekend", 0))
    if "is_weekend" in row and population.tail("is_weekend", float(weekend)) is not None:
        steps = population.steps - population.at("is_weekend", float(weekend))
        when = "on weekdays" if weekend else "at weekends"
        return f"on a {_WEEKDAYS[day]}; {population.share(steps)} are {when}"
    if population.at("day_of_week", day) * 28 > population.steps:
        return None
    other = population.steps - population.at("day_of_week", day)
    return f"on a {_WEEKDAYS[day]}; {population.share(other)} are on other days"


def _shared(row, name, population, thing, where):
    """ "device shared by 4 accounts; 99% of transactions are on a device
    with fewer accounts"; "... of 1 account" when every training transaction
    below the value sits at the median."""
    v = float(row[name])
    tail = population.tail(name, v)
    if v < 2 or tail is None or tail[0] != "high":
        return None
    median = population.median(name)
    fewer = (
        f"of {_count(median, 'account')}"
        if 0 < median < v and population.at(name, median) == tail[1]
        else "with fewer accounts"
    )
    return (
        f"{thing} shared by {_count(v, 'account')}; {population.share(tail[1])} are {where} {fewer}"
    )


def _customer_history(name, row, population):
    """entity_count, entity_mean, entity_std, hist_freq: the customer is
    unusual among the customers behind the training transactions."""
    v = float(row[name])
    if float(row["entity_count"]) < 1:
        return None
    tail = population.tail(name, v)
    if tail is None or (tail[0] == "low" and name != "entity_mean"):
        return None
    side, steps = tail
    share = population.share(steps)
    if name == "entity_count":
        return f"a customer with {_count(v, 'earlier transaction')}; {share} come from customers with fewer"
    if name == "hist_freq":
        return f"{_count(v, 'earlier invoice')} of this customer; {share} come from customers with fewer"
    if name == "entity_mean":
        other = "lower" if side == "high" else "higher"
        return (
            f"this customer's earlier transactions average {v:,.2f}; {share} "
            f"come from customers with a {other} average"
        )
    return (
        f"this customer's amounts vary by {v:,.2f} (standard deviation); {share} "
        "come from customers with steadier amounts"
    )


def _window_phrase(name, row, population):
    kind, label = (
        ("count", name[len("count_") :])
        if name.startswith("count_")
        else ("sum", name[len("amount_sum_") :])
    )
    v = float(row[name])
    tail = population.tail(name, v)
    if tail is None:
        return None
    side, steps = tail
    share, window = population.share(steps), _window(label)
    if kind == "count":
        if side != "high" or v < 1:
            return None
        return f"{_count(v, 'earlier transaction')} in {window}; {share} have fewer"
    if side == "high" and v > 0:
        return f"{v:,.2f} spent in {window}, more than before {share}"
    if side == "low" and v < 0:
        return f"{-v:,.2f} refunded (net) in {window}, more than before {share}"
    return None


def _gap(row, population):
    v = float(row["seconds_since_prev"])
    if v < 0:
        tail = population.tail("seconds_since_prev", v)
        if tail is None or tail[0] != "low":
            return None
        return (
            f"first transaction of this customer; {population.share(tail[1])} "
            "come after an earlier one of their customer"
        )
    # A short gap is rare among all gaps; a long one only among positive gaps:
    # where most rows share their invoice's time (gap 0), every invoice's first
    # line would otherwise look rare.
    tail = population.tail("seconds_since_prev", v, least=0.0)
    if (tail is None or tail[0] == "high") and v > 0:
        tail = population.tail("seconds_since_prev", v, least=np.nextafter(0.0, 1.0))
        tail = tail if tail and tail[0] == "high" else None
    if tail is None:
        return None
    side, steps = tail
    if side == "low":
        return (
            f"{_duration(v)} after the previous transaction; {population.share(steps)} "
            "come later after their customer's previous one"
        )
    gaps = population.share(steps, "gaps between a customer's transactions")
    return f"{_duration(v)} after the previous transaction; {gaps} are shorter"


def _signup(row, population):
    v = float(row["signup_delay_s"])
    if v < 0:
        return None
    tail = population.tail("signup_delay_s", v, least=0.0)
    if tail is None:
        return None
    side, steps = tail
    return (
        f"bought {_duration(v)} after signing up; {population.share(steps, 'purchases')} come "
        f"{'later' if side == 'low' else 'sooner'}"
    )


def _quantity(name, row, population):
    quantity = float(row["quantity"])
    tail = population.tail("quantity", quantity)
    spike = bool(row.get("quantity_spike", 0))
    if spike:
        rare = (
            f", {'higher' if tail[0] == 'high' else 'lower'} than {population.share(tail[1])}"
            if tail
            else ""
        )
        return f"quantity {quantity:,.0f} far from this customer's usual{rare}"
    if name == "quantity_spike" or tail is None:
        return None
    return (
        f"quantity {quantity:,.0f}, {'higher' if tail[0] == 'high' else 'lower'} than "
        f"{population.share(tail[1])}"
    )


def _phrase(name, row, raw, schema, population):
    """The sentence for feature `name` of a row, or None when its value is ordinary."""
    v = float(row[name])
    if not np.isfinite(v):
        return None
    if name in ("amount_to_mean", "amount_zscore"):
        return _amount_against_customer(row)
    if name in ("amount", "amount_log1p", "amount_sqrt"):
        return _amount_against_everyone(row, population)
    if name == "amount_x_hour":
        return _amount_against_everyone(row, population) or _hour(row, population)
    if name == "hour":
        return _hour(row, population)
    if name in ("is_night", "amount_x_night"):
        return _hour(row, population, night_only=name == "amount_x_night")
    if name in ("day_of_week", "is_weekend"):
        return _weekday(row, population)
    if name.startswith(("count_", "amount_sum_")):
        return _window_phrase(name, row, population)
    if name == "seconds_since_prev":
        return _gap(row, population)
    if name in ("entity_count", "entity_mean", "entity_std", "hist_freq"):
        return _customer_history(name, row, population)
    if name == "unusual_country":
        country = raw.get(schema.country) if schema.country else None
        return (
            f"first purchase from {country} after {_count(row['entity_count'], 'earlier transaction')}"
            if v > 0
            else None
        )
    if name == "new_device":
        return (
            f"a device this customer never used in {_count(row['entity_count'], 'earlier transaction')}"
            if v > 0
            else None
        )
    if name == "device_users":
        return _shared(row, name, population, "device", "on a device")
    if name == "ip_users":
        return _shared(row, name, population, "IP address", "from an IP address")
    if name == "signup_delay_s":
        return _signup(row, population)
    if name in ("quantity", "quantity_spike"):
        return _quantity(name, row, population)
    tail = population.tail(name, v)
    if tail is None:
        return None
    return (
        f"{name} = {_number(v)}, {'higher' if tail[0] == 'high' else 'lower'} than "
        f"{population.share(tail[1])}"
    )


def _population(names, grid):
    """The quantile grid (n_quantiles >= 2, one column per name, checked)
    read as shares of training transactions, for describe."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or grid.shape[0] < 2 or grid.shape[1] != len(names):
        raise ValueError(
            f"population must be a quantile grid of shape (n_quantiles >= 2, {len(names)}), "
            f"got shape {grid.shape}"
        )
    return _Population(names, grid)


def describe(features, data, schema, attribution, population, top=3, *, details=False):
    """Up to `top` distinct reasons per row, largest attribution first.

    Features are asked in decreasing attribution (those with none are not
    asked); each names its value when it is unusual (see the module's
    documentation) and yields nothing otherwise.

    Parameters
    ----------
    features : DataFrame or list of dict
        The rows' features (:func:`fraudcore.build_features`), as a table
        or as one {feature name: value} dict per row (in the table's column
        order).
    data : DataFrame or list of dict
        The same rows as given (for values such as the country).
    schema : Schema
    attribution : ndarray of shape (n_rows, n_features)
        Each feature's share of the row's unusualness.
    population : ndarray of shape (n_quantiles, n_features), or a Population
        Each feature's training quantile grid: row k is the k/(n_quantiles
        - 1) quantile (FraudDetector.quantiles_); or :func:`population` of
        it, made once for many calls.
    top : int
    details : bool
        Return where each reason came from as well.

    Returns
    -------
    list of lists of str
        Per row, the reasons; [NOTHING_RARE] when no value is unusual.
        With ``details``: per row, a list of {"feature", "value", "text"}
        dicts instead, one per reason in the same order: the feature whose
        value gave the text (the first one asked, when several give the
        same text) and that value; NOTHING_RARE has feature and value None.
    """
    if hasattr(features, "to_dict"):
        names = list(features.columns)
        records = features.to_dict("records")
    else:
        records = features
        names = list(records[0]) if records else []
    raws = data.to_dict("records") if hasattr(data, "to_dict") else data
    grid = population if isinstance(population, _Population) else _population(names, population)
    order = np.argsort(-attribution, axis=1, kind="stable")
    out = []
    for i, row in enumerate(records):
        sentences, sources = [], []
        for j in order[i]:
            if not attribution[i, j] > 0:
                break  # the rest did not drive the score
            sentence = _phrase(names[j], row, raws[i], schema, grid)
            if sentence and sentence not in sentences:
                sentences.append(sentence)
                sources.append(names[j])
            if len(sentences) == top:
                break
        if not details:
            out.append(sentences or [NOTHING_RARE])
        elif sentences:
            out.append(
                [
                    {"feature": name, "value": float(row[name]), "text": text}
                    for name, text in zip(sources, sentences)
                ]
            )
        else:
            out.append([{"feature": None, "value": None, "text": NOTHING_RARE}])
    return out
