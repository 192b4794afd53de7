"""fraudcore's scoring service: a FastAPI app over an alert store.

Install with ``pip install "fraudcore[service]"``. ``import fraudcore`` never
imports this package; ``fraudcore serve`` and
:func:`fraudcore.service.create_app` do.

Modules
-------
store        the alert store (SQLAlchemy 2: SQLite by default, PostgreSQL by URL)
migrations   the store's schema versions and the steps between them
pipeline     the scoring worker: batches requests, scores them with the online
             scorer and commits them to the store together
auth         API keys (stored hashed) and their scopes
app          the FastAPI application factory and its routes
"""
