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
import re
import socket
import tempfile
import zlib

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


class MetadataError(ValueError):
    """A metadata field that is wrong; _restore turns it into a ModelFormatError naming it."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field

    def format(self):
        if self.field.startswith("body."):
            return f"fraudcore model body part {self.field[5:]!r}: {self.args[0]}"
        return f"fraudcore model metadata field {self.field!r}: {self.args[0]}"


# The dtypes _to_json writes for the estimators' arrays: plain numbers, bools
# and (feature_names_in_) str objects. Anything else in a file is refused, so
# a declared dtype cannot allocate more than the JSON list it comes with
# (a 'U100000000' dtype would make three short strings 1.2 GB).
_ARRAY_KINDS = "biuf"
_SPECIAL_KEYS = {
    "__random_state__": {"__random_state__"},
    "__ndarray__": {"__ndarray__", "dtype"},
    "__schema__": {"__schema__"},
    "__tuple__": {"__tuple__"},
    "__dict__": {"__dict__"},
}


def _short(value, limit=80):
    """repr(value), cut to ``limit`` characters: messages quote what a file holds."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _from_json(value, field="metadata"):
    """Inverse of _to_json; MetadataError (naming ``field``) for anything it did not write."""
    if isinstance(value, list):
        return [_from_json(v, f"{field}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise MetadataError(field, f"unexpected JSON value {_short(value)}")
    tag = next((k for k in _SPECIAL_KEYS if k in value), None)
    if tag is None or set(value) != _SPECIAL_KEYS[tag]:
        raise MetadataError(field, f"unexpected JSON object with keys {sorted(value)[:10]}")
    inner = value[tag]
    if tag == "__random_state__":
        return _random_state_from_json(inner, field)
    if tag == "__ndarray__":
        return _array_from_json(inner, value["dtype"], field)
    if tag == "__schema__":
        from fraudcore.schema import Schema

        if not isinstance(inner, dict):
            raise MetadataError(field, f"a Schema must be a JSON object, got {_short(inner)}")
        try:
            return Schema.from_dict(inner)
        except (TypeError, ValueError) as exc:
            raise MetadataError(field, f"not a valid Schema: {exc}") from None
    if tag == "__tuple__":
        if not isinstance(inner, list):
            raise MetadataError(field, "a tuple must be a JSON list")
        return tuple(_from_json(v, f"{field}[{i}]") for i, v in enumerate(inner))
    if not isinstance(inner, dict):
        raise MetadataError(field, "a dict must be a JSON object")
    return {k: _from_json(v, f"{field}.{k}") for k, v in inner.items()}


def _array_from_json(values, dtype, field):
    if not isinstance(values, list):
        raise MetadataError(field, "an array must be a JSON list")
    if dtype == "object":  # feature_names_in_: str only
        if not all(isinstance(v, str) for v in values):
            raise MetadataError(field, "an object array may hold only strings")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) and dtype.isascii() else None
    except TypeError:
        kind = None
    if kind is None or kind not in _ARRAY_KINDS or np.dtype(dtype).itemsize > 8:
        raise MetadataError(
            field,
            f"array dtype {_short(dtype)} is not one fraudcore saves "
            "(bool, integers or floats of at most 8 bytes, or 'object' "
            "for column names)",
        )
    if not all(isinstance(v, (bool, int, float)) for v in values):
        raise MetadataError(field, "an array may hold only numbers (one dimension)")
    try:
        return np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as exc:
        raise MetadataError(field, f"array values do not fit dtype {dtype!r}: {exc}") from None


def _random_state_from_json(value, field):
    try:
        kind, keys, pos, has_gauss, cached = value
        if not (
            kind == "MT19937"
            and isinstance(keys, list)
            and len(keys) == 624
            and all(type(k) is int and 0 <= k < 2**32 for k in keys)
            and type(pos) is int
            and 0 <= pos <= 624
            and has_gauss in (0, 1)
            and type(has_gauss) is int
            and isinstance(cached, (int, float))
        ):
            raise ValueError("not an MT19937 state")
        rs = np.random.RandomState()
        rs.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, float(cached)))
    except (TypeError, ValueError) as exc:
        raise MetadataError(field, f"invalid RandomState: {exc}") from None
    return rs


