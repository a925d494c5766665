"""The example app's theme in a real browser: its own page shell and sign-in stage replace
flask-flows' templates, and the default theme holds up on a 360 px wide phone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Walker

pytestmark = pytest.mark.browser

LOGIN = "default-authentication-flow"


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_the_example_apps_template_overrides_render(walker: Callable[..., Walker]) -> None:
    me = walker()
    me.start(LOGIN)
    # example_app/templates/flows/base.html: the brand links home, and a footer.
    brand = me.page.locator(".flows-header a.flows-brand-link")
    assert brand.get_attribute("href") == "/"
    assert "flask-flows example" in brand.inner_text()
    assert "printed in the terminal" in me.page.locator("footer.example-footer").inner_text()
    assert me.page.locator("link[href$='/static/flows-theme.css']").count() == 1
    # example_app/templates/flows/stages/identification.html: an intro above the form.
    assert "flask flows create-user" in me.stage.locator(".example-intro").inner_text()
    assert me.field("uid_field").is_visible()


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_a_360_px_wide_phone(walker: Callable[..., Walker]) -> None:
    me = walker(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    me.start(LOGIN)
    width = me.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways at 360 px ({width} px wide)"
    button = me.stage.get_by_role("button", name="Sign in").bounding_box()
    assert button is not None and button["x"] >= 0 and button["x"] + button["width"] <= 360
    me.screenshot("mobile", full_page=False)
