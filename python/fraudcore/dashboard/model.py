"""The model page: what ``GET /models/info`` says of the model the store
last recorded (detectors, weights, threshold, training metrics), and a
threshold what-if: move the threshold and see the alerts per day it would
have raised on the stored transactions and, where labels exist (chargebacks
and analysts' decisions), its precision and recall on them.

The what-if works on a histogram of the stored risk scores
(``AlertStore.score_histogram``) read once when the page opens, so moving
the slider costs no query; thresholds move in steps of one bin.
"""

from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from fraudcore.dashboard import components as ui
from fraudcore.dashboard.desk import signed_in

BINS = 1000  # the rollups' own resolution: a threshold moves in steps of 0.001


def what_if(histogram, threshold, days):
    """Alerts, alerts per day, precision and recall at ``threshold`` from
    score_histogram's bins (a bin counts when its low edge >= threshold);
    alerts count the transactions that could alert (cancellations the model
    never alerts on are left out)."""
    above = [b for b in histogram if b["lower"] >= threshold - 1e-12]
    alerts = sum(b["alertable"] for b in above)
    # score_histogram(labels=False) gives None for the labelled counts
    fraud_above = sum(b["fraud"] or 0 for b in above)
    legit_above = sum(b["legit"] or 0 for b in above)
    fraud_total = sum(b["fraud"] or 0 for b in histogram)
    labelled_above = fraud_above + legit_above
    return {
        "alerts": alerts,
        "per_day": alerts / days if days else None,
        "precision": fraud_above / labelled_above if labelled_above else None,
        "recall": fraud_above / fraud_total if fraud_total else None,
        "labelled": sum((b["fraud"] or 0) + (b["legit"] or 0) for b in histogram),
    }


def _metrics_rows(metrics):
    rows = []
    for key, value in sorted((metrics or {}).items()):
        if isinstance(value, dict):
            rows.extend((f"{key}.{k}", ui.number(v, 4)) for k, v in sorted(value.items()))
        elif isinstance(value, (list, tuple)):
            rows.append((key, ", ".join(map(str, value))))
        else:
            rows.append((key, ui.number(value, 4)))
    return rows


def layout(app, desk):
    store = desk.store
    model = store.latest_model()
    if model is None:
        return html.Div([html.H2("Model"), html.P("No model has been recorded in this store.")])
    metrics = dict(model["metrics"] or {})
    threshold = metrics.get("threshold")
    histogram = store.score_histogram(bins=BINS)
    days = store.active_days()
    start = 0.5 if threshold is None else round(threshold * BINS) / BINS
    return html.Div(
        [
            html.H2("Model"),
            ui.key_values(
                [
                    ("version", model["model_version"]),
                    ("fingerprint", model["fingerprint"]),
                    ("loaded (UTC)", ui.when(model["loaded_at"])),
                ]
            ),
            html.H3("Threshold what-if"),
            html.P(
                f"On the {sum(b['transactions'] for b in histogram):,} stored transactions "
                f"({days:,} days with transactions); precision and recall on the "
                f"{what_if(histogram, 0.0, days)['labelled']:,} labelled ones.",
                className="muted",
            ),
            dcc.Store(id="whatif-data", data={"histogram": histogram, "days": days}),
            dcc.Slider(
                id="whatif-threshold",
                min=0.0,
                max=1.0,
                step=1 / BINS,
                value=start,
                marks={k / 10: f"{k / 10:.1f}" for k in range(11)},
                tooltip={"always_visible": True, "placement": "bottom"},
            ),
            html.Div(id="whatif-result", className="cards"),
            html.H3("Configuration and training metrics"),
            ui.key_values(_metrics_rows(metrics), className="key-values wide"),
        ]
    )


def what_if_cards(data, threshold):
    found = what_if(data["histogram"], threshold, data["days"])
    return [
        ui.card("Threshold", f"{threshold:.3f}"),
        ui.card("Alerts", f"{found['alerts']:,}"),
        ui.card("Alerts per day", ui.number(found["per_day"], 1)),
        ui.card("Precision (labelled)", ui.share(found["precision"])),
        ui.card("Recall (labelled)", ui.share(found["recall"])),
    ]


def register(app, desk):
    @app.callback(
        Output("whatif-result", "children"),
        Input("whatif-threshold", "value"),
        State("whatif-data", "data"),
    )
    @signed_in(desk)
    def move_threshold(threshold, data):
        if data is None or threshold is None:
            raise PreventUpdate
        return what_if_cards(data, float(threshold))
