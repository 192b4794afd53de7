"""The alert page: why it was flagged, what else is related, and the decision.

Shows the transaction; risk score, level, priority, confidence; each
detector's score; the reasons in words; the customer's history as a
timeline with this transaction marked, and its features against the
customer's usual (the median of their other transactions); transactions of
other customers sharing its device or IP; the decision buttons with a note;
the audit trail. Decisions go through :meth:`Desk.decide`.
"""

import statistics
from urllib.parse import urlencode

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from fraudcore.dashboard import components as ui
from fraudcore.dashboard.desk import ACTIONS, NotAllowed, request_token
from fraudcore.service.store import TRANSITIONS, IllegalTransition, NotFound, VersionConflict

HISTORY_LIMIT = 500
RELATED_LIMIT = 50
BUTTONS = {
    "investigate": "Investigate",
    "fraud": "Fraud",
    "false_positive": "False positive",
    "close": "Close",
}


def alert_data(store, alert_id):
    """Everything the page shows about alert ``alert_id`` (NotFound if none)."""
    alert = store.get_alert(alert_id)
    history = store.customer_history(alert["customer_id"], limit=HISTORY_LIMIT)
    related = store.related(alert["event_id"], limit=RELATED_LIMIT)
    return {
        "alert": alert,
        "history": history,
        "related": related,
        "usual": usual_features(alert, history),
    }


def usual_features(alert, history):
    """[(feature, this value, customer's median, n)] over the customer's other
    transactions in ``history``; median None when they have none."""
    others = [h for h in history if h["event_id"] != alert["event_id"]]
    out = []
    for name, value in (alert.get("features") or {}).items():
        values = [
            h["features"][name]
            for h in others
            if isinstance((h.get("features") or {}).get(name), (int, float))
        ]
        out.append((name, value, statistics.median(values) if values else None, len(values)))
    return out


def allowed_actions(status):
    return {action for action, target in ACTIONS.items() if target in TRANSITIONS[status]}


def timeline(alert, history):
    """The customer's transactions over time (amount), alerts in red, this one a star."""
    if not history:
        return ui.empty_figure("no history stored for this customer")
    normal = [h for h in history if not h["is_alert"]]
    flagged = [h for h in history if h["is_alert"] and h["event_id"] != alert["event_id"]]
    traces = [
        {
            "type": "scatter",
            "mode": "markers",
            "x": [h["occurred_at"] for h in rows],
            "y": [h["amount"] for h in rows],
            "name": name,
            "marker": {"color": color, "size": 7},
            "text": [f"risk {h['risk_score']:.3f} ({h['risk_level']})" for h in rows],
        }
        for rows, name, color in ((normal, "transaction", "#90a4ae"), (flagged, "alert", "#c62828"))
    ]
    traces.append(
        {
            "type": "scatter",
            "mode": "markers",
            "x": [alert["occurred_at"]],
            "y": [alert["amount"]],
            "name": "this alert",
            "marker": {"color": "#000", "size": 16, "symbol": "star"},
        }
    )
    return ui.figure(traces, "Customer history (amount over time)", height=300)


def _received_fields(alert):
    """The transaction's fields as the client sent them, without the ones
    the page already shows (event id, customer, amount)."""
    shown = {str(alert["customer_id"]), alert["event_id"]}
    for key, value in (alert["transaction"] or {}).items():
        if key == "event_id" or str(value) in shown or value == alert["amount"]:
            continue
        yield key, value


def _audit_rows(alert):
    return [
        {
            "at": ui.when(entry["at"]),
            "move": f"{entry['from_status']} → {entry['to_status']}",
            "analyst": entry["analyst"],
            "note": entry["note"] or "",
            "version": entry["version"],
        }
        for entry in alert["audit"]
    ]


def _buttons(status, may_decide):
    allowed = allowed_actions(status)
    return [
        html.Button(
            label,
            id={"type": "decide", "action": action},
            className=f"decide decide-{action}",
            disabled=not may_decide or action not in allowed,
        )
        for action, label in BUTTONS.items()
    ]


