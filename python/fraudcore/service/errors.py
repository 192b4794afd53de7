"""The alert store's errors (re-exported by :mod:`fraudcore.service.store`).

The service maps :class:`NotFound` to 404 and :class:`IllegalTransition`,
:class:`VersionConflict` and :class:`DuplicateEvent` to 409; every other
:class:`StoreError` is the operator's problem (500 with its message).
"""


class StoreError(Exception):
    """Base class of the alert store's errors."""


class NotFound(StoreError):
    """No such alert (or customer)."""


class IllegalTransition(StoreError):
    """The workflow does not allow moving the alert from its status to the one asked."""


class VersionConflict(StoreError):
    """The alert changed since the version the caller read (optimistic concurrency)."""


class DuplicateEvent(StoreError):
    """An event id of the batch is already stored, or repeated in the batch.

    ``event_ids`` lists the offending ids.
    """

    def __init__(self, message, event_ids=()):
        super().__init__(message)
        self.event_ids = list(event_ids)


class SchemaError(StoreError):
    """The database's schema is newer than this code, or not the store's."""
