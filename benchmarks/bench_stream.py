"""fraudcore's stream consumer against the per-message Python consumer it
replaces, on a Redis stream on this machine (issue 16).

Run from the repository root after ``pip install ".[stream]"`` with
``redis-server`` installed (``apt-get install redis-server``)::

    python benchmarks/bench_stream.py [--transactions 200000] [--customers N]
        [--seed 0] [--repeats 3] [--latency-seconds 20] [--rate 1000]
        [--reference-messages 3000] [--reference-seconds 60] [--json out.json]

A throwaway ``redis-server`` (``tests/python/_brokers.py``: no persistence,
127.0.0.1, a free port) holds every stream; it and every consumer are
stopped at the end. The data: ``make_transactions`` (``--customers``
defaults to a 40th of ``--transactions``), in time order, labels dropped.
The first half trains the models, unsupervised; the second half is the
stream, put on it with ``fraudcore.stream.replaying`` (each customer on one of
4 partitions, one JSON transaction per message with an ``event_id``).

* **fraudcore**: ``fraudcore stream --source redis://.../S --group bench
  --model M --db sqlite:///... --stop-when-idle ... --stats-json F``, one
  process, the model ``FraudDetector(Schema.transactions(),
  random_state=0)`` as it fits by default (its detectors are in the JSON).
  Its full path: decode, features from each customer's history, score,
  store every transaction and its alert in the SQLite alert store (one
  database transaction per micro-batch), acknowledge.
* **reference**: ``benchmarks/_reference_stream_consumer.py``, one process:
  ``XREADGROUP count=1`` per partition in turn, ``json.loads``, pandas
  features from the customer's pandas history, scikit-learn
  ``IsolationForest`` + ``LocalOutlierFactor(novelty=True)`` on that one
  row, an ``INSERT`` and a commit per message (``sqlite3``), ``XACK``; one
  BLAS / OpenMP thread (single-row calls: threads only cost).

Both start with empty customer histories (a fresh store) and store every
transaction in SQLite opened the same way (WAL, ``synchronous = NORMAL``).

The runs, each bounded:

1. **Throughput**, ``--repeats`` times, a fresh stream and store each time:
   the whole stream part is put on the stream first (no rate limit), then
   the consumer starts and stops after 1 s without a message. From its
   ``--stats-json``: *busy* = scored / the seconds spent in batches (from
   the poll's return to the acknowledgement); *end-to-end* = scored /
   (its elapsed seconds less the 1 s idle tail): from the consumer's start
   (model loaded, store open) to its last batch, polls and Redis round trips
   included. End-to-end is the headline (what a consumer sustains); both
   are medians over the repeats. The consumer's CPU time gives the cores it
   used and its rate per CPU-second (the machine may be shared).
2. **Latency**: a fresh stream and store; the consumer starts first
   (stopping after 3 s without a message), then ``--latency-seconds`` of
   the stream part are put on it at ``--rate`` transactions/s (chunks of
   ``rate // 100`` every 10 ms). Latency is the consumer's own measure: from
   the entry's Redis timestamp (when it was added) to the commit of the
   batch that stored it; p50 / p95 / p99 over every message.
3. **Reference**: on the last throughput run's stream, in a group of its
   own, the reference consumer takes at most ``--reference-messages``
   messages or ``--reference-seconds`` s (after its fit, timed apart):
   messages / seconds from its first read to its last acknowledgement.

Targets (PASS / FAIL): end-to-end >= 10,000 transactions/s per consumer;
latency p99 <= 250 ms at 1,000 transactions/s; >= 20 x the reference
consumer's transactions/s. One pass over each: on a shared machine, run it
again before trusting a difference of a few percent.
"""

import argparse
import contextlib
import json
import os
import pathlib
import queue
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from _common import machine, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT / "tests" / "python"))