def layout(app, desk, alert_id, token):
    try:
        data = alert_data(desk.store, alert_id)
    except NotFound:
        return html.Div([html.H2(f"Alert {alert_id}"), html.P("There is no such alert.")])
    alert = data["alert"]
    may_decide = desk.may_decide(token)
    customer = alert["customer_id"]
    scores = alert.get("scores") or {}
    detector_figure = ui.figure(
        [{"type": "bar", "x": list(scores.values()), "y": list(scores), "orientation": "h"}],
        "Detector scores",
        height=60 + 40 * max(1, len(scores)),
        xaxis={"range": [0, 1]},
        margin={"l": 120, "r": 20, "t": 40, "b": 30},
    )
    return html.Div(
        [
            dcc.Store(id="alert-state", data={"id": alert["id"], "version": alert["version"]}),
            html.H2(
                [
                    f"Alert #{alert['id']} ",
                    html.Span(ui.status_badge(alert["status"]), id="alert-status"),
                    " ",
                    ui.level_badge(alert["risk_level"]),
                ]
            ),
            html.Div(
                [
                    ui.card("Risk score", f"{alert['risk_score']:.4f}"),
                    ui.card("Level", alert["risk_level"]),
                    ui.card("Priority", str(alert["priority"])),
                    ui.card("Confidence", ui.share(alert["confidence"])),
                    ui.card(
                        "Fraud probability",
                        ui.share(alert.get("fraud_probability")),
                        hint="supervised stage" if alert.get("fraud_probability") else None,
                    ),
                ],
                className="cards",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.H3("Why"),
                            html.Ul(
                                [html.Li(r["text"], className="reason") for r in alert["reasons"]]
                                or [html.Li("no reason given (scored below the reason bar)")],
                                id="alert-reasons",
                            ),
                            dcc.Graph(figure=detector_figure, config=ui.GRAPH_CONFIG),
                        ],
                        className="panel",
                    ),
                    html.Div(
                        [
                            html.H3("Transaction"),
                            ui.key_values(
                                [
                                    ("event", alert["event_id"]),
                                    (
                                        "customer",
                                        dcc.Link(
                                            customer,
                                            href=app.get_relative_path("/customers")
                                            + "?"
                                            + urlencode({"customer": customer}),
                                        ),
                                    ),
                                    ("occurred (UTC)", ui.when(alert["occurred_at"])),
                                    ("amount", ui.number(alert["amount"])),
                                    *((k, ui.number(v)) for k, v in _received_fields(alert)),
                                ]
                            ),
                        ],
                        className="panel",
                    ),
                ],
                className="columns",
            ),
            html.Div(
                [
                    html.H3("Decision"),
                    html.Div(
                        [
                            dcc.Textarea(
                                id="decision-note",
                                placeholder="note for the audit trail (optional)",
                                className="note",
                            ),
                            html.Div(_buttons(alert["status"], may_decide), id="decision-buttons"),
                        ],
                        className="decision",
                    ),
                    html.Div(
                        ""
                        if may_decide
                        else (
                            "read-only desk: decisions need a key of scope review"
                            if desk.mode != "keys"
                            else "your key lacks the scope review: you can look, not decide"
                        ),
                        id="decision-message",
                        className="muted",
                    ),
                    html.H3("Audit trail"),
                    ui.table(
                        "alert-audit",
                        [
                            ("at", "At (UTC)"),
                            ("move", "Move"),
                            ("analyst", "Analyst"),
                            ("note", "Note"),
                            ("version", "Version"),
                        ],
                        _audit_rows(alert),
                    ),
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.H3(f"Customer {customer}"),
                    dcc.Graph(
                        id="alert-timeline",
                        figure=timeline(alert, data["history"]),
                        config=ui.GRAPH_CONFIG,
                    ),
                    html.H4("Features against the customer's usual"),
                    ui.table(
                        "alert-features",
                        [
                            ("feature", "Feature"),
                            ("value", "This transaction"),
                            ("usual", "Customer's median"),
                            ("n", "Of transactions"),
                        ],
                        [
                            {
                                "feature": name,
                                "value": ui.number(value, 4),
                                "usual": ui.number(usual, 4),
                                "n": n,
                            }
                            for name, value, usual, n in data["usual"]
                        ],
                        page_size=15,
                    ),
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.H3("Related: other customers sharing its device or IP"),
                    ui.table(
                        "alert-related",
                        [
                            ("shared", "Shares"),
                            ("customer_id", "Customer"),
                            ("event_id", "Event"),
                            ("occurred_at", "Occurred (UTC)"),
                            ("amount", "Amount"),
                            {"id": "alert", "name": "Alert", "presentation": "markdown"},
                        ],
                        [
                            {
                                **{k: r[k] for k in ("shared", "customer_id", "event_id")},
                                "occurred_at": ui.when(r["occurred_at"]),
                                "amount": round(r["amount"], 2),
                                "alert": ui.alert_link(ui.alert_href(app), r["alert_id"]),
                            }
                            for r in data["related"]
                        ],
                        page_size=10,
                    )
                    if data["related"]
                    else html.P("No other customer shares its device or IP.", className="muted"),
                ],
                className="panel",
            ),
        ]
    )


def decision_outcome(desk, token, state, action, note, analyst):
    """(message, the alert after, or None when it did not move)."""
    try:
        moved = desk.decide(
            token, state["id"], action, note=note, version=state["version"], analyst=analyst
        )
    except VersionConflict:
        return "someone else changed this alert meanwhile: reload the page to see it", None
    except (NotAllowed, IllegalTransition, NotFound, ValueError) as exc:
        return str(exc), None
    return f"moved to {moved['status'].replace('_', ' ')} (version {moved['version']})", moved


def register(app, desk):
    @app.callback(
        Output("decision-message", "children"),
        Output("alert-status", "children"),
        Output("alert-audit", "data"),
        Output("alert-state", "data"),
        Output("decision-buttons", "children"),
        Output("decision-note", "value"),
        Input({"type": "decide", "action": ALL}, "n_clicks"),
        State("alert-state", "data"),
        State("decision-note", "value"),
        State("desk-analyst", "value"),
        prevent_initial_call=True,
    )
    def decide(clicks, state, note, analyst):
        if not ctx.triggered_id or not any(clicks):
            raise PreventUpdate
        token = request_token()
        message, moved = decision_outcome(
            desk, token, state, ctx.triggered_id["action"], note, analyst
        )
        if moved is None:
            return message, *(no_update for _ in range(5))
        alert = desk.store.get_alert(moved["id"])
        return (
            message,
            ui.status_badge(alert["status"]),
            _audit_rows(alert),
            {"id": alert["id"], "version": alert["version"]},
            _buttons(alert["status"], desk.may_decide(token)),
            "",
        )
