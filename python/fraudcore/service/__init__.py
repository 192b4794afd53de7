"""fraudcore's scoring service: a FastAPI app over an alert store.

Install with ``pip install "fraudcore[service]"``. ``import fraudcore`` never
imports this package; ``fraudcore serve`` and
:func:`fraudcore.service.create_app` do.

Modules
-------
app          the FastAPI application factory (create_app), its routes and the
             scoring routes' fast path
models       request and response models (pydantic), the OpenAPI documentation
pipeline     the scoring worker: batches requests, scores them with the online
             scorer and commits them to the store together (group commit)
auth         API keys (stored hashed) and their scopes
metrics      Prometheus metrics
command      ``fraudcore serve`` and ``fraudcore keys``
store        the alert store (SQLAlchemy 2: SQLite by default, PostgreSQL by URL)
batch        the store's write path: a batch of scored items as table rows
queries      the dashboards' aggregates, computed in SQL
tables       the store's tables; migrations: its schema versions and the steps
             between them; engine: URLs, SQLite settings, write transactions
errors       the store's errors
"""


def __getattr__(name):
    if name == "create_app":  # imported on use: the store alone needs no FastAPI
        from fraudcore.service.app import create_app

        return create_app
    raise AttributeError(f"module 'fraudcore.service' has no attribute {name!r}")
