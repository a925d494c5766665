"""A reverse proxy the app does not know about is named in the log, once, with the fix.

Behind a proxy without ProxyFix every visitor has the proxy's address, so the waits that
wrong passwords earn hold back everyone at once (an outside review found 10 wrong
passwords locked a whole office out)."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_flows import Flow

FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "does not apply ProxyFix" in r.getMessage()]


def test_a_proxy_without_proxy_fix_is_named_once(
    app: Flask, login_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        client.get("/flows/login/", headers=FORWARDED)
        client.get("/flows/login/", headers=FORWARDED)
    (message,) = warnings(caplog)
    assert "X-Forwarded-For from 127.0.0.1" in message
    assert "ProxyFix(app.wsgi_app, x_for=1)" in message


@pytest.mark.parametrize(
    ("headers", "peer", "fixed"),
    [
        ({}, "127.0.0.1", False),  # no proxy in front
        (FORWARDED, "93.184.216.34", False),  # a public peer: a client's own header
        (FORWARDED, "10.0.0.5", True),  # the app applies ProxyFix
    ],
    ids=["direct", "public-peer", "proxy-fix"],
)
def test_no_warning_without_a_known_proxy_or_with_proxy_fix(
    app: Flask,
    login_flow: Flow,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    peer: str,
    fixed: bool,
) -> None:
    if fixed:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        app.test_client().get("/flows/login/", headers=headers, environ_base={"REMOTE_ADDR": peer})
    assert warnings(caplog) == []
