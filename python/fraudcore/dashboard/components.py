"""Small building blocks the desk's pages share: formatting, cards, tables,
badges and empty figures. No data access here."""

import datetime as dt
import html as html_text

from dash import dash_table, html

# Risk levels and workflow statuses in the colours the pages use.
LEVEL_COLORS = {"CRITICAL": "#b71c1c", "HIGH": "#e65100", "MEDIUM": "#f9a825", "LOW": "#2e7d32"}
STATUS_COLORS = {
    "OPEN": "#1565c0",
    "INVESTIGATING": "#6a1b9a",
    "CONFIRMED_FRAUD": "#b71c1c",
    "FALSE_POSITIVE": "#2e7d32",
    "CLOSED": "#546e7a",
}
GRAPH_CONFIG = {"displaylogo": False}


def alert_href(app):
    """alert id -> the URL of its page in ``app``."""
    return lambda alert_id: app.get_relative_path(f"/alert/{alert_id}")


def alert_link(href, alert_id):
    """A markdown link to alert ``alert_id``'s page at ``href(alert_id)``
    (empty for None). Only an integer goes into the markdown."""
    if alert_id is None:
        return ""
    return f"[#{int(alert_id)}]({href(int(alert_id))})"


def label(value):
    """Stored text as a chart label: Plotly renders a subset of HTML (links,
    styles) in titles, ticks and hover text, and transactions are untrusted."""
    return html_text.escape("" if value is None else str(value))


def when(value):
    """A stored time as the desk shows it: 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def number(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def share(value):
    return "–" if value is None else f"{value:.1%}"


def badge(text, color):
    return html.Span(text, className="badge", style={"backgroundColor": color})


def level_badge(level):
    return badge(level, LEVEL_COLORS.get(level, "#607d8b"))


def status_badge(status):
    return badge(status.replace("_", " "), STATUS_COLORS.get(status, "#607d8b"))


def card(title, value, *, id=None, hint=None):
    """A summary card: a big value under a small title."""
    value_props = {"className": "card-value"}
    if id is not None:
        value_props["id"] = id
    children = [html.Div(title, className="card-title"), html.Div(value, **value_props)]
    if hint:
        children.append(html.Div(hint, className="card-hint"))
    return html.Div(children, className="card")


def table(id, columns, rows=(), **options):
    """A DataTable with the desk's look; columns are (id, name) or dicts."""
    spec = [c if isinstance(c, dict) else {"id": c[0], "name": c[1]} for c in columns]
    style = {
        "style_table": {"overflowX": "auto"},
        "style_cell": {"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px"},
        "style_header": {"fontWeight": "600", "backgroundColor": "#eceff1"},
        "markdown_options": {"link_target": "_self"},
    }
    style.update(options)
    return dash_table.DataTable(id=id, columns=spec, data=list(rows), **style)


def key_values(pairs, className="key-values"):
    """A two-column definition table of (label, value) pairs."""
    return html.Table(
        [html.Tr([html.Th(k), html.Td(v)]) for k, v in pairs],
        className=className,
    )


# Figures are plain dicts ({"data": [...], "layout": {...}}), which Dash
# sends as they are: plotly.graph_objects validates every property on the
# way in, which cost ~100 ms of the overview's callback.


def figure(traces, title=None, height=320, **layout):
    """A figure of ``traces`` (trace dicts) in the desk's look."""
    spec = {
        "height": height,
        "margin": {"l": 50, "r": 20, "t": 40 if title else 10, "b": 40},
        "plot_bgcolor": "#fafafa",
        "legend": {"orientation": "h", "y": -0.2},
    }
    if title:
        spec["title"] = {"text": title, "x": 0.02, "xanchor": "left"}
    spec.update(layout)
    return {"data": list(traces), "layout": spec}


def empty_figure(message):
    return figure(
        [],
        height=260,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {"text": message, "showarrow": False, "font": {"size": 14, "color": "#607d8b"}}
        ],
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )


def vertical_line(x, label):
    """(shape, annotation): a dashed vertical line at x across the plot, labelled."""
    shape = {
        "type": "line",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "yref": "paper",
        "line": {"dash": "dash", "color": "#b71c1c"},
    }
    note = {"x": x, "y": 1, "yref": "paper", "text": label, "showarrow": False, "xanchor": "left"}
    return shape, note
