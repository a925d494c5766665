"""What a support desk runs: ``flask flows users|sessions|mfa|reputation …`` and
``delete-flow``, each changing one thing in one transaction and logging it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from click.testing import Result
from factory import User, db
from flask import Flask

from flask_flows import AuthenticatedSession, Flow
from flask_flows.devices import StaticDevice, StaticToken, TOTPDevice
from flask_flows.extension import FlowsState
from flask_flows.reputation import Reputation, record_failure, user_key

PASSWORD = "correct horse battery"


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["flows", *args], input=input)


def logged_in(app: Flask, username: str) -> FlowBrowser:
    browser = FlowBrowser(app.test_client())
    browser.log_in(username, PASSWORD, slug="login")
    assert browser.whoami() == f"home: {username}"
    return browser


@pytest.fixture
def alice(make_user: Callable[..., User], login_flow: Flow) -> User:
    return make_user("alice", password=PASSWORD)


def test_users_list_shows_who_is_active_with_what(
    app: Flask, alice: User, make_user: Callable[..., User]
) -> None:
    make_user("bob", active=False)
    with app.app_context():
        db.session.add(
            TOTPDevice(user_id=str(alice.id), name="Phone", secret="S" * 32, confirmed=True)
        )
        db.session.commit()
    logged_in(app, "alice")
    listing = run(app, "users", "list").output.splitlines()
    assert listing[0].split() == ["ID", "NAME", "ACTIVE", "MFA", "LOGINS"]
    assert listing[1].split() == [str(alice.id), "alice", "yes", "totp", "1"]
    assert listing[2].split()[1:3] == ["bob", "no"]
    assert [
        line.split()[1] for line in run(app, "users", "list", "--inactive").output.splitlines()[1:]
    ] == ["bob"]
    assert len(run(app, "users", "list", "--search", "ALI").output.splitlines()) == 2


def test_disabling_a_user_ends_their_logins_and_enabling_lets_them_back(
    app: Flask, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    browser = logged_in(app, "alice")
    with caplog.at_level(logging.INFO, logger="flask_flows"):
        result = run(app, "users", "disable", "ALICE@example.com")
    assert result.exit_code == 0, result.output
    assert "Disabled 'alice'; 1 login ended." in result.output
    assert f"cli: disabled user {alice.id}, ended 1 sessions" in caplog.text
    assert browser.whoami() == "home: anonymous"
    refused = FlowBrowser(app.test_client())
    refused.log_in("alice", PASSWORD, slug="login")
    assert refused.whoami() == "home: anonymous"
    assert run(app, "users", "enable", "alice").exit_code == 0
    logged_in(app, "alice")


def test_sessions_list_and_end_one_or_all(app: Flask, alice: User) -> None:
    phone, laptop = logged_in(app, "alice"), logged_in(app, "alice")
    listing = run(app, "sessions", "list", "alice").output.splitlines()
    assert len(listing) == 3 and listing[0].startswith("ID")
    with app.app_context():
        first = db.session.scalar(sa.select(sa.func.min(AuthenticatedSession.id)))
    result = run(app, "sessions", "end", "alice", str(first))
    assert "Ended 1 login of 'alice'." in result.output
    assert sorted([phone.whoami(), laptop.whoami()]) == ["home: alice", "home: anonymous"]
    assert "Ended 1 login" in run(app, "sessions", "end", "alice", "--all").output
    assert "not logged in anywhere" in run(app, "sessions", "list", "alice").output
    assert run(app, "sessions", "end", "alice").exit_code == 1  # neither IDs nor --all


def test_mfa_reset_removes_every_second_factor(
    app: Flask, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = str(alice.id)
    with app.app_context():
        db.session.add(TOTPDevice(user_id=user_id, name="Phone", secret="S" * 32, confirmed=True))
        codes = StaticDevice(user_id=user_id, name="Recovery codes", confirmed=True)
        codes.tokens.append(StaticToken(lookup="abcd", secret_hash="x"))
        db.session.add(codes)
        db.session.commit()
    assert run(app, "mfa", "reset", "alice", input="n\n").exit_code == 1  # asks first
    with caplog.at_level(logging.INFO, logger="flask_flows"):
        result = run(app, "mfa", "reset", "alice", "--yes")
    assert "Removed 2 second factors of 'alice'." in result.output
    assert f"reset the second factors of user {user_id} (2 removed)" in caplog.text
    with app.app_context():
        for model in (TOTPDevice, StaticDevice, StaticToken):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
    logged_in(app, "alice")  # the password alone, until a second factor is set up again


def test_reputation_clear_for_an_address_and_a_user(
    app: Flask, state: FlowsState, alice: User
) -> None:
    with app.app_context():
        for n in range(3):
            record_failure(state, f"name:other{n}", "192.0.2.50")
        record_failure(state, user_key(alice.id), "198.51.100.1")
    result = run(app, "reputation", "clear", "--ip", "192.0.2.50")
    assert "Cleared 3 records of failed guesses." in result.output
    assert "Cleared 2 records" in run(app, "reputation", "clear", "--user", "alice").output
    with app.app_context():  # what remains: the other names' own limits, not the address's
        rows = db.session.execute(sa.select(Reputation.identifier, Reputation.ip)).all()
    assert sorted(rows) == [(f"name:other{n}", "") for n in range(3)]
    assert run(app, "reputation", "clear").exit_code == 1


def test_delete_flow(app: Flask, make_flow: Callable[..., Flow]) -> None:
    make_flow("old", "dummy")
    assert run(app, "delete-flow", "old", input="n\n").exit_code == 1
    assert "Deleted the flow 'old'." in run(app, "delete-flow", "old", "--yes").output
    assert app.test_client().get("/flows/old/").status_code == 404
    assert "there is no flow with the slug 'old'" in run(app, "delete-flow", "old", "--yes").output


@pytest.mark.parametrize(
    "args",
    [
        ["users", "disable", "nobody"],
        ["sessions", "list", "nobody"],
        ["mfa", "reset", "nobody", "--yes"],
    ],
)
def test_an_unknown_user_is_named(app: Flask, args: list[str]) -> None:
    result = run(app, *args)
    assert result.exit_code == 1
    assert "there is no user 'nobody'" in result.output