LABELS = ["is_fraud", "fraud_pattern"]
PARTITIONS = 4
GROUP = "bench"
IDLE_S = 1.0  # --stop-when-idle of the throughput runs: the idle tail
LATENCY_IDLE_S = 3.0
TARGET_RATE = 10_000
TARGET_P99_MS = 250.0
TARGET_RATIO = 20.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--customers", type=int, help="default: transactions // 40")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-share", type=float, default=0.5, help="the first share trains (default 0.5)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0, help="latency run's rate")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--reference-messages", type=int, default=3000)
    parser.add_argument("--reference-seconds", type=float, default=60.0)
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="most seconds any one process may take"
    )
    parser.add_argument("--json", type=pathlib.Path, default=BENCHMARKS / "results" / "stream.json")
    args = parser.parse_args()
    if args.customers is None:
        args.customers = max(1, args.transactions // 40)
    return args


# -- processes ------------------------------------------------------------------


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid):
    """CPU seconds of a live process (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Consumer:
    """``fraudcore stream`` in its own process group; stdout through a pipe
    (its first line says it is about to poll), stderr to a log file."""

    def __init__(self, url, model, db, stats, log, stop_when_idle, name="c1"):
        self.stats_path, self.log_path = stats, log
        self.command = [sys.executable, "-m", "fraudcore", "stream", "--source", url] + [
            "--group",
            GROUP,
            "--model",
            str(model),
            "--db",
            f"sqlite:///{db}",
            "--consumer",
            name,
            "--partitions",
            str(PARTITIONS),
            "--stop-when-idle",
            str(stop_when_idle),
            "--stats-json",
            str(stats),
            "--log-level",
            "warning",
        ]
        self.process, self.lines = None, queue.Queue()
        self.stdout, self.cpu_s, self.process_s, self.ready_cpu_s = [], None, None, None

    def start(self):
        self._cpu0, self._t0 = children_cpu(), time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=ROOT,
                start_new_session=True,
            )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.process.stdout:
            if not self.stdout:  # model loaded, store open: it polls next
                self.ready_cpu_s = process_cpu(self.process.pid)
            self.stdout.append(line.rstrip("\n"))
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self, timeout):
        """Until its first line (it polls next); an error if it exits first."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"fraudcore stream said nothing in {timeout:g} s") from None
        if line is None:
            self.process.wait()
            raise RuntimeError(
                f"fraudcore stream exited with {self.process.returncode}: {self.tail()}"
            )

    def wait(self, timeout):
        """Its stats once it stopped by itself (killed after timeout s)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(
                f"fraudcore stream still running after {timeout:g} s: {self.tail()}"
            ) from None
        self.process_s = time.perf_counter() - self._t0
        self.cpu_s = children_cpu() - self._cpu0
        if self.process.returncode != 0:
            raise RuntimeError(
                f"fraudcore stream exited with {self.process.returncode}: {self.tail()}"
            )
        return json.loads(pathlib.Path(self.stats_path).read_text())

    def tail(self):
        log = pathlib.Path(self.log_path)
        text = log.read_text(errors="replace") if log.exists() else ""
        return ("stdout: " + " | ".join(self.stdout[-5:]) + "; stderr: " + text[-3000:]).strip()

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def log_problems(path):
    """The consumer's stderr lines (run at log level warning: any is news)."""
    text = pathlib.Path(path).read_text(errors="replace") if pathlib.Path(path).exists() else ""
    return [line for line in text.splitlines() if line.strip()]


def store_counts(db):
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return {
            table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("transactions", "alerts")
        }


def delete_stream(client, name):
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    if keys:
        client.delete(*keys)


class AckWatcher(threading.Thread):
    """Watches the group on the stream's partitions from outside (``XINFO
    GROUPS`` every ``every`` s): when the first entry was delivered and when
    the last of ``total`` was acknowledged, each seen up to ``every`` s late."""

    def __init__(self, port, stream, total, every=0.02):
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=port)
        self.keys = [f"{stream}:{p}" for p in range(PARTITIONS)]
        self.total, self.every = total, every
        self.first = self.last = None
        self.polls = 0
        self._done = threading.Event()

    def counts(self):
        read = acked = 0
        for key in self.keys:
            for group in self.client.xinfo_groups(key):
                if group["name"] == GROUP.encode():
                    entries = group.get("entries-read") or 0
                    read += entries
                    acked += entries - group["pending"]
        return read, acked

    def run(self):
        try:
            while not self._done.is_set():
                now = time.perf_counter()
                read, acked = self.counts()
                self.polls += 1
                if self.first is None and read > 0:
                    self.first = now
                if acked >= self.total:
                    self.last = now
                    return
                time.sleep(self.every)
        finally:
            self.client.close()

    def finish(self):
        self._done.set()
        self.join(10)
        if self.first is None or self.last is None:
            return None
        return self.last - self.first


# -- the data and the model -------------------------------------------------------


def workload(args):
    from fraudcore.datasets import make_transactions

    data = make_transactions(
        n_customers=args.customers, n_transactions=args.transactions, seed=args.seed
    )
    data = data.drop(columns=LABELS).sort_values("timestamp", kind="stable")
    cut = int(len(data) * args.train_share)
    return data.iloc[:cut].reset_index(drop=True), data.iloc[cut:]


