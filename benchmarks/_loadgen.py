"""An HTTP/1.1 load generator for the service benchmark, and a trivial server
that measures its ceiling.

:func:`run_load` opens one keep-alive connection per request list, on uvloop,
and sends each list's pre-encoded requests in order, one at a time (no
pipelining): a connection writes its next request only once the previous
response has been read to its last byte. Each request is timed from its
write to its response's last byte. A run ends when every list is sent or,
once ``seconds`` have passed, when each connection's request in flight is
answered; a hard ``timeout`` later the connections still waiting are closed
and their requests count as failures. A connection the server closes is
reopened and goes on with its next request (the one in flight fails).

Responses are read with ``Content-Length`` or chunked transfer encoding;
only the status line is checked during the run, and each connection keeps
its last 200 body and its first other body for the caller to inspect.

``python _loadgen.py --trivial-server --port P`` answers every request on
127.0.0.1:P with a fixed 200 ``{}`` (a raw uvloop protocol, no framework):
what the generator reaches against it is the generator's own ceiling.
"""

import argparse
import asyncio
import resource
import time

import numpy as np
import uvloop

_HEADER_END = b"\r\n\r\n"


class _Response:
    """Incremental parser of one HTTP/1.1 response (status, headers, body)."""

    def __init__(self):
        self.status = None
        self.body = None
        self.closes = False  # the server said Connection: close
        self._length = None  # body bytes expected; None: chunked
        self._body_start = 0

    def feed(self, buf):
        """Parse what `buf` holds; -> bytes consumed once complete, else 0."""
        if self.status is None:
            end = buf.find(_HEADER_END)
            if end < 0:
                return 0
            head = bytes(buf[:end]).lower()
            self.status = int(head[9:12])
            self._body_start = end + 4
            self.closes = b"\r\nconnection: close" in head
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                self._length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            elif b"transfer-encoding: chunked" not in head:
                self._length = 0  # no body (HTTP/1.1 responses we get always say)
        if self._length is not None:
            stop = self._body_start + self._length
            if len(buf) < stop:
                return 0
            self.body = bytes(buf[self._body_start : stop])
            return stop
        return self._feed_chunks(buf)

    def _feed_chunks(self, buf):
        at, parts = self._body_start, []
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                return 0
            size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
            data_start = line_end + 2
            if size == 0:
                if len(buf) < data_start + 2:
                    return 0
                self.body = b"".join(parts)
                return data_start + 2  # no trailers from the servers we measure
            if len(buf) < data_start + size + 2:
                return 0
            parts.append(bytes(buf[data_start : data_start + size]))
            at = data_start + size + 2


class _Connection(asyncio.Protocol):
    """Sends one list of requests on one connection, one at a time."""

    def __init__(self, load, requests, start):
        self.load, self.requests, self.next = load, requests, start
        self.transport, self.buf, self.response, self.sent_at = None, bytearray(), None, 0
        self.finished = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self._send()

    def _send(self):
        if self.next >= len(self.requests) or time.perf_counter() >= self.load.deadline:
            self.transport.close()
            return
        self.response = _Response()
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.requests[self.next])

    def data_received(self, data):
        self.buf += data
        while self.response is not None:
            used = self.response.feed(self.buf)
            if not used:
                return
            del self.buf[:used]
            self.load.record(self.response, time.perf_counter_ns() - self.sent_at)
            self.next += 1
            closes, self.response = self.response.closes, None
            if closes:
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc):
        if self.response is not None:  # closed with a request in flight
            self.load.errors.append(f"connection closed mid-request: {exc or 'by the server'}")
            self.next += 1
            self.response = None
        if not self.finished.done():
            self.finished.set_result(self.next)


class _Load:
    """What one run records, shared by its connections."""

    def __init__(self, seconds):
        self.deadline = time.perf_counter() + seconds
        self.latencies_ns, self.statuses, self.errors = [], {}, []
        self.last_ok_body, self.first_failure = None, None
        self.last_done = None

    def record(self, response, latency_ns):
        self.latencies_ns.append(latency_ns)
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        self.last_done = time.perf_counter()
        if response.status == 200:
            self.last_ok_body = response.body
        elif self.first_failure is None:
            self.first_failure = f"HTTP {response.status}: {response.body[:300]!r}"


