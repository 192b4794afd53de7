"""fraudcore's scoring service against the plain FastAPI app it replaces, under
load on loopback.

Run from the repository root after ``pip install ".[test]"`` (it brings the
service extra: FastAPI, uvicorn[standard], orjson)::

    python benchmarks/bench_service.py [--workers 1 2] [--only plain|fraudcore]
        [--quick] [--json out.json]

The servers, each a separate process on a free 127.0.0.1 port, started
fresh per worker count and always stopped (SIGTERM to the process group,
SIGKILL after 15 s):

* fraudcore: ``fraudcore serve model.fc --db sqlite:///store.db --workers N
  --api-keys keys.json --history train.csv``, the model a default
  ``FraudDetector`` fitted on the training transactions (unsupervised: no
  labels), the customers' history seeded with them as the plain app's is;
  its path writes every scored transaction (and alert) to the SQLite store;
* plain: ``benchmarks/_plain_service.py`` under ``uvicorn --workers N``
  (pandas features per request, scikit-learn IsolationForest + LOF, fitted
  at start-up on the same training transactions, one BLAS / OpenMP thread
  per worker); it stores nothing.

The data: ``make_transactions`` (50 transactions per customer, time order);
both servers learn from the first 50,000 rows and are then sent the later
rows, as JSON objects with the schema's columns (times as ISO-8601 strings)
and a unique ``event_id``. Each run takes its own next slice of rows, so
every customer's transactions reach a server in time order across runs;
within a run each connection owns a disjoint set of customers and sends
their transactions in time order, one request at a time (keep-alive). Both
servers get the same requests. Every response must be HTTP 200: anything
else, a closed connection or a timeout counts as a failure; the last 200
body of each run is checked for the response's fields.

The runs, each bounded by its slice and by 15 s (no request is started
later; the requests in flight are waited for): ``GET /`` at concurrency 16
(the framework's own floor), a warm-up, ``POST /detect`` at concurrency 1,
16 and 64 (requests/s; latency p50 / p99 from each request's write to its
response's last byte), then ``POST /detect/batch`` with 100 and 1,000
transactions per call on two connections per worker (transactions/s; a
worker has the next call while it answers one).

A server that does not start (``fraudcore serve`` takes ``--workers 1``
only: one process holds the customers' history) is reported, with its
output, and the others run.

The load generator (``_loadgen.py``: asyncio on uvloop, pre-encoded
requests) is measured first against a trivial raw-socket server answering
``GET /`` with ``{}``: that rate is its ceiling, far above what the servers
reach. It shares the machine's cores with the server, so each run also
records the generator's CPU use and the server's (in cores). On a machine
shared with other work the server gets only part of its cores, so the
table gives each rate per second of the server's own CPU time too
(``/cpu-s``), and the ratio both ways.

The targets (printed PASS / FAIL per worker count): fraudcore ``/detect`` at
concurrency 16 >= 2,000 requests/s with p99 <= 20 ms; p50 <= 1 ms at
concurrency 1; ``/detect/batch`` (1,000 per call) >= 30,000 transactions/s;
``/detect`` at concurrency 16 >= 20 x the plain app's requests/s.

``--quick`` is a smoke run (2,000 training rows, a few hundred requests,
batches of 10 and 50, 3 s per run, one worker). One pass: on a shared
machine, run it again before trusting a difference of a few percent.
"""

import argparse
import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

import orjson
from _common import machine, write_json
from _loadgen import encode_request, run_load

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
FIELDS = {
    "event_id",
    "risk_score",
    "risk_level",
    "priority",
    "is_alert",
    "confidence",
    "scores",
    "reasons",
    "model_version",
}
LABELS = ["is_fraud", "fraud_pattern"]


class Mode:
    """The sizes of a run: full or --quick."""

    def __init__(self, quick):
        self.quick = quick
        self.train_rows = 2_000 if quick else 50_000
        self.seconds = 3.0 if quick else 15.0
        self.ceiling_requests = 2_000 if quick else 200_000
        self.floor_requests = 200 if quick else 50_000
        # (name, path, concurrency or None = two connections per worker, rows, batch size)
        self.runs = [
            ("warm-up", "/detect", 4, 40 if quick else 2_000, 1),
            ("/detect c=1", "/detect", 1, 30 if quick else 15_000, 1),
            ("/detect c=16", "/detect", 16, 64 if quick else 60_000, 1),
            ("/detect c=64", "/detect", 64, 128 if quick else 60_000, 1),
            (
                "/detect/batch",
                "/detect/batch",
                None,
                40 if quick else 100_000,
                10 if quick else 100,
            ),
            (
                "/detect/batch",
                "/detect/batch",
                None,
                100 if quick else 150_000,
                50 if quick else 1_000,
            ),
        ]
        self.grace = {"/detect": 60.0, "/detect/batch": 60.0 if quick else 300.0}


