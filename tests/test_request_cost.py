"""What one flow request costs the database and the cookie, and how cached definitions
stay correct: a change committed in this process is seen by the next request, a change
made elsewhere within ``FLOWS_DEFINITION_CHECK_SECONDS``.

Statement counts are contracts here, not timings: a login must not grow a query per
stage, per flow in the database, or per re-read of an object the request already has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import MakeApp, User, db
from flask import Flask
from sqlalchemy import event

from flask_flows import Flow
from flask_flows import definitions as definitions_module
from flask_flows.blueprints import install_default_flows
from flask_flows.extension import FlowsState

PASSWORD = "correct horse battery"


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def walk_login(browser: FlowBrowser, app: Flask) -> dict[str, list[str]]:
    """One login with a wrong password first; the statements of each request."""
    steps: dict[str, list[str]] = {}

    def step(label: str, call: Callable[[], Any]) -> None:
        with statements(app) as seen:
            call()
        steps[label] = seen

    step("start", lambda: browser.start("login"))
    step("identification", lambda: browser.submit("login", uid_field="alice"))
    if not browser.htmx:
        step("password shown", browser.follow)
    assert browser.stage_type == "password"
    step("wrong password", lambda: browser.submit("login", password="wrong"))
    step("right password", lambda: browser.submit("login", password=PASSWORD))
    assert browser.redirect_target == "/"
    step("home", lambda: browser.get("/"))
    assert browser.last is not None and browser.last.text == "home: alice"
    return steps


def test_a_login_takes_at_most_three_statements_per_request_plus_its_guess(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    walk_login(FlowBrowser(app.test_client(), htmx=browser.htmx), app)  # fills the caches
    steps = walk_login(browser, app)
    # Every guess is judged on the server: the wrong password is counted for its (account,
    # IP) pair and the account (user, pair, account); the right one is checked, and the
    # login after a failure ends the pair's run of them (user, check, session, reset).
    expected = {"wrong password": 3, "right password": 4}
    counts = {label: len(seen) for label, seen in steps.items()}
    assert {label: n for label, n in counts.items() if n > expected.get(label, 3)} == {}
    guessing = [s for s in steps["right password"] if "flows_reputation" in s]
    assert len(guessing) == 2, steps["right password"]
    # The user is read once, although the password and the login stage both need it,
    # and not again after the login's commit.
    user_reads = [s for s in steps["right password"] if s.startswith("SELECT") and "app_user" in s]
    assert len(user_reads) == 1, steps["right password"]
    # Within the check interval nothing asks for the flow's revision again.
    assert not any("flows_flow" in s for seen in steps.values() for s in seen)


def test_a_login_from_a_familiar_place_costs_one_check(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """No failure to end, and logged in from here earlier today: the guess is checked
    and nothing about it is written."""
    make_user("alice", password=PASSWORD)
    FlowBrowser(app.test_client()).log_in("alice", PASSWORD, slug="login")
    browser.start("login")
    browser.submit("login", uid_field="alice")
    if not browser.htmx:
        browser.follow()
    with statements(app) as seen:
        browser.submit("login", password=PASSWORD)
    assert browser.redirect_target == "/"
    assert len(seen) <= 3, seen
    assert len([s for s in seen if "flows_reputation" in s]) == 1, seen


def test_the_default_login_flow_reads_the_user_once_per_request(
    app: Flask, state: FlowsState, make_user: Callable[..., User]
) -> None:
    with app.app_context():
        install_default_flows(state)
        db.session.commit()
    make_user("alice", password=PASSWORD)
    slug = "default-authentication-flow"
    warm = FlowBrowser(app.test_client(), htmx=True)
    warm.start(slug)
    warm.step(slug, uid_field="alice", password=PASSWORD)
    assert warm.redirect_target == "/"
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.start(slug)
    with statements(app) as seen:
        browser.submit(slug, uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/"
    # One request for the whole login: the user, the guess's check, the MFA check (no
    # device: one query for both kinds), the login's session row. The password stage the
    # identification names was loaded with the flow's definition.
    assert len([s for s in seen if "FROM app_user" in s]) == 1, seen
    assert len(seen) <= 4, seen
    assert len([s for s in seen if "flows_totp_device" in s]) == 1, seen


def test_the_count_does_not_grow_with_the_number_of_flows(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    walk_login(FlowBrowser(app.test_client()), app)
    few = {
        label: len(seen) for label, seen in walk_login(FlowBrowser(app.test_client()), app).items()
    }
    with app.app_context():
        db.session.add_all(
            Flow(slug=f"other-{i}", name=f"Other {i}", designation="authentication")
            for i in range(200)
        )
        db.session.commit()
    walk_login(FlowBrowser(app.test_client()), app)  # the commit above invalidated the caches
    many = {
        label: len(seen) for label, seen in walk_login(FlowBrowser(app.test_client()), app).items()
    }
    assert many == few


def test_a_stage_shown_again_sends_no_new_session_cookie(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    # Flask-Login marks a session without a login "not fresh" once, on the next request.
    browser.client.get("/flows/login/")
    again = browser.client.get("/flows/login/")
    assert 'data-stage-type="identification"' in again.text
    assert "Set-Cookie" not in again.headers
    # A step that changes the plan does send one.
    browser.submit("login", uid_field="alice")
    assert browser.last is not None and "session=" in browser.last.headers.get("Set-Cookie", "")


# -- definitions: committed here → next request; elsewhere → within the interval ------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(definitions_module.time, "monotonic", lambda: now[0])
    return now


def retitle_elsewhere(app: Flask, slug: str, title: str) -> None:
    """Change a flow the way another process would: a Core UPDATE on a connection of its
    own, which this process's ORM session never sees."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            sa.update(Flow).where(Flow.slug == slug).values(title=title, revision=Flow.revision + 1)
        )


