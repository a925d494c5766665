"""Sign-up, recovery, password change and account deletion in a real browser, each with
JavaScript on (htmx swaps) and off (plain posts). Mail goes over SMTP to the loopback
server; its link is opened in another browser context, as on another device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import PASSWORD, Walker
from smtp_sink import link_in

from example_app import db
from flask_flows.blueprints import apply_blueprint
from flask_flows.grants import create_invitation

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a whole new passphrase"


def test_sign_up_with_the_emailed_link(
    walker: Callable[..., Walker], mailbox: Any, js: bool
) -> None:
    username = f"newcomer{'js' if js else 'nojs'}"
    me = walker()
    me.goto("/")
    me.page.get_by_role("link", name="Create an account").click()
    me.stage_loaded("prompt")
    me.submit(
        "prompt",
        username=username,
        email=f"{username}@example.com",
        password="password",
        password_repeat="password",
    )
    assert me.field("password").get_attribute("aria-invalid") == "true"
    me.fill(password=PASSWORD, password_repeat=PASSWORD)
    me.submit("email")
    assert f"{username}@example.com" in me.stage.inner_text()
    if js:
        assert me.marker_kept()

    phone = walker()
    phone.open_link(link_in(mailbox.wait_for_message()))
    phone.wait_for_path("/")
    assert phone.logged_in_as() == username

    # The tab that waited moves on by itself (it asks every few seconds); without
    # JavaScript, its "I've opened the link" button asks.
    if not js:
        with me.page.expect_navigation():
            me.page.get_by_role("button", name="I've opened the link").click()
    me.page.get_by_text("The link was opened in another browser").wait_for(timeout=15_000)
    if js:
        me.check_a11y()


def test_recover_a_forgotten_password(
    walker: Callable[..., Walker], user: str, mailbox: Any
) -> None:
    me = walker()
    me.goto("/")
    me.page.get_by_role("link", name="Forgot your password?").click()
    me.stage_loaded("identification")
    me.submit("email", uid_field=f"{user}@example.com")

    phone = walker()
    phone.open_link(link_in(mailbox.wait_for_message()))
    phone.stage_loaded("prompt")
    phone.finish("/", password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert phone.logged_in_as() == user

    again = walker()
    again.log_in(user, NEW_PASSWORD)
    assert again.logged_in_as() == user


def test_change_the_password(walker: Callable[..., Walker], user: str) -> None:
    me = walker()
    me.log_in(user)
    me.page.get_by_role("link", name="Change your password").click()
    me.stage_loaded("password")
    me.submit("password", password="not my password")
    assert me.field("password").get_attribute("aria-invalid") == "true"
    me.submit("prompt", password=PASSWORD)
    me.finish("/", password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert me.logged_in_as() == user

    again = walker()
    again.log_in(user, NEW_PASSWORD)
    assert again.logged_in_as() == user


def test_delete_the_account(walker: Callable[..., Walker], user: str) -> None:
    me = walker()
    me.log_in(user)
    me.page.get_by_role("link", name="Delete your account").click()
    me.stage_loaded("password")
    me.submit("prompt", password=PASSWORD)
    me.submit("prompt")  # the confirmation left unticked
    assert me.field("confirm").get_attribute("aria-invalid") == "true"
    me.stage.get_by_label("I understand").check()
    me.finish("/")
    assert me.logged_in_as() is None

    again = walker()
    again.start("default-authentication-flow")
    again.submit("identification", uid_field=user, password=PASSWORD)
    assert "Invalid username or password." in again.stage.inner_text()


def test_someone_elses_link_asks_before_switching_accounts(
    walker: Callable[..., Walker], user: str, mailbox: Any, js: bool
) -> None:
    """mallory forwards the link of her own sign-up to someone who is signed in."""
    mallory = f"mallory{'js' if js else 'nojs'}"
    her = walker()
    her.start("default-enrollment-flow")
    her.submit(
        "email",
        username=mallory,
        email=f"{mallory}@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    link = link_in(mailbox.wait_for_message())

    me = walker()
    me.log_in(user)
    me.page.goto(link)
    me.page.get_by_role("button", name="Sign out and continue").wait_for()
    assert f"You are signed in as {user}" in me.text()
    if js:
        me.check_a11y()
    me.page.get_by_role("link", name=f"Stay signed in as {user}").click()
    me.wait_for_path("/")
    assert me.logged_in_as() == user


PAPER_SIGN_UP = """
version: 1
stages:
  - name: paper-code
    type: prompt
    config:
      title: Join the club
      fields:
        - {field_key: token, type: text, label: Invitation code}
  - name: paper-invitation
    type: invitation
  - name: paper-details
    type: prompt
    config:
      fields:
        - {field_key: email, type: email_read_only, label: Email}
flows:
  - slug: paper-sign-up
    name: Sign up with a code
    designation: enrollment
    bindings:
      - {stage: paper-code, order: 10}
      - {stage: paper-invitation, order: 20}
      - {stage: paper-details, order: 30}
"""


def test_sign_up_with_an_invitation_code_typed_in(
    walker: Callable[..., Walker], live_app: Any
) -> None:
    """A code given out on paper, mistyped first: the invitation page asks for it again,
    saying why; typed right (in lower case, spaces for dashes), its fixed address is
    shown on the next page."""
    with live_app.app.app_context():
        apply_blueprint(live_app.app.extensions["flows"], PAPER_SIGN_UP)
        _invitation, code = create_invitation(
            db.session,
            flow_slug="paper-sign-up",
            code=True,
            fixed_data={"email": "pat@example.com"},
        )
        db.session.commit()
    me = walker()
    me.start("paper-sign-up")
    me.submit("invitation", token="ABCD-EFGH")
    assert "This invitation code is not valid" in me.stage.inner_text()
    assert me.field("token").get_attribute("aria-invalid") == "true"
    me.screenshot("invitation-code-refused")
    me.submit("prompt", token=code.replace("-", " ").lower())
    assert me.field("email").input_value() == "pat@example.com"
