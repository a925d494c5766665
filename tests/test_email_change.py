"""Changing the email address (default-email-change), and the email stage's recipient
when a logged-in user enters an address.

Before: there was no way for a user to change their address, and the email stage never
mailed an address entered by a logged-in user who had none (nor logged that it sent
nothing)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, without_nonces
from factory import User, db
from flask import Flask
from smtp_sink import Mailbox, link_in

from flask_flows import AuthenticatedSession, Flow
from flask_flows.blueprints import install_default_flows
from flask_flows.mail import wait_for_outgoing_mail

PASSWORD = "correct horse battery"
SLUG = "default-email-change"


@pytest.fixture
def app_config(mailbox: Mailbox) -> dict[str, Any]:
    return {**mailbox.config}


@pytest.fixture
def alice(app: Flask, make_user: Callable[..., User]) -> User:
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    return make_user("alice", password=PASSWORD)


def email_of(app: Flask, username: str) -> str | None:
    with app.app_context():
        return db.session.scalar(sa.select(User.email).filter_by(username=username))


def ask_to_change(app: Flask, to: str) -> FlowBrowser:
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD)
    settings = browser.get("/flows/-/settings/").text
    assert "Change your email address" in settings
    browser.start(SLUG)
    browser.step(SLUG, password=PASSWORD)
    page = browser.step(SLUG, email=to).text
    assert browser.stage_type == "email"
    assert f"We sent an email to <strong>{to}</strong>" in page
    return browser


@pytest.mark.parametrize("opened_on", ["this browser", "a phone"])
def test_the_address_changes_when_the_link_to_it_is_opened(
    app: Flask, alice: User, mailbox: Mailbox, opened_on: str
) -> None:
    browser = ask_to_change(app, "alice@new.example")
    confirm = mailbox.wait_for_message()
    assert confirm["To"] == "alice@new.example"
    assert email_of(app, "alice") == "alice@example.com"  # not before the link is opened
    opener = browser if opened_on == "this browser" else browser.fresh()
    assert opener.open_link(link_in(confirm)).status_code == 303
    opener.follow()  # the rest of the flow: the address is written
    assert opener.redirect_target == "/"
    assert email_of(app, "alice") == "alice@new.example"
    notice = mailbox.wait_for_message(2)
    assert notice["To"] == "alice@example.com"
    assert notice["Subject"] == "Your email address was changed"
    assert "alice@new.example" in notice.get_body(("plain",)).get_content()
    assert "the site administrators" in notice.get_body(("plain",)).get_content()
    # The old address no longer finds the account; the new one does.
    again = FlowBrowser(app.test_client())
    again.log_in("alice@new.example", PASSWORD)
    assert again.redirect_target == "/"


def test_an_address_taken_by_another_account_is_told_to_its_owner_only(
    app: Flask, alice: User, make_user: Callable[..., User], mailbox: Mailbox
) -> None:
    """No check before the mail (an account's existence must not show to a prober): the
    page is the one a free address gets, and the address's owner is mailed that they
    have an account, with no link that would write it."""
    make_user("bob", password=PASSWORD)
    free = ask_to_change(app, "nobody-yet@example.com")
    mailbox.wait_for_message()
    browser = ask_to_change(app, "bob@example.com")
    assert same_page(browser.last.text, free.last.text)
    told = mailbox.wait_for_message(2)
    assert told["To"] == "bob@example.com"
    assert told["Subject"] == "You already have an account at Test App"
    body = told.get_body(("plain",)).get_content()
    assert "Hello bob," in body and "/flows/-/login/" in body
    assert "/flows/-/resume/" not in body
    assert email_of(app, "alice") == "alice@example.com"


def same_page(one: str, other: str) -> bool:
    """Equal but for the per-request tokens (CSRF, plan step) and the address shown."""
    strip = re.compile(r'(name="(?:csrf_token|flow_step)"[^>]*value=")[^"]*|[\w.+-]+@example\.com')
    return without_nonces(strip.sub(r"\1", one)) == without_nonces(strip.sub(r"\1", other))


def test_a_logged_in_user_without_an_address_gets_the_link_at_the_one_entered(
    app: Flask,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
    login_flow: Flow,
) -> None:
    make_user("carol", password=PASSWORD, email="")
    prompt = {"fields": [{"field_key": "email", "label": "Email", "type": "email"}]}
    make_flow("add-email", ("prompt", prompt), "email", "dummy", designation="stage_configuration")
    browser = FlowBrowser(app.test_client())
    browser.log_in("carol", PASSWORD, slug="login")
    browser.start("add-email")
    browser.step("add-email", email="carol@example.com")
    assert mailbox.wait_for_message()["To"] == "carol@example.com"


def test_an_entered_address_never_receives_the_link_of_an_identified_account(
    app: Flask,
    alice: User,
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
) -> None:
    """A recovery-like flow that asks for an address after identification: the link is
    the account's, so it goes to the account's own address, never the one typed."""
    prompt = {"fields": [{"field_key": "email", "label": "Email", "type": "email"}]}
    make_flow(
        "sneaky",
        "identification",
        ("prompt", prompt),
        ("email", {"to": "entered"}),
        "dummy",
        designation="recovery",
    )
    browser = FlowBrowser(app.test_client())
    browser.start("sneaky")
    browser.step("sneaky", uid_field="alice")
    browser.step("sneaky", email="attacker@evil.example")
    assert wait_for_outgoing_mail(timeout=10)
    assert mailbox.messages == []  # not the typed address, and no link to confirm it


def test_a_login_that_ended_mid_change_confirms_nothing(
    app: Flask, alice: User, mailbox: Mailbox
) -> None:
    """The login ends (idle, or ended from another device) after the new address was
    entered: "Send again" must not fall back to the account's own address, whose link
    would then write the unconfirmed one."""
    browser = ask_to_change(app, "typo@new.example")
    mailbox.wait_for_message()
    with app.app_context():
        db.session.execute(sa.delete(AuthenticatedSession))
        db.session.commit()
    mailbox.clear()
    browser.submit(SLUG)  # "Send again"
    assert wait_for_outgoing_mail(timeout=10)
    assert mailbox.messages == []


def test_a_notice_the_app_cannot_send_does_not_undo_the_change(
    make_app: Callable[..., Any], make_flow: Callable[..., Flow], caplog: pytest.LogCaptureFixture
) -> None:
    """A profile flow that writes the address straight away, in an app with no way to send
    mail: the address is written, and the log says the old one was not told."""
    app, _flows = make_app(TESTING=False, FLOWS_MAIL_BASE_URL="https://example.com")
    with app.app_context():
        app.extensions["flows"].user_store.create(
            username="dora", email="dora@example.com", password=PASSWORD
        )
        db.session.commit()
    prompt = {"fields": [{"field_key": "email", "label": "Email", "type": "email"}]}
    make_flow(
        "profile",
        ("prompt", prompt),
        ("user_write", {"user_creation_mode": "never_create"}),
        designation="stage_configuration",
    )
    make_flow("login", "identification", "password", "user_login")
    browser = FlowBrowser(app.test_client())
    browser.log_in("dora", PASSWORD, slug="login")
    browser.start("profile")
    browser.step("profile", email="dora@new.example")
    assert browser.redirect_target == "/"
    assert email_of(app, "dora") == "dora@new.example"
    assert "was not told of the change: this app cannot send mail" in caplog.text
