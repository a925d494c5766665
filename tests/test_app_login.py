"""Logging users in and out from the app's own code: ``flask_flows.log_in`` and
``log_out`` do what the login and logout flows do (server-side session, a fresh cookie
session, signals), for an OAuth callback, a magic link or an impersonation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from factory import User, db
from flask import Flask, request, session
from flask.testing import FlaskClient

import flask_flows
from flask_flows import AuthenticatedSession, signals


def add_routes(app: Flask) -> None:
    @app.get("/magic/<int:user_id>")
    def magic(user_id: int) -> tuple[str, int]:
        session["before_login"] = "kept?"
        user = db.session.get(User, user_id)
        try:
            flask_flows.log_in(user, end_other_sessions=request.args.get("others") == "1")
        except ValueError as error:
            return str(error), 403
        return "ok", 200

    @app.get("/peek")
    def peek() -> str:
        return str(session.get("before_login"))

    @app.post("/leave")
    def leave() -> str:
        flask_flows.log_out()
        return "bye"


def sessions_of(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(AuthenticatedSession)))


@pytest.fixture
def routed(app: Flask) -> Flask:
    add_routes(app)
    return app


def test_log_in_from_app_code_is_a_flows_login(
    routed: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    alice = make_user("alice")
    logged_in: list[tuple[Any, int]] = []
    logged_out: list[int] = []

    def on_login(sender: Flask, user: User, flow: Any) -> None:
        logged_in.append((flow, user.id))

    def on_logout(sender: Flask, user: User) -> None:
        logged_out.append(user.id)

    with (
        signals.user_logged_in.connected_to(on_login, routed),
        signals.user_logged_out.connected_to(on_logout, routed),
    ):
        assert client.get(f"/magic/{alice.id}").status_code == 200
        assert client.get("/").text == "home: alice"
        assert client.get("/peek").text == "None"  # a fresh session, as after a login flow
        assert sessions_of(routed) == 1
        assert client.post("/leave").text == "bye"
    assert client.get("/").text == "home: anonymous"
    assert sessions_of(routed) == 0
    assert logged_in == [(None, alice.id)]
    assert logged_out == [alice.id]


def test_an_inactive_user_is_refused(
    routed: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob", active=False)
    response = client.get(f"/magic/{bob.id}")
    assert response.status_code == 403
    assert "is inactive and cannot log in" in response.text
    assert client.get("/").text == "home: anonymous"
    assert sessions_of(routed) == 0


def test_end_other_sessions(routed: Flask, make_user: Callable[..., User]) -> None:
    alice = make_user("alice")
    phone, laptop = routed.test_client(), routed.test_client()
    phone.get(f"/magic/{alice.id}")
    laptop.get(f"/magic/{alice.id}?others=1")
    assert laptop.get("/").text == "home: alice"
    assert phone.get("/").text == "home: anonymous"
    assert sessions_of(routed) == 1


def test_a_plain_login_user_leaves_the_apps_transaction_alone(
    app: Flask, make_user: Callable[..., User]
) -> None:
    """The server-side session of an app's own login_user() is written apart: what the
    app's request has pending stays the app's to commit or roll back."""
    from flask_login import login_user

    alice = make_user("alice")

    @app.get("/login-then-undo/<int:user_id>")
    def login_then_undo(user_id: int) -> str:
        db.session.add(User(username="pending", email="pending@example.com"))
        db.session.flush()
        login_user(db.session.get(User, user_id))
        db.session.rollback()  # the app changes its mind about its own row
        return "ok"

    client = app.test_client()
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    if sqlite:  # one writer: the pending row blocks the record, and that is said at once
        with pytest.raises(RuntimeError, match="on SQLite, commit the request's changes"):
            client.get(f"/login-then-undo/{alice.id}")
        return
    assert client.get(f"/login-then-undo/{alice.id}").text == "ok"
    assert client.get("/").text == "home: alice"
    with app.app_context():
        assert db.session.scalar(sa.select(User).filter_by(username="pending")) is None
    assert sessions_of(app) == 1
