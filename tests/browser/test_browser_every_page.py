"""Every page of the default flows a person reaches, at a 360 px phone and a 1280 px
desktop, with JavaScript on (htmx swaps, axe-core at every page) and off: nothing wider
than the screen, the card and its primary button inside it, no axe violation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import PASSWORD, Walker

pytestmark = pytest.mark.browser

WIDTHS = {"phone": (360, 740), "desktop": (1280, 800)}


def fits(me: Walker, width: int) -> None:
    """The page as it is now: no sideways scrolling, the primary button on screen, and
    (with JavaScript) no axe violation."""
    # Playwright evaluates in its own world, so this works with the page's scripts off too.
    scrolls = me.page.evaluate("document.documentElement.scrollWidth")
    assert scrolls <= width, f"{me.page.url} scrolls sideways ({scrolls} px at {width})"
    button = me.stage.locator(".flows-button--primary, .flows-button--danger").first
    if button.count():
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    if me.js:
        me.check_a11y()


@pytest.mark.parametrize("size", list(WIDTHS), ids=list(WIDTHS))
def test_every_default_flow_page_fits_and_passes_axe(
    walker: Callable[..., Walker], user: str, size: str
) -> None:
    width, height = WIDTHS[size]
    anonymous = walker(viewport={"width": width, "height": height})
    for slug in ("default-authentication-flow", "default-recovery-flow", "default-enrollment-flow"):
        anonymous.start(slug)
        fits(anonymous, width)
    # Refused forms: the login's error, the sign-up's error summary.
    anonymous.submit("prompt", username="", email="", password="", password_repeat="")
    fits(anonymous, width)
    anonymous.start("default-authentication-flow")
    anonymous.submit("identification", uid_field=user, password="not the password")
    fits(anonymous, width)

    me = walker(viewport={"width": width, "height": height})
    me.log_in(user)
    me.goto("/flows/-/settings/")
    fits(me, width)
    for slug, after_password in (
        ("default-password-change", "prompt"),
        ("default-email-change", "prompt"),
        ("default-authenticator-totp-setup", "authenticator_totp"),
        ("default-authenticator-static-setup", "authenticator_static"),
        ("default-authenticator-webauthn-setup", "authenticator_webauthn"),
        ("default-unenrollment-flow", "prompt"),
    ):
        me.start(slug)
        fits(me, width)
        me.submit(after_password, password=PASSWORD)
        fits(me, width)
    me.start("default-invalidation-flow")
    fits(me, width)
