"""Signals and logs: every authentication decision is reported, no secret ever is."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from blinker import Signal
from browsing import FlowBrowser
from flask import Flask

from flask_flows import signals

PASSWORD = "correct horse battery"


@contextmanager
def recording(app: Flask, *watched: Signal) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Record (signal name, kwargs) for every send of ``watched`` by ``app``."""
    events: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for signal in watched:

        def receiver(sender: Any, _name: str = str(signal.name), **kwargs: Any) -> None:
            assert sender is app
            events.append((_name, kwargs))

        signal.connect(receiver, sender=app)
        receivers.append((signal, receiver))
    try:
        yield events
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver, sender=app)


def test_a_successful_login_sends_the_flow_signals(
    app: Flask, browser: FlowBrowser, make_user, login_flow
) -> None:
    user = make_user("alice", password=PASSWORD)
    watched = (
        signals.flow_started,
        signals.stage_completed,
        signals.flow_completed,
        signals.user_logged_in,
        signals.login_failed,
    )
    with recording(app, *watched) as events:
        browser.log_in("alice", PASSWORD, slug="login")

    names = [name for name, _ in events]
    assert names == [
        "flow-started",
        "stage-completed",
        "stage-completed",
        "user-logged-in",
        "stage-completed",
        "flow-completed",
    ]
    logged_in = dict(events)["user-logged-in"]
    assert logged_in["user"].id == user.id
    assert logged_in["flow"].slug == "login"
    assert dict(events)["flow-completed"]["redirect_to"] == "/"


def test_failures_and_logout_are_signalled(
    app: Flask, browser: FlowBrowser, make_user, login_flow, logout_flow
) -> None:
    make_user("alice", password=PASSWORD)
    with recording(app, signals.login_failed, signals.user_logged_out) as events:
        browser.fresh().log_in("nobody", "whatever-password", slug="login")
        browser.fresh().log_in("alice", "wrong-password", slug="login")
        browser.log_in("alice", PASSWORD, slug="login")
        browser.start("logout")
        browser.submit("logout")

    reasons = [kwargs.get("reason") for name, kwargs in events if name == "login-failed"]
    assert reasons == ["unknown_identifier", "invalid_password", "invalid_password"]
    assert [name for name, _ in events][-1] == "user-logged-out"


def test_denied_flow_is_signalled(app: Flask, browser: FlowBrowser, make_flow) -> None:
    make_flow("blocked", ("deny", {"message": "Not today."}))
    with recording(app, signals.flow_denied) as events:
        response = browser.start("blocked")
    assert "Not today." in response.text
    assert events and events[0][1]["messages"] == ["Not today."]


def test_no_secret_reaches_the_logs_or_the_session_cookie(
    app: Flask, browser: FlowBrowser, make_user, login_flow, caplog: pytest.LogCaptureFixture
) -> None:
    make_user("alice", password=PASSWORD)
    caplog.set_level(logging.DEBUG)
    browser.fresh().log_in("alice", "a-wrong-secret-value", slug="login")
    browser.log_in("alice", PASSWORD, slug="login")

    assert "flask_flows" in {record.name.split(".")[0] for record in caplog.records}
    assert PASSWORD not in caplog.text
    assert "a-wrong-secret-value" not in caplog.text
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    decoded = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[union-attr]
    assert PASSWORD not in repr(decoded)
    assert browser.get("/").text == "home: alice"
