"""Reputation rows and the ``reputation`` policy: one row per (account, IP) pair and one
per account; failed guesses and unknown identifiers lower a pair's score, a login raises
it and makes the pair familiar; scores expire; the policy passes, as authentik's does,
when the summed score is at or below its threshold (a bad reputation matches)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db, pass_time
from flask import Flask

from flask_flows import Flow, FlowStageBinding, Policy, PolicyBinding, PolicyRequest
from flask_flows import reputation as reputation_module
from flask_flows.blueprints import apply_blueprint, install_default_flows
from flask_flows.extension import FlowsState
from flask_flows.options import ConfigError
from flask_flows.reputation import (
    ACCOUNT,
    Reputation,
    name_key,
    record_failure,
    record_login,
    record_miss,
    total_score,
    user_key,
)

PASSWORD = "correct horse battery"
IP = "203.0.113.7"
SLOW_DOWN = "Please slow down."


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


def rows(app: Flask) -> dict[tuple[str, str], tuple[int, int]]:
    """``(identifier, ip) -> (score, failures)`` of every row."""
    with app.app_context():
        found = db.session.execute(
            sa.select(Reputation.identifier, Reputation.ip, Reputation.score, Reputation.failures)
        )
        return {(key, ip): (score, failures) for key, ip, score, failures in found}


def bind_reputation(app: Flask, slug: str, order: int, **config: Any) -> None:
    """Run the stage at ``order`` only while the reputation policy passes (plainly, as in
    authentik: a bad reputation matches)."""
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
                policy=Policy(name=f"{slug}-reputation", type="reputation", config=config)
            )
        )
        db.session.commit()


@pytest.fixture
def guarded_flow(app: Flask, make_flow: Callable[..., Flow]) -> Flow:
    """identification → deny (while the reputation is at or below -3) → password → login."""
    flow = make_flow(
        "login",
        ("identification", {}),
        ("deny", {"message": SLOW_DOWN}),
        "password",
        "user_login",
    )
    bind_reputation(app, "login", 20, threshold=-3)
    return flow


# -- the rows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_failures_lower_a_pair_and_a_login_raises_it(
    app: Flask, make_user: Callable[..., User], login_flow: Flow, htmx: bool
) -> None:
    alice = make_user("alice", password=PASSWORD)
    browser = client_from(app, htmx=htmx)
    attempt(browser, "Alice", "wrong one")
    attempt(browser, "alice@example.com", "wrong two")  # the same account, by email
    me = user_key(alice.id)
    assert rows(app) == {(me, IP): (-2, 2), (me, ACCOUNT): (0, 0)}

    assert attempt(browser, "alice", PASSWORD) == "/"
    assert browser.client.get("/").text == "home: alice"
    assert rows(app)[(me, IP)] == (-1, 0)  # +1, and the run of failures is over


def test_unknown_and_known_accounts_lose_reputation_alike(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice", password=PASSWORD)
    attempt(client_from(app, "198.51.100.1"), "alice", "wrong")
    attempt(client_from(app, "198.51.100.2"), "Nobody", "wrong")
    assert rows(app) == {
        (user_key(alice.id), "198.51.100.1"): (-1, 1),
        (user_key(alice.id), ACCOUNT): (0, 0),
        ("name:nobody", "198.51.100.2"): (-1, 1),
        ("name:nobody", ACCOUNT): (0, 0),
    }


def test_without_pretending_an_unknown_identifier_counts_at_identification(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    make_flow("login", ("identification", {"pretend_user_exists": False}), "password")
    assert "No account matches" in attempt(client_from(app), "nobody", "unused")
    # A lower score, but no guess at a secret: nothing for the throttle.
    assert rows(app) == {("name:nobody", IP): (-1, 0)}


def test_scores_and_runs_of_failures_expire(
    app: Flask, state: FlowsState, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice", password=PASSWORD)
    for _ in range(3):
        attempt(client_from(app), "alice", "wrong")
    assert rows(app)[(user_key(alice.id), IP)] == (-3, 3)
    pass_time(app, app.config["FLOWS_REPUTATION_EXPIRY"] + 1)
    with app.app_context():
        assert total_score(state, IP, None) == 0
    # The next change starts from 0, not from -3.
    attempt(client_from(app), "alice", "wrong")
    assert rows(app)[(user_key(alice.id), IP)] == (-1, 1)


def test_a_good_history_is_capped(app: Flask, state: FlowsState) -> None:
    with app.app_context():
        for _ in range(app.config["FLOWS_REPUTATION_MAX_SCORE"] + 3):
            record_login(state, "user:1", IP)
        assert total_score(state, IP, None) == 5
        record_failure(state, "user:1", IP)
        assert total_score(state, IP, None) == 4


def test_keys_are_normalised_and_bounded() -> None:
    assert name_key("  Alice@Example.COM ") == "name:alice@example.com"
    assert name_key("bob\x00") == "name:bob"
    assert len(name_key("x" * 400)) == reputation_module.IDENTIFIER_LENGTH
    assert user_key(42) == "user:42"


def test_recording_leaves_the_request_session_alone(app: Flask, state: FlowsState) -> None:
    with app.test_request_context(environ_base={"REMOTE_ADDR": IP}):
        db.session.add(User(username="pending", email="pending@example.com"))
        record_failure(state, "name:alice", IP)
        record_miss(state, "name:bob", IP)
        assert len(db.session.new) == 1
        db.session.rollback()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert rows(app)[("name:alice", IP)] == (-1, 1)


def test_parallel_failures_from_many_addresses_all_count(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice", password=PASSWORD)
    workers = 12
    ready = threading.Barrier(workers)
    errors: list[BaseException] = []

    def guess(index: int) -> None:
        try:
            browser = client_from(app, f"198.51.100.{index + 1}")
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
    found = rows(app)
    assert len(found) == workers + 1
    assert sum(score for score, _ in found.values()) == -workers
    # The account's row moved once per failure: its next allowed time is 12 intervals on.
    with app.app_context():
        not_before, changed = db.session.execute(
            sa.select(Reputation.not_before, Reputation.changed).where(
                Reputation.identifier == user_key(alice.id), Reputation.ip == ACCOUNT
            )
        ).one()
    rules = app.extensions["flows"].reputation_rules
    expected = changed - rules.tolerance + workers * rules.interval
    assert abs(not_before - expected) < 5


@pytest.mark.parametrize("generic", [False, True], ids=["upsert", "insert-update-select"])
def test_both_ways_of_writing_agree(
    app: Flask, state: FlowsState, monkeypatch: pytest.MonkeyPatch, generic: bool
) -> None:
    """One ``INSERT … ON CONFLICT … RETURNING`` on PostgreSQL and SQLite; other databases
    get an insert of an empty row, a conditional update and a select."""
    monkeypatch.setattr(reputation_module, "_force_generic", generic)
    with app.app_context():
        outcomes = [record_failure(state, "name:zed", IP).counted for _ in range(7)]
        record_miss(state, "name:zed", "10.0.0.9")
        record_login(state, "name:amy", IP)
        record_login(state, "name:amy", IP)
    free = app.config["FLOWS_THROTTLE_FREE_FAILURES"]
    assert outcomes == [True] * free + [False] * (7 - free)
    assert rows(app) == {
        ("name:zed", IP): (-free, free),
        ("name:zed", ACCOUNT): (0, 0),
        ("name:zed", "10.0.0.9"): (-1, 0),
        ("name:amy", IP): (2, 0),
    }


# -- the policy -----------------------------------------------------------------------------------


def test_the_policy_matches_a_bad_reputation_as_in_authentik(
    app: Flask, make_user: Callable[..., User], guarded_flow: Flow
) -> None:
    """Bound plainly (no negate) to a deny stage, it shows the stage once the summed score
    of the IP or the account is at or below the threshold."""
    make_user("alice", password=PASSWORD)
    browser = client_from(app)
    for _ in range(3):
        assert SLOW_DOWN not in attempt(browser, "alice", "wrong")
    assert SLOW_DOWN in attempt(browser, "alice", PASSWORD)
    # The IP's scores add up over accounts: this IP is asked to slow down for anyone.
    assert SLOW_DOWN in attempt(browser, "bob", "wrong")
    # Alice's account from elsewhere too (check_username).
    assert SLOW_DOWN in attempt(client_from(app, "198.51.100.9"), "alice", PASSWORD)
    # Someone else from elsewhere is not affected.
    assert SLOW_DOWN not in attempt(client_from(app, "198.51.100.10"), "carol", "wrong")


def test_only_the_checked_side_counts(
    app: Flask, state: FlowsState, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    alice = make_user("alice", password=PASSWORD)
    make_flow("login", "identification", ("deny", {"message": SLOW_DOWN}), "password", "user_login")
    bind_reputation(app, "login", 20, threshold=-2, check_ip=False)
    with app.app_context():
        for n in range(5):  # the IP is far below the threshold, on other accounts
            record_failure(state, f"name:other{n}", IP)
    assert attempt(client_from(app), "alice", PASSWORD) == "/"
    with app.app_context():  # -3 elsewhere, +1 for that login: the account is at -2
        for _ in range(3):
            record_failure(state, user_key(alice.id), "198.51.100.3")
    assert SLOW_DOWN in attempt(client_from(app), "alice", PASSWORD)


def test_a_policy_that_checks_nothing_is_refused(app: Flask, state: FlowsState) -> None:
    text = """