async def _drive(load, port, requests):
    """One connection's whole list, reconnecting when the server closes it."""
    loop, position = asyncio.get_running_loop(), 0
    while position < len(requests) and time.perf_counter() < load.deadline:
        connection = None
        try:
            _, connection = await loop.create_connection(
                lambda at=position: _Connection(load, requests, at), "127.0.0.1", port
            )
            position = await connection.finished
        except asyncio.CancelledError:
            if connection is not None and connection.response is not None:
                load.errors.append("no response before the run's timeout")
            if connection is not None and connection.transport is not None:
                connection.transport.abort()
            raise
        except OSError as exc:
            load.errors.append(f"connect failed: {exc}")
            position += 1


async def _run(port, request_lists, seconds, timeout):
    load = _Load(seconds)
    start = time.perf_counter()
    tasks = [asyncio.ensure_future(_drive(load, port, r)) for r in request_lists if r]
    done, pending = await asyncio.wait(tasks, timeout=seconds + timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()
    end = load.last_done if load.last_done is not None else time.perf_counter()
    return load, end - start


def run_load(port, request_lists, *, seconds, timeout=60.0, items_per_request=1):
    """Send every list in `request_lists` on its own connection to 127.0.0.1:`port`.

    Parameters
    ----------
    port : int
    request_lists : list of list of bytes
        Whole HTTP/1.1 requests, pre-encoded; one list per connection.
    seconds : float
        No request is started after this many seconds.
    timeout : float
        Grace after `seconds` for the requests in flight.
    items_per_request : int
        Transactions per request, for ``items_per_s``.

    Returns
    -------
    dict
        ``requests`` answered, ``ok`` (HTTP 200), ``failures`` (every other
        status, closed connections and timeouts), ``statuses``, ``errors``
        (the first few), ``seconds`` (first write to last response),
        ``requests_per_s``, ``items_per_s``, ``p50_ms`` / ``p99_ms`` /
        ``max_ms`` latencies, ``client_cpu`` (this process's CPU seconds per
        wall second: the generator's own load), ``last_ok_body`` and
        ``first_failure``.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    load, elapsed = uvloop.run(_run(port, request_lists, seconds, timeout))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies = np.asarray(load.latencies_ns, dtype=np.float64) / 1e6
    ok = load.statuses.get(200, 0)
    failures = len(latencies) - ok + len(load.errors)
    return {
        "requests": len(latencies),
        "ok": ok,
        "failures": failures,
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "errors": load.errors[:5],
        "seconds": elapsed,
        "requests_per_s": ok / elapsed if elapsed > 0 else 0.0,
        "items_per_s": ok * items_per_request / elapsed if elapsed > 0 else 0.0,
        "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "max_ms": float(latencies.max()) if len(latencies) else None,
        "client_cpu": (usage.ru_utime + usage.ru_stime - cpu_before) / elapsed
        if elapsed > 0
        else 0.0,
        "last_ok_body": load.last_ok_body,
        "first_failure": load.first_failure,
    }


def encode_request(method, path, body=b"", headers=()):
    """One whole HTTP/1.1 keep-alive request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class _Trivial(asyncio.Protocol):
    _ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    def connection_made(self, transport):
        self.transport, self.buf = transport, bytearray()

    def data_received(self, data):
        # Requests without a body (GET): each ends at its blank line.
        self.buf += data
        while (end := self.buf.find(_HEADER_END)) >= 0:
            del self.buf[: end + 4]
            self.transport.write(self._ANSWER)


async def _serve_trivial(port):
    server = await asyncio.get_running_loop().create_server(_Trivial, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description="The load generator's trivial server.")
    parser.add_argument("--trivial-server", action="store_true", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(_serve_trivial(args.port))


if __name__ == "__main__":
    main()
