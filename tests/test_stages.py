"""The built-in stages through HTTP: identification, password, user_login, user_logout,
deny, redirect and dummy."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from browsing import FlowBrowser, without_nonces
from factory import User, db
from flask import Flask

from flask_flows import AuthenticatedSession, Flow
from flask_flows.executor import MSG_CSRF, PLANS_KEY
from flask_flows.extension import FlowsState
from flask_flows.models import utcnow
from flask_flows.stages.password import WRONG_CREDENTIALS

PASSWORD = "correct horse battery"
NO_ACCOUNT = "No account matches that username or email address."
from flask_flows.stages.base import TOO_MANY  # noqa: E402


def auth_sessions(app: Flask) -> list[AuthenticatedSession]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuthenticatedSession)))
        db.session.expunge_all()
        return rows


# -- identification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier", ["alice", "ALICE", "Alice", "alice@example.com", "Alice@Example.COM"]
)
def test_identification_is_case_insensitive(
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    identifier: str,
) -> None:
    make_user("alice")
    make_flow("ident", ("identification", {"pretend_user_exists": False}), "password", "user_login")
    browser.start("ident")
    browser.step("ident", uid_field=identifier)
    assert browser.stage_type == "password"
    browser.step("ident", password=PASSWORD)
    assert browser.whoami() == "home: alice"


def test_identification_case_sensitive_when_configured(
    browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    make_flow(
        "ident",
        ("identification", {"pretend_user_exists": False, "case_insensitive_matching": False}),
        "password",
    )
    browser.start("ident")
    browser.step("ident", uid_field="ALICE")
    assert browser.stage_type == "identification"
    assert NO_ACCOUNT in browser.last.text  # type: ignore[union-attr]
    browser.step("ident", uid_field="alice")
    assert browser.stage_type == "password"


@pytest.mark.parametrize(
    ("fields", "identifier", "found"),
    [
        (["email"], "alice", False),
        (["email"], "alice@example.com", True),
        (["username"], "alice@example.com", False),
        (["username"], "alice", True),
    ],
)
def test_identification_honours_user_fields(
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    fields: list[str],
    identifier: str,
    found: bool,
) -> None:
    make_user("alice")
    make_flow(
        "ident",
        ("identification", {"user_fields": fields, "pretend_user_exists": False}),
        "password",
    )
    page = browser.start("ident")
    if fields == ["email"]:
        assert "Email address" in page.text
        assert 'type="email"' in page.text
    browser.step("ident", uid_field=identifier)
    assert browser.stage_type == ("password" if found else "identification")
    assert (NO_ACCOUNT in browser.last.text) is not found  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [(["username", "email"], "shared@example.com"), (["email", "username"], "second")],
)
def test_an_earlier_user_field_wins(
    app: Flask,
    state: FlowsState,
    make_user: Callable[..., User],
    fields: list[str],
    expected: str,
) -> None:
    """One query looks at every field; a match on an earlier field still comes first."""
    make_user("shared@example.com", email="first@example.com")  # username = the identifier
    make_user("second", email="Shared@Example.com")  # email = the identifier
    with app.app_context():
        user = state.user_store.find_by_identifier(" SHARED@example.com ", fields)
        assert user is not None and user.username == expected
        assert state.user_store.find_by_identifier("nobody", fields) is None
        assert state.user_store.find_by_identifier("   ", fields) is None


def test_identification_requires_a_value(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    response = browser.step("login", uid_field="   ")
    assert browser.stage_type == "identification"
    assert "Enter your username or email address." in response.text


def _normalised(html: str, identifier: str) -> str:
    html = re.sub(r'(name="(?:csrf_token|flow_step)"[^>]*value=")[^"]*"', r'\1X"', html)
    html = re.sub(r'(value=")[^"]*("\s*name="csrf_token")', r"\1X\2", html)
    html = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="X"', html)
    return without_nonces(html).replace(identifier, "IDENTIFIER")


def test_pretend_user_exists_fails_like_a_wrong_password(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    other = FlowBrowser(browser.client.application.test_client(), htmx=browser.htmx)

    browser.start("login")
    browser.step("login", uid_field="alice")
    real = browser.step("login", password="wrong password")

    other.start("login")
    # Same first letter as "alice": the page shows the identifier's initial as an avatar.
    other.step("login", uid_field="amber")
    assert other.stage_type == "password"
    unknown = other.step("login", password="wrong password")

    assert WRONG_CREDENTIALS in real.text
    assert real.status_code == unknown.status_code == 200
    assert _normalised(real.text, "alice") == _normalised(unknown.text, "amber")
    assert real.headers.get("Content-Type") == unknown.headers.get("Content-Type")


def test_pretend_user_exists_false_shows_field_error(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow("ident", ("identification", {"pretend_user_exists": False}), "password")
    browser.start("ident")
    response = browser.step("ident", uid_field="nobody")
    assert browser.stage_type == "identification"
    assert NO_ACCOUNT in response.text
    assert 'aria-invalid="true"' in response.text


@pytest.mark.parametrize("identifier", ["alice", "nobody"])
def test_one_argon2_verification_per_miss(
    browser: FlowBrowser,
    monkeypatch: pytest.MonkeyPatch,
    state: FlowsState,
    make_user: Callable[..., User],
    login_flow: Flow,
    identifier: str,
) -> None:
    make_user("alice")
    calls: list[str] = []
    verify = PasswordHasher.verify
    hasher = state.hashing.hasher

    def counting_verify(self: PasswordHasher, hash: str, password: str) -> bool:
        assert self is hasher
        calls.append(hash)
        return verify(self, hash, password)

    # PasswordHasher has __slots__, so the spy goes on the class (undone after the test).
    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    browser.start("login")
    browser.step("login", uid_field=identifier)
    assert calls == []
    browser.step("login", password="wrong password")
    assert WRONG_CREDENTIALS in browser.last.text  # type: ignore[union-attr]
    assert len(calls) == 1


def test_password_rehashed_when_parameters_change(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    user = make_user("alice")
    old_hash = PasswordHasher(time_cost=2, memory_cost=16, parallelism=2).hash(PASSWORD)
    with app.app_context():
        db.session.get(User, user.id).password_hash = old_hash
        db.session.commit()

    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    with app.app_context():
        new_hash = db.session.get(User, user.id).password_hash
    assert new_hash != old_hash
    assert "$m=8,t=1,p=1$" in new_hash
    assert PasswordHasher().verify(new_hash, PASSWORD)


def test_no_rehash_when_parameters_match(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    user = make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    with app.app_context():
        assert db.session.get(User, user.id).password_hash == user.password_hash


def test_failed_attempts_cancel_the_plan(
    browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    make_flow(
        "strict", "identification", ("password", {"failed_attempts_before_cancel": 2}), "user_login"
    )
    browser.start("strict")
    browser.step("strict", uid_field="alice")
    first = browser.step("strict", password="nope")
    assert browser.stage_type == "password"
    assert WRONG_CREDENTIALS in first.text

    second = browser.step("strict", password="nope again")
    assert second.status_code == (200 if browser.htmx else 429)
    assert TOO_MANY in second.text
    assert browser.stage_type is None
    with browser.client.session_transaction() as session:
        assert "strict" not in session.get(PLANS_KEY, {})
    # The right password cannot be tried on the cancelled plan: it starts over.
    browser.get("/flows/strict/")
    assert browser.stage_type == "identification"
    assert browser.whoami() == "home: anonymous"


def test_wrong_password_then_right_one(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.start("login", next="/after")
    browser.step("login", uid_field="alice")
    browser.step("login", password="nope")
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/after"
    assert browser.whoami() == "home: alice"


# -- user_login -----------------------------------------------------------------------------


def test_user_login_refuses_inactive_user(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", active=False)
    response = browser.log_in("alice", PASSWORD, slug="login")
    assert "This account is disabled." in response.text
    assert browser.redirect_target is None
    assert browser.whoami() == "home: anonymous"


def test_login_drops_pre_login_session_state(
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    make_flow: Callable[..., Flow],
) -> None:
    make_user("alice")
    make_flow("other", "dummy")
    browser.start("other")
    with browser.client.session_transaction() as session:
        session["marker"] = "set before login"
        assert "other" in session[PLANS_KEY]
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    with browser.client.session_transaction() as session:
        assert "marker" not in session
        assert "other" not in session.get(PLANS_KEY, {})


@pytest.fixture
def remember_flow(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(
        "remember", "identification", "password", ("user_login", {"remember_me_offset": 86400})
    )


@pytest.mark.parametrize("remember", [True, False])
def test_remember_me(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    remember_flow: Flow,
    remember: bool,
) -> None:
    make_user("alice")
    browser.start("remember")
    browser.step("remember", uid_field="alice")
    browser.step("remember", password=PASSWORD)
    assert browser.stage_type == "user_login"
    assert 'name="remember_me"' in browser.last.text  # type: ignore[union-attr]
    assert browser.whoami() == "home: anonymous"

    before = utcnow()
    browser.step("remember", **({"remember_me": "y"} if remember else {}))
    assert browser.redirect_target == "/"
    assert browser.whoami() == "home: alice"
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    (record,) = auth_sessions(app)
    if remember:
        assert cookie.expires is not None
        assert record.expires is not None
        assert before + timedelta(seconds=86400 - 5) <= record.expires
        assert record.expires <= utcnow() + timedelta(seconds=86400 + 5)
    else:
        assert cookie.expires is None
        assert record.expires is None


def test_no_remember_me_toggle_without_offset(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.start("login")
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    assert browser.stage_type is None
    assert browser.redirect_target == "/"
    assert browser.whoami() == "home: alice"


def test_session_duration(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    make_flow("timed", "identification", "password", ("user_login", {"session_duration": 3600}))
    before = utcnow()
    browser.log_in("alice", PASSWORD, slug="timed")
    assert browser.whoami() == "home: alice"
    (record,) = auth_sessions(app)
    assert record.expires is not None
    assert before + timedelta(seconds=3595) <= record.expires <= utcnow() + timedelta(seconds=3605)
    cookie = browser.client.get_cookie("session")
    assert cookie is not None and cookie.expires is not None


@pytest.mark.parametrize("terminate", [True, False])
def test_terminate_other_sessions(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    terminate: bool,
) -> None:
    make_user("alice")
    make_flow(
        "exclusive",
        "identification",
        "password",
        ("user_login", {"terminate_other_sessions": terminate}),
    )
    first = FlowBrowser(app.test_client(), htmx=browser.htmx)
    first.log_in("alice", PASSWORD, slug="exclusive")
    assert first.whoami() == "home: alice"

    browser.log_in("alice", PASSWORD, slug="exclusive")
    assert browser.whoami() == "home: alice"
    assert first.whoami() == ("home: anonymous" if terminate else "home: alice")
    assert len(auth_sessions(app)) == (1 if terminate else 2)


def test_stage_after_login_accepts_its_form(
    browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    """Login regenerates the session (and its CSRF secret): the stage shown in the same
    htmx response must carry a token that is valid for the new session."""
    make_user("alice")
    make_flow(
        "then-more",
        "identification",
        "password",
        "user_login",
        ("dummy", {"message": "after login"}),
    )
    browser.start("then-more", next="/done")
    browser.step("then-more", uid_field="alice")
    browser.step("then-more", password=PASSWORD)
    assert "after login" in browser.last.text  # type: ignore[union-attr]
    assert browser.whoami() == "home: alice"
    response = browser.submit("then-more")
    assert MSG_CSRF not in response.text
    assert browser.redirect_target == "/done"


# -- user_logout -----------------------------------------------------------------------------


def test_logout_only_by_post(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow, logout_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    page = browser.start("logout")
    assert page.status_code == 200
    assert browser.stage_type == "user_logout"
    assert "alice" in page.text
    assert browser.whoami() == "home: alice"
    # The designation shortcut is a GET too: it must not log out either.
    default = browser.client.get("/flows/-/logout/")
    assert default.headers["Location"] == "/flows/logout/"
    browser.get("/flows/logout/")
    assert browser.whoami() == "home: alice"

    browser.submit("logout")
    assert browser.redirect_target == "/"
    assert browser.whoami() == "home: anonymous"


def test_logout_without_csrf_keeps_user(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow, logout_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    browser.start("logout")
    browser.post("/flows/logout/", {"flow_step": browser.step_token()})
    assert MSG_CSRF in browser.settle().text
    assert browser.whoami() == "home: alice"


def test_stage_after_logout_accepts_its_form(
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    make_flow: Callable[..., Flow],
) -> None:
    make_user("alice")
    make_flow(
        "bye", "user_logout", ("dummy", {"message": "goodbye page"}), designation="invalidation"
    )
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    browser.start("bye")
    browser.step("bye")
    assert "goodbye page" in browser.last.text  # type: ignore[union-attr]
    assert browser.whoami() == "home: anonymous"
    response = browser.submit("bye")
    assert MSG_CSRF not in response.text
    assert browser.redirect_target == "/"


# -- deny, redirect, dummy ---------------------------------------------------------------------


def test_deny_stage(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("denying", ("dummy", {"message": "before"}), ("deny", {"message": "Not today."}))
    browser.start("denying")
    response = browser.submit("denying")
    assert response.status_code == (200 if browser.htmx else 403)
    assert "Not today." in response.text
    assert "Request denied" in response.text
    with browser.client.session_transaction() as session:
        assert "denying" not in session.get(PLANS_KEY, {})


def test_deny_stage_first(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("denying", "deny")
    response = browser.start("denying")
    assert "Access denied." in response.text
    assert browser.stage_type is None


def test_redirect_stage_to_url(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("away", ("dummy", {"message": "first"}), ("redirect", {"target_url": "/elsewhere"}))
    browser.start("away", next="/ignored")
    browser.submit("away")
    assert browser.redirect_target == "/elsewhere"
    with browser.client.session_transaction() as session:
        assert "away" not in session.get(PLANS_KEY, {})


@pytest.mark.parametrize("keep_context", [True, False])
def test_redirect_stage_to_flow(
    browser: FlowBrowser, make_flow: Callable[..., Flow], keep_context: bool
) -> None:
    make_flow("target", ("dummy", {"message": "in the target flow"}))
    make_flow("hop", ("redirect", {"target_flow": "target", "keep_context": keep_context}))
    browser.start("hop", next="/final")
    expected = "/flows/target/?next=/final" if keep_context else "/flows/target/"
    assert browser.redirect_target == expected
    browser.follow()
    assert "in the target flow" in browser.last.text  # type: ignore[union-attr]
    browser.submit("target")
    assert browser.redirect_target == ("/final" if keep_context else "/")


def test_dummy_stage(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("d", ("dummy", {"message": "Hello from the dummy."}))
    page = browser.start("d", next="/x")
    assert browser.stage_type == "dummy"
    assert "Hello from the dummy." in page.text
    browser.submit("d")
    assert browser.redirect_target == "/x"


def test_dummy_stage_fail_retries(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("d", ("dummy", {"fail": True}))
    browser.start("d")
    response = browser.submit("d")
    response = browser.settle()
    assert response.status_code == 200
    assert "This step did not accept the submission." in response.text
    assert browser.stage_type == "dummy"
