"""Live checks in a real browser: a field is checked by the server's own rules as it is
typed in or left, its error appears under it, is announced, and the error summary of a
refused submit follows; the focus stays where the person types."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Walker

from flask_flows.policies.password import MSG_COMMON
from flask_flows.stages.prompt_checks import MSG_ENTER

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("js", [True], ids=["js"])]

SIGN_UP = "default-enrollment-flow"
STRONG = "violet orbit stapler 93"


def test_a_common_password_is_named_while_typing_and_cleared_when_fixed(
    walker: Callable[..., Walker],
) -> None:
    me = walker()
    me.start(SIGN_UP)
    password = me.field("password")
    password.click()
    password.press_sequentially("password1")  # then a pause in typing
    error = me.stage.locator("#password-feedback .flows-error")
    error.wait_for()
    assert error.inner_text() == MSG_COMMON
    assert password.get_attribute("aria-invalid") == "true"
    assert "password-error" in (password.get_attribute("aria-describedby") or "")
    assert me.page.locator("#flows-announcer").inner_text() == MSG_COMMON
    assert me.focused() == "password"  # nothing moved under the typing
    me.check_a11y()

    password.fill(STRONG)
    error.wait_for(state="detached")
    assert password.get_attribute("aria-invalid") is None


def test_fixing_a_field_updates_the_error_summary_of_a_refused_form(
    walker: Callable[..., Walker],
) -> None:
    me = walker()
    me.start(SIGN_UP)
    me.submit("prompt", email="sam@example.com", password=STRONG, password_repeat=STRONG)
    summary = me.stage.locator("#flows-error-summary")
    assert MSG_ENTER["username"] in summary.inner_text()
    assert me.page.title().startswith("Error: ")
    me.field("username").fill("sam")
    me.field("username").press("Tab")  # left: checked at once
    summary.wait_for(state="detached")
    assert me.field("username").get_attribute("aria-invalid") is None
    assert not me.page.title().startswith("Error: ")
    me.check_a11y()
