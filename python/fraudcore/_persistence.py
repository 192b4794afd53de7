"""Saving and loading fraudcore estimators: one binary format for all.

A model file (and a pickle, which embeds the same bytes) is the native
envelope of ``cpp/include/fraudcore/serialize.hpp``: magic bytes, format
version, byte-order mark, the estimator's class name, JSON metadata (its
parameters and fitted scalar attributes) and the native model body, closed by
a CRC-32. Loading runs no pickle and executes no code from the file.
"""

import inspect
import json
import os
import tempfile

import numpy as np

from fraudcore import _core

_REGISTRY = {}


def register(cls):
    """Class decorator: make ``cls`` loadable by :func:`load`."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _to_json(value):
    """Parameters and fitted scalars as JSON values."""
    from fraudcore.schema import Schema

    if isinstance(value, Schema):
        return {"__schema__": value.to_dict()}
    if isinstance(value, np.random.RandomState):
        kind, keys, pos, has_gauss, cached = value.get_state()
        return {"__random_state__": [kind, keys.tolist(), pos, has_gauss, cached]}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _to_json(v) for k, v in value.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a parameter of type {type(value).__name__}: {value!r}")


def _from_json(value):
    if isinstance(value, dict):
        if "__random_state__" in value:
            kind, keys, pos, has_gauss, cached = value["__random_state__"]
            rs = np.random.RandomState()
            rs.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
            return rs
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        if "__schema__" in value:
            from fraudcore.schema import Schema

            return Schema.from_dict(value["__schema__"])
        if "__tuple__" in value:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _from_json(v) for k, v in value["__dict__"].items()}
    return value


class NativeModelMixin:
    """save / load / pickle through the native envelope.

    A subclass provides ``_native`` (the fitted C++ object, absent before
    fit), ``_native_type`` (its binding class) and ``_fitted_attributes``
    (names of the JSON-able fitted attributes to keep); fitted arrays held by
    the native model are set again by ``_restore_native_attributes``. A model
    made of several parts overrides ``_body`` / ``_read_body`` / ``_set_body``
    instead.
    """

    _fitted_attributes = ()
    _unsaved_params = ()  # parameters that are not model state (saved as their defaults)

    @classmethod
    def _param_defaults(cls):
        parameters = inspect.signature(cls.__init__).parameters
        return {name: parameters[name].default for name in cls._get_param_names()}

    def __sklearn_is_fitted__(self):
        return getattr(self, "_native", None) is not None

    def _to_bytes(self):
        from fraudcore import __version__

        fitted = self.__sklearn_is_fitted__()
        defaults = self._param_defaults()
        meta = {
            "fraudcore_version": __version__,
            "params": {
                k: _to_json(defaults[k] if k in self._unsaved_params else v)
                for k, v in self.get_params(deep=False).items()
            },
            "attributes": {
                name: _to_json(getattr(self, name))
                for name in self._fitted_attributes
                if hasattr(self, name)
            },
        }
        body = self._body() if fitted else b""
        return _core.pack_envelope(type(self).__name__, json.dumps(meta).encode(), body)

    def _body(self):
        """The fitted model's bytes."""
        return self._native.serialize()

    def _read_body(self, body, params):
        """What _body wrote, read and checked (ModelFormatError otherwise)."""
        return self._native_type.deserialize(body)

    def _set_body(self, native):
        """Adopt what _read_body returned (None for an unfitted model)."""
        self._native = native
        if native is not None:
            self._restore_native_attributes()

    def _restore(self, meta, body):
        # Runs on instances made by pickle without __init__, so parameters
        # are set directly rather than through set_params.
        try:
            params = {k: _from_json(v) for k, v in meta["params"].items()}
            attributes = {k: _from_json(v) for k, v in meta["attributes"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _core.ModelFormatError(
                f"fraudcore model metadata is inconsistent: {exc!r}"
            ) from None
        unknown = set(params) - set(self._get_param_names())
        unknown |= set(attributes) - set(self._fitted_attributes)
        if unknown:
            raise _core.ModelFormatError(
                f"fraudcore model metadata names unknown fields {sorted(unknown)} "
                f"for {type(self).__name__}; was it written by a newer fraudcore?"
            )
        # A file from an older fraudcore lacks the parameters added since: defaults.
        params = {**self._param_defaults(), **params}
        native = self._read_body(body, params) if body else None
        for name, value in {**params, **attributes}.items():
            setattr(self, name, value)
        self._set_body(native)

    def _restore_native_attributes(self):
        """Set fitted attributes that live in the native model (after load)."""

    def __getstate__(self):
        return {"fraudcore_model": self._to_bytes()}

    def __setstate__(self, state):
        cls, meta, body = _open(state["fraudcore_model"])
        if not isinstance(self, cls):
            raise _core.ModelFormatError(
                f"pickled data holds a {cls.__name__}, not a {type(self).__name__}"
            )
        self._restore(meta, body)

    def save(self, path):
        """Write the estimator to ``path`` in fraudcore's binary format.

        The file is written to a temporary file in the same folder and renamed
        over ``path``, so a failure midway leaves any previous file intact.
        """
        data = self._to_bytes()
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".fraudcore-", suffix=".tmp", dir=folder)
        try:
            os.chmod(tmp, _file_mode(path))  # mkstemp's 0600 would ignore the umask
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Read an estimator written by :meth:`save`; it must be a ``cls``."""
        model = load(path)
        if not isinstance(model, cls):
            raise _core.ModelFormatError(
                f"{os.fspath(path)!r} holds a {type(model).__name__}, not a {cls.__name__}"
            )
        return model


def _file_mode(path):
    """The mode a saved file gets: the replaced file's, else 0666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _open(data):
    version, kind, meta, body = _core.unpack_envelope(bytes(data))
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise _core.ModelFormatError(f"unknown model kind {kind!r} in fraudcore model data")
    try:
        meta = json.loads(meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _core.ModelFormatError(f"fraudcore model metadata is not valid JSON: {exc}") from None
    return cls, meta, body


def load(path):
    """Load any fraudcore estimator saved with ``save(path)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    fraudcore.ModelFormatError
        If the file is not a fraudcore model, is truncated or corrupted, or
        was written by a newer fraudcore.
    """
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    cls, meta, body = _open(data)
    model = cls()
    model._restore(meta, body)
    return model
