"""The person's side of a lockout: when too many wrong secrets end a flow or a login,
the page says in minutes when to try again, offers password recovery where it helps,
and offers nothing that cannot work yet (no "Start again" while a wait runs)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from browsing import FlowBrowser
from factory import User, pass_time
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import Flow
from flask_flows.config import DEFAULTS
from flask_flows.lockouts import HEADING
from flask_flows.stages.base import TOO_MANY

PASSWORD = "correct horse battery staple"
LOGIN = "default-authentication-flow"
FREE = DEFAULTS["FLOWS_THROTTLE_FREE_FAILURES"]
_LINKS = re.compile(r'<a class="flows-(?:link|button[^"]*)" href="([^"]*)">([^<]*)</a>')


def actions(page: TestResponse) -> dict[str, str]:
    """The lockout page's links, by their words."""
    return {words: href for href, words in _LINKS.findall(page.text)}


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", email="alice@example.com", password=PASSWORD)


def fail_login(browser: FlowBrowser, times: int) -> TestResponse:
    """Wrong passwords on the default login's one page."""
    page = browser.start(LOGIN)
    for n in range(times):
        page = browser.step(LOGIN, uid_field="alice", password=f"guess {n}")
    return page


@pytest.mark.usefixtures("defaults", "alice")
def test_a_locked_out_login_says_when_and_offers_recovery(app: Flask, browser: FlowBrowser) -> None:
    assert FREE == 5  # the default login stage cancels at its 5th failure, as the wait starts
    page = fail_login(browser, FREE)

    assert HEADING in page.text
    assert "Too many failed attempts. You can try again in 1 minute." in page.text
    assert actions(page) == {
        "Reset your password": "/flows/default-recovery-flow/",
        "Go to the home page": "/",
    }
    assert "Start again" not in page.text  # it could not work for another minute
    if browser.htmx:
        assert page.status_code == 200  # htmx swaps only 2xx
    else:
        assert page.status_code == 429
        assert 55 <= int(page.headers["Retry-After"]) <= 60
    # The recovery it offers is open to this visitor.
    browser.get("/flows/default-recovery-flow/")
    assert browser.stage_type == "identification"


@pytest.mark.usefixtures("alice")
def test_a_cancel_before_any_wait_offers_to_start_again(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow(
        "strict", "identification", ("password", {"failed_attempts_before_cancel": 2}), "user_login"
    )
    browser.start("strict")
    browser.step("strict", uid_field="alice")
    browser.step("strict", password="nope")
    page = browser.step("strict", password="nope again")

    assert TOO_MANY in page.text
    # No recovery flow in this app: nothing offers one.
    assert actions(page) == {"Start again": "/flows/strict/", "Go to the home page": "/"}
    assert "Retry-After" not in page.headers


@pytest.mark.usefixtures("defaults", "alice")
def test_a_logged_in_person_is_not_sent_to_password_recovery(browser: FlowBrowser) -> None:
    browser.log_in("alice", PASSWORD)
    browser.start("default-unenrollment-flow")
    page = browser.last
    for n in range(FREE):
        page = browser.step("default-unenrollment-flow", password=f"guess {n}")

    assert page is not None and HEADING in page.text
    assert "You can try again in 1 minute." in page.text
    assert actions(page) == {"Go to the home page": "/"}


@pytest.mark.usefixtures("defaults", "alice")
def test_after_the_wait_the_login_works_again(app: Flask, browser: FlowBrowser) -> None:
    fail_login(browser, FREE)
    pass_time(app, 61)
    browser.start(LOGIN)
    browser.step(LOGIN, uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/"


@pytest.mark.usefixtures("defaults", "alice")
def test_the_password_step_offers_recovery_and_names_the_account_for_password_managers(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    identify = {"recovery_flow": "default-recovery-flow"}
    make_flow("two-step", ("identification", identify), "password", "user_login")
    browser.start("two-step")
    page = browser.step("two-step", uid_field="alice")
    assert browser.stage_type == "password"
    assert (
        '<a class="flows-link" href="/flows/default-recovery-flow/">Forgot your password?</a>'
        in (page.text)
    )
    assert re.search(r'<input type="text" autocomplete="username" value="alice" hidden', page.text)
    # A wrong password keeps the offer in view.
    page = browser.step("two-step", password="a guess")
    assert "Invalid username or password." in page.text
    assert "Forgot your password?" in page.text


@pytest.mark.usefixtures("defaults", "alice")
def test_a_logged_in_password_check_names_the_account_but_offers_no_recovery(
    browser: FlowBrowser,
) -> None:
    browser.log_in("alice", PASSWORD)
    page = browser.start("default-password-change")
    assert browser.stage_type == "password"
    assert re.search(r'<input type="text" autocomplete="username" value="alice" hidden', page.text)
    assert "Forgot your password?" not in page.text


@pytest.mark.usefixtures("defaults", "alice")
def test_the_signal_says_it_in_english_whatever_the_page_says(
    app: Flask, browser: FlowBrowser
) -> None:
    """A receiver of flow_denied (an audit log) reads English; the person reads German."""
    from flask_flows.signals import flow_denied

    said: list[list[str]] = []
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    with flow_denied.connected_to(lambda sender, **kw: said.append(kw["messages"]), app):
        page = fail_login(browser, FREE)
    assert "Zu viele Fehlversuche. Sie können es in 1 Minute erneut versuchen." in page.text
    assert said == [["Too many failed attempts. You can try again in 1 minute."]]
