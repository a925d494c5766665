"""Two-step sign-in in a real browser: set up an authenticator app from the secret the
page shows, create recovery codes, and log in with each, JavaScript on and off."""

from __future__ import annotations

import time
from collections.abc import Callable

import pyotp
import pytest
from conftest import PASSWORD, LiveApp, Walker

from example_app import db
from flask_flows.blueprints import apply_blueprint

pytestmark = pytest.mark.browser


def log_in_to_second_factor(me: Walker, username: str) -> None:
    me.start("default-authentication-flow")
    me.submit("authenticator_validate", uid_field=username, password=PASSWORD)


def test_setup_pages_open_at_their_heading_on_a_phone(
    walker: Callable[..., Walker], user: str
) -> None:
    me = walker(viewport={"width": 360, "height": 640})
    me.log_in(user)
    me.page.get_by_role("link", name="Create recovery codes").click()
    me.stage_loaded("password")
    me.submit("authenticator_static", password=PASSWORD)
    if me.js:
        assert me.focused() == "h2:"
    first_code = me.stage.locator("#flows-recovery-codes code").first.bounding_box()
    assert first_code is not None
    assert 0 <= first_code["y"] < 640, "the page opened scrolled past the codes"


def test_set_up_an_authenticator_app_and_log_in_with_a_code(
    walker: Callable[..., Walker], user: str
) -> None:
    me = walker()
    me.log_in(user)
    me.page.get_by_role("link", name="Set up an authenticator app").click()
    me.stage_loaded("password")  # re-authentication first (ASVS 7.5.1)
    me.submit("authenticator_totp", password=PASSWORD)
    me.stage.get_by_text("Enter the key by hand").click()
    me.screenshot("totp-setup")
    secret = me.stage.locator("#flows-totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    me.submit("authenticator_totp", code="000000" if totp.now() != "000000" else "111111")
    assert me.field("code").get_attribute("aria-invalid") == "true"
    me.finish("/", name="Phone", code=totp.now())

    again = walker()
    log_in_to_second_factor(again, user)
    # The code of the next step: the one just used for the setup cannot be replayed.
    again.finish("/", code=totp.at(time.time() + 30))
    assert again.logged_in_as() == user


def test_create_recovery_codes_and_log_in_with_one(
    walker: Callable[..., Walker], user: str
) -> None:
    me = walker()
    me.log_in(user)
    me.page.get_by_role("link", name="Create recovery codes").click()
    me.stage_loaded("password")  # re-authentication first (ASVS 7.5.1)
    me.submit("authenticator_static", password=PASSWORD)
    me.screenshot("recovery-codes")
    codes = me.stage.locator("#flows-recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    if me.js:
        assert me.focused() == "h2:"  # the heading, so the codes are what shows first
        me.page.evaluate("document.getElementById('flows-recovery-codes').__shown = 1")
    # "I have saved them" left unticked: an error that must not cost the codes shown.
    button = me.stage.locator("form.flows-form button[type=submit]")
    if me.js:
        button.click()
    else:
        with me.page.expect_navigation():
            button.click()
    me.page.wait_for_selector("#flow-stage [name='saved'][aria-invalid='true']")
    assert me.stage.locator("#flows-recovery-codes code").all_inner_texts() == codes
    assert "These are new codes" not in me.stage.inner_text()
    if me.js:
        # Only the confirmation was swapped: the list on screen is the same element.
        assert me.page.evaluate("document.getElementById('flows-recovery-codes').__shown") == 1
        assert me.focused() == "saved"
        me.check_a11y()
    me.stage.get_by_label("I have saved these codes").check()
    me.finish("/")

    again = walker()
    log_in_to_second_factor(again, user)
    again.submit("authenticator_validate", code="AAAA-BBBB-CCCC")
    assert again.field("code").get_attribute("aria-invalid") == "true"
    again.finish("/", code=codes[3])
    assert again.logged_in_as() == user


MUST_SET_UP = """
version: 1
stages:
  - name: must-set-up
    type: authenticator_validate
    config:
      not_configured_action: configure
      configuration_stages:
        - default-authenticator-totp-setup-stage
        - default-authenticator-static-setup-stage
flows:
  - slug: must-set-up-login
    name: Login that requires two-step verification
    designation: authentication
    bindings:
      - {stage: default-authentication-identification, order: 10}
      - {stage: must-set-up, order: 20}
      - {stage: default-authentication-login, order: 30}
"""


def test_a_user_without_mfa_chooses_a_setup_at_login(
    walker: Callable[..., Walker], live_app: LiveApp, user: str
) -> None:
    """A login that requires two-step verification offers a user who has none the
    setups to choose from (one button each) and runs the one clicked."""
    with live_app.app.app_context():
        apply_blueprint(live_app.app.extensions["flows"], MUST_SET_UP)
        db.session.commit()
    me = walker()
    me.start("must-set-up-login")
    me.submit("authenticator_validate", uid_field=user, password=PASSWORD)
    assert me.stage.get_by_role("heading").inner_text() == "Set up two-step verification"
    me.screenshot("mfa-setup-choice")

    def choose(name: str, stage_type: str) -> None:
        button = me.stage.get_by_role("button", name=name)
        if me.js:
            button.click()
        else:
            with me.page.expect_navigation():
                button.click()
        me.expect_stage(stage_type)

    choose("Authenticator app", "authenticator_totp")
    # No phone at hand after all: Back to the choice, and recovery codes instead.
    back = me.stage.get_by_role("link", name="Back")
    if me.js:
        back.click()
    else:
        with me.page.expect_navigation():
            back.click()
    me.page.wait_for_selector("#flow-stage [data-stage-type='authenticator_validate']")
    choose("Recovery codes", "authenticator_static")
    me.stage.get_by_label("I have saved these codes").check()
    me.finish("/")
    assert me.logged_in_as() == user
