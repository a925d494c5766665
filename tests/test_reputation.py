"""Reputation through HTTP: failed logins lower the IP's and the identifier's scores, a
successful login raises them, a deny stage guarded by the reputation policy kicks in at
the threshold, scores expire, and parallel failures all count."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask

from flask_flows import Flow, FlowStageBinding, Policy, PolicyBinding, PolicyRequest, signals
from flask_flows import reputation as reputation_module
from flask_flows.extension import FlowsState
from flask_flows.models import utcnow
from flask_flows.reputation import ReputationKind, ReputationScore, adjust, scores

PASSWORD = "correct horse battery"
IP = "203.0.113.7"
SLOW_DOWN = "Too many failed attempts from here. Try again later."


def client_from(app: Flask, ip: str = IP, htmx: bool = False) -> FlowBrowser:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return FlowBrowser(client, htmx=htmx)


def attempt(browser: FlowBrowser, identifier: str, password: str, slug: str = "login") -> str:
    """One login attempt as a fresh visitor (no cookie, so a new plan); returns the page or
    the redirect it ends on."""
    browser.client.delete_cookie("session")
    browser.start(slug)
    response = browser.step(slug, uid_field=identifier)
    if browser.stage_type != "password":
        return response.text
    response = browser.step(slug, password=password)
    return browser.redirect_target or response.text


def score(app: Flask, state: FlowsState, kind: str, key: str) -> int:
    with app.app_context():
        pair = (ReputationKind(kind), key)
        return scores(state, [pair])[(kind, key)]


def guard_with_reputation(app: Flask, slug: str, order: int, **config: Any) -> None:
    """Run the stage at ``order`` only while reputation is bad (negated policy)."""
    with app.app_context():
        binding = db.session.scalar(
            sa.select(FlowStageBinding)
            .join(Flow)
            .where(Flow.slug == slug, FlowStageBinding.order == order)
        )
        assert binding is not None
        binding.re_evaluate_policies = True
        binding.policy_bindings.append(
            PolicyBinding(
                policy=Policy(name=f"{slug}-reputation", type="reputation", config=config),
                negate=True,
            )
        )
        db.session.commit()


@pytest.fixture
def scored(app: Flask) -> None:
    """A reputation policy exists (bound nowhere): scores are written only while one does."""
    with app.app_context():
        db.session.add(Policy(name="reputation-in-use", type="reputation", config={}))
        db.session.commit()


@pytest.fixture
def guarded_flow(app: Flask, make_flow: Callable[..., Flow]) -> Flow:
    """identification → deny (while reputation ≤ -3) → password → user_login."""
    flow = make_flow(
        "login",
        ("identification", {}),
        ("deny", {"message": SLOW_DOWN}),
        "password",
        "user_login",
    )
    guard_with_reputation(app, "login", 20, threshold=-3)
    return flow


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_failures_lower_and_a_login_raises_the_scores(
    app: Flask,
    state: FlowsState,
    make_user: Callable[..., User],
    login_flow: Flow,
    htmx: bool,
    scored: None,
) -> None:
    make_user("alice", password=PASSWORD)
    browser = client_from(app, htmx=htmx)

    attempt(browser, "Alice", "wrong one")
    attempt(browser, "alice", "wrong two")
    assert score(app, state, "ip", IP) == -2
    assert score(app, state, "identifier", "alice") == -2

    assert attempt(browser, "alice", PASSWORD) == "/"
    assert browser.client.get("/").text == "home: alice"
    assert score(app, state, "ip", IP) == -1
    assert score(app, state, "identifier", "alice") == -1
    assert score(app, state, "identifier", "alice@example.com") == 1
    assert score(app, state, "ip", "198.51.100.1") == 0


def test_unknown_and_known_accounts_lose_reputation_alike(
    app: Flask, state: FlowsState, make_user: Callable[..., User], login_flow: Flow, scored: None
) -> None:
    make_user("alice", password=PASSWORD)
    attempt(client_from(app, "198.51.100.1"), "alice", "wrong")
    attempt(client_from(app, "198.51.100.2"), "nobody", "wrong")
    assert score(app, state, "identifier", "alice") == -1
    assert score(app, state, "identifier", "nobody") == -1
    assert score(app, state, "ip", "198.51.100.1") == score(app, state, "ip", "198.51.100.2") == -1


def test_without_pretending_an_unknown_identifier_counts_at_identification(
    app: Flask, state: FlowsState, make_flow: Callable[..., Flow], scored: None
) -> None:
    make_flow("login", ("identification", {"pretend_user_exists": False}), "password")
    text = attempt(client_from(app), "nobody", "unused")
    assert "No account matches" in text
    assert score(app, state, "identifier", "nobody") == -1
    assert score(app, state, "ip", IP) == -1


def test_nothing_is_written_until_a_reputation_policy_exists(
    app: Flask, state: FlowsState, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """No policy reads scores, so failed attempts write none; the policy created in this
    process is noticed by the very next attempt, not after the definition check interval."""
    assert app.config["FLOWS_DEFINITION_CHECK_SECONDS"] > 0
    make_user("alice", password=PASSWORD)
    browser = client_from(app)
    attempt(browser, "alice", "wrong")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ReputationScore)) == 0
        db.session.add(Policy(name="throttle", type="reputation", config={}))
        db.session.commit()
    attempt(browser, "alice", "wrong")
    assert score(app, state, "identifier", "alice") == -1
    assert score(app, state, "ip", IP) == -1


def test_the_deny_stage_kicks_in_at_the_threshold(
    app: Flask, state: FlowsState, make_user: Callable[..., User], guarded_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    browser = client_from(app)
    for _ in range(3):
        assert SLOW_DOWN not in attempt(browser, "alice", "wrong")
    assert score(app, state, "identifier", "alice") == -3

    # Even the right password is refused now: the deny stage runs before the password one.
    assert SLOW_DOWN in attempt(browser, "alice", PASSWORD)
    assert browser.client.get("/").text == "home: anonymous"
    # The IP is below the threshold too, whatever account it tries next.
    assert SLOW_DOWN in attempt(browser, "bob", "wrong")
    # Alice from another address is still refused: her identifier's score is too low.
    assert SLOW_DOWN in attempt(client_from(app, "198.51.100.9"), "alice", PASSWORD)
    # Someone else from elsewhere is not affected.
    other = client_from(app, "198.51.100.10")
    assert SLOW_DOWN not in attempt(other, "carol", "wrong")


def test_only_the_checked_subjects_count(
    app: Flask, state: FlowsState, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice", password=PASSWORD)
    make_flow("login", "identification", ("deny", {"message": SLOW_DOWN}), "password", "user_login")
    guard_with_reputation(app, "login", 20, threshold=-2, check_ip=False)
    with app.app_context():
        adjust(state, [(ReputationKind.ip, IP)], -10)
    # The IP is far below the threshold but not checked; the identifier is fine.
    assert attempt(client_from(app), "alice", PASSWORD) == "/"


def test_scores_expire(
    app: Flask,
    state: FlowsState,
    make_user: Callable[..., User],
    guarded_flow: Flow,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_user("alice", password=PASSWORD)
    browser = client_from(app)
    for _ in range(3):
        attempt(browser, "alice", "wrong")
    assert SLOW_DOWN in attempt(browser, "alice", PASSWORD)

    later = utcnow() + timedelta(seconds=app.config["FLOWS_REPUTATION_EXPIRY"] + 1)
    monkeypatch.setattr(reputation_module, "utcnow", lambda: later)

    assert score(app, state, "identifier", "alice") == 0
    # An expired score restarts from 0 on its next change rather than from -3.
    attempt(browser, "alice", "wrong")
    assert score(app, state, "identifier", "alice") == -1
    assert score(app, state, "ip", IP) == -1
    assert attempt(browser, "alice", PASSWORD) == "/"


def test_a_good_history_is_capped(app: Flask, state: FlowsState) -> None:
    pair = (ReputationKind.identifier, "alice")
    with app.app_context():
        for _ in range(app.config["FLOWS_REPUTATION_MAX_SCORE"] + 3):
            adjust(state, [pair], +1)
        assert scores(state, [pair]) == {("identifier", "alice"): 5}
        adjust(state, [pair], -1)
        assert scores(state, [pair]) == {("identifier", "alice"): 4}


def test_keys_are_normalised_and_bounded(app: Flask, state: FlowsState, scored: None) -> None:
    with app.test_request_context(environ_base={"REMOTE_ADDR": IP}):
        signals.login_failed.send(app, identifier="  Alice@Example.COM ", stage=None, reason="x")
        signals.login_failed.send(app, identifier="x" * 400, stage=None, reason="x")
    with app.app_context():
        keys = set(db.session.scalars(sa.select(ReputationScore.key)))
    assert keys == {IP, "alice@example.com", "x" * 255}


def test_recording_leaves_the_request_session_alone(
    app: Flask, state: FlowsState, scored: None
) -> None:
    with app.test_request_context(environ_base={"REMOTE_ADDR": IP}):
        db.session.add(User(username="pending", email="pending@example.com"))
        signals.login_failed.send(app, identifier="alice", stage=None, reason="invalid_password")
        assert len(db.session.new) == 1
        db.session.rollback()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert score(app, state, "identifier", "alice") == -1


def test_the_policy_outside_a_request_checks_the_identifier_only(
    app: Flask, state: FlowsState
) -> None:
    with app.app_context():
        adjust(state, [(ReputationKind.identifier, "alice")], -6)
        policy = state.policy_type("reputation")
        config = state.policy_config(Policy(name="r", type="reputation", config={}))
        bad = policy.evaluate(
            config,
            PolicyRequest(state=state, user=None, context={"pending_user_identifier": "ALICE"}),
        )
        good = policy.evaluate(
            config, PolicyRequest(state=state, user=None, context={"pending_user_identifier": "b"})
        )
    assert not bad.passing and bad.messages
    assert good.passing
    assert policy.request_dependent


def test_parallel_failures_all_count(
    app: Flask, state: FlowsState, make_user: Callable[..., User], login_flow: Flow, scored: None
) -> None:
    make_user("alice", password=PASSWORD)
    workers = 12
    ready = threading.Barrier(workers)
    errors: list[BaseException] = []

    def guess(index: int) -> None:
        try:
            browser = client_from(app)
            browser.start("login")
            browser.step("login", uid_field="alice")
            assert browser.stage_type == "password"
            ready.wait(timeout=30)
            response = browser.step("login", password=f"guess {index}")
            assert "Invalid username or password." in response.text
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert score(app, state, "identifier", "alice") == -workers
    assert score(app, state, "ip", IP) == -workers
    with app.app_context():
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(ReputationScore))
    assert rows == 2


@pytest.mark.parametrize("upsert", [True, False], ids=["upsert", "update-then-insert"])
def test_both_ways_of_writing_scores_agree(
    app: Flask, state: FlowsState, monkeypatch: pytest.MonkeyPatch, upsert: bool
) -> None:
    """One INSERT … ON CONFLICT for PostgreSQL and SQLite, row by row for other databases."""
    if not upsert:
        monkeypatch.setattr(reputation_module, "_UPSERT_DIALECTS", frozenset())
    pairs = [(ReputationKind.ip, "10.0.0.9"), (ReputationKind.identifier, "zed")]
    with app.app_context():
        adjust(state, pairs, -1)
        adjust(state, pairs, -1)
        adjust(state, pairs[:1], +1)
        assert scores(state, pairs) == {("ip", "10.0.0.9"): -1, ("identifier", "zed"): -2}
        for _ in range(10):
            adjust(state, pairs, +1)
        assert set(scores(state, pairs).values()) == {state.config["FLOWS_REPUTATION_MAX_SCORE"]}
