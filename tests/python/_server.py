"""``fraudcore serve`` as a real process for the tests that need one."""

import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``fraudcore serve`` in its own process group on a free loopback port."""

    def __init__(self, model, db, tmp_path, extra=()):
        self.port = free_port()
        self.log = open(tmp_path / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fraudcore",
                "serve",
                str(model),
                "--db",
                db,
                "--port",
                str(self.port),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        self.http = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((tmp_path / f"server-{self.port}.log").read_text())
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:  # not listening yet
                time.sleep(0.2)
        self.kill()
        raise TimeoutError("the server did not become healthy in 120 s")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)
        self.http.close()
        self.log.close()
