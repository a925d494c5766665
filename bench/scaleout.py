"""Benchmark 6: logins per second under gunicorn against one PostgreSQL server.

Three set-ups on the same database: one gunicorn server with 1 worker, one with 2
workers, and two single-worker servers on two ports where every login starts on the
first and finishes on the second (the plan travels in the signed cookie; both share
``SECRET_KEY``). Load comes from a fixed number of client processes on loopback, each
running htmx-style logins (3 requests) for a fixed time; every login must end in
``HX-Redirect: /`` and every tenth is checked to be logged in for real.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from common import (
    LOGIN_SLUG,
    MAIL_BASE_URL,
    PASSWORD,
    PROFILES,
    ROOT,
    create_test_app,
    csrf_on,
    db,
    flows_app,
    median,
)
from postgres import start_postgres

from flask_flows import migrations

STEP = re.compile(r'name="flow_step" type="hidden" value="([^"]*)"')
FLOW = f"/flows/{LOGIN_SLUG}/"


class Client:
    """A cookie-carrying htmx client over http.client (gunicorn's sync workers close
    each connection, so every request opens one)."""

    def __init__(self) -> None:
        self.cookie: str | None = None

    def request(
        self, port: int, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        headers = {"HX-Request": "true"}
        if self.cookie:
            headers["Cookie"] = f"session={self.cookie}"
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            text = response.read().decode()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie" and value.startswith("session="):
                    self.cookie = value.split(";", 1)[0][len("session=") :] or None
            return response.status, dict(response.getheaders()), text
        finally:
            conn.close()


def log_in(start_port: int, finish_port: int, check: bool) -> None:
    """Identification on ``start_port``, password (and login) on ``finish_port``."""
    client = Client()
    _, _, page = client.request(start_port, "GET", FLOW)
    page = _submit(client, start_port, page, uid_field="alice")
    assert 'data-stage-type="password"' in page
    status, headers, _ = _submit_raw(client, finish_port, page, password=PASSWORD)
    assert status == 200 and headers.get("HX-Redirect") == "/", (status, headers)
    if check:
        for port in {start_port, finish_port}:
            assert client.request(port, "GET", "/")[2] == "home: alice"


def _submit(client: Client, port: int, page: str, **fields: str) -> str:
    return _submit_raw(client, port, page, **fields)[2]


def _submit_raw(
    client: Client, port: int, page: str, **fields: str
) -> tuple[int, dict[str, str], str]:
    step = STEP.search(page)
    assert step, "no flow_step on the page"
    form = {"csrf_token": csrf_on(page), "flow_step": step.group(1), **fields}
    return client.request(port, "POST", FLOW, form)


def _load(ports: tuple[int, int], seconds: float, done: Any) -> None:
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        log_in(ports[0], ports[1], check=count % 10 == 0)
        count += 1
    done.put(count)


def logins_per_second(ports: tuple[int, int], clients: int, seconds: float) -> float:
    queue: Any = multiprocessing.get_context("fork").Queue()
    processes = [
        multiprocessing.get_context("fork").Process(target=_load, args=(ports, seconds, queue))
        for _ in range(clients)
    ]
    start = time.monotonic()
    for process in processes:
        process.start()
    total = sum(queue.get(timeout=seconds + 120) for _ in processes)
    elapsed = time.monotonic() - start
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0, f"load process failed with {process.exitcode}"
    assert total > 0, "no login completed"
    return total / elapsed


@contextmanager
def gunicorn(database_url: str, profile: str, workers: int) -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "BENCH_DATABASE_URL": database_url, "BENCH_PROFILE": profile}
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--chdir",
        str(ROOT / "bench"),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    server = subprocess.Popen(command, env=env)  # noqa: S603
    try:
        _wait_until_serving(port, server)
        log_in(port, port, check=True)  # every worker imports and warms up on first use
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def scale_out(workdir: Path, rounds: int, clients: int, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with start_postgres(workdir) as postgres:
        for profile in PROFILES:
            _reset(postgres.url, profile)
            rates: dict[str, list[float]] = {
                "1 worker": [],
                "2 workers": [],
                "2 servers, cross-server logins": [],
            }
            with (
                gunicorn(postgres.url, profile, 1) as one,
                gunicorn(postgres.url, profile, 2) as two,
                gunicorn(postgres.url, profile, 1) as other,
            ):
                log_in(one, other, check=True)  # started on one server, finished on the other
                log_in(other, one, check=True)
                for _ in range(rounds):
                    rates["1 worker"].append(logins_per_second((one, one), clients, seconds))
                    rates["2 workers"].append(logins_per_second((two, two), clients, seconds))
                    rates["2 servers, cross-server logins"].append(
                        logins_per_second((one, other), clients, seconds)
                    )
            medians = {name: median(values) for name, values in rates.items()}
            results[profile] = {
                "logins_per_second": medians,
                "ratio": {name: value / medians["1 worker"] for name, value in medians.items()},
            }
    results["clients"] = clients
    results["seconds"] = seconds
    results["rounds"] = rounds
    return results


def _reset(database_url: str, profile: str) -> None:
    """Empty tables, the login flow and ``alice`` hashed with this profile."""
    old, _ = create_test_app(database_url, TESTING=False, FLOWS_MAIL_BASE_URL=MAIL_BASE_URL)
    with old.app_context():
        migrations.downgrade(db.engine, "base")  # flask-flows' tables and their version
        db.drop_all()
        db.engine.dispose()
    app = flows_app(database_url, PROFILES[profile])
    with app.app_context():
        db.engine.dispose()


def _wait_until_serving(port: int, server: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "gunicorn exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"gunicorn did not listen on {port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