def fit_model(train, path):
    from fraudcore import FraudDetector, Schema
    from fraudcore._persistence import dumps

    started = time.perf_counter()
    detector = FraudDetector(schema=Schema.transactions(), random_state=0).fit(train)
    fit_s = time.perf_counter() - started
    path.write_bytes(dumps(detector))
    return {
        "fit_s": fit_s,
        "detectors": list(detector.models_),
        "weights": {name: float(w) for name, w in detector.weights_.items()},
        "supervised": detector.supervised_ is not None,
        "file_bytes": path.stat().st_size,
    }


# -- the runs -------------------------------------------------------------------


def throughput_run(redis_server, pairs, model, scratch, r, timeout):
    from fraudcore.stream.replaying import replay
    from fraudcore.stream.urls import open_sink

    name = f"tx-{r}"
    url = redis_server.url(name)
    put_s = replay(pairs, open_sink(url, partitions=PARTITIONS))
    db = scratch / f"fraudcore-{r}.db"
    log = scratch / f"consumer-{r}.log"
    consumer = Consumer(url, model, db, scratch / f"stats-{r}.json", log, IDLE_S)
    redis_cpu0 = process_cpu(redis_server.process.pid)
    watcher = AckWatcher(redis_server.port, name, len(pairs))
    try:
        consumer.start()
        watcher.start()
        stats = consumer.wait(timeout)
    finally:
        consumer.stop()
        window_s = watcher.finish()
    redis_cpu = process_cpu(redis_server.process.pid) - redis_cpu0
    active_s = stats["elapsed_s"] - IDLE_S
    end_to_end = stats["scored"] / active_s if active_s > 0 else 0.0
    watched = stats["scored"] / window_s if window_s else None
    run_cpu_s = consumer.cpu_s - (consumer.ready_cpu_s or 0.0)
    counts = store_counts(db)
    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    run = {
        "stream": name,
        "sent": len(pairs),
        "put_s": put_s,
        "put_per_s": len(pairs) / put_s if put_s > 0 else None,
        "stats": stats,
        "scored": stats["scored"],
        "busy_transactions_per_s": stats["busy_transactions_per_s"],
        "active_s": active_s,
        "end_to_end_transactions_per_s": end_to_end,
        "first_delivery_to_last_ack_s": window_s,
        "watched_transactions_per_s": watched,
        "watcher_polls": watcher.polls,
        "process_s": consumer.process_s,
        "cpu_s": consumer.cpu_s,
        "start_up_cpu_s": consumer.ready_cpu_s,
        "run_cpu_s": run_cpu_s,
        "cores": run_cpu_s / active_s if active_s > 0 else None,
        "transactions_per_cpu_s": stats["scored"] / run_cpu_s if run_cpu_s > 0 else None,
        "redis_cpu_s": redis_cpu,
        "store": counts,
        "stdout": consumer.stdout,
        "log": log_problems(log),
    }
    print(
        f"  run {r + 1}: {len(pairs):,} put in {put_s:.1f} s; scored {stats['scored']:,} "
        f"(dead letters {stats['dead_letters']}, failed batches {stats['failed_batches']}, "
        f"{stats['batches']} batches), busy {stats['busy_transactions_per_s']:,.0f}/s, "
        f"end-to-end {end_to_end:,.0f}/s, first delivery to last ack "
        f"{'-' if watched is None else format(watched, ',.0f')}/s; process {consumer.process_s:.1f}"
        f" s (start-up {consumer.ready_cpu_s or 0:.1f} CPU-s), {run['cores']:.2f} cores while it "
        f"ran, Redis {redis_cpu:.1f} CPU-s",
        flush=True,
    )
    if run["log"]:
        print(f"    consumer stderr: {' | '.join(run['log'][:5])[:1000]}")
    return run


