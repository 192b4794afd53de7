"""fraudcore's AutoEncoder side by side with PyTorch and PyOD's AutoEncoder.

Run from the repository root after ``pip install ".[bench]"`` (which pins
the CPU build torch==2.13.0 and installs PyOD)::

    python benchmarks/bench_autoencoder.py [--epochs 5] [--json out.json]

What is measured, every tool on all cores:

* training time per epoch on 100,000 x 18 float32 standardised rows
  (make_anomalies), network 18-64-32-64-18 with ReLU, Adam (lr 1e-3), batch
  256, MSE, no dropout or weight decay, the same for fraudcore and a plain
  PyTorch loop: the median over two runs of --epochs epochs each, the tools
  alternating run by run (fraudcore's epochs timed by its per-epoch
  callback, the gaps between calls);
* scoring 100,000 rows (per-row mean squared reconstruction error), median
  of --repeats calls;
* ROC-AUC on the ADBench files with at most --max-rows rows (default
  ../shared/data/adbench, skipped when absent), mean over --seeds seeds:
  fraudcore's AutoEncoder at its defaults against PyOD's at its defaults.

Ratios are the reference's time over fraudcore's: above 1 means fraudcore is
faster.
"""

import argparse
import os
import pathlib
import statistics
import time
import warnings

import numpy as np
from _common import machine, timed, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_ADBENCH = ROOT.parent / "shared" / "data" / "adbench"
ROWS, FEATURES, BATCH, LR = 100_000, 18, 256, 1e-3


def standardised_data():
    from fraudcore.datasets import make_anomalies

    X, _ = make_anomalies(ROWS, FEATURES, random_state=0)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32)


def torch_model(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(FEATURES, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 64),
        nn.ReLU(),
        nn.Linear(64, FEATURES),
    )


def measure_training(X, epochs):
    import torch

    from fraudcore import AutoEncoder

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    Xt = torch.from_numpy(X)
    net = torch_model(torch)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.MSELoss()

    def torch_epoch():
        order = torch.randperm(len(Xt))
        for start in range(0, len(Xt), BATCH):
            batch = Xt[order[start : start + BATCH]]
            optimizer.zero_grad()
            loss_fn(net(batch), batch).backward()
            optimizer.step()

    # fraudcore's epochs are timed by its per-epoch callback inside one fit
    # (the gaps between calls); the tools alternate fit by fit.
    stamps = []
    model = AutoEncoder(
        epochs=epochs,
        batch_size=BATCH,
        learning_rate=LR,
        dropout=0.0,
        l2=0.0,
        validation_fraction=0.0,
        standardize=False,
        n_jobs=-1,
        random_state=0,
        callback=lambda *a: stamps.append(time.perf_counter()),
    )
    times = {"fraudcore": [], "pytorch": []}
    for _ in range(2):
        stamps.clear()
        time.sleep(0.25)
        stamps.append(time.perf_counter())
        model.fit(X)
        times["fraudcore"] += list(np.diff(stamps))
        for _ in range(epochs):
            t, _ = timed(torch_epoch)
            times["pytorch"].append(t)

    def torch_score():
        with torch.no_grad():
            return ((net(Xt) - Xt) ** 2).mean(dim=1).numpy()

    return times, model, torch_score


def measure_scoring(model, torch_score, X, repeats):
    times = {"fraudcore": [], "pytorch": []}
    for _ in range(repeats):
        t, _ = timed(lambda: model.score_samples(X))
        times["fraudcore"].append(t)
        t, _ = timed(torch_score)
        times["pytorch"].append(t)
    return times


def measure_adbench(folder, max_rows, seeds):
    from pyod.models.auto_encoder import AutoEncoder as PyODAutoEncoder
    from sklearn.metrics import roc_auc_score

    from fraudcore import AutoEncoder

    files = sorted(folder.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    out = {}
    print(f"  {'file':<22}{'rows':>8}{'fraudcore':>11}{'PyOD':>9}{'fc s':>8}{'PyOD s':>8}")
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            if len(data["y"]) > max_rows:
                continue
            X = np.ascontiguousarray(data["X"], dtype=np.float64)
            y = data["y"].astype(int)
        row = {"rows": X.shape[0], "fraudcore": [], "pyod": [], "fraudcore_s": 0.0, "pyod_s": 0.0}
        for seed in range(seeds):
            start = time.perf_counter()
            scores = -AutoEncoder(random_state=seed, n_jobs=-1).fit(X).score_samples(X)
            row["fraudcore_s"] += time.perf_counter() - start
            row["fraudcore"].append(float(roc_auc_score(y, scores)))
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = PyODAutoEncoder(random_state=seed, verbose=0)
                reference.fit(X)
            row["pyod_s"] += time.perf_counter() - start
            row["pyod"].append(float(roc_auc_score(y, reference.decision_scores_)))
        out[path.stem] = row
        print(
            f"  {path.stem:<22}{X.shape[0]:>8}{np.mean(row['fraudcore']):>11.4f}"
            f"{np.mean(row['pyod']):>9.4f}{row['fraudcore_s']:>8.1f}{row['pyod_s']:>8.1f}",
            flush=True,
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--adbench", type=pathlib.Path, default=DEFAULT_ADBENCH)
    parser.add_argument(
        "--json", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "autoencoder.json"
    )
    args = parser.parse_args()

    import torch

    import fraudcore

    X = standardised_data()
    print(
        f"AutoEncoder 18-64-32-64-18 ReLU, Adam lr {LR}, batch {BATCH}, {ROWS:,} x {FEATURES} "
        f"float32, {os.cpu_count()} cores, fraudcore {fraudcore.__version__}, torch {torch.__version__}"
    )
    train, model, torch_score = measure_training(X, args.epochs)
    score = measure_scoring(model, torch_score, X, args.repeats)
    med = {
        k: {name: statistics.median(v) for name, v in d.items()}
        for k, d in (("epoch_s", train), ("score_s", score))
    }
    print(f"\n{'':<22}{'fraudcore':>11}{'PyTorch':>10}{'x':>7}")
    for key, label in (("epoch_s", "training s / epoch"), ("score_s", f"scoring {ROWS:,} rows s")):
        fc, pt = med[key]["fraudcore"], med[key]["pytorch"]
        print(f"{label:<22}{fc:>11.4f}{pt:>10.4f}{pt / fc:>7.1f}")
    print(
        f"(medians of 2 x {args.epochs} epochs, tools alternating, and {args.repeats} "
        "interleaved scoring calls)"
    )

    adbench = None
    if args.adbench.is_dir():
        print(
            f"\nROC-AUC on ADBench files of at most {args.max_rows:,} rows, each tool at its "
            f"defaults, mean of {args.seeds} seeds:"
        )
        adbench = measure_adbench(args.adbench, args.max_rows, args.seeds)
        for name in ("fraudcore", "pyod"):
            print(f"  mean {name}: {np.mean([np.mean(r[name]) for r in adbench.values()]):.4f}")
    else:
        print(f"ADBench folder {args.adbench} not found: skipped")

    write_json(
        args.json,
        {
            "benchmark": "autoencoder",
            "machine": machine(),
            "params": vars(args) | {"adbench": str(args.adbench), "json": str(args.json)},
            "training_s": train,
            "scoring_s": score,
            "medians": med,
            "adbench_roc_auc": adbench,
        },
    )


if __name__ == "__main__":
    main()
