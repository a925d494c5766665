"""Mailed links never point at a host the request only claims (a forged Host header).

The attack: with no FLOWS_MAIL_BASE_URL, a recovery request sent with
``Host: evil.example`` mailed the victim a link to evil.example, and the token it leaked
reset the password on the real host. Outside debug and testing, flask-flows now builds
mailed links only from a host the app names, and refuses to start without one when a
stage mails links.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click
import pytest
from browsing import FlowBrowser
from factory import MakeApp, User
from flask import Flask
from smtp_sink import Mailbox, bodies

from flask_flows import ConfigError, Flow
from flask_flows.mail import wait_for_outgoing_mail

SLUG = "recover"
EVIL = "http://evil.example"
#: What a deployment runs with: no TESTING, no debug.
PRODUCTION = {"TESTING": False, "DEBUG": False}


@pytest.fixture
def recovery_flow(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(SLUG, "identification", "email", "dummy", designation="recovery")


def ask_for_a_link(app: Flask, host: str) -> FlowBrowser:
    """Start recovery for alice on ``host`` (the Host header the client sends); Flask
    itself may refuse the host (SERVER_NAME, TRUSTED_HOSTS), leaving nothing to submit."""
    browser = FlowBrowser(app.test_client())
    browser.get(f"{host}/flows/{SLUG}/")
    if browser.stage_type == "identification":
        browser.step(uid_field="alice")
    return browser


def test_a_forged_host_gets_no_link_and_the_victim_no_mail(
    make_app: MakeApp,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The mail stage is added after start-up, so the start-up check could not see it:
    the request that would mail a forgeable link fails with a calm page instead."""
    app, _ = make_app(**PRODUCTION, **mailbox.config)
    make_flow(SLUG, "identification", "email", "dummy", designation="recovery")
    make_user("alice")
    with caplog.at_level(logging.ERROR):
        browser = ask_for_a_link(app, EVIL)
    assert browser.last is not None and browser.last.status_code == 500
    assert "Something went wrong" in browser.last.text
    assert "FLOWS_MAIL_BASE_URL" in caplog.text
    wait_for_outgoing_mail(timeout=10)
    assert mailbox.messages == []


def test_an_app_with_a_mail_stage_and_no_named_host_refuses_to_start(
    make_app: MakeApp, recovery_flow: Flow
) -> None:
    with pytest.raises(ConfigError, match=r"stage 'recover-1-email' mails links.*FLOWS_MAIL_BASE"):
        make_app(**PRODUCTION)


def test_the_flask_command_still_works_and_says_what_is_wrong(
    make_app: MakeApp, recovery_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    """``flask db upgrade`` or ``flask flows create-user`` must not die with the app."""
    with click.Context(click.Command("flask")), caplog.at_level(logging.ERROR):
        make_app(**PRODUCTION)
    assert "mails links" in caplog.text


@pytest.mark.parametrize(
    ("setting", "link_host"),
    [
        ({"FLOWS_MAIL_BASE_URL": "https://accounts.example.org"}, "https://accounts.example.org"),
        ({"SERVER_NAME": "accounts.example.org"}, "http://accounts.example.org"),
        ({"TRUSTED_HOSTS": ["accounts.example.org"]}, "http://accounts.example.org"),
    ],
    ids=["base-url", "server-name", "trusted-hosts"],
)
def test_a_named_host_starts_and_links_point_only_there(
    make_app: MakeApp,
    make_user: Callable[..., User],
    recovery_flow: Flow,
    mailbox: Mailbox,
    setting: dict[str, Any],
    link_host: str,
) -> None:
    app, _ = make_app(**PRODUCTION, **mailbox.config, **setting)
    make_user("alice")

    forged = ask_for_a_link(app, EVIL)
    assert forged.last is not None and forged.last.status_code < 500
    wait_for_outgoing_mail(timeout=10)
    for message in mailbox.messages:
        assert "evil.example" not in "".join(bodies(message))

    mailbox.clear()
    ask_for_a_link(app, link_host)
    text, _ = bodies(mailbox.wait_for_message())
    assert f"{link_host}/flows/-/resume/" in text


@pytest.mark.parametrize("mode", [{"DEBUG": True}, {"TESTING": True}], ids=["debug", "testing"])
def test_on_a_developer_machine_links_take_the_request_host(
    make_app: MakeApp,
    make_user: Callable[..., User],
    recovery_flow: Flow,
    mailbox: Mailbox,
    mode: dict[str, bool],
) -> None:
    app, _ = make_app(**{**PRODUCTION, **mode}, **mailbox.config)
    make_user("alice")
    ask_for_a_link(app, "http://127.0.0.1:5000")
    text, _ = bodies(mailbox.wait_for_message())
    assert "http://127.0.0.1:5000/flows/-/resume/" in text
