"""Who is at the desk, and what they may do: sign-in, sessions and decisions.

The dashboard shares the service's alert store and API keys. Three modes:

* **keys** (a :class:`~fraudcore.service.auth.KeyRing`): every page needs a
  signed-in key; deciding needs the scope ``review`` (or ``admin``), and a
  decision is recorded under the key's name. Signing in trades the key for a
  random session token (kept in memory, in an HttpOnly cookie in the
  browser), so the key itself is never stored in the browser.
* **open** (no keys, ``read_only=False``): what ``fraudcore serve`` without
  a key file gives, bound to loopback: anyone may read and decide, and a
  decision is recorded under the analyst name typed in the page.
* **read-only** (no keys, ``read_only=True``): ``fraudcore dashboard``
  without ``--api-keys``: the pages, no decisions.

Every decision goes through :meth:`AlertStore.move_alert`, the code behind
``PUT /alerts/{id}``: one workflow, one audit log, and each decision about
fraud is a label for the next model (``fraudcore retrain --db``).
"""

import functools
import secrets
import threading
import time
from dataclasses import dataclass

from fraudcore.service.auth import allows

SESSION_COOKIE = "fraudcore_desk"
SESSION_SECONDS = 12 * 3600

# The decision buttons: action -> the workflow status it moves the alert to.
ACTIONS = {
    "investigate": "INVESTIGATING",
    "fraud": "CONFIRMED_FRAUD",
    "false_positive": "FALSE_POSITIVE",
    "close": "CLOSED",
}


class NotAllowed(PermissionError):
    """The person at the desk may not do this (not signed in, or lacks a scope)."""


@dataclass(frozen=True)
class Identity:
    name: str
    scopes: frozenset

    def may(self, scope):
        return allows(self.scopes, scope)


# Who is at an open desk before typing a name: may read and decide.
_OPEN = Identity("", frozenset({"score", "review"}))
_READER = Identity("", frozenset())


class Desk:
    """The dashboard's access to the store.

    Parameters
    ----------
    store : AlertStore or callable
        The store, or a function returning it (the service opens its store
        when it starts, after the dashboard is built).
    keys : KeyRing, optional
        The service's API keys; None: open or read-only (see the module doc).
    read_only : bool
        Refuse decisions (with keys too: signed-in keys then only read).
    """

    def __init__(self, store, *, keys=None, read_only=False, session_seconds=SESSION_SECONDS):
        self._store = store
        self.keys = keys
        self.read_only = bool(read_only)
        self.session_seconds = session_seconds
        self._sessions = {}  # token -> (Identity, expires at)
        self._lock = threading.Lock()

    @property
    def store(self):
        store = self._store() if callable(self._store) else self._store
        if store is None:
            raise RuntimeError("the alert store is not open yet")
        return store

    @property
    def mode(self):
        return "keys" if self.keys is not None else "read-only" if self.read_only else "open"

    # -- sessions ----------------------------------------------------------------------

    def sign_in(self, key):
        """A session token for an accepted key, and its Identity; NotAllowed otherwise."""
        if self.keys is None:
            raise NotAllowed("this desk has no API keys: there is nothing to sign in to")
        found = self.keys.identify(key.strip() if isinstance(key, str) else None)
        if found is None:
            raise NotAllowed("that key is not accepted")
        identity = Identity(found[0], frozenset(found[1]))
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._sessions = {t: s for t, s in self._sessions.items() if s[1] > now}
            self._sessions[token] = (identity, now + self.session_seconds)
        return token, identity

    def sign_out(self, token):
        with self._lock:
            self._sessions.pop(token, None)

    def identity(self, token):
        """Who holds ``token``: an Identity, or None (must sign in first).

        Without keys everyone is somebody: an open desk lets them decide,
        a read-only one only read."""
        if self.keys is None:
            return _READER if self.read_only else _OPEN
        with self._lock:
            session = self._sessions.get(token) if token else None
        if session is None or session[1] <= time.monotonic():
            return None
        return session[0]

    def reader(self, token):
        """The Identity behind ``token`` if it may read the desk; NotAllowed otherwise."""
        identity = self.identity(token)
        if identity is None:
            raise NotAllowed("sign in with an API key to see the alerts")
        return identity

    def may_decide(self, token):
        identity = self.identity(token)
        return not self.read_only and identity is not None and identity.may("review")

    # -- decisions ---------------------------------------------------------------------

    def decide(self, token, alert_id, action, *, note=None, version=None, analyst=None):
        """Move alert ``alert_id`` by a decision button (a key of :data:`ACTIONS`);
        the updated alert.

        With keys, the analyst is the signed-in key's name (``analyst`` is
        ignored); on an open desk it is ``analyst``, which must be given.
        NotAllowed when the desk is read-only or the key lacks ``review``;
        the store's IllegalTransition / VersionConflict / NotFound as they are.
        """
        if action not in ACTIONS:
            raise ValueError(f"action {action!r} is not one of {sorted(ACTIONS)}")
        identity = self.identity(token)
        if self.read_only:
            raise NotAllowed("this desk is read-only: it takes no decisions")
        if identity is None:
            raise NotAllowed("sign in with an API key of scope review to decide")
        if not identity.may("review"):
            raise NotAllowed(f"the key {identity.name!r} lacks the scope 'review'")
        name = identity.name if self.keys is not None else (analyst or "").strip()
        if not name:
            raise ValueError("type your name as analyst: decisions are recorded under it")
        note = (note or "").strip() or None
        return self.store.move_alert(
            alert_id, ACTIONS[action], analyst=name, note=note, expected_version=version
        )


def request_token():
    """The session token of the request a Dash callback is answering (its cookie)."""
    from dash import ctx

    return ctx.cookies.get(SESSION_COOKIE)


def signed_in(desk):
    """Decorate a Dash callback so it answers only a request with a session
    that may read the desk (any other request gets no update)."""

    def wrap(function):
        @functools.wraps(function)
        def guarded(*args, **kwargs):
            from dash.exceptions import PreventUpdate

            if desk.identity(request_token()) is None:
                raise PreventUpdate
            return function(*args, **kwargs)

        return guarded

    return wrap