def latency_run(redis_server, pairs, model, scratch, rate, timeout):
    from fraudcore.stream.replaying import replay
    from fraudcore.stream.urls import open_sink

    url = redis_server.url("latency")
    db = scratch / "latency.db"
    log = scratch / "consumer-latency.log"
    consumer = Consumer(url, model, db, scratch / "stats-latency.json", log, LATENCY_IDLE_S)
    try:
        consumer.start().wait_ready(timeout)
        replay_s = replay(pairs, open_sink(url, partitions=PARTITIONS), rate=rate)
        stats = consumer.wait(timeout)
    finally:
        consumer.stop()
    counts = store_counts(db)
    latency = stats["latency_ms"]
    run = {
        "rate": rate,
        "sent": len(pairs),
        "replay_s": replay_s,
        "sent_per_s": len(pairs) / replay_s if replay_s > 0 else None,
        "stats": stats,
        "scored": stats["scored"],
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
        "p99_ms": latency["p99"],
        "n": latency["n"],
        "batches": stats["batches"],
        "cpu_s": consumer.cpu_s,
        "store": counts,
        "stdout": consumer.stdout,
        "log": log_problems(log),
    }
    print(
        f"  {len(pairs):,} sent in {replay_s:.1f} s ({run['sent_per_s']:,.0f}/s); scored "
        f"{stats['scored']:,} in {stats['batches']:,} batches; latency p50 "
        f"{latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms",
        flush=True,
    )
    if run["log"]:
        print(f"    consumer stderr: {' | '.join(run['log'][:5])[:1000]}")
    return run


def reference_run(redis_server, stream, train_path, scratch, args):
    out = scratch / "reference.json"
    command = [sys.executable, str(BENCHMARKS / "_reference_stream_consumer.py")] + [
        "--source",
        redis_server.url(stream),
        "--train",
        str(train_path),
        "--db",
        str(scratch / "reference.db"),
        "--messages",
        str(args.reference_messages),
        "--seconds",
        str(args.reference_seconds),
        "--json",
        str(out),
    ]
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    cpu0 = children_cpu()
    proc = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=args.timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the reference consumer exited with {proc.returncode}: "
            f"{proc.stdout[-1500:]} {proc.stderr[-3000:]}"
        )
    result = json.loads(out.read_text())
    result["cpu_s_with_fit"] = children_cpu() - cpu0
    print(
        f"  fitted in {result['fit_s']:.1f} s; {result['processed']:,} messages in "
        f"{result['seconds']:.1f} s ({result['transactions_per_s']:,.1f}/s, stopped by "
        f"{result['stopped_by']}); per message p50 {result['per_message_ms']['p50']:.1f} ms, "
        f"p99 {result['per_message_ms']['p99']:.1f} ms",
        flush=True,
    )
    return result


# -- the report -----------------------------------------------------------------


def check(ok, text):
    print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return {"target": text, "pass": bool(ok)}


def table(report):
    thr, lat, ref = report["throughput"], report["latency"], report["reference"]
    med = thr["median"]
    ref_rate = ref["transactions_per_s"]

    def ratio(rate):
        return f"{rate / ref_rate:>9,.0f} x" if ref_rate else f"{'-':>11}"

    def per_cpu(value):
        return f"{value:>12,.0f}" if value else f"{'-':>12}"

    print(
        f"\n{report['data']['stream_rows']:,} transactions on {PARTITIONS} partitions, one consumer"
        f" (fraudcore: median of {len(thr['runs'])})"
    )
    print(f"{'consumer':<44}{'trans./s':>12}{'/CPU-s':>12}{'vs reference':>13}")
    rows = [
        (
            "fraudcore stream, end-to-end (headline)",
            med["end_to_end_transactions_per_s"],
            med["transactions_per_cpu_s"],
        ),
        (
            "fraudcore stream, first delivery to last ack",
            med["watched_transactions_per_s"],
            None,
        ),
        ("fraudcore stream, busy (in batches)", med["busy_transactions_per_s"], None),
    ]
    for label, rate, cpu_rate in rows:
        print(f"{label:<44}{rate:>12,.0f}{per_cpu(cpu_rate)}{ratio(rate)}")
    ref_per_cpu = ref["processed"] / ref["cpu_s"] if ref.get("cpu_s") else None
    print(
        f"{'reference (pandas + scikit-learn per msg)':<44}{ref_rate:>12,.1f}"
        f"{per_cpu(ref_per_cpu)}{'1 x':>13}"
    )
    print(
        f"\nlatency, event to stored alert, at {lat['rate']:,.0f} transactions/s for "
        f"{lat['replay_s']:.0f} s ({lat['n']:,} messages, {lat['batches']:,} batches): "
        f"p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
    )
    print(
        "(end-to-end: scored / (elapsed - the 1 s idle tail), from the consumer's start to its "
        "last batch and its stop (snapshot); first delivery to last ack: seen from Redis; busy: "
        "scored / the seconds in batches; /CPU-s: per second of the consumer's CPU time, its "
        "start-up (imports, model load) and the reference's fit excluded)"
    )


