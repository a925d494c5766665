"""Server-side authenticated sessions: logout, revocation and expiry really end a login."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask, request
from flask.testing import FlaskClient
from flask_login import login_user

from flask_flows import AuthenticatedSession, Flow
from flask_flows.models import utcnow

PASSWORD = "correct horse battery"


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A fresh client (another machine) carrying a copied session cookie."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client


def records(app: Flask) -> list[AuthenticatedSession]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuthenticatedSession)))
        db.session.expunge_all()
        return rows


def add_app_login_route(app: Flask) -> None:
    """The app logging a user in by itself, bypassing flows."""

    @app.route("/app-login/<int:user_id>")
    def app_login(user_id: int) -> str:
        remember = request.args.get("remember") == "1"
        login_user(db.session.get(User, user_id), remember=remember)
        return "logged in by the app"


def test_login_records_a_session(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    user = make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    (record,) = records(app)
    assert record.user_id == str(user.id)
    assert record.expires is None


def test_replayed_cookie_after_logout_is_anonymous(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    logout_flow: Flow,
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    stolen = session_cookie(browser.client)
    assert replay(app, stolen).get("/").text == "home: alice"

    browser.start("logout")
    browser.submit("logout")
    assert browser.client.get("/").text == "home: anonymous"
    assert records(app) == []
    assert replay(app, stolen).get("/").text == "home: anonymous"


def test_deleted_session_row_logs_out(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    with app.app_context():
        db.session.execute(sa.delete(AuthenticatedSession))
        db.session.commit()
    assert browser.client.get("/").text == "home: anonymous"
    # Still anonymous on the next request: the login is gone from the cookie too.
    assert browser.client.get("/").text == "home: anonymous"


def test_other_users_row_does_not_count(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """A session key recorded for one user does not vouch for another user id."""
    make_user("alice")
    bob = make_user("bob")
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    with browser.client.session_transaction() as session:
        session["_user_id"] = str(bob.id)
    assert browser.client.get("/").text == "home: anonymous"


def test_expired_session_is_anonymous(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    with app.app_context():
        record = db.session.scalars(sa.select(AuthenticatedSession)).one()
        record.expires = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert browser.client.get("/").text == "home: anonymous"
    assert records(app) == []


def age_the_login(app: Flask, **ago: timedelta) -> None:
    """Move the one login's ``created``/``last_seen`` into the past."""
    with app.app_context():
        record = db.session.scalars(sa.select(AuthenticatedSession)).one()
        for column, delta in ago.items():
            setattr(record, column, utcnow() - delta)
        db.session.commit()


@pytest.mark.parametrize(
    ("ago", "still_in"),
    [
        ({"created": timedelta(days=30, seconds=1)}, False),  # FLOWS_SESSION_MAX_AGE
        ({"created": timedelta(days=29)}, True),
        ({"last_seen": timedelta(days=7, seconds=1)}, False),  # FLOWS_SESSION_IDLE_TIMEOUT
        ({"last_seen": timedelta(days=6)}, True),
    ],
    ids=["too-old", "old", "idle-too-long", "idle"],
)
def test_no_login_lives_for_ever(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    ago: dict[str, timedelta],
    still_in: bool,
) -> None:
    """A stage with session_duration 0 (the default) used to give a row that never
    expired: the copied cookie of a login nobody ended worked for ever."""
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    age_the_login(app, **ago)
    assert browser.whoami() == ("home: alice" if still_in else "home: anonymous")
    assert len(records(app)) == (1 if still_in else 0)


@pytest.mark.parametrize(
    "app_config",
    [{"FLOWS_SESSION_MAX_AGE": 3600, "FLOWS_SESSION_IDLE_TIMEOUT": None}],
)
def test_the_lifetimes_are_the_apps_to_set(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    age_the_login(app, last_seen=timedelta(days=365), created=timedelta(minutes=59))
    assert browser.whoami() == "home: alice"
    age_the_login(app, created=timedelta(minutes=61))
    assert browser.whoami() == "home: anonymous"


def test_unexpired_session_stays(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    with app.app_context():
        record = db.session.scalars(sa.select(AuthenticatedSession)).one()
        record.expires = utcnow() + timedelta(minutes=5)
        db.session.commit()
    assert browser.client.get("/").text == "home: alice"


def test_last_seen_is_refreshed(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    long_ago = utcnow() - timedelta(hours=2)
    with app.app_context():
        record = db.session.scalars(sa.select(AuthenticatedSession)).one()
        record.last_seen = long_ago
        db.session.commit()
    browser.client.get("/")
    (record,) = records(app)
    assert record.last_seen > long_ago + timedelta(hours=1)


@pytest.mark.parametrize("remember", ["0", "1"])
def test_an_app_login_with_flask_logins_login_user_is_kept(
    app: Flask, make_user: Callable[..., User], remember: str
) -> None:
    """Before: an OAuth callback's or magic link's login_user() was undone on the next
    request (no server-side session behind it). Now one is recorded for it, and logout
    and "end other sessions" end it like any other."""
    user = make_user("alice")
    add_app_login_route(app)
    client = app.test_client()
    assert client.get(f"/app-login/{user.id}?remember={remember}").status_code == 200
    assert client.get("/").text == "home: alice"
    (record,) = records(app)
    assert record.user_id == str(user.id)
    with app.app_context():
        db.session.delete(db.session.get(AuthenticatedSession, record.id))
        db.session.commit()
    assert client.get("/").text == "home: anonymous"


def test_app_remember_cookie_alone_is_logged_out(
    app: Flask, make_user: Callable[..., User]
) -> None:
    """Flask-Login's remember-me cookie restores a login on a fresh session; without a
    flask-flows session behind it, that login must not count either."""
    user = make_user("alice")
    add_app_login_route(app)
    client = app.test_client()
    client.get(f"/app-login/{user.id}?remember=1")
    remember_cookie = client.get_cookie("remember_token")
    assert remember_cookie is not None
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remember_cookie.value)
    assert fresh.get("/").text == "home: anonymous"
    assert fresh.get_cookie("remember_token") is None
    assert fresh.get("/").text == "home: anonymous"


@pytest.mark.parametrize("app_config", [{"FLOWS_ENFORCE_SESSIONS": False}])
def test_app_login_counts_when_enforcement_is_off(
    app: Flask, make_user: Callable[..., User], app_config: dict[str, Any]
) -> None:
    user = make_user("alice")
    add_app_login_route(app)
    client = app.test_client()
    client.get(f"/app-login/{user.id}")
    assert client.get("/").text == "home: alice"