version: 1
policies:
  - name: blind
    type: reputation
    config: {check_ip: false, check_username: false}
"""
    with app.app_context(), pytest.raises(ConfigError, match="check_ip and check_username"):
        apply_blueprint(state, text)


def test_the_policy_outside_a_request_checks_the_account_only(
    app: Flask, state: FlowsState
) -> None:
    with app.app_context():
        for n in range(6):
            record_failure(state, "name:alice", f"198.51.100.{n}")
        policy = state.policy_type("reputation")
        config = state.policy_config(Policy(name="r", type="reputation", config={}))
        bad = policy.evaluate(
            config,
            PolicyRequest(state=state, user=None, context={"pending_user_identifier": "ALICE"}),
        )
        good = policy.evaluate(
            config, PolicyRequest(state=state, user=None, context={"pending_user_identifier": "b"})
        )
    assert bad.passing and bad.messages
    assert not good.passing
    assert policy.request_dependent


def test_the_documented_spraying_captcha_works(
    app: Flask, state: FlowsState, make_user: Callable[..., User]
) -> None:
    """docs/policies.md's example, applied as written: an IP whose failures over many
    accounts sum to -20 gets the captcha first; a clean IP goes straight to identification."""
    docs = (Path(__file__).parent.parent / "docs" / "policies.md").read_text()
    section = docs.split("### reputation", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    with app.app_context():
        install_default_flows(state)
        apply_blueprint(state, example)
        db.session.commit()
        for n in range(20):
            record_failure(state, f"name:someone{n}", IP)
    sprayer = client_from(app)
    sprayer.start("guarded-login")
    assert sprayer.stage_type == "captcha"
    visitor = client_from(app, "198.51.100.20")
    visitor.start("guarded-login")
    assert visitor.stage_type == "identification"
    make_user("vic", password="correct horse battery")
    visitor.step("guarded-login", uid_field="vic", password="correct horse battery")
    assert visitor.redirect_target == "/"  # the password asked once, on that page


@pytest.mark.parametrize(
    "config",
    [
        {"FLOWS_THROTTLE_FIRST_DELAY": 0},
        {"FLOWS_THROTTLE_FIRST_DELAY": 7200},
        {"FLOWS_THROTTLE_FREE_FAILURES": 0},
        {"FLOWS_THROTTLE_ACCOUNT_HOURLY": 0},
    ],
    ids=["no-first-delay", "first-beyond-max", "no-free", "no-hourly"],
)
def test_throttle_settings_that_cannot_work_are_refused_at_start(
    make_app: Any, config: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="FLOWS_THROTTLE_"):
        make_app(**config)
