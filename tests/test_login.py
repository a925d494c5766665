"""The login flow end to end through HTTP, as a plain browser and through htmx."""

from __future__ import annotations

from browsing import FlowBrowser


def test_login_then_logout(browser: FlowBrowser, make_user, login_flow, logout_flow) -> None:
    make_user("alice")
    browser.start("login", next="/after")
    assert browser.stage_type == "identification"
    browser.submit("login", uid_field="ALICE@example.com")
    if not browser.htmx:
        assert browser.last.status_code == 303
        browser.follow()
    assert browser.stage_type == "password"
    browser.submit("login", password="correct horse battery")
    assert browser.redirect_target == "/after"
    assert browser.get("/").text == "home: alice"

    browser.start("logout")
    assert browser.stage_type == "user_logout"
    browser.submit("logout")
    assert browser.redirect_target == "/"
    assert browser.get("/").text == "home: anonymous"
