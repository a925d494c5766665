"""Benchmarks 1, 2, 3 and 5: in one process, through the Flask test client.

1. stage request overhead against a hand-written view of the same form and page;
2. CPU time of a whole login against Flask-Security-Too, cheap and production argon2;
3. logins per second per core against 1 / (one argon2 verification);
5. SQL queries per request with 1, 100 and 1,000 flows in the database.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from common import (
    CHEAP,
    LOGIN_SLUG,
    ONE_PAGE_SLUG,
    ORIGIN,
    PASSKEY_SLUG,
    PASSWORD,
    PROFILES,
    WRONG_PASSWORD,
    CpuTimer,
    FlowBrowser,
    User,
    csrf_on,
    db,
    flows_app,
    flows_state,
    interleaved,
    median,
)
from flask import Flask, render_template, request
from fst_app import EMAIL, fst_app
from passkey_authenticator import SoftAuthenticator
from sqlalchemy import event

from flask_flows import Flow, FlowStageBinding, Stage
from flask_flows.blueprints import install_default_flows
from flask_flows.stages.password import WRONG_CREDENTIALS, PasswordForm

LOGGED_IN = "home: alice"


# -- 1. stage request overhead ------------------------------------------------------------


#: The hand-written view's failure counter.
failures = sa.Table(
    "baseline_failures",
    sa.MetaData(),
    sa.Column("user_id", sa.Integer, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)


def add_baseline_view(app: Flask) -> None:
    """``/baseline/password``: what an app would write by hand for the same step. It
    renders the same template with the same form, validates it (CSRF included), loads
    the user, runs the same argon2 verification on a wrong password and, as ASVS 6.3.1
    asks of any login, counts the failure on the server: the simplest way, one UPDATE of
    a counter, committed."""
    state = flows_state(app)
    with app.app_context():
        flow = state.load_flow(LOGIN_SLUG)
        assert flow is not None
        stage = flow.bindings[1].stage
        page = {
            "flow": flow,
            "layout": "flows/base.html",
            "cancel_url": "/",
            "stage": stage,
            "stage_type": state.stage_type(stage.type),
            "stage_config": state.stage_config(stage),
            "messages": [],
            "history": True,
            "action_url": "/baseline/password",
            "identifier": "alice",
        }
        user_id = db.session.scalar(sa.select(User.id).where(User.username == "alice"))
        failures.create(db.engine)
        db.session.execute(sa.insert(failures).values(user_id=user_id, count=0))
        db.session.commit()

    @app.route("/baseline/password", methods=["GET", "POST"])
    def baseline_password() -> str:
        form = PasswordForm()
        if form.validate_on_submit():
            user = db.session.get(User, user_id)
            if state.hashing.verify(user.password_hash, form.password.data or ""):
                return "logged in"
            db.session.execute(
                sa.update(failures)
                .where(failures.c.user_id == user_id)
                .values(count=failures.c.count + 1)
            )
            db.session.commit()
            form.password.errors = [WRONG_CREDENTIALS]
        form.flow_step.data = request.form.get("flow_step", "")
        return render_template("flows/stages/password.html", form=form, **page)


def stage_overhead(workdir: Path, rounds: int, requests: int) -> dict[str, Any]:
    # Thousands of wrong passwords from one client: with the default limits all but the
    # first few would be refused unjudged. Every POST here is judged and counted (two
    # conditional writes, the cost of a real wrong guess); only the waits are off.
    unlimited = {"FLOWS_THROTTLE_FREE_FAILURES": 10**9, "FLOWS_THROTTLE_ACCOUNT_BURST": 10**9}
    app = flows_app(f"sqlite:///{workdir / 'overhead.sqlite3'}", CHEAP, **unlimited)
    add_baseline_view(app)
    timer = CpuTimer(app)
    browser = FlowBrowser(app.test_client())
    client = browser.client
    browser.start(LOGIN_SLUG)
    browser.step(LOGIN_SLUG, uid_field="alice")
    assert browser.stage_type == "password"
    flows_post = {
        "csrf_token": browser.csrf_token(),
        "flow_step": browser.step_token(),
        "password": WRONG_PASSWORD,
    }
    baseline_post = {**flows_post, "csrf_token": csrf_on(client.get("/baseline/password").text)}

    def repeat(call: Callable[[], Any], expect: str) -> Callable[[], float]:
        def case() -> float:
            timer.take()
            for _ in range(requests):
                response = call()
                assert response.status_code == 200 and expect in response.text
            return timer.take() / requests

        return case

    stage_marker = 'data-stage-type="password"'
    htmx = {"HX-Request": "true"}

    def refused_without_js() -> Any:
        """A plain browser's refused POST: a redirect to the stage's page, then its GET."""
        answer = client.post(f"/flows/{LOGIN_SLUG}/", data=flows_post)
        assert answer.status_code == 303
        return client.get(answer.headers["Location"])

    cases = {
        "flows GET": repeat(lambda: client.get(f"/flows/{LOGIN_SLUG}/"), stage_marker),
        "baseline GET": repeat(lambda: client.get("/baseline/password"), stage_marker),
        "flows POST": repeat(
            lambda: client.post(f"/flows/{LOGIN_SLUG}/", data=flows_post, headers=htmx),
            WRONG_CREDENTIALS,
        ),
        "flows POST no-JS": repeat(refused_without_js, WRONG_CREDENTIALS),
        "baseline POST": repeat(
            lambda: client.post("/baseline/password", data=baseline_post), WRONG_CREDENTIALS
        ),
    }
    for case in cases.values():  # warm up: templates compiled, definition cache filled
        case()
    medians = interleaved(rounds, cases)
    return {
        "seconds": medians,
        "ratio": {
            "GET": medians["flows GET"] / medians["baseline GET"],
            "POST": medians["flows POST"] / medians["baseline POST"],
        },
        #: Two requests (post/redirect/get) against the baseline's one, shown apart.
        "no_js_ratio": medians["flows POST no-JS"] / medians["baseline POST"],
        "rounds": rounds,
        "requests_per_round": requests,
    }


# -- 2. whole login, 3. ceiling ---------------------------------------------------------------


def flows_login(app: Flask, timer: CpuTimer, htmx: bool, one_page: bool = False) -> float:
    """One complete login with a fresh browser, on two pages or (``one_page``) one;
    returns its server-side CPU time."""
    browser = FlowBrowser(app.test_client(), htmx=htmx)
    timer.take()
    if one_page:
        browser.start(ONE_PAGE_SLUG)
        response = browser.step(ONE_PAGE_SLUG, uid_field="alice", password=PASSWORD)
    else:
        browser.start(LOGIN_SLUG)
        browser.step(LOGIN_SLUG, uid_field="alice")
        assert browser.stage_type == "password"
        response = browser.step(LOGIN_SLUG, password=PASSWORD)
    assert browser.redirect_target == "/", response.status
    spent = timer.take()
    timer.recording = False
    assert browser.client.get("/").text == LOGGED_IN
    timer.recording = True
    return spent


PASSKEY_OPTIONS = re.compile(r'data-flows-passkey-options="([^"]*)"')


def add_passkey(app: Flask) -> SoftAuthenticator:
    """A passkey for alice, added through the setup stage as a browser would (once per
    app; the authenticator is the tests' software one)."""
    authenticator = SoftAuthenticator()
    with app.app_context():
        flow = Flow(slug="add-passkey", name="add-passkey", designation="stage_configuration")
        stage = Stage(name="add-passkey-stage", type="authenticator_webauthn", config={})
        flow.bindings.append(FlowStageBinding(stage=stage, order=10))
        db.session.add(flow)
        db.session.commit()
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD, slug=ONE_PAGE_SLUG)
    options = _passkey_options(browser.start("add-passkey").text)
    answer = authenticator.create(options, ORIGIN)
    browser.step("add-passkey", name="Phone", passkey=json.dumps(answer))
    assert len(authenticator.credentials) == 1 and browser.redirect_target == "/"
    return authenticator


