"""Logging in and out in a real browser: htmx swaps and plain posts, the keyboard, the back
button, reloads and double clicks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import HTMX_SETTINGS, PASSWORD, Walker

pytestmark = pytest.mark.browser

LOGIN = "default-authentication-flow"
SIGN_UP = "default-enrollment-flow"
RECOVERY = "default-recovery-flow"
BAD_LOGIN = "Invalid username or password."


def new_account(name: str) -> dict[str, str]:
    """The sign-up form of someone new: a flow of two pages (the form, then the inbox)."""
    return {
        "username": name,
        "email": f"{name}@example.com",
        "password": PASSWORD,
        "password_repeat": PASSWORD,
    }


def test_log_in_and_out(walker: Callable[..., Walker], user: str) -> None:
    me = walker()
    me.goto("/")
    me.page.get_by_role("link", name="Log in").last.click()
    me.stage_loaded()
    me.screenshot("login")
    # One page asks for both (the identification stage's password_stage).
    me.submit("identification", uid_field=user, password="not the password")
    assert BAD_LOGIN in me.stage.inner_text()
    assert me.field("uid_field").input_value() == user  # kept for the next try
    summary = me.page.locator("#flows-error-summary")
    assert BAD_LOGIN in summary.inner_text()
    # Without JavaScript the page opens at the summary; with it, at the invalid field.
    assert me.focused() == ("password" if me.js else "div:")
    me.screenshot("password-error")
    me.finish("/", password=PASSWORD)
    assert me.page.locator(".bar nav strong").inner_text() == user

    me.page.locator(".bar nav").get_by_role("link", name="Log out").click()
    me.stage_loaded()
    me.finish("/")
    assert "You are not logged in." in me.text()


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_keyboard_only_with_focus_and_announced_errors(
    walker: Callable[..., Walker], user: str
) -> None:
    me = walker()
    me.start(LOGIN)
    keyboard = me.page.keyboard
    assert me.focused() == "uid_field"
    keyboard.type(user)
    keyboard.press("Tab")
    assert me.focused() == "password"
    keyboard.type("not the password")
    keyboard.press("Enter")
    me.expect_stage("identification")
    password = me.field("password")
    assert me.focused() == "password"
    assert password.get_attribute("aria-invalid") == "true"
    error_id = password.get_attribute("aria-describedby")
    assert error_id
    # Focus on the field reads its label and then its description: the error.
    assert BAD_LOGIN in me.page.locator(f"#{error_id}").inner_text()

    keyboard.type(PASSWORD)
    keyboard.press("Enter")
    me.wait_for_path("/")
    assert me.page.locator(".bar nav strong").inner_text() == user


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_stage_messages_are_announced_in_the_live_region(walker: Callable[..., Walker]) -> None:
    me = walker()
    me.start(SIGN_UP)
    old_tab = me.page.context.new_page()
    old_tab.goto(me.page.url)
    me.submit("email", **new_account("dana"))

    old_tab.locator("[name=username]").fill("erin")
    old_tab.get_by_role("button", name="Continue").click()
    stale = "That page was out of date"
    old_tab.wait_for_function(
        "text => document.getElementById('flows-announcer').textContent.includes(text)",
        arg=stale,
    )
    messages = old_tab.locator("#flow-stage .flows-messages")
    assert messages.get_attribute("aria-live") == "polite"
    assert stale in messages.inner_text()
    # The old tab now shows where the flow is, what the other tab reached.
    assert old_tab.locator("#flow-stage [data-stage-type='email']").count() == 1


def test_back_forward_and_reload_step_through_the_flow(
    walker: Callable[..., Walker], js: bool
) -> None:
    me = walker()
    me.goto("/")
    me.start(SIGN_UP)
    me.submit("email", **new_account("frank"))

    me.page.reload()  # a GET of the stage's own URL: nothing is sent again
    me.stage_loaded("email")
    assert "frank@example.com" in me.stage.inner_text()
    me.page.go_back()
    if js:
        # Each stage is a history entry: Back is the form, as it was filled in.
        me.stage_loaded("prompt")
        me.page.go_forward()  # the inbox page was undone by Back: where the flow is now
        me.stage_loaded("prompt")
    else:
        # Without JavaScript the first page keeps the flow's own address, which shows the
        # stage the flow is at; the card's Back link goes back.
        me.stage_loaded("email")
        with me.page.expect_navigation():
            me.stage.get_by_role("link", name="Back").click()
        me.stage_loaded("prompt")
    assert me.field("username").input_value() == "frank"
    assert me.field("password").input_value() == ""  # never kept across pages
    me.submit("email", **new_account("franz"))
    assert "franz@example.com" in me.stage.inner_text()


def test_the_in_card_back_link_returns_to_the_page_before(
    walker: Callable[..., Walker], user: str
) -> None:
    me = walker()
    me.start(RECOVERY)
    me.submit("email", uid_field=user)
    back = me.stage.get_by_role("link", name="Back")
    if me.js:
        me._mark_current()
        back.click()
        me.expect_stage("identification")  # swapped in by htmx, its URL pushed
        assert "step=" in me.page.url
        me.page.go_back()  # the browser's Back: the inbox page's URL, now undone
        me.stage_loaded("identification")
    else:
        with me.page.expect_navigation():
            back.click()
        me.stage_loaded("identification")
    me.submit("email", uid_field=user)


def test_double_click_submits_once(walker: Callable[..., Walker], user: str) -> None:
    me = walker()
    me.start(LOGIN)
    me.fill(uid_field=user, password=PASSWORD)
    me.stage.get_by_role("button", name="Sign in").dblclick()
    me.wait_for_path("/")
    me.page.wait_for_load_state()
    # htmx disables the button while its request is in flight. Without JS, Chromium
    # usually does not submit again while the first submission loads, but on a busy
    # machine the second click can leave before the first answer arrives: it then
    # carries the same (old) session cookie and step, and lands where the first did.
    if me.js:
        assert len(me.posts) == 1
    else:
        assert len(me.posts) in (1, 2)
    assert me.page.locator(".bar nav strong").inner_text() == user


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_htmx_keeps_no_history_and_stays_on_the_site(
    walker: Callable[..., Walker], user: str
) -> None:
    """The same htmx settings in flask-flows' own page shell (set by flows.js)."""
    me = walker()
    me.start(LOGIN)
    me.submit("identification", uid_field=user, password="not the password")
    assert me.page.evaluate(HTMX_SETTINGS) == [0, True, False, False, None]
