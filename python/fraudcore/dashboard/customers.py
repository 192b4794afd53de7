"""The customer explorer, the Online Retail anomaly project's own view: a
customer dropdown and a metric dropdown, a bar chart of the customer's top
10 anomalies in that metric, and a drill-down table of every transaction
(``AlertStore.customer_anomalies``, the query behind ``POST /api/anomalies``)."""

from dash import Input, Output, dcc, html

from fraudcore.dashboard import components as ui
from fraudcore.dashboard.desk import signed_in
from fraudcore.service.queries import METRICS
from fraudcore.service.store import NotFound

DEFAULT_METRIC = "TotalSpent"
MAX_CUSTOMERS = 1000  # in the dropdown: those with the most alerts first
DRILL_DOWN = 1000  # the latest transactions in the table (all in a customer's top 10)


def layout(app, desk, customer=None):
    customers = desk.store.customer_ids(limit=MAX_CUSTOMERS)
    if customer is not None and customer not in customers:
        customers = [customer, *customers]
    return html.Div(
        [
            html.H2("Customer explorer"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="explorer-customer",
                        options=customers,
                        value=customer if customer is not None else (customers or [None])[0],
                        placeholder="customer",
                        clearable=False,
                    ),
                    dcc.Dropdown(
                        id="explorer-metric",
                        options=list(METRICS),
                        value=DEFAULT_METRIC,
                        clearable=False,
                    ),
                ],
                className="filters",
            ),
            html.Div(id="explorer-summary", className="muted"),
            dcc.Graph(id="explorer-chart", config=ui.GRAPH_CONFIG),
            html.H3("Drill-down"),
            ui.table(
                "explorer-table",
                [
                    ("occurred_at", "Occurred (UTC)"),
                    ("event_id", "Event"),
                    ("amount", "Amount"),
                    ("value", "Metric"),
                    ("risk_score", "Risk score"),
                    ("risk_level", "Level"),
                    {"id": "alert", "name": "Alert", "presentation": "markdown"},
                ],
                page_size=20,
                sort_action="native",
            ),
        ]
    )


def customer_view(store, customer_id, metric, alert_href=lambda alert_id: f"alert/{alert_id}"):
    """(bar chart of the top 10 anomalies, drill-down rows, summary text);
    the table holds the customer's latest DRILL_DOWN transactions."""
    if not customer_id:
        return ui.empty_figure("pick a customer"), [], ""
    try:
        found = store.customer_anomalies(customer_id, metric, limit=DRILL_DOWN)
    except NotFound:
        return ui.empty_figure(f"no transactions of customer {customer_id}"), [], ""
    top = found["anomaly_list"]
    labels = [ui.label(f"{ui.when(r['occurred_at'])} · {r['event_id']}") for r in top]
    figure = ui.figure(
        [
            {
                "type": "bar",
                "x": labels,
                "y": [r["value"] for r in top],
                "marker": {"color": [ui.LEVEL_COLORS.get(r["risk_level"], "#607d8b") for r in top]},
                "text": [f"risk {r['risk_score']:.3f}" for r in top],
                "hovertemplate": "%{x}<br>" + metric + " %{y}<br>%{text}<extra></extra>",
            }
        ],
        f"Customer {ui.label(customer_id)}: top 10 anomalies by risk — {metric}",
        xaxis={"showticklabels": False, "title": {"text": "the 10 riskiest transactions"}},
        yaxis={"title": {"text": metric}},
    )
    rows = [
        {
            "occurred_at": ui.when(r["occurred_at"]),
            "event_id": r["event_id"],
            "amount": round(r["amount"], 2),
            "value": None if r["value"] is None else round(float(r["value"]), 4),
            "risk_score": round(r["risk_score"], 4),
            "risk_level": r["risk_level"],
            "alert": ui.alert_link(alert_href, r["alert_id"]),
        }
        for r in found["drill_down_data"]
    ]
    alerts = sum(1 for r in found["drill_down_data"] if r["is_alert"])
    n = found["n_transactions"]
    text = f"{n:,} transactions"
    if n > len(rows):
        text += f"; the table shows the latest {len(rows):,} ({alerts:,} alerts among them)"
    else:
        text += f", {alerts:,} alerts"
    return figure, rows, text


def register(app, desk):
    @app.callback(
        Output("explorer-chart", "figure"),
        Output("explorer-table", "data"),
        Output("explorer-summary", "children"),
        Input("explorer-customer", "value"),
        Input("explorer-metric", "value"),
    )
    @signed_in(desk)
    def explore(customer_id, metric):
        return customer_view(desk.store, customer_id, metric, alert_href=ui.alert_href(app))