def _passkey_options(page: str) -> dict[str, Any]:
    found = PASSKEY_OPTIONS.search(page)
    assert found, "no passkey options on the page"
    return dict(json.loads(html.unescape(found.group(1))))


def passkey_login(
    app: Flask, timer: CpuTimer, authenticator: SoftAuthenticator, htmx: bool
) -> float:
    """One passwordless login with a fresh browser: GET the login page, POST the
    passkey's answer (signed by the client, outside the measured CPU time)."""
    browser = FlowBrowser(app.test_client(), htmx=htmx)
    timer.take()
    page = browser.start(PASSKEY_SLUG).text
    spent = timer.take()
    timer.recording = False
    answer = json.dumps(authenticator.get(_passkey_options(page), ORIGIN))
    timer.recording = True
    timer.take()
    browser.step(PASSKEY_SLUG, passkey=answer)
    assert browser.redirect_target == "/"
    spent += timer.take()
    timer.recording = False
    assert browser.client.get("/").text == LOGGED_IN
    timer.recording = True
    return spent


def fst_login(app: Flask, timer: CpuTimer) -> float:
    client = app.test_client()
    timer.take()
    token = csrf_on(client.get("/login").text)
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    response = client.post("/login", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.status
    spent = timer.take()
    timer.recording = False
    assert client.get("/protected").status_code == 200
    assert app.test_client().get("/protected").status_code != 200
    timer.recording = True
    return spent


def whole_login(workdir: Path, rounds: dict[str, int], logins: dict[str, int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, profile in PROFILES.items():
        ours = flows_app(f"sqlite:///{workdir / f'login-{name}.sqlite3'}", profile)
        peer = fst_app(f"sqlite:///{workdir / f'fst-{name}.sqlite3'}", profile)
        ours_timer, peer_timer = CpuTimer(ours), CpuTimer(peer)
        count = logins[name]

        def per_login(login: Callable[[], float], count: int = count) -> Callable[[], float]:
            return lambda: sum(login() for _ in range(count)) / count

        def ours_login(
            htmx: bool, one_page: bool = False, app: Flask = ours, timer: CpuTimer = ours_timer
        ) -> float:
            return flows_login(app, timer, htmx=htmx, one_page=one_page)

        def peer_login(app: Flask = peer, timer: CpuTimer = peer_timer) -> float:
            return fst_login(app, timer)

        authenticator = add_passkey(ours)

        def ours_passkey(
            app: Flask = ours, timer: CpuTimer = ours_timer, key: SoftAuthenticator = authenticator
        ) -> float:
            return passkey_login(app, timer, key, htmx=True)

        cases = {
            "flows htmx": per_login(lambda: ours_login(True)),
            "flows no-JS": per_login(lambda: ours_login(False)),
            "flows one-page htmx": per_login(lambda: ours_login(True, one_page=True)),
            "flows one-page no-JS": per_login(lambda: ours_login(False, one_page=True)),
            "flows passkey htmx": per_login(ours_passkey),
            "Flask-Security-Too": per_login(peer_login),
        }
        for case in cases.values():
            case()
        medians = interleaved(rounds[name], cases)
        peer_time = medians["Flask-Security-Too"]
        results[name] = {
            "seconds": medians,
            "ratio": {
                "htmx": medians["flows htmx"] / peer_time,
                "no-JS": medians["flows no-JS"] / peer_time,
                "one-page htmx": medians["flows one-page htmx"] / peer_time,
                "one-page no-JS": medians["flows one-page no-JS"] / peer_time,
                "passkey htmx": medians["flows passkey htmx"] / peer_time,
                # A passkey login against the password login on the same page.
                "passkey vs password": medians["flows passkey htmx"]
                / medians["flows one-page htmx"],
            },
            "rounds": rounds[name],
            "logins_per_round": count,
        }
    return results


def argon2_verify_seconds(profile: dict[str, int], rounds: int, verifies: int) -> float:
    hasher = PasswordHasher(**profile)
    stored = hasher.hash(PASSWORD)

    def case() -> float:
        start = time.process_time()
        for _ in range(verifies):
            hasher.verify(stored, PASSWORD)
        return (time.process_time() - start) / verifies

    return median(case() for _ in range(rounds))


def ceiling(login: dict[str, Any], rounds: int, verifies: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, profile in PROFILES.items():
        verify = argon2_verify_seconds(profile, rounds, verifies)
        per_login = login[name]["seconds"]["flows htmx"]
        results[name] = {
            "verify_seconds": verify,
            "login_seconds": per_login,
            "logins_per_core": 1 / per_login,
            "hash_limit_per_core": 1 / verify,
            "share_of_limit": verify / per_login,
        }
    return results


# -- 5. SQL queries per request -----------------------------------------------------------------


DEFAULT_LOGIN_SLUG = "default-authentication-flow"


def queries_per_request(workdir: Path, flow_counts: tuple[int, ...]) -> dict[str, Any]:
    """Statements per request of a login: with ``flow_counts`` flows in the database; with
    the most flows and the flow's revision checked on every request (what each request
    costs once per ``FLOWS_DEFINITION_CHECK_SECONDS``); and through the default login
    flow, which also checks for MFA devices."""
    most = max(flow_counts)
    return {
        "scaling": {str(n): _count_login_queries(workdir, n) for n in flow_counts},
        "every_request": _count_login_queries(workdir, most, FLOWS_DEFINITION_CHECK_SECONDS=0),
        "default_flows": _count_login_queries(workdir, 1, default_flows=True),
    }


def _count_login_queries(
    workdir: Path, flow_count: int, default_flows: bool = False, **config: Any
) -> dict[str, dict[str, int]]:
    """Per step of a login, the statements (``total``) and those that judge a guess
    (``guess``: reading or writing ``flows_reputation``)."""
    name = f"queries-{flow_count}-{int(default_flows)}-{len(config)}.sqlite3"
    app = flows_app(f"sqlite:///{workdir / name}", CHEAP, **config)
    with app.app_context():
        if default_flows:
            install_default_flows(flows_state(app))
        # Other flows of the same designation: the worst case for the default-flow lookup.
        db.session.add_all(
            Flow(slug=f"zz-other-{i:04}", name=f"Other {i}", designation="authentication")
            for i in range(flow_count - 1)
        )
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Flow)) >= flow_count
        engine = db.engine
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    walk = _login_walk(app, DEFAULT_LOGIN_SLUG if default_flows else LOGIN_SLUG)
    walk()  # warm: the first request of a process loads the flow definition
    counts: dict[str, list[tuple[int, int]]] = {}
    for _ in range(3):
        for step, queries in walk(counted).items():
            counts.setdefault(step, []).append(queries)
    event.remove(engine, "before_cursor_execute", count)
    most = {step: max(values) for step, values in counts.items()}
    return {
        "total": {step: total for step, (total, _) in most.items()},
        "guess": {step: guess for step, (_, guess) in most.items()},
    }


def _login_walk(app: Flask, slug: str) -> Callable[..., dict[str, tuple[int, int]]]:
    def walk(counted: list[str] | None = None) -> dict[str, tuple[int, int]]:
        seen: dict[str, tuple[int, int]] = {}
        browser = FlowBrowser(app.test_client())

        def measure(label: str, call: Callable[[], Any]) -> None:
            if counted is not None:
                counted.clear()
            call()
            if counted is not None:
                guess = sum("flows_reputation" in statement for statement in counted)
                seen[label] = (len(counted), guess)

        measure("GET /flows/-/login/ (default flow)", lambda: browser.get("/flows/-/login/"))
        assert browser.redirect_target and browser.redirect_target.startswith(f"/flows/{slug}/")
        measure("GET identification (start)", lambda: browser.start(slug))
        assert browser.last is not None
        if 'name="password"' in browser.last.text:  # one page (the default login flow)
            measure(
                "POST identification + password (wrong)",
                lambda: browser.submit(slug, uid_field="alice", password=WRONG_PASSWORD),
            )
            measure(
                "POST identification + password + login",
                lambda: browser.submit(slug, uid_field="alice", password=PASSWORD),
            )
        else:
            measure("POST identification", lambda: browser.submit(slug, uid_field="alice"))
            measure("GET password", lambda: browser.follow())
            assert browser.stage_type == "password"
            measure("POST password (wrong)", lambda: browser.submit(slug, password=WRONG_PASSWORD))
            measure("POST password + login", lambda: browser.submit(slug, password=PASSWORD))
        assert browser.redirect_target == "/"
        measure("GET / (logged in)", lambda: browser.get("/"))
        assert browser.last is not None and browser.last.text == LOGGED_IN
        return seen

    return walk
