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


def _dashboard_available():
    try:
        import fraudcore.dashboard  # noqa: F401
    except ImportError:
        return False
    return True


def run_serve(args, out):
    uvicorn, create_app = _service_modules()
    dashboard = not args.no_dashboard and _dashboard_available()
    if args.demo:
        from fraudcore.service.demo import build_demo

        if args.model is not None:
            raise ValueError("give a model or --demo, not both (the demo trains its own)")
        args.model, args.db = build_demo(args.demo_dir, data=args.demo_data, out=out)
    elif args.model is None:
        raise ValueError("give a model file (fraudcore train writes one), or --demo")

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
        dashboard=dashboard,
    )
    print(
        f"fraudcore serve: {args.model} on http://{args.host}:{args.port} "
        f"(store {args.db}; docs at /docs)",
        file=out,
    )
    if dashboard:
        print(f"the analyst's desk: http://{args.host}:{args.port}/dashboard/", file=out)
    elif not args.no_dashboard:
        print("no dashboard: pip install 'fraudcore[dashboard]' to get it", file=out)
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


def run_dashboard(args, out):
    uvicorn, _ = _service_modules()
    try:
        from fraudcore.dashboard import standalone_app
    except ImportError as exc:
        raise ImportError(
            f"fraudcore dashboard needs the dashboard extra ({exc}): "
            "pip install 'fraudcore[dashboard]'"
        ) from None
    if args.api_keys is None and not is_loopback(args.host):
        raise ValueError(
            f"--host {args.host} needs --api-keys: without keys the desk is open "
            "to read, so it binds to loopback only"
        )
    app = standalone_app(args.db, api_keys=args.api_keys)
    mode = "decisions with a key of scope review" if args.api_keys else "read-only"
    print(
        f"fraudcore dashboard: http://{args.host}:{args.port}/dashboard/ on {args.db} ({mode})",
        file=out,
    )
    out.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
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
    serve.add_argument("model", nargs="?", help="a model file written by fraudcore train")
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
    serve.add_argument(
        "--no-dashboard", action="store_true", help="do not mount the desk at /dashboard/"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="train a demo model, score the last weeks of its data into --demo-dir/demo.db "
        "and serve API and desk on them (no model argument)",
    )
    serve.add_argument(
        "--demo-data",
        help="with --demo: an Online Retail file (e.g. online_retail.csv.gz) instead of "
        "generated transactions",
    )
    serve.add_argument(
        "--demo-dir", default="fraudcore-demo", help="with --demo: where model and store go"
    )
    common_arguments(serve, run_serve)

    desk = sub.add_parser(
        "dashboard",
        help="serve the analyst's desk alone on an alert store",
        description="The Dash desk on a store fraudcore serve writes: read-only unless "
        "--api-keys is given (then a key of scope review may decide). Needs "
        "fraudcore[dashboard].",
    )
    desk.add_argument("--db", required=True, help="the alert store URL (as fraudcore serve)")
    desk.add_argument("--api-keys", help="JSON key file; none: read-only, loopback only")
    desk.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    desk.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    desk.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    common_arguments(desk, run_dashboard)

    keys = sub.add_parser("keys", help="manage the service's API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="add a new key to a key file and print it")
    create.add_argument("--file", required=True, help="the JSON key file (created when absent)")
    create.add_argument("--name", required=True, help="who uses the key (shown in audit logs)")
    create.add_argument(
        "--scopes", default="score", help="comma-separated: score, review, admin (default score)"
    )
    common_arguments(create, run_keys)
