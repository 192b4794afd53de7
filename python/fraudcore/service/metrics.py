"""Prometheus metrics of the service, in the text exposition format.

A pure ASGI middleware (no per-request task or copy of the body) counts
requests by route, method and status and observes their latency in a
histogram; the service adds the scoring counters and the model's identity
when ``/metrics`` is read.
"""

import threading
import time

# Latency buckets (seconds): fine below a millisecond, where /detect lives.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RequestMetrics:
    """Request counters and latency histograms by route."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}  # (path, method, status) -> n
        self._histograms = {}  # path -> [bucket counts..., +Inf count, sum]

    def observe(self, path, method, status, seconds):
        with self._lock:
            key = (path, method, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            h = self._histograms.get(path)
            if h is None:
                h = self._histograms[path] = [0] * (len(BUCKETS) + 1) + [0.0]
            for k, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[k] += 1
            h[len(BUCKETS)] += 1
            h[-1] += seconds

    def render(self):
        lines = [
            "# HELP fraudcore_requests_total HTTP requests by route, method and status.",
            "# TYPE fraudcore_requests_total counter",
        ]
        with self._lock:
            counts = sorted(self._counts.items())
            histograms = sorted((p, list(h)) for p, h in self._histograms.items())
        for (path, method, status), n in counts:
            lines.append(
                f'fraudcore_requests_total{{path="{_label(path)}",method="{method}",'
                f'status="{status}"}} {n}'
            )
        lines += [
            "# HELP fraudcore_request_duration_seconds HTTP request latency by route.",
            "# TYPE fraudcore_request_duration_seconds histogram",
        ]
        for path, h in histograms:
            p = _label(path)
            for bound, n in zip(BUCKETS, h):
                lines.append(
                    f'fraudcore_request_duration_seconds_bucket{{path="{p}",le="{bound}"}} {n}'
                )
            lines.append(
                f'fraudcore_request_duration_seconds_bucket{{path="{p}",le="+Inf"}} {h[len(BUCKETS)]}'
            )
            lines.append(f'fraudcore_request_duration_seconds_sum{{path="{p}"}} {h[-1]:.6f}')
            lines.append(
                f'fraudcore_request_duration_seconds_count{{path="{p}"}} {h[len(BUCKETS)]}'
            )
        return lines


def gauge(name, help_text, value, kind="gauge", labels=None):
    """The lines of one metric with one sample."""
    tags = ""
    if labels:
        tags = "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{tags} {value}"]


def _label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsMiddleware:
    """Times every HTTP request into a RequestMetrics, by matched route."""

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(path, scope["method"], status[0], time.perf_counter() - start)
