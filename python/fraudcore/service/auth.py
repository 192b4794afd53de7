"""API keys of the scoring service: stored hashed, each with scopes.

Key file (``fraudcore serve --api-keys FILE``), JSON::

    {"keys": [{"name": "checkout", "scopes": ["score"], "sha256": "<hex>"}]}

``sha256`` is the hex SHA-256 of the key. Keys are random 256-bit tokens
(``fraudcore keys create``), so a plain hash is enough: there is nothing to
guess that a slow password hash would protect. The file never holds a key.

Scopes: ``score`` (POST /detect, /detect/batch), ``review`` (the alert
workflow, labels, the dashboards' reads) and ``admin`` (model reload; it
grants every scope). Any valid key may read. A request names its key in the
``X-API-Key`` header or as ``Authorization: Bearer <key>``.
"""

import hashlib
import hmac
import json
import os
import secrets
import tempfile

SCOPES = ("score", "review", "admin")


class KeyFileError(ValueError):
    """The key file cannot be read or is malformed."""


def hash_key(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The accepted keys: ``identify(key)`` -> (name, scopes) or None."""

    def __init__(self, entries):
        self._by_hash = {}
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise KeyFileError(f"key {k} must be an object, got {entry!r}")
            name, scopes, digest = entry.get("name"), entry.get("scopes"), entry.get("sha256")
            if not isinstance(name, str) or not name:
                raise KeyFileError(f"key {k} needs a non-empty string 'name'")
            if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
                raise KeyFileError(f"key {name!r}: 'scopes' must be a non-empty list from {SCOPES}")
            if not isinstance(digest, str) or len(digest) != 64:
                raise KeyFileError(f"key {name!r}: 'sha256' must be 64 hex digits")
            try:
                int(digest, 16)
            except ValueError:
                raise KeyFileError(f"key {name!r}: 'sha256' must be 64 hex digits") from None
            self._by_hash[digest.lower()] = (name, frozenset(scopes))

    @classmethod
    def from_file(cls, path):
        return cls(_entries(path))

    def __len__(self):
        return len(self._by_hash)

    def identify(self, key):
        """(name, scopes) of ``key``, or None when it is not accepted."""
        if not key:
            return None
        digest = hash_key(key)
        for known, identity in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return identity
        return None


def allows(scopes, scope):
    """Whether a key with ``scopes`` may act in ``scope`` (None: any valid key)."""
    return scope is None or scope in scopes or "admin" in scopes


def create_key(path, name, scopes):
    """A new random key: its hash is added to the key file at ``path``
    (created when absent, written atomically), the key itself returned."""
    bad = [s for s in scopes if s not in SCOPES]
    if not scopes or bad:
        raise ValueError(f"scopes must be a non-empty list from {SCOPES}, got {list(scopes)}")
    entries = []
    if os.path.exists(path):
        entries = _entries(path)
        KeyRing(entries)  # refuses a malformed file before it is rewritten
    if any(e["name"] == name for e in entries):
        raise ValueError(f"the key file already has a key named {name!r}")
    key = "fc_" + secrets.token_urlsafe(32)
    entries.append({"name": name, "scopes": list(scopes), "sha256": hash_key(key)})
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".keys-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"keys": entries}, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return key


def _entries(path):
    """The key file's list of entries (KeyFileError when unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyFileError(f'{path}: expected {{"keys": [...]}}')
    return document["keys"]
