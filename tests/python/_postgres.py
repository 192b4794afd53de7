"""A throwaway PostgreSQL server for the tests and the store benchmark.

:func:`find_binaries` looks for ``initdb`` and ``pg_ctl`` in
``/usr/lib/postgresql/<version>/bin`` (Debian's layout, newest version
first), then on PATH. :class:`PostgresServer` initdb's a cluster into a new
temporary directory, starts it listening on 127.0.0.1 only, on a free port,
with its unix socket inside that directory, and on :meth:`stop` stops it
and deletes the directory. PostgreSQL refuses to run as root, so as root
the directory is handed to the ``postgres`` OS user and the binaries run as
that user (``runuser``); otherwise they run as the current user.

``durable=False`` (the tests) turns fsync off: a crash of the machine may
lose the cluster, which is thrown away anyway. The benchmark keeps
PostgreSQL's defaults.
"""

import glob
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import time


def find_binaries():
    """The directory holding initdb and pg_ctl, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) for x in pathlib.Path(p).parent.name.split(".") if x.isdigit()],
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(pathlib.Path(os.path.realpath(on_path)).parent))
    for folder in candidates:
        if all(os.access(os.path.join(folder, name), os.X_OK) for name in ("initdb", "pg_ctl")):
            return folder
    return None


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A PostgreSQL cluster of our own; ``url(database)`` for the store."""

    def __init__(self, bin_dir, *, durable=False):
        self.bin_dir = bin_dir
        self.durable = durable
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="fraudcore-pg-"))
        self.data = self.root / "data"
        self.port = None
        self._user = None
        self._databases = 0
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)  # KeyError: no postgres user to run as
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, name, *args):
        command = [os.path.join(self.bin_dir, name), *args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def start(self):
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=200",
        ]
        if not self.durable:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    " ".join([f"-p {self.port}", *settings]),
                    "start",
                )
                return self
            except RuntimeError:
                if attempt == 2:
                    log = self.root / "server.log"
                    raise RuntimeError(
                        f"PostgreSQL did not start:\n{log.read_text() if log.exists() else ''}"
                    ) from None
                time.sleep(0.5)
        return self

    def url(self, database="postgres"):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement):
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(statement)

    def create_database(self):
        """A new empty database; its URL."""
        self._databases += 1
        name = f"fraudcore_{os.getpid()}_{self._databases}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url):
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self):
        try:
            if self.data.exists() and self.port is not None:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
