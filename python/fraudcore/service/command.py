"""``fraudcore serve`` and ``fraudcore keys``: the service's command line.

Imported only when one of them runs, so the rest of the command line works
without the ``service`` extra.
"""

import ipaddress
import os

LOOPBACK_ONLY = (
    "serving without API keys: bound to loopback only (give --api-keys FILE to serve "
    "other hosts; make keys with `fraudcore keys create`)"
)


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _service_modules():
    try:
        import uvicorn

        from fraudcore.service.app import create_app
    except ImportError as exc:
        raise ImportError(
            f"fraudcore serve needs the service extra ({exc}): pip install 'fraudcore[service]'"
        ) from None
    return uvicorn, create_app


def run_serve(args, out):
    uvicorn, create_app = _service_modules()

    if args.workers != 1:
        raise ValueError(
            "--workers must be 1: the customers' history lives in one process (a second "
            "process would score with half of it). One process batches concurrent requests "
            "onto its scoring thread; run one service per model and put a balancer in front "
            "of several models, not of one model's copies"
        )
    if args.api_keys is None:
        if not is_loopback(args.host):
            raise ValueError(f"--host {args.host} needs --api-keys: {LOOPBACK_ONLY}")
        print(LOOPBACK_ONLY, file=out)
    history = None
    if args.history:
        import pandas as pd

        reader = pd.read_parquet if args.history.endswith(".parquet") else pd.read_csv
        history = reader(args.history)
    app = create_app(
        args.model,
        db=args.db,
        api_keys=args.api_keys,
        store_options={"synchronous": args.synchronous},
        history=history,
    )
    print(
        f"fraudcore serve: {args.model} on http://{args.host}:{args.port} "
        f"(store {args.db}; docs at /docs)",
        file=out,
    )
    out.flush()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def run_keys(args, out):
    from fraudcore.service.auth import create_key

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    key = create_key(args.file, args.name, scopes)
    print(
        f"key {args.name!r} ({', '.join(scopes)}) added to {os.path.abspath(args.file)}:", file=out
    )
    print(key, file=out)
    print("the file keeps only its hash: store the key now, it is not shown again", file=out)
    return 0


def add_parsers(sub, common_arguments):
    serve = sub.add_parser(
        "serve",
        help="run the scoring service (FastAPI) on a model",
        description="Score transactions over HTTP with each customer's history, open "
        "alerts in the store and serve their workflow. Needs fraudcore[service].",
    )
    serve.add_argument("model", help="a model file written by fraudcore train")
    serve.add_argument(
        "--db",
        default="sqlite:///fraudcore.db",
        help="the alert store: sqlite:///PATH (default sqlite:///fraudcore.db) or "
        "postgresql://USER:PASSWORD@HOST/DB",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="HTTP processes: 1 (see --help)")
    serve.add_argument(
        "--api-keys", help="JSON key file (fraudcore keys create); none: loopback only"
    )
    serve.add_argument(
        "--history",
        help="earlier transactions (CSV or Parquet, the model's columns) that seed the "
        "customers' history of an empty store",
    )
    serve.add_argument(
        "--synchronous",
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite: NORMAL survives a killed process, FULL also a power loss (default NORMAL)",
    )
    serve.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    common_arguments(serve, run_serve)

    keys = sub.add_parser("keys", help="manage the service's API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="add a new key to a key file and print it")
    create.add_argument("--file", required=True, help="the JSON key file (created when absent)")
    create.add_argument("--name", required=True, help="who uses the key (shown in audit logs)")
    create.add_argument(
        "--scopes", default="score", help="comma-separated: score, review, admin (default score)"
    )
    common_arguments(create, run_keys)
