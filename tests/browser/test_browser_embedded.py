"""Flow pages inside the app's own layout (FLOWS_LAYOUT_TEMPLATE) in a real browser: the
example app, set to render flows in its layout.html, walked with JavaScript on (htmx
swaps, axe-core at every stage) and off (plain posts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import HTMX_SETTINGS, PASSWORD, LiveApp, Walker, serve_example_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, smtp_server: Any) -> Iterator[LiveApp]:
    yield from serve_example_app(tmp_path_factory, smtp_server, FLOWS_LAYOUT_TEMPLATE="layout.html")


def in_the_layout(me: Walker) -> None:
    """The app's bar and navigation are around the flow's card, and only once."""
    assert me.page.locator("header.bar nav").count() == 1
    assert me.page.locator("main#content .flows-embedded #flow-stage").count() == 1
    assert me.page.locator(".flows-shell").count() == 0


def test_log_in_change_nothing_and_log_out_inside_the_layout(
    walker: Callable[..., Walker], user: str
) -> None:
    me = walker()
    me.goto("/")
    me.page.locator(".bar nav").get_by_role("link", name="Log in").click()
    me.stage_loaded("identification")
    in_the_layout(me)
    assert me.page.title() == "Sign in · Welcome · flask-flows example"
    me.screenshot("embedded-login")
    me.submit("identification", uid_field=user, password="not the password")
    in_the_layout(me)
    assert "Invalid username or password." in me.stage.inner_text()
    me.finish("/", password=PASSWORD)
    assert me.page.locator(".bar nav strong").inner_text() == user

    me.goto("/flows/-/settings/")
    assert me.page.locator("header.bar nav").count() == 1
    assert "Account settings" in me.page.locator("main#content").inner_text()
    if me.js:
        me.check_a11y()

    me.page.locator(".bar nav").get_by_role("link", name="Log out").click()
    me.stage_loaded("user_logout")
    in_the_layout(me)
    me.finish("/")
    assert "You are not logged in." in me.text()


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_htmx_keeps_no_history_and_stays_on_the_site(
    walker: Callable[..., Walker], user: str
) -> None:
    """flows.js sets htmx's config, since an app's layout has no place for flask-flows'
    <meta name="htmx-config">: no page (a stage may show a secret) goes into htmx's
    history cache, requests stay same-origin, swapped HTML runs no scripts."""
    me = walker()
    me.start("default-authentication-flow")
    me.submit("identification", uid_field=user, password="not the password")
    assert me.page.evaluate(HTMX_SETTINGS) == [0, True, False, False, None]