def workload(mode):
    """Training rows (no labels) and the later rows to send, both in time
    order; the later ones with ISO-8601 times and an ``event_id``."""
    from fraudcore.datasets import make_transactions

    total = mode.train_rows + sum(run[3] for run in mode.runs)
    data = make_transactions(n_customers=max(20, total // 50), n_transactions=total, seed=0)
    data = data.drop(columns=LABELS).sort_values("timestamp", kind="stable")
    train = data.iloc[: mode.train_rows].reset_index(drop=True)
    later = data.iloc[mode.train_rows :].reset_index(drop=True)
    for column in ("timestamp", "signup_time"):
        later[column] = later[column].map(lambda t: t.isoformat(), na_action="ignore")
    later["event_id"] = [f"bench-{i}" for i in range(len(later))]
    return train, later


def connection_rows(rows, connections):
    """Split rows among `connections` by customer (round robin over the
    customers in order of first appearance), each part in time order."""
    owner, parts = {}, [[] for _ in range(connections)]
    for row in rows:
        part = owner.setdefault(row["customer_id"], len(owner) % connections)
        parts[part].append(row)
    return parts


def encode_runs(mode, later, key, workers):
    """Every run's request lists (bytes, one list per connection); each run
    sends its own next slice of `later`."""
    headers = (f"X-API-Key: {key}",)
    encoded, start = [], 0
    for name, path, concurrency, count, batch in mode.runs:
        chunk = later.iloc[start : start + count].to_dict("records")
        start += count
        parts = connection_rows(chunk, concurrency or 2 * workers)
        if batch == 1:
            lists = [
                [encode_request("POST", path, orjson.dumps(row), headers) for row in part]
                for part in parts
            ]
        else:
            lists = [
                [
                    encode_request(
                        "POST",
                        path,
                        orjson.dumps({"transactions": part[i : i + batch]}),
                        headers,
                    )
                    for i in range(0, len(part) - batch + 1, batch)
                ]
                for part in parts
            ]
        label = name if batch == 1 else f"{name} {batch:,}/call"
        encoded.append((label, path, batch, lists))
    return encoded


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_processes(pgid):
    """{pid: CPU seconds} of the live processes in process group `pgid`."""
    ticks, found = os.sysconf("SC_CLK_TCK"), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def group_cpu(pgid):
    return sum(group_processes(pgid).values())


def get(port, path, headers=None, timeout=5.0):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class DidNotStart(RuntimeError):
    """A server exited, or did not answer, before it was ready."""


class Server:
    """A server process in its own process group, on a free loopback port.

    ``with Server(name, command(port), ...) as server`` waits for ``GET
    /health`` (or ``ready_path``; with ``key`` as ``X-API-Key``) to answer 200 and for the group's CPU use
    to settle (every worker done loading), and on exit stops the group:
    SIGTERM, then SIGKILL after 15 s. ``pids`` are the group's processes
    seen while it ran, ``leftover`` those still alive after the stop.
    """

    def __init__(
        self, name, command, port, *, env=None, log=None, ready_path="/health", key=None, wait=600
    ):
        self.name, self.command, self.port = name, command, port
        self.ready_headers = {"X-API-Key": key} if key else {}
        self.env, self.log, self.ready_path, self.wait = env, log, ready_path, wait
        self.process, self.pids, self.leftover, self.start_s = None, set(), [], None

    def __enter__(self):
        started = time.perf_counter()
        log = open(self.log, "wb") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            cwd=ROOT,
        )
        if self.log:
            log.close()
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc):
        self.stop()

    def _wait_ready(self, started):
        while True:
            if self.process.poll() is not None:
                raise DidNotStart(
                    f"{self.name} exited with status {self.process.returncode} before answering "
                    f"{self.ready_path}; its output: {self._tail()}"
                )
            if time.perf_counter() - started > self.wait:
                raise DidNotStart(
                    f"{self.name} did not answer {self.ready_path} within {self.wait} s; "
                    f"its output: {self._tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get(self.port, self.ready_path, self.ready_headers, 2.0)[0] == 200:
                    break
            time.sleep(0.2)
        # /health answers from the first worker up: wait for the others (and
        # any start-up work) until the group uses under 0.1 core for 1 s.
        previous = group_cpu(self.process.pid)
        while time.perf_counter() - started < self.wait:
            time.sleep(1.0)
            self.pids |= set(group_processes(self.process.pid))
            now = group_cpu(self.process.pid)
            if now - previous < 0.1:
                return
            previous = now

    def cpu(self):
        self.pids |= set(group_processes(self.process.pid))
        return group_cpu(self.process.pid)

    def _tail(self):
        if not self.log or not os.path.exists(self.log):
            return "(not kept)"
        return pathlib.Path(self.log).read_text(errors="replace")[-2000:]

    def stop(self):
        if self.process is None:
            return
        pgid = self.process.pid
        self.pids |= set(group_processes(pgid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.perf_counter() + 15
        while group_processes(pgid) and time.perf_counter() < deadline:
            time.sleep(0.1)
        if group_processes(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.5)
        self.process.wait()
        self.leftover = sorted(group_processes(pgid))


def shape_problems(path, batch, body):
    """What is wrong with a 200 body of `path` (empty list: nothing)."""
    if body is None:
        return ["no 200 response"]
    try:
        answer = json.loads(body)
    except ValueError:
        return [f"not JSON: {body[:200]!r}"]
    if path == "/detect/batch":
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != batch:
            return [f"'results' is not a list of {batch}: {str(answer)[:200]}"]
        answer = results[0]
    missing = FIELDS - set(answer) if isinstance(answer, dict) else FIELDS
    return [f"missing fields {sorted(missing)}"] if missing else []


def measure(server, port, encoded, mode):
    """The runs against one started server; -> {run label: figures}."""
    figures = {}
    floor = [[encode_request("GET", "/")] * (mode.floor_requests // 16)] * 16
    runs = [("GET / c=16", "/", 1, floor), *encoded]
    for label, path, batch, lists in runs:
        cpu = server.cpu()
        result = run_load(
            port,
            lists,
            seconds=mode.seconds,
            timeout=mode.grace.get(path, 60.0),
            items_per_request=batch,
        )
        cpu = server.cpu() - cpu
        result["server_cpu"] = cpu / result["seconds"]
        # CPU time comes in ticks of 10 ms: under 5 of them says little.
        result["items_per_cpu_s"] = result["ok"] * batch / cpu if cpu >= 0.05 else None
        result["shape_problems"] = (
            shape_problems(path, batch, result["last_ok_body"]) if path != "/" else []
        )
        result["sample"] = (result.pop("last_ok_body") or b"")[:600].decode(errors="replace")
        result["connections"] = sum(1 for requests in lists if requests)
        figures[label] = result
        print(
            f"  {server.name:<10}{label:<26}{result['items_per_s']:>10,.0f}/s"
            f"  p50 {result['p50_ms'] or 0:>8.2f} ms  p99 {result['p99_ms'] or 0:>8.2f} ms"
            f"  failures {result['failures']}  (server {result['server_cpu']:.2f} cores,"
            f" generator {result['client_cpu']:.2f})",
            flush=True,
        )
        if result["first_failure"] or result["errors"]:
            print(f"    first failure: {result['first_failure'] or result['errors'][0]}")
        if result["shape_problems"]:
            print(f"    response: {'; '.join(result['shape_problems'])}")
    return figures


def ceiling(mode, scratch):
    """The generator against the trivial server, at concurrency 1, 16 and 64."""
    port = free_port()
    command = [sys.executable, str(BENCHMARKS / "_loadgen.py"), "--trivial-server"]
    command += ["--port", str(port)]
    out = {}
    with Server("trivial", command, port, log=scratch / "trivial.log", ready_path="/") as server:
        for concurrency in (1, 16, 64):
            lists = [[encode_request("GET", "/")] * (mode.ceiling_requests // concurrency)]
            result = run_load(port, lists * concurrency, seconds=5.0)
            result.pop("last_ok_body")
            out[f"c={concurrency}"] = result
            print(
                f"  generator ceiling (trivial server), c={concurrency:<3}"
                f"{result['requests_per_s']:>10,.0f} requests/s  p50 {result['p50_ms']:.3f} ms"
                f"  failures {result['failures']}  (generator {result['client_cpu']:.2f} cores)",
                flush=True,
            )
    out["pgid"], out["stopped"] = server.process.pid, not server.leftover
    return out


def service_available():
    return importlib.util.find_spec("fraudcore.service.app") is not None


def listening(port, workers):
    """The address and worker options both servers take."""
    return ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def fraudcore_command(scratch, model, keys, workers, port):
    database = f"sqlite:///{scratch / f'store-{workers}.db'}"
    return [sys.executable, "-m", "fraudcore", "serve", str(model), "--db", database] + [
        *listening(port, workers),
        "--api-keys",
        str(keys),
        "--history",
        str(scratch / "history.csv"),
    ]


def plain_command(workers, port):
    app = ["--app-dir", str(BENCHMARKS), "--factory", "_plain_service:create_app"]
    return [sys.executable, "-m", "uvicorn", *app, *listening(port, workers)] + [
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def plain_env(train_path, keys):
    env = dict(os.environ, PLAIN_SERVICE_TRAIN=str(train_path), PLAIN_SERVICE_KEYS=str(keys))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"  # scikit-learn's single-row calls: threads only cost
    return env


def milliseconds(value):
    """A latency in a 9-character cell: 2 decimals below 100 ms."""
    if value is None:
        return f"{'-':>9}"
    return f"{value:>9.2f}" if value < 100 else f"{value:>9,.0f}"


def table(results, servers, labels, workers):
    """Side by side: fraudcore, plain, and fraudcore / plain (by wall time and
    by the server's CPU time)."""
    print(f"\nworkers={workers}")
    for kind, server in servers.items():
        if server["error"]:
            print(f"({kind} did not start: {server['error'].splitlines()[-1][:300]})")
    print(
        f"{'run':<26}{'fraudcore /s':>13}{'p50 ms':>9}{'p99 ms':>9}{'fail':>5}{'/cpu-s':>8}"
        f"{'plain /s':>11}{'p50 ms':>9}{'p99 ms':>9}{'fail':>5}{'/cpu-s':>8}{'ratio':>7}{'cpu':>6}"
    )
    for label in labels:
        cells, rates, per_cpu = [], [], []
        for kind in ("fraudcore", "plain"):
            run = results.get(kind, {}).get(label)
            width = 13 if kind == "fraudcore" else 11
            if run is None:
                cells.append(f"{'-':>{width}}{'-':>9}{'-':>9}{'-':>5}{'-':>8}")
                continue
            rates.append(run["items_per_s"])
            per_cpu.append(run["items_per_cpu_s"])
            cpu = f"{per_cpu[-1]:>8,.0f}" if per_cpu[-1] is not None else f"{'-':>8}"
            cells.append(
                f"{run['items_per_s']:>{width},.0f}{milliseconds(run['p50_ms'])}"
                f"{milliseconds(run['p99_ms'])}{run['failures']:>5}{cpu}"
            )
        ratio = f"{rates[0] / rates[1]:>7.1f}" if len(rates) == 2 and rates[1] else ""
        if ratio and all(per_cpu):
            ratio += f"{per_cpu[0] / per_cpu[1]:>6.1f}"
        print(f"{label:<26}{''.join(cells)}{ratio}")
    print(
        "(/s: requests for GET / and /detect, transactions for /detect/batch; /cpu-s: the same "
        "per second of the server's CPU time; ratio: fraudcore / plain by wall time, cpu: by "
        "CPU time. fraudcore's path writes every transaction to its SQLite store, the plain "
        "app's stores nothing)"
    )


def check(ok, text):
    print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return {"target": text, "pass": bool(ok)}


def targets(results, batch_label, workers):
    fc, plain = results.get("fraudcore"), results.get("plain")
    print(f"\nTargets, workers={workers}")
    if fc is None:
        print("SKIP  every target: no fraudcore run")
        return []
    c1, c16, batch = fc["/detect c=1"], fc["/detect c=16"], fc[batch_label]
    out = [
        check(
            c16["requests_per_s"] >= 2_000,
            f"/detect c=16: {c16['requests_per_s']:,.0f} requests/s >= 2,000",
        ),
        check(c16["p99_ms"] <= 20, f"/detect c=16: p99 {c16['p99_ms']:.2f} ms <= 20 ms"),
        check(c1["p50_ms"] <= 1, f"/detect c=1: p50 {c1['p50_ms']:.3f} ms <= 1 ms"),
        check(
            batch["items_per_s"] >= 30_000,
            f"{batch_label}: {batch['items_per_s']:,.0f} transactions/s >= 30,000",
        ),
    ]
    if plain is None:
        print("SKIP  20 x the plain app: no plain run")
    else:
        ratio = c16["requests_per_s"] / max(plain["/detect c=16"]["requests_per_s"], 1e-9)
        out.append(
            check(ratio >= 20, f"/detect c=16: {ratio:.1f} x the plain app's requests/s >= 20")
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1 2")
    parser.add_argument("--only", choices=("plain", "fraudcore"))
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts")
    parser.add_argument(
        "--json", type=pathlib.Path, default=BENCHMARKS / "results" / "service.json"
    )
    args = parser.parse_args()
    mode = Mode(args.quick)
    workers_list = args.workers or ([1] if args.quick else [1, 2])
    kinds = ["fraudcore", "plain"] if args.only is None else [args.only]
    report = {
        "benchmark": "service",
        "machine": machine(),
        "quick": args.quick,
        "seconds_per_run": mode.seconds,
        "train_rows": mode.train_rows,
        "skipped": {},
        "workers": {},
    }
    if "fraudcore" in kinds and not service_available():
        reason = "fraudcore.service.app is not importable (no service in this fraudcore)"
        print(f"fraudcore's service is skipped: {reason}")
        report["skipped"]["fraudcore"] = reason
        kinds.remove("fraudcore")

    import fraudcore
    from fraudcore import FraudDetector, Schema

    train, later = workload(mode)
    print(
        f"fraudcore {fraudcore.__version__}, {machine()['cpus']} cores; {len(train):,} training "
        f"transactions, {len(later):,} later ones to send; at most {mode.seconds:g} s per run"
    )
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        scratch = pathlib.Path(tmp)
        key = secrets.token_urlsafe(24)
        keys = scratch / "keys.json"
        keys.write_text(
            json.dumps(
                {
                    "keys": [
                        {
                            "name": "bench",
                            "scopes": ["score", "review", "admin"],
                            "sha256": hashlib.sha256(key.encode()).hexdigest(),
                        }
                    ]
                }
            )
        )
        report["generator_ceiling"] = ceiling(mode, scratch)
        model, train_path = scratch / "model.fc", scratch / "train.pkl"
        if "fraudcore" in kinds:
            FraudDetector(Schema.transactions(), random_state=0).fit(train).save(model)
            train.to_csv(scratch / "history.csv", index=False)
        train.to_pickle(train_path)
        for workers in workers_list:
            encoded = encode_runs(mode, later, key, workers)
            labels = ["GET / c=16"] + [label for label, *_ in encoded if label != "warm-up"]
            results, servers = {}, {}
            for kind in kinds:
                port = free_port()
                if kind == "fraudcore":
                    command, env = fraudcore_command(scratch, model, keys, workers, port), None
                else:
                    command, env = plain_command(workers, port), plain_env(train_path, keys)
                log = scratch / f"{kind}-{workers}.log"
                server = Server(kind, command, port, env=env, log=log, key=key)
                error = None
                try:
                    with server:
                        print(f"{kind}, {workers} worker(s): ready in {server.start_s:.1f} s")
                        results[kind] = measure(server, port, encoded, mode)
                except DidNotStart as exc:  # say why, go on with the others
                    error = str(exc)
                    print(f"{kind}, {workers} worker(s): did not start: {error[-600:]}")
                servers[kind] = {
                    "start_s": server.start_s,
                    "error": error,
                    "pgid": server.process.pid,
                    "pids": sorted(server.pids),
                    "leftover": server.leftover,
                    "stopped": server.process.returncode is not None and not server.leftover,
                }
                if server.leftover:
                    print(f"{kind}: processes left after the stop: {server.leftover}")
            table(results, servers, labels, workers)
            report["workers"][str(workers)] = {
                "results": results,
                "servers": servers,
                "targets": targets(results, labels[-1], workers),
            }
    write_json(args.json, report)


if __name__ == "__main__":
    main()