# What a parameter check may raise on values of the wrong type.
_CHECK_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


def _message(error):
    return str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"


def _blank(cls, params):
    """An instance of ``cls`` holding ``params``, made without __init__."""
    probe = cls.__new__(cls)
    probe.__dict__.update(params)
    return probe


# Checks of fitted attributes, for _check_fitted_attributes.


def fitted(attributes, name):
    """The attribute ``name``; MetadataError if the file lacks it."""
    if name not in attributes:
        raise MetadataError(f"attributes.{name}", "missing from a fitted model")
    return attributes[name]


def fitted_int(attributes, name, low, high=None):
    value = fitted(attributes, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MetadataError(f"attributes.{name}", f"must be an integer, got {_short(value)}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise MetadataError(f"attributes.{name}", f"must be {bound}, got {value}")
    return int(value)


def fitted_float(attributes, name, low=-np.inf, high=np.inf):
    value = fitted(attributes, name)
    try:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        number = float(value) if is_number else None
    except OverflowError:  # an int of 400 digits
        number = None
    if number is None or not np.isfinite(number) or not low <= number <= high:
        raise MetadataError(
            f"attributes.{name}", f"must be a finite number in [{low}, {high}], got {_short(value)}"
        )
    return number


def _same(a, b):
    """a == b, of the same types all the way down (no array truth values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    return a == b


def fitted_equal(attributes, name, expected, why):
    value = fitted(attributes, name)
    if not _same(value, expected):
        raise MetadataError(
            f"attributes.{name}", f"is {_short(value)}, but {why} gives {_short(expected)}"
        )
    return value


def fitted_feature_names(attributes, n_features):
    """feature_names_in_ (optional): n_features distinct str."""
    if "feature_names_in_" not in attributes:
        return
    names = attributes["feature_names_in_"]
    if not (
        isinstance(names, np.ndarray)
        and names.dtype == object
        and names.ndim == 1
        and len(names) == n_features
        and len(set(names)) == n_features
    ):
        raise MetadataError(
            "attributes.feature_names_in_",
            f"must be {n_features} distinct column names, got {_short(names)}",
        )


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
            "attributes": {  # an unfitted model (a failed fit, say) has none to keep
                name: _to_json(getattr(self, name))
                for name in self._fitted_attributes
                if fitted and hasattr(self, name)
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
            params, attributes, native = self._read_checked(meta, body)
        except MetadataError as exc:
            raise _core.ModelFormatError(exc.format()) from None
        except RecursionError:  # JSON nested just below json's own limit
            raise _core.ModelFormatError("fraudcore model metadata is nested too deeply") from None
        for name, value in {**params, **attributes}.items():
            setattr(self, name, value)
        self._set_body(native)

    def _read_checked(self, meta, body):
        """(params, fitted attributes, what _read_body returned), every field
        checked; MetadataError names the first wrong one."""
        if not isinstance(meta, dict):
            raise MetadataError("metadata", "must be a JSON object")
        for key in meta:
            if key not in ("fraudcore_version", "params", "attributes"):
                raise MetadataError(
                    key, "unknown field; was the file written by a newer fraudcore?"
                )
        if not isinstance(meta.get("fraudcore_version", ""), str):
            raise MetadataError("fraudcore_version", "must be a string")
        for key in ("params", "attributes"):
            if not isinstance(meta.get(key), dict):
                raise MetadataError(key, "missing or not a JSON object")
        kind = type(self).__name__
        for key in meta["params"]:
            if key not in self._get_param_names():
                raise MetadataError(
                    f"params.{key}",
                    f"{kind} has no such parameter; was the file written by a newer fraudcore?",
                )
        for key in meta["attributes"]:
            if key not in self._fitted_attributes:
                raise MetadataError(
                    f"attributes.{key}",
                    f"{kind} has no such fitted attribute; was it written by a newer fraudcore?",
                )
        params = {k: _from_json(v, f"params.{k}") for k, v in meta["params"].items()}
        attributes = {k: _from_json(v, f"attributes.{k}") for k, v in meta["attributes"].items()}
        # A file from an older fraudcore lacks the parameters added since: defaults.
        defaults = self._param_defaults()
        params = {**defaults, **params}
        for name in self._unsaved_params:
            value, default = params[name], defaults[name]
            if value is not default and not (type(value) is type(default) and value == default):
                raise MetadataError(f"params.{name}", f"is not saved, so must be {default!r}")
        self._check_loaded_params(params)
        if not body:
            if attributes:
                raise MetadataError("attributes", "an unfitted model (no model body) has none")
            return params, attributes, None
        native = self._read_body(body, params)
        try:
            self._check_fitted_attributes(params, attributes, native)
        except MetadataError as exc:
            if not exc.field.startswith(("attributes.", "params.", "body.")):
                exc.field = f"attributes.{exc.field}"
            raise
        except _CHECK_ERRORS as exc:  # a value of a type no check foresaw
            raise MetadataError("attributes", _message(exc)) from None
        return params, attributes, native

    def _validate_params(self):
        """Raise ValueError if a parameter is invalid (the checks fit makes
        before seeing data). Estimators override it; load runs it too."""

    def _check_loaded_params(self, params):
        """Run _validate_params on the loaded values; name the wrong one."""
        probe = _blank(type(self), params)
        try:
            probe._validate_params()
            return
        except _CHECK_ERRORS as exc:
            error = exc
        # Which parameter is at fault: the first whose default makes the check pass.
        defaults = self._param_defaults()
        for name in sorted(params):
            if params[name] is defaults[name]:
                continue
            try:
                _blank(type(self), {**params, name: defaults[name]})._validate_params()
            except _CHECK_ERRORS:
                continue
            raise MetadataError(f"params.{name}", _message(error)) from None
        named = [n for n in params if re.search(rf"\b{re.escape(n)}\b", str(error), re.IGNORECASE)]
        field = min(named, key=lambda n: str(error).lower().find(n.lower())) if named else "params"
        raise MetadataError(f"params.{field}" if named else field, _message(error)) from None

    def _check_fitted_attributes(self, params, attributes, native):
        """Raise MetadataError unless the fitted attributes are well-formed and
        agree with the parameters and the native model ``native``."""

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
        over ``path``, so a failure midway leaves any previous file intact. A
        save killed midway (SIGKILL, power loss) leaves its temporary
        ``.<name>.fraudcore-<host>-<pid>-<random>.tmp``; the next save of
        ``path`` on that host deletes those whose process no longer exists.
        """
        data = self._to_bytes()
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        prefix = _temporary_prefix(path)
        _remove_stale_temporaries(folder, prefix)
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                # On the descriptor: a path could meanwhile name another file.
                # mkstemp's 0600 would ignore the umask.
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), _file_mode(path))
                else:  # Windows: no fchmod, and no mode bits beyond read-only
                    os.chmod(tmp, _file_mode(path))
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_folder(folder)
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


