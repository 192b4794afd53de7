"""The queue page: alerts by priority then time, filtered, sorted and paged
in the database (``AlertStore.alert_queue``), refreshed every few seconds so
new alerts appear without a reload."""

import datetime as dt
import math

from dash import Input, Output, State, dcc, html

from fraudcore.dashboard import components as ui
from fraudcore.dashboard.desk import signed_in
from fraudcore.service.queries import LEVELS
from fraudcore.service.store import QUEUE_SORTS, STATUSES

PAGE_SIZE = 25
REFRESH_MS = 5000
DEFAULT_STATUS = ["OPEN", "INVESTIGATING"]

# Table column id -> header. A column sorts by the store's sort of the same
# name (QUEUE_SORTS); the Alert column by its id.
COLUMNS = {
    "alert": "Alert",
    "priority": "Priority",
    "risk_level": "Level",
    "risk_score": "Risk score",
    "customer_id": "Customer",
    "amount": "Amount",
    "occurred_at": "Occurred (UTC)",
    "country": "Country",
    "status": "Status",
    "assigned_to": "Assigned to",
    "created_at": "Alerted (UTC)",
}
_SORT_NAMES = {"alert": "id"}
FILTERS = ("queue-status", "queue-level", "queue-customer", "queue-country", "queue-dates")


def layout(app):
    options = {"clearable": True, "multi": True}
    return html.Div(
        [
            html.H2("Alert queue"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="queue-status",
                        options=[{"label": s.replace("_", " "), "value": s} for s in STATUSES],
                        value=DEFAULT_STATUS,
                        placeholder="any status",
                        **options,
                    ),
                    dcc.Dropdown(
                        id="queue-level",
                        options=list(LEVELS),
                        value=[],
                        placeholder="any risk level",
                        **options,
                    ),
                    dcc.Input(
                        id="queue-customer", placeholder="customer", debounce=True, type="text"
                    ),
                    dcc.Input(
                        id="queue-country", placeholder="country", debounce=True, type="text"
                    ),
                    dcc.DatePickerRange(
                        id="queue-dates",
                        clearable=True,
                        display_format="YYYY-MM-DD",
                        start_date_placeholder_text="alerted from",
                        end_date_placeholder_text="to (inclusive)",
                    ),
                ],
                className="filters",
            ),
            html.Div(id="queue-summary", className="muted"),
            ui.table(
                "queue-table",
                [
                    {
                        "id": key,
                        "name": name,
                        **({"presentation": "markdown"} if key == "alert" else {}),
                    }
                    for key, name in COLUMNS.items()
                ],
                page_action="custom",
                page_current=0,
                page_size=PAGE_SIZE,
                page_count=1,
                sort_action="custom",
                sort_mode="multi",
                sort_by=[],
                style_data_conditional=[
                    {
                        "if": {
                            "filter_query": f'{{risk_level}} = "{level}"',
                            "column_id": "risk_level",
                        },
                        "color": color,
                        "fontWeight": "600",
                    }
                    for level, color in ui.LEVEL_COLORS.items()
                ],
            ),
            dcc.Interval(id="queue-tick", interval=REFRESH_MS),
        ]
    )


def _day(value, what):
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def queue_view(
    store,
    *,
    status=None,
    level=None,
    customer=None,
    country=None,
    start_date=None,
    end_date=None,
    page=0,
    page_size=PAGE_SIZE,
    sort_by=None,
    alert_href=lambda alert_id: f"alert/{alert_id}",
):
    """The queue callback's work: (table rows, page count, page shown, summary text).

    Filters as the page gives them (empty means any); end_date is
    inclusive. sort_by is the DataTable's [{column_id, direction}]; columns
    the database cannot sort by are left out of the order, and the summary
    says which order was applied. A page past the end shows the last one.
    """
    sort = []
    for entry in sort_by or []:
        column = _SORT_NAMES.get(entry.get("column_id"), entry.get("column_id"))
        if column in QUEUE_SORTS:
            sort.append((column, "desc" if entry.get("direction") == "desc" else "asc"))
    since = _day(start_date, "start date")
    until = _day(end_date, "end date")
    if until is not None:
        until += dt.timedelta(days=1)
    query = {
        "status": list(status) or None if status else None,
        "level": list(level) or None if level else None,
        "customer_id": (customer or "").strip() or None,
        "country": (country or "").strip() or None,
        "since": since,
        "until": until,
        "sort": sort,
        "limit": page_size,
    }
    page = max(0, int(page or 0))
    rows, total = store.alert_queue(offset=page * page_size, **query)
    page_count = max(1, math.ceil(total / page_size))
    if page >= page_count:
        page = page_count - 1
        if total:
            rows, total = store.alert_queue(offset=page * page_size, **query)
    table = [
        {
            "alert": ui.alert_link(alert_href, r["id"]),
            "id": r["id"],
            "priority": r["priority"],
            "risk_level": r["risk_level"],
            "risk_score": round(r["risk_score"], 4),
            "customer_id": r["customer_id"],
            # None only in rows a schema-2 writer added after the upgrade
            "amount": None if r["amount"] is None else round(r["amount"], 2),
            "occurred_at": ui.when(r["occurred_at"]),
            "country": r.get("country") or "",
            "status": r["status"],
            "assigned_to": r["assigned_to"] or "",
            "created_at": ui.when(r["created_at"]),
        }
        for r in rows
    ]
    first = page * page_size
    order = ", ".join(f"{c} {d}" for c, d in sort) or "priority, then oldest first"
    if total:
        text = f"alerts {first + 1:,}–{first + len(rows):,} of {total:,}; sorted by {order}"
    else:
        text = "no alerts match these filters"
    return table, page_count, page, text


def register(app, desk):
    @app.callback(
        Output("queue-table", "data"),
        Output("queue-table", "page_count"),
        Output("queue-table", "page_current"),
        Output("queue-summary", "children"),
        *(Input(f, "value") for f in FILTERS[:4]),
        Input("queue-dates", "start_date"),
        Input("queue-dates", "end_date"),
        Input("queue-table", "page_current"),
        Input("queue-table", "sort_by"),
        Input("queue-tick", "n_intervals"),
        State("queue-table", "page_size"),
    )
    @signed_in(desk)
    def refresh_queue(status, level, customer, country, start, end, page, sort_by, _tick, size):
        from dash import ctx

        changed = {t["prop_id"] for t in ctx.triggered}
        if ctx.triggered_id in FILTERS or "queue-table.sort_by" in changed:
            page = 0  # new filters or a new order start on the first page
        try:
            return queue_view(
                desk.store,
                status=status,
                level=level,
                customer=customer,
                country=country,
                start_date=start,
                end_date=end,
                page=page,
                page_size=size or PAGE_SIZE,
                sort_by=sort_by,
                alert_href=ui.alert_href(app),
            )
        except ValueError as exc:
            return [], 1, 0, f"cannot filter: {exc}"
