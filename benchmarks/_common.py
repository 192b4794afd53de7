"""Measuring helpers shared by the benchmark scripts.

How we measure: every tool on all cores; each timing is the median of
several runs, the tools interleaved run by run so background load on a
shared machine hits them alike, with a 0.25 s pause before each timed call so
one tool's spinning OpenMP workers do not slow the next. Peak memory is
measured in a fresh subprocess per tool.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def timed(fn):
    """(seconds, result) of fn(), after letting other threads go idle."""
    time.sleep(0.25)
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved_medians(tasks, repeats):
    """Run every task once per round, `repeats` rounds; name -> median s.

    tasks maps a name to a function of the round number; the last result of
    each is returned too.
    """
    times = {name: [] for name in tasks}
    results = {}
    for r in range(repeats):
        for name, task in tasks.items():
            t, results[name] = timed(lambda task=task, r=r: task(r))
            times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}, times, results


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def report_peak_memory(work):
    """Run work() and print the growth of the resident set's high-water mark
    over the current resident set, in MB, as JSON (child side).

    The high-water mark is reset first (Linux's /proc/self/clear_refs, value
    5), so only what work() allocates counts.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base, read_peak = _rss_kb("VmRSS"), lambda: _rss_kb("VmHWM")
    except OSError:  # not Linux: fall back to the lifetime high-water mark
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        read_peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    work()
    print(json.dumps({"peak_mb": (read_peak() - base) / 1024.0}))


def child_peak_memory(script, args):
    """Run `script args...` in a subprocess (which calls report_peak_memory)
    and return its peak MB."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


def machine():
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_json(path, report):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"JSON written to {path}")