def _temporary_prefix(path):
    """Start of the names of save()'s temporary files for ``path``:
    ``.<name>.fraudcore-<host>-`` (then ``<pid>-<random>.tmp``), so a later
    save of the same file recognises the ones a killed save left behind."""
    host = zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF
    return f".{os.path.basename(path)[:120]}.fraudcore-{host:08x}-"


def _remove_stale_temporaries(folder, prefix):
    """Delete this host's temporaries for the same file whose writer process is gone."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[A-Za-z0-9_]+\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or _process_exists(int(match.group(1))):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:  # gone already (another save cleaned it), or not ours to delete
            pass


def _process_exists(pid):
    if pid <= 0:
        return True  # not a pid we wrote: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _fsync_folder(folder):
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open(data):
    _version, kind, meta, body = _core.unpack_envelope(bytes(data))
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise _core.ModelFormatError(f"unknown model kind {kind!r} in fraudcore model data")
    try:
        meta = json.loads(meta.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also a 5000-digit int
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
        return loads(f.read())


def loads(data):
    """Load any fraudcore estimator from the bytes ``save`` writes (a
    snapshot kept in a database, say); raises as :func:`load`."""
    cls, meta, body = _open(data)
    model = cls()
    model._restore(meta, body)
    return model


def dumps(model):
    """The bytes ``model.save`` writes: fraudcore's versioned, checked format."""
    return model._to_bytes()
