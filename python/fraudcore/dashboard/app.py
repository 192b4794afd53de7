"""The analyst's desk as a Dash app, and the ways to serve it.

* :func:`create_dashboard` builds the Dash app (Flask underneath) on a
  :class:`~fraudcore.dashboard.desk.Desk`;
* :func:`mount_dashboard` mounts it on a FastAPI app at ``/dashboard/``
  (what ``fraudcore serve`` does: one process, one store, one key file);
* :func:`standalone_app` serves it alone on a store (``fraudcore dashboard``).

Dash's callbacks are synchronous, so the Flask app runs behind a WSGI bridge
(a2wsgi) in a thread pool, off the event loop that answers ``/detect``.

Pages (paths below the prefix): ``/`` the queue, ``/alert/<id>``,
``/customers[?customer=ID]``, ``/overview``, ``/model``.
"""

import pathlib
from urllib.parse import parse_qs

import dash
import flask
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from fraudcore.dashboard import alert, customers, model, overview, queue
from fraudcore.dashboard.desk import SESSION_COOKIE, Desk, NotAllowed, request_token

ASSETS = pathlib.Path(__file__).with_name("assets")
PREFIX = "/dashboard"
NAV = (("", "Queue"), ("overview", "Overview"), ("customers", "Customers"), ("model", "Model"))


def create_dashboard(desk, *, prefix=PREFIX):
    """The Dash app for ``desk``, its pages requested below ``prefix``."""
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    app = dash.Dash(
        "fraudcore.dashboard",
        server=flask.Flask("fraudcore.dashboard"),
        routes_pathname_prefix="/",
        requests_pathname_prefix=prefix,
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        title="fraudcore desk",
        update_title=None,
    )
    app.layout = _shell(app, desk)
    _register_shell(app, desk)
    for page in (queue, alert, customers, overview, model):
        page.register(app, desk)
    return app


def _shell(app, desk):
    open_desk = desk.mode == "open"
    return html.Div(
        [
            dcc.Location(id="url"),
            dcc.Store(id="session-tick", data=0),
            html.Header(
                [
                    html.Span("fraudcore desk", className="brand"),
                    html.Nav(
                        [
                            dcc.Link(label, href=app.get_relative_path(f"/{path}"))
                            for path, label in NAV
                        ]
                    ),
                    html.Div(
                        [
                            html.Label("analyst", htmlFor="desk-analyst"),
                            dcc.Input(
                                id="desk-analyst",
                                placeholder="your name",
                                persistence=True,
                                persistence_type="local",
                                debounce=True,
                            ),
                        ],
                        className="identity",
                        style={} if open_desk else {"display": "none"},
                    ),
                    html.Div(id="desk-identity", className="identity"),
                ]
            ),
            html.Main(id="page-content"),
        ]
    )


def route(app, desk, pathname, search, token):
    """The page for ``pathname`` (below the prefix) and the identity bar."""
    identity = desk.identity(token)
    if desk.mode == "keys":
        if identity is None:
            bar = [
                dcc.Input(id="signin-key", type="password", placeholder="API key"),
                html.Button("Sign in", id="signin-button"),
                html.Span(id="signin-message", className="muted"),
            ]
        else:
            bar = [
                html.Span(f"signed in as {identity.name} ({', '.join(sorted(identity.scopes))})"),
                html.Button("Sign out", id="signout-button"),
            ]
    else:
        bar = [html.Span("read-only desk" if desk.read_only else "open desk (loopback)")]
    if identity is None:
        return html.Div(
            [html.H2("Sign in"), html.P("Sign in with an API key to work the alert queue.")]
        ), bar
    path = (app.strip_relative_path(pathname or "/") or "").strip("/")
    query = parse_qs((search or "").lstrip("?"))
    if path == "":
        page = queue.layout(app)
    elif path.startswith("alert/"):
        alert_id = path.split("/", 1)[1]
        page = (
            alert.layout(app, desk, int(alert_id), token)
            if alert_id.isdigit()
            else html.P(f"{alert_id!r} is not an alert number")
        )
    elif path == "customers":
        page = customers.layout(app, desk, (query.get("customer") or [None])[0])
    elif path == "overview":
        page = overview.layout(app)
    elif path == "model":
        page = model.layout(app, desk)
    else:
        page = html.Div([html.H2("Not found"), html.P(f"There is no page {path!r} here.")])
    return page, bar


def _register_shell(app, desk):
    @app.callback(
        Output("page-content", "children"),
        Output("desk-identity", "children"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("session-tick", "data"),
    )
    def show_page(pathname, search, _tick):
        return route(app, desk, pathname, search, request_token())

    @app.callback(
        Output("session-tick", "data", allow_duplicate=True),
        Output("signin-message", "children"),
        Input("signin-button", "n_clicks"),
        State("signin-key", "value"),
        State("session-tick", "data"),
        prevent_initial_call=True,
    )
    def sign_in(clicks, key, tick):
        if not clicks:
            raise PreventUpdate
        try:
            token, _ = desk.sign_in(key)
        except NotAllowed as exc:
            return no_update, str(exc)
        dash.ctx.response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=desk.session_seconds,
            httponly=True,
            samesite="Strict",
            path=app.config.requests_pathname_prefix,
        )
        return (tick or 0) + 1, ""

    @app.callback(
        Output("session-tick", "data", allow_duplicate=True),
        Input("signout-button", "n_clicks"),
        State("session-tick", "data"),
        prevent_initial_call=True,
    )
    def sign_out(clicks, tick):
        if not clicks:
            raise PreventUpdate
        desk.sign_out(request_token())
        dash.ctx.response.delete_cookie(SESSION_COOKIE, path=app.config.requests_pathname_prefix)
        return (tick or 0) + 1


def mount_dashboard(api, desk, *, path=PREFIX):
    """Mount the desk on the FastAPI app ``api`` at ``path`` (and redirect
    ``path`` to ``path/``); the Dash app."""
    from a2wsgi import WSGIMiddleware
    from fastapi.responses import RedirectResponse

    path = "/" + path.strip("/")
    app = create_dashboard(desk, prefix=path)
    api.state.desk, desk.dash_app = desk, app

    @api.get(path, include_in_schema=False)
    def _to_dashboard():
        return RedirectResponse(path + "/")

    api.mount(path, WSGIMiddleware(app.server))
    return app


def standalone_app(db, *, api_keys=None, read_only=None, path=PREFIX):
    """A FastAPI app serving only the desk on the store at ``db`` (a URL or
    an AlertStore): read-only unless ``api_keys`` (a key file or KeyRing)
    is given, when a key of scope review may decide."""
    import os
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    from fraudcore.service.auth import KeyRing
    from fraudcore.service.store import AlertStore

    keys = KeyRing.from_file(api_keys) if isinstance(api_keys, (str, os.PathLike)) else api_keys
    holder = {"store": db if isinstance(db, AlertStore) else None}

    @asynccontextmanager
    async def lifespan(_app):
        opened = holder["store"] is None
        if opened:
            holder["store"] = AlertStore(db)
        try:
            yield
        finally:
            if opened:
                holder["store"].close()
                holder["store"] = None

    api = FastAPI(title="fraudcore desk", lifespan=lifespan, docs_url=None, redoc_url=None)
    desk = Desk(
        lambda: holder["store"],
        keys=keys,
        read_only=keys is None if read_only is None else read_only,
    )

    @api.get("/", include_in_schema=False)
    def _home():
        return RedirectResponse("/" + path.strip("/") + "/")

    mount_dashboard(api, desk, path=path)
    return api