def targets(report):
    med = report["throughput"]["median"]
    lat, ref = report["latency"], report["reference"]
    rate = med["end_to_end_transactions_per_s"]
    print("\nTargets")
    out = [
        check(
            rate >= TARGET_RATE,
            f"end-to-end {rate:,.0f} transactions/s per consumer >= {TARGET_RATE:,}",
        ),
        check(
            lat["p99_ms"] is not None and lat["p99_ms"] <= TARGET_P99_MS,
            f"latency p99 {lat['p99_ms']:.1f} ms at {lat['rate']:,.0f}/s <= {TARGET_P99_MS:.0f} ms",
        ),
    ]
    ratio = rate / ref["transactions_per_s"] if ref["transactions_per_s"] else float("inf")
    out.append(
        check(
            ratio >= TARGET_RATIO,
            f"{ratio:,.0f} x the reference consumer's transactions/s >= {TARGET_RATIO:.0f}",
        )
    )
    return out


def main():
    args = parse_args()
    from _brokers import RedisServer, find_redis

    binary = find_redis()
    if binary is None:
        sys.exit("redis-server not found: apt-get install redis-server")
    import redis

    import fraudcore
    from fraudcore import Schema
    from fraudcore.stream.replaying import stream_pairs

    schema = Schema.transactions()
    train, stream = workload(args)
    print(
        f"fraudcore {fraudcore.__version__}, {machine()['cpus']} cores; {args.transactions:,} "
        f"transactions of {args.customers:,} customers: {len(train):,} train, "
        f"{len(stream):,} on the stream",
        flush=True,
    )
    report = {
        "benchmark": "stream",
        "machine": machine(),
        "fraudcore": fraudcore.__version__,
        "args": {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()},
        "data": {
            "transactions": args.transactions,
            "customers": args.customers,
            "seed": args.seed,
            "train_rows": len(train),
            "stream_rows": len(stream),
            "partitions": PARTITIONS,
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        scratch = pathlib.Path(tmp)
        model = scratch / "model.fc"
        report["model"] = fit_model(train, model)
        print(
            f"fraudcore model: {' + '.join(report['model']['detectors'])} "
            f"(weights {report['model']['weights']}), fitted in {report['model']['fit_s']:.1f} s",
            flush=True,
        )
        train_path = scratch / "train.pkl"
        train.to_pickle(train_path)
        pairs = stream_pairs(stream, schema)
        latency_rows = min(len(stream), int(round(args.rate * args.latency_seconds)))
        latency_pairs = stream_pairs(stream.iloc[:latency_rows], schema)
        server = RedisServer(binary).start()
        try:
            client = redis.Redis(host="127.0.0.1", port=server.port)
            print(f"redis-server on 127.0.0.1:{server.port}", flush=True)
            print("throughput: the stream filled first, then the consumer", flush=True)
            runs = []
            for r in range(args.repeats):
                if r:
                    delete_stream(client, f"tx-{r - 1}")
                runs.append(throughput_run(server, pairs, model, scratch, r, args.timeout))
            keys = (
                "busy_transactions_per_s",
                "end_to_end_transactions_per_s",
                "watched_transactions_per_s",
                "transactions_per_cpu_s",
                "cores",
            )
            report["throughput"] = {
                "runs": runs,
                "median": {k: statistics.median(run[k] or 0.0 for run in runs) for k in keys},
            }
            print(f"latency: the consumer first, then {args.rate:,.0f} transactions/s", flush=True)
            report["latency"] = latency_run(
                server, latency_pairs, model, scratch, args.rate, args.timeout
            )
            delete_stream(client, "latency")
            print("reference consumer, on the last throughput run's stream", flush=True)
            report["reference"] = reference_run(
                server, runs[-1]["stream"], train_path, scratch, args
            )
            client.close()
        finally:
            server.stop()
        report["redis_stopped"] = server.process.poll() is not None
    med = report["throughput"]["median"]
    ref_rate = report["reference"]["transactions_per_s"]
    report["ratios"] = {
        "end_to_end": med["end_to_end_transactions_per_s"] / ref_rate if ref_rate else None,
        "busy": med["busy_transactions_per_s"] / ref_rate if ref_rate else None,
    }
    table(report)
    report["targets"] = targets(report)
    write_json(args.json, report)


if __name__ == "__main__":
    main()
