"""What every benchmark shares: the apps under test, CPU timing and the statistics.

The flask-flows app is the one the tests build (``tests/factory.py``); the PostgreSQL
server is the tests' throwaway one (``tests/postgres.py``). In-process figures are
server-side CPU time (:func:`time.process_time`) of the WSGI call, measured by
:class:`CpuTimer`, so the test client's own work is not counted on either side.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from browsing import FlowBrowser  # noqa: E402, F401
from factory import User, create_test_app, db  # noqa: E402, F401
from flask import Flask  # noqa: E402

from flask_flows import Flow, FlowStageBinding, Stage  # noqa: E402
from flask_flows.extension import FlowsState  # noqa: E402

PASSWORD = "correct horse battery"  # noqa: S105
WRONG_PASSWORD = "not the password"  # noqa: S105
SECRET_KEY = "bench-secret-key-shared-by-every-worker"  # noqa: S105
#: Mailed links name this host: outside testing, flask-flows never takes it from a request.
MAIL_BASE_URL = "http://localhost"

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
#: argon2-cffi's defaults (RFC 9106 low-memory profile), flask-flows' defaults too.
PRODUCTION = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}
PROFILES = {"cheap": CHEAP, "production": PRODUCTION}

LOGIN_SLUG = "login"
#: The same login on one page: identification with a ``password_stage`` (the default
#: login flow's shape).
ONE_PAGE_SLUG = "login-one-page"
#: That page with a passkey sign-in too (identification's ``webauthn_stage``), as the
#: default login flow has it.
PASSKEY_SLUG = "login-passkey"
#: The origin of the test client's requests, which passkeys are bound to here.
ORIGIN = "http://localhost"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def argon2_config(profile: dict[str, int]) -> dict[str, int]:
    return {f"FLOWS_ARGON2_{key.upper()}": value for key, value in profile.items()}


def flows_app(database_url: str, profile: dict[str, int], **config: Any) -> Flask:
    """The tests' app with its tables, the two-step login flow (identification → password
    → user_login), the one-page login flow (identification with the password →
    user_login) and the user ``alice``."""
    app, _ = create_test_app(
        database_url,
        TESTING=False,
        SECRET_KEY=SECRET_KEY,
        FLOWS_MAIL_BASE_URL=MAIL_BASE_URL,
        **argon2_config(profile),
        **config,
    )
    with app.app_context():
        state = flows_state(app)
        state.create_tables()
        add_login_flow()
        add_one_page_login_flow()
        add_passkey_login_flow()
        state.user_store.create(username="alice", email="alice@example.com", password=PASSWORD)
        db.session.commit()
    return app


def add_login_flow(slug: str = LOGIN_SLUG) -> None:
    """Like the tests' ``login_flow``; the password stage never cancels, so failing
    POSTs can be repeated."""
    flow = Flow(slug=slug, name=slug, title="Log in", designation="authentication")
    stages = [
        Stage(name=f"{slug}-identification", type="identification", config={}),
        Stage(
            name=f"{slug}-password",
            type="password",
            config={"failed_attempts_before_cancel": 1_000_000_000},
        ),
        Stage(name=f"{slug}-login", type="user_login", config={}),
    ]
    for order, stage in enumerate(stages, start=1):
        flow.bindings.append(FlowStageBinding(stage=stage, order=order * 10))
    db.session.add(flow)
    db.session.commit()


def add_one_page_login_flow(slug: str = ONE_PAGE_SLUG) -> None:
    """identification asking for the password too (``password_stage``), then user_login;
    the password stage it names never cancels either."""
    password = Stage(
        name=f"{slug}-password", type="password", config={"failed_attempts_before_cancel": 10**9}
    )
    identification = Stage(
        name=f"{slug}-identification",
        type="identification",
        config={"password_stage": password.name},
    )
    flow = Flow(slug=slug, name=slug, title="Log in", designation="authentication")
    flow.bindings.append(FlowStageBinding(stage=identification, order=10))
    flow.bindings.append(
        FlowStageBinding(stage=Stage(name=f"{slug}-login", type="user_login", config={}), order=20)
    )
    db.session.add_all([password, flow])
    db.session.commit()


def add_passkey_login_flow(slug: str = PASSKEY_SLUG) -> None:
    """The one-page login with "Sign in with a passkey" (``webauthn_stage``), then the
    second factor it stands in for, then user_login: the default login flow's shape."""
    password = Stage(name=f"{slug}-password", type="password", config={})
    validate = Stage(
        name=f"{slug}-mfa",
        type="authenticator_validate",
        config={"device_classes": ["totp", "static", "webauthn"]},
    )
    identification = Stage(
        name=f"{slug}-identification",
        type="identification",
        config={"password_stage": password.name, "webauthn_stage": validate.name},
    )
    flow = Flow(slug=slug, name=slug, title="Log in", designation="authentication")
    for order, stage in enumerate(
        (identification, validate, Stage(name=f"{slug}-login", type="user_login", config={})),
        start=1,
    ):
        flow.bindings.append(FlowStageBinding(stage=stage, order=order * 10))
    db.session.add_all([password, flow])
    db.session.commit()


def flows_state(app: Flask) -> FlowsState:
    return app.extensions["flows"]  # type: ignore[no-any-return]


def csrf_on(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class CpuTimer:
    """WSGI middleware that records the CPU time of each call while ``recording``."""

    def __init__(self, app: Flask) -> None:
        self.wsgi_app = app.wsgi_app
        self.samples: list[float] = []
        self.recording = True
        app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        start = time.process_time()
        body = b"".join(self.wsgi_app(environ, start_response))
        if self.recording:
            self.samples.append(time.process_time() - start)
        return [body]

    def take(self) -> float:
        """The CPU time recorded since the last call, then start afresh."""
        total = sum(self.samples)
        self.samples.clear()
        return total


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def interleaved(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run every case once per round, in turn, and return each case's median.

    Interleaving means a noisy neighbour slows all cases of a round alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(case())
    return {name: median(values) for name, values in samples.items()}
