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