def shown_title(app: Flask) -> str:
    with app.test_request_context():
        flow = app.extensions["flows"].load_flow("login")
        assert flow is not None
        return str(flow.title)


def test_a_change_from_another_process_is_seen_within_the_interval(
    app: Flask, login_flow: Flow, clock: list[float]
) -> None:
    interval = app.config["FLOWS_DEFINITION_CHECK_SECONDS"]
    assert shown_title(app) == "Login"
    retitle_elsewhere(app, "login", "Sign in")
    clock[0] += interval / 2
    assert shown_title(app) == "Login"
    clock[0] += interval / 2 + 0.01
    assert shown_title(app) == "Sign in"


def retitle_here(app: Flask, title: str, *, commit: bool) -> None:
    """Change the flow through this process's ORM session, then commit or roll back."""
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == "login"))
        assert flow is not None
        flow.title = title
        db.session.flush()
        if commit:
            db.session.commit()
        else:
            db.session.rollback()


def test_a_change_committed_in_this_process_is_seen_at_once(
    app: Flask, login_flow: Flow, clock: list[float]
) -> None:
    assert shown_title(app) == "Login"
    retitle_here(app, "Sign in", commit=True)
    assert shown_title(app) == "Sign in"


def test_a_bulk_orm_update_counts_as_a_change(
    app: Flask, login_flow: Flow, clock: list[float]
) -> None:
    """Bulk statements skip the flush hook that bumps revisions, so they bump it
    themselves; committing one still reaches this process's caches at once."""
    assert shown_title(app) == "Login"
    with app.app_context():
        db.session.execute(
            sa.update(Flow)
            .where(Flow.slug == "login")
            .values(title="Sign in", revision=Flow.revision + 1)
        )
        db.session.commit()
    assert shown_title(app) == "Sign in"


def test_a_rolled_back_change_is_not_announced_until_the_next_commit(
    app: Flask, login_flow: Flow, clock: list[float]
) -> None:
    """A rolled-back change is never shown; at worst it costs one extra check later."""
    assert shown_title(app) == "Login"
    retitle_here(app, "Never", commit=False)
    assert shown_title(app) == "Login"


def test_a_plan_from_a_worker_that_saw_a_change_first_is_not_called_stale(
    app: Flask, make_app: MakeApp, login_flow: Flow, clock: list[float]
) -> None:
    """Two workers (two apps, one database) whose caches last checked at different times.
    After a change made elsewhere, the first to notice plans on the new revision; the
    other, still within its interval, must re-read the revision rather than restart the
    visitor's flow with "This form was changed" (and so on, back and forth)."""
    other, _ = make_app()
    first = app.test_client()
    second = other.test_client()
    shown_title(app)  # A checks at 1000
    clock[0] += 3
    shown_title(other)  # B checks at 1003
    retitle_elsewhere(app, "login", "Sign in")
    clock[0] += 3  # 1006: A's copy is due for a check, B's is not

    browser = FlowBrowser(first)
    browser.start("login")
    assert "Sign in" in browser.last.text  # type: ignore[union-attr]
    cookie = first.get_cookie("session")
    assert cookie is not None
    second.set_cookie("session", cookie.value)
    page = second.get("/flows/login/")
    assert "This form was changed" not in page.text
    assert 'data-stage-type="identification"' in page.text and "Sign in" in page.text


@pytest.mark.parametrize("app_config", [{"FLOWS_DEFINITION_CHECK_SECONDS": 0}])
def test_interval_zero_checks_every_time(app: Flask, login_flow: Flow, clock: list[float]) -> None:
    assert shown_title(app) == "Login"
    retitle_elsewhere(app, "login", "Sign in")
    assert shown_title(app) == "Sign in"


def test_a_deleted_flow_is_gone_for_the_next_request(
    app: Flask, state: FlowsState, login_flow: Flow, clock: list[float]
) -> None:
    assert shown_title(app) == "Login"
    with app.app_context():
        db.session.delete(db.session.get(Flow, login_flow.id))
        db.session.commit()
    assert app.test_client().get("/flows/login/").status_code == 404
