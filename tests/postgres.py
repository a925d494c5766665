"""A throwaway PostgreSQL server for the test session.

Debian's ``postgresql`` package ships the server binaries under
``/usr/lib/postgresql/<major>/bin``; this module runs them on a private data
directory, a free loopback port and a socket folder of its own, so it never
touches a cluster the machine may already run. PostgreSQL refuses to run as
root, so under root ``initdb`` and ``pg_ctl`` run as the ``postgres`` user.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg

POSTGRES_LIB = Path("/usr/lib/postgresql")
DATABASE = "flows_test"
SUPERUSER = "postgres"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
}


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be run here: binaries or the ``postgres`` user are missing."""


class PostgresServer:
    """A running server; :meth:`stop` shuts it down and deletes its files."""

    def __init__(self, bin_dir: Path, base_dir: Path, port: int, run_as: list[str]) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_file = base_dir / "postgres.log"
        self.port = port
        self.url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
        self._run_as = run_as
        self._stopped = False

    def stop(self) -> None:
        """Stop the server, make sure its process is gone, and delete its directory."""
        if self._stopped:
            return
        self._stopped = True
        pid = self._postmaster_pid()
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", check=False)
        if pid is not None and not _wait_for_exit(pid, timeout=10):
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, timeout=5)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            **SERVER_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60"
        )
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [*self._run_as, str(self.bin_dir / program), *args]
        # The caller's working directory may be closed to the postgres user.
        result = subprocess.run(
            command, cwd=self.base_dir, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            msg = (
                f"{' '.join(command)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{log}"
            )
            raise RuntimeError(msg)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None


def start_postgres(tmp_dir: Path) -> PostgresServer:
    """Start a server with an empty ``flows_test`` database and return it.

    Files go in a new folder under ``tmp_dir``; under root they go under the system
    temporary directory instead, because pytest's temporary folders are private to
    root and the ``postgres`` user could not enter them. Raises
    :exc:`PostgresUnavailable` when the server cannot be run on this machine.
    """
    bin_dir = find_bin_dir()
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresUnavailable(
                "running as root, but there is no 'postgres' user to run the server as;"
                " install the postgresql package"
            ) from None
        base_dir = Path(tempfile.mkdtemp(prefix="flows-pg-"))
        os.chown(base_dir, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", SUPERUSER, "--"]
    else:
        base_dir = Path(tempfile.mkdtemp(prefix="flows-pg-", dir=tmp_dir))
        run_as = []
    server = PostgresServer(bin_dir, base_dir, _free_port(), run_as)
    # Stops the server if the session ends without calling stop().
    atexit.register(server.stop)
    try:
        server._start()
    except BaseException:
        server.stop()
        raise
    return server


def find_bin_dir() -> Path:
    """Return the newest ``/usr/lib/postgresql/<major>/bin`` that has the server programs."""
    candidates = []
    for bin_dir in POSTGRES_LIB.glob("*/bin"):
        major = bin_dir.parent.name
        if major.isdigit() and all((bin_dir / p).is_file() for p in SERVER_PROGRAMS):
            candidates.append((int(major), bin_dir))
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries under {POSTGRES_LIB}/*/bin;"
            " install them with 'apt-get install postgresql'"
        )
    return max(candidates)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_running(pid):
            return True
        time.sleep(0.05)
    return False


def _is_running(pid: int) -> bool:
    # A container's init may never reap the daemonised postmaster, so a zombie counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
