"""The settings page in a real browser: a user ends the session of another device."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Walker

pytestmark = pytest.mark.browser


def test_end_the_session_of_another_device(walker: Callable[..., Walker], user: str) -> None:
    laptop, phone = walker(), walker()
    laptop.log_in(user)
    phone.log_in(user)

    phone.page.locator(".bar nav").get_by_role("link", name="Settings").click()
    phone.wait_for_path("/flows/-/settings/")
    assert phone.page.locator(".flows-badge", has_text="This device").count() == 1
    if phone.js:
        phone.check_a11y()
    phone.screenshot("settings")
    phone.page.get_by_role("button", name="End this session").click()
    phone.page.wait_for_selector(".flows-messages .flows-message")
    assert phone.page.get_by_role("button", name="End this session").count() == 0

    assert laptop.logged_in_as() is None
    assert phone.logged_in_as() == user


def test_times_read_in_the_visitors_time_zone(walker: Callable[..., Walker], user: str) -> None:
    me = walker(timezone_id="Asia/Tokyo", locale="en-GB")
    me.log_in(user)
    me.goto("/flows/-/settings/")
    signed_in = me.page.locator(".flows-settings-facts time").first
    stamp = signed_in.get_attribute("datetime")
    assert stamp and stamp.endswith("Z")
    if me.js:
        expected = me.page.evaluate(
            "s => new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'short'})"
            ".format(new Date(s))",
            stamp,
        )
        me.page.wait_for_function(
            "() => !document.querySelector('time').textContent.includes('UTC')"
        )
        assert signed_in.inner_text() == expected
        hour = int(stamp[11:13])
        assert f"{(hour + 9) % 24:02d}:" in expected  # Tokyo is UTC+9
    else:
        assert signed_in.inner_text().endswith(" UTC")
