"""Mail the way the app already sends it (Flask-Mail, Flask-Mailman), the console in
development, and no "we sent you an email" when nothing can send.

Before: with no mail settings the email stage said "We sent an email" while the send
failed with a traceback in the log, and an app with Flask-Mail configured mail twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from browsing import FlowBrowser
from factory import MakeApp, User, create_test_app
from flask import Flask
from smtp_sink import Mailbox, link_in

from flask_flows import Flow
from flask_flows.mail import wait_for_outgoing_mail
from flask_flows.options import ConfigError

PASSWORD = "correct horse battery"
SLUG = "recover"


def recovery(make_flow: Callable[..., Flow]) -> None:
    make_flow(SLUG, "identification", "email", "dummy", designation="recovery")


def ask_for_a_link(app: Flask) -> FlowBrowser:
    browser = FlowBrowser(app.test_client())
    browser.start(SLUG)
    browser.step(SLUG, uid_field="alice")
    return browser


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


def with_mailer(make_app: MakeApp, mailbox: Mailbox, extension: str) -> Flask:
    """An app that sends its own mail with ``extension``, initialised first (as an app
    that had it before flask-flows does), its MAIL_* settings at the test's SMTP server."""
    settings = {
        "MAIL_SERVER": mailbox.host,
        "MAIL_PORT": mailbox.port,
        "MAIL_SUPPRESS_SEND": False,  # Flask-Mail's default under TESTING
        "MAIL_BACKEND": "smtp",  # Flask-Mailman's default under TESTING is in memory
        "MAIL_DEFAULT_SENDER": "Notes <notes@example.com>",
    }
    app, _flows = make_app(**settings)
    if extension == "flask-mail":
        from flask_mail import Mail
    else:
        from flask_mailman import Mail
    Mail(app)
    return app


@pytest.mark.parametrize("extension", ["flask-mail", "flask-mailman"])
def test_an_apps_own_mailer_sends_the_links(
    make_app: MakeApp,
    mailbox: Mailbox,
    make_flow: Callable[..., Flow],
    alice: User,
    extension: str,
) -> None:
    app = with_mailer(make_app, mailbox, extension)
    recovery(make_flow)
    browser = ask_for_a_link(app)
    assert browser.stage_type == "email"
    message = mailbox.wait_for_message()
    assert message["To"] == "alice@example.com"
    assert message["From"] == "Notes <notes@example.com>"  # the app's sender, not ours
    html = message.get_body(("html",))
    assert html is not None and "/flows/-/resume/" in html.get_content()
    assert browser.fresh().open_link(link_in(message)).status_code == 303


def test_the_console_in_testing_when_nothing_else_is_set(
    app: Flask, make_flow: Callable[..., Flow], alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    recovery(make_flow)
    ask_for_a_link(app)
    assert wait_for_outgoing_mail(timeout=10)
    printed = capsys.readouterr().err
    assert "--- mail to alice@example.com" in printed
    assert "/flows/-/resume/" in printed


def test_production_with_no_way_to_send_refuses_to_start(
    app: Flask, make_flow: Callable[..., Flow], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    recovery(make_flow)  # a stage that mails is in the database
    production = {"TESTING": False, "FLOWS_MAIL_BASE_URL": "https://example.com"}
    with pytest.raises(ConfigError, match="mails links, but this app cannot send mail"):
        create_test_app(database_url, **production)
    import click

    with click.Context(click.Command("flask")), caplog.at_level(logging.ERROR):
        create_test_app(database_url, **production)  # the flask command keeps working
    assert "cannot send mail" in caplog.text


def test_a_mail_asked_for_without_a_way_to_send_is_an_error_not_a_promise(
    make_app: MakeApp, make_flow: Callable[..., Flow], alice: User
) -> None:
    """A stage that mails, added after start-up, in an app that cannot send: the person
    gets the error page, never "Check your inbox"."""
    app, _flows = make_app(
        TESTING=False, PROPAGATE_EXCEPTIONS=False, FLOWS_MAIL_BASE_URL="https://example.com"
    )
    recovery(make_flow)
    browser = FlowBrowser(app.test_client())
    browser.start(SLUG)
    response = browser.step(SLUG, uid_field="alice")  # the post, then the email stage's page
    assert response.status_code == 500
    assert "Check your inbox" not in response.text


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [("smtp", "FLOWS_MAIL_BACKEND 'smtp' needs FLOWS_MAIL_SERVER"), ("pigeon", "neither one of")],
)
def test_a_named_backend_that_cannot_work_is_refused_at_start_up(
    make_app: MakeApp, setting: str, refusal: str
) -> None:
    with pytest.raises(ConfigError, match=refusal):
        make_app(FLOWS_MAIL_BACKEND=setting)
