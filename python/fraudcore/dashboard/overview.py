"""The overview page: summary cards, alerts and confirmed fraud over time,
by country, by device and by browser, and the score distribution with the
alert threshold marked. Every number is one aggregate query of the store
(``AlertStore.summary``, ``statistics``, ``fraud_trends``, ...); the page
refreshes itself every 30 seconds.

Countries are a bar chart, not a world map: Plotly's map outlines are
fetched from cdn.plot.ly by the browser, which a desk on a closed network
(and this project's CI) cannot reach.
"""

from concurrent.futures import ThreadPoolExecutor

from dash import Input, Output, dcc, html

from fraudcore.dashboard import components as ui
from fraudcore.dashboard.desk import signed_in

REFRESH_MS = 30_000
TOP = 15  # countries, devices, browsers shown


def layout(app):
    graphs = ("trends", "countries", "devices", "browsers", "scores")
    return html.Div(
        [
            html.H2("Overview"),
            html.Div(id="overview-cards", className="cards"),
            html.Div(
                [
                    dcc.Graph(id=f"overview-{name}", config=ui.GRAPH_CONFIG, className="half")
                    for name in graphs
                ],
                className="grid",
            ),
            dcc.Interval(id="overview-tick", interval=REFRESH_MS),
        ]
    )


def threshold_of(store):
    """The alert threshold of the last model the store recorded (None if none)."""
    model = store.latest_model()
    return None if model is None else (model["metrics"] or {}).get("threshold")


def _bars(rows, key, title):
    """Bars of the rows with the most alerts (rows come most alerts first)."""
    rows = rows[:TOP]
    if not rows:
        return ui.empty_figure(f"no {key} in the stored transactions")
    names = [ui.label(r[key]) for r in rows]
    rates = [ui.share(r["alert_rate"]) for r in rows]
    hover = "%{x}: %{y:,} (alert rate %{customdata})<extra></extra>"
    return ui.figure(
        [
            {
                "type": "bar",
                "x": names,
                "y": [r[count] for r in rows],
                "name": name,
                "customdata": rates,
                "hovertemplate": hover,
            }
            for count, name in (("alerts", "alerts"), ("confirmed", "confirmed fraud"))
        ],
        title,
    )


# The overview's aggregates are independent queries: run side by side, the
# database works on them at once (sqlite3 and psycopg release the GIL while
# a statement runs), so the page costs about its slowest query, not their sum.
_QUERIES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fraudcore-overview")


def overview_data(store):
    """The overview's aggregates, queried concurrently: name -> result."""
    calls = {
        "summary": store.summary,
        "statistics": store.statistics,
        "trends": lambda: store.fraud_trends("day"),
        "histogram": lambda: store.score_histogram(bins=50, labels=False),
        "threshold": lambda: threshold_of(store),
        **{
            dimension: lambda d=dimension: getattr(store, f"fraud_{d}")(limit=TOP, by="alerts")
            for dimension in ("geography", "devices", "browsers")
        },
    }
    futures = {name: _QUERIES.submit(call) for name, call in calls.items()}
    return {name: future.result() for name, future in futures.items()}


def overview_view(store):
    """(cards, trends, countries, devices, browsers, scores figures)."""
    found = overview_data(store)
    summary, stats = found["summary"], found["statistics"]
    cards = [
        ui.card("Transactions scored", f"{summary['transactions']:,}"),
        ui.card(
            "Alerts", f"{stats['total']:,}", hint=f"alert rate {ui.share(summary['alert_rate'])}"
        ),
        ui.card("Open", f"{stats['by_status']['OPEN']:,}"),
        ui.card("Confirmed fraud", f"{summary['confirmed_fraud']:,}", hint="labels and decisions"),
        ui.card(
            "Precision of decided alerts",
            ui.share(stats["precision"]),
            hint=f"{stats['confirmed_fraud']:,} fraud / {stats['false_positive']:,} false positive",
        ),
    ]
    trends = found["trends"]
    if trends:
        days = [r["bucket"] for r in trends]
        trend_figure = ui.figure(
            [
                {"type": "scatter", "x": days, "y": [r[count] for r in trends], "name": name}
                for count, name in (("alerts", "alerts"), ("confirmed", "confirmed fraud"))
            ],
            "Alerts and confirmed fraud per day",
        )
    else:
        trend_figure = ui.empty_figure("no transactions scored yet")
    histogram, threshold = found["histogram"], found["threshold"]
    marks = {} if threshold is None else ui.vertical_line(threshold, "threshold")
    score_figure = ui.figure(
        [
            {
                "type": "bar",
                "x": [(b["lower"] + b["upper"]) / 2 for b in histogram],
                "y": [b["transactions"] for b in histogram],
                "width": [b["upper"] - b["lower"] for b in histogram],
                "name": "transactions",
            }
        ],
        "Risk score distribution",
        yaxis={"type": "log", "title": {"text": "transactions (log)"}},
        shapes=[marks[0]] if marks else [],
        annotations=[marks[1]] if marks else [],
    )
    return (
        cards,
        trend_figure,
        _bars(found["geography"], "country", "Alerts by country"),
        _bars(found["devices"], "device", "Alerts by device"),
        _bars(found["browsers"], "browser", "Alerts by browser"),
        score_figure,
    )


def register(app, desk):
    @app.callback(
        Output("overview-cards", "children"),
        *(
            Output(f"overview-{name}", "figure")
            for name in ("trends", "countries", "devices", "browsers", "scores")
        ),
        Input("overview-tick", "n_intervals"),
    )
    @signed_in(desk)
    def refresh_overview(_tick):
        return overview_view(desk.store)
