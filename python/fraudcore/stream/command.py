"""``fraudcore stream`` and ``fraudcore replay``: the stream's command line.

Imported only when one of them runs, so the rest of the command line works
without the ``stream`` extra.
"""

import json
import logging
import signal
import sys
import time

STREAM_DESCRIPTION = (
    "Consume transactions from a Redis stream or a Kafka topic as one consumer of a group, "
    "score them with each customer's history and store them (and their alerts) in the "
    "alert store; acknowledged only once stored. SIGTERM or Ctrl-C stops after the current "
    "batch. Needs fraudcore[stream]."
)


def _missing_extra(command, exc):
    """The ImportError to raise when ``command`` cannot import its dependencies."""
    return ImportError(
        f"fraudcore {command} needs the stream extra ({exc}): pip install 'fraudcore[stream]'"
    )


def run_stream(args, out):
    try:
        from fraudcore.service.app import ServedModel
        from fraudcore.service.store import AlertStore
        from fraudcore.stream.consumer import StreamConsumer
        from fraudcore.stream.urls import open_source
    except ImportError as exc:
        raise _missing_extra("stream", exc) from None

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    served = ServedModel.from_file(args.model)
    source = open_source(
        args.source,
        args.group,
        args.consumer,
        partitions=args.partitions,
        lease_ms=args.lease_ms,
    )
    with AlertStore(args.db) as store:
        consumer = StreamConsumer(
            source,
            served,
            store,
            max_batch=args.max_batch,
            max_deliveries=args.max_deliveries,
        )
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: consumer.stop())
        print(
            f"fraudcore stream: {args.source} (group {args.group}) -> {args.db}, "
            f"model {served.version}",
            file=out,
        )
        out.flush()
        terminal = sys.stderr.isatty() and not args.quiet

        def report(stats):
            if terminal:
                sys.stderr.write("\r\033[K" + stats.line())
                sys.stderr.flush()
            else:
                logging.getLogger("fraudcore.stream").info(stats.line())

        stats = consumer.run(
            stop_when_idle=args.stop_when_idle,
            report=report,
            report_every=0.5 if terminal else args.log_every,
        )
        if terminal:
            sys.stderr.write("\n")
    print(f"stopped: {stats.line()}", file=out)
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(stats.as_dict(), f, indent=2)
    return 0


def run_replay(args, out):
    try:
        from fraudcore.stream.replaying import replay, stream_pairs
        from fraudcore.stream.urls import open_sink
    except ImportError as exc:
        raise _missing_extra("replay", exc) from None

    frame, schema = _replay_frame(args, out)
    if args.limit is not None:
        frame = frame.iloc[: args.limit]
    pairs = stream_pairs(frame, schema)
    sink = open_sink(args.to, partitions=args.partitions)
    terminal = sys.stderr.isatty() and not args.quiet
    last = [0.0]

    def progress(sent):
        now = time.monotonic()
        if terminal and (now - last[0] > 0.5 or sent == len(pairs)):
            last[0] = now
            sys.stderr.write(f"\r{sent:,} / {len(pairs):,} sent")
            sys.stderr.flush()

    seconds = replay(pairs, sink, rate=args.rate, progress=progress)
    if terminal:
        sys.stderr.write("\n")
    rate = len(pairs) / seconds if seconds > 0 else float("inf")
    print(
        f"put {len(pairs):,} transactions on {args.to} in {seconds:.1f} s ({rate:,.0f}/s)",
        file=out,
    )
    return 0


def _replay_frame(args, out):
    from fraudcore import Schema

    if args.data == "generated":
        from fraudcore.datasets import make_transactions

        frame = make_transactions(
            n_customers=max(50, args.rows // 40), n_transactions=args.rows, seed=args.seed
        )
        return frame, Schema.transactions()
    from fraudcore.cli import _read

    frame, schema = _read(args.data, args.format, args, out)
    if schema is None:
        raise ValueError(
            "give --format (transactions, online_retail, fraud_data, creditcard) for "
            f"{args.data}, so the customer and time columns are known"
        )
    return frame, schema


def add_parsers(sub, common_arguments):
    from fraudcore.cli import FORMATS

    stream = sub.add_parser(
        "stream",
        help="score a Redis stream or Kafka topic into the alert store",
        description=STREAM_DESCRIPTION,
    )
    stream.add_argument(
        "--source",
        required=True,
        help="redis://HOST:PORT/STREAM or kafka://HOST:PORT/TOPIC",
    )
    stream.add_argument("--group", required=True, help="the consumer group")
    stream.add_argument("--model", required=True, help="a model file written by fraudcore train")
    stream.add_argument(
        "--db",
        default="sqlite:///fraudcore.db",
        help="the alert store: sqlite:///PATH (default sqlite:///fraudcore.db) or "
        "postgresql://USER:PASSWORD@HOST/DB",
    )
    stream.add_argument(
        "--consumer",
        help="this consumer's name, unique among the group's running consumers "
        "(default: host-pid; a Redis consumer restarted under its name keeps its partitions)",
    )
    stream.add_argument(
        "--partitions",
        type=int,
        help="Redis: the stream's partition count when none is recorded yet (default 1)",
    )
    stream.add_argument(
        "--max-batch", type=int, default=2000, help="most messages per batch (default 2000)"
    )
    stream.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="dead-letter a message delivered this often and never acknowledged (default 5)",
    )
    stream.add_argument(
        "--lease-ms",
        type=int,
        default=10_000,
        help="Redis: how long a stopped consumer's partitions wait before another takes them",
    )
    stream.add_argument(
        "--stop-when-idle",
        type=float,
        help="stop after this many seconds without a message (default: run until stopped)",
    )
    stream.add_argument(
        "--stats-json", help="write the final counts, throughput and latency here (JSON)"
    )
    stream.add_argument(
        "--log-every", type=float, default=10.0, help="seconds between log lines (default 10)"
    )
    stream.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    common_arguments(stream, run_stream)

    replay = sub.add_parser(
        "replay",
        help="put a transaction file onto a Redis stream or Kafka topic",
        description="Put transactions on a stream in time order, each customer on its "
        "partition, with event ids from the file (replaying twice stores nothing twice). "
        "Needs fraudcore[stream].",
    )
    replay.add_argument(
        "data", help="a data file (see --format), or 'generated' for generated transactions"
    )
    replay.add_argument(
        "--to", required=True, help="redis://HOST:PORT/STREAM or kafka://HOST:PORT/TOPIC"
    )
    replay.add_argument(
        "--format",
        choices=FORMATS,
        default="transactions",
        help="the file's format, as for fraudcore train (default transactions)",
    )
    replay.add_argument("--rate", type=float, help="transactions per second (default: at once)")
    replay.add_argument("--limit", type=int, help="only the first N transactions (time order)")
    replay.add_argument(
        "--partitions", type=int, help="partitions of a new stream or topic (default 1)"
    )
    replay.add_argument(
        "--rows", type=int, default=100_000, help="generated: how many (default 100000)"
    )
    replay.add_argument("--seed", type=int, default=0, help="generated: the seed (default 0)")
    common_arguments(replay, run_replay)
