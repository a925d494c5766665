"""The words a person reads: headings, buttons and the page title come from the flow and
its stages' configuration, fit the flow they are in, and never repeat each other."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from browsing import FlowBrowser
from factory import User
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows.models import Flow

PASSWORD = "correct horse battery staple"

_H1 = re.compile(r'<h1 class="flows-title"[^>]*>([^<]*)</h1>')
_H2 = re.compile(r'<h2 class="flows-stage-heading"[^>]*>(.*?)</h2>', re.S)
_TITLE = re.compile(r"<title>([^<]*)</title>")
_SUBMIT = re.compile(r'<span class="flows-button-label">([^<]*)</span>')


def headings(page: TestResponse) -> tuple[str | None, str | None]:
    """The flow's h1 (a whole page only) and the stage's h2, if any."""
    h1 = _H1.search(page.text)
    h2 = _H2.search(page.text)
    return (h1.group(1).strip() if h1 else None, h2.group(1).strip() if h2 else None)


def title(page: TestResponse) -> str:
    found = _TITLE.search(page.text)
    assert found, "the page has no <title>"
    return found.group(1)


def submit_label(page: TestResponse) -> str:
    found = _SUBMIT.search(page.text)
    assert found, "the page has no submit button"
    return found.group(1)


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", email="alice@example.com", password=PASSWORD)


@pytest.mark.usefixtures("defaults")
def test_the_recovery_flow_does_not_ask_to_sign_in(app: Flask) -> None:
    page = FlowBrowser(app.test_client()).start("default-recovery-flow")
    assert headings(page) == ("Reset your password", "Find your account")
    assert "Sign in" not in page.text
    assert title(page) == "Find your account · Reset your password · Test App"


@pytest.mark.usefixtures("defaults", "alice")
def test_a_password_asked_again_is_confirmed_not_signed_in_with(app: Flask) -> None:
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD)
    page = browser.start("default-unenrollment-flow")
    assert browser.stage_type == "password"
    assert headings(page) == ("Delete your account", "Confirm your password")
    assert submit_label(page) == "Continue"
    assert "Sign in" not in page.text


@pytest.mark.usefixtures("defaults", "alice")
def test_no_stage_of_a_default_flow_repeats_the_flows_heading(app: Flask) -> None:
    """Every page of the shipped flows a person can reach in one visit: the h2 says what
    this step is, never the words of the h1 again ("Log out / Log out")."""
    seen: list[tuple[str | None, str | None]] = []
    anonymous = FlowBrowser(app.test_client())
    seen.append(headings(anonymous.start("default-authentication-flow")))
    for slug in ("default-recovery-flow", "default-enrollment-flow"):
        seen.append(headings(anonymous.start(slug)))

    me = FlowBrowser(app.test_client())
    me.log_in("alice", PASSWORD)
    for slug in (
        "default-invalidation-flow",
        "default-unenrollment-flow",
        "default-password-change",
        "default-email-change",
        "default-authenticator-totp-setup",
        "default-authenticator-static-setup",
    ):
        seen.append(headings(me.start(slug)))
        if me.stage_type == "password":
            seen.append(headings(me.step(slug, password=PASSWORD)))

    assert len(seen) == 14
    for h1, h2 in seen:
        assert h1, "every flow page has the flow's heading"
        assert h2 is None or h2.lower() != h1.lower(), (h1, h2)
    assert ("Log out", None) in seen  # the logout stage's own heading is the flow's
    assert ("Delete your account", None) in seen


def test_headings_and_buttons_come_from_the_stage_configuration(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    make_flow(
        "find",
        ("identification", {"title": "Who is this?", "submit_label": "Look me up"}),
        "dummy",
    )
    page = FlowBrowser(app.test_client()).start("find")
    assert headings(page) == ("Find", "Who is this?")
    assert submit_label(page) == "Look me up"
    assert title(page) == "Who is this? · Find · Test App"


def test_a_stage_heading_that_repeats_the_flow_title_is_left_out(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    make_flow("same", ("dummy", {"title": "SAME"}))
    page = FlowBrowser(app.test_client()).start("same")
    assert headings(page) == ("Same", None)
    # The stage is then named by the page's heading.
    assert 'aria-labelledby="flows-title"' in page.text
    assert title(page) == "Same · Test App"


@pytest.mark.usefixtures("alice")
def test_a_refused_form_says_error_in_the_title(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    page = browser.step("login", uid_field="")
    assert browser.stage_type == "identification"
    assert title(page) == "Error: Sign in · Login · Test App"
    browser.step("login", uid_field="alice")
    page = browser.step("login", password="wrong")
    assert title(page).startswith("Error: Enter your password · ")
    page = browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/"


def test_an_htmx_fragment_carries_the_title_but_not_in_an_apps_layout(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    make_flow("find", "identification")
    htmx = FlowBrowser(app.test_client(), htmx=True)
    assert title(htmx.start("find")) == "Sign in · Find · Test App"
    app.config["FLOWS_LAYOUT_TEMPLATE"] = "layout.html"
    assert "<title>" not in htmx.get("/flows/find/").text


def test_the_stages_guide_example_sets_the_words(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    guide = (Path(__file__).parent.parent / "docs" / "stages.md").read_text()
    section = guide.split("### Words on the page", 1)[1]
    [stage] = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    make_flow("recover", (stage["type"], stage["config"]), "dummy", designation="recovery")
    page = FlowBrowser(app.test_client()).start("recover")
    assert headings(page) == ("Recover", "Which account is it?")
    assert submit_label(page) == "Send me a link"


# -- refused forms --------------------------------------------------------------------------

SIGN_UP = "default-enrollment-flow"
NEW_PASSWORD = "a long and unusual passphrase"
_SUMMARY_LINK = re.compile(r'<li><a href="#([^"]+)">([^<]*)</a></li>')


@pytest.mark.usefixtures("defaults")
def test_a_refused_form_lists_its_errors_at_the_top_linked_to_the_fields(
    browser: FlowBrowser,
) -> None:
    browser.start(SIGN_UP)
    page = browser.step(SIGN_UP, username="", email="", password="", password_repeat="")
    assert browser.stage_type == "prompt"
    summary = page.text.split('id="flows-error-summary"', 1)[1].split("</div>", 1)[0]
    # A whole page focuses it on load (without JavaScript, reading starts there); an htmx
    # swap does not: flows.js focuses the first invalid field.
    autofocus = re.search(
        r'<div class="flows-error-summary"[^>]* tabindex="-1" autofocus', page.text
    )
    assert bool(autofocus) is not browser.htmx
    assert _SUMMARY_LINK.findall(summary) == [
        ("username", "Enter a username."),
        ("email", "Enter an email address."),
        ("password", "Enter a password."),
        ("password_repeat", "Enter the password again."),
    ]
    for field_id, _ in _SUMMARY_LINK.findall(summary):
        assert f'id="{field_id}"' in page.text  # each link lands on its field


@pytest.mark.usefixtures("alice")
def test_a_one_field_form_has_no_summary(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    browser.step("login", uid_field="alice")
    page = browser.step("login", password="wrong")
    assert "flows-error-summary" not in page.text


@pytest.mark.usefixtures("defaults")
def test_passwords_typed_are_kept_when_the_error_is_elsewhere(browser: FlowBrowser) -> None:
    browser.start(SIGN_UP)
    page = browser.step(
        SIGN_UP,
        username="has space",
        email="new@example.com",
        password=NEW_PASSWORD,
        password_repeat=NEW_PASSWORD,
    )
    assert browser.stage_type == "prompt"
    assert re.search(rf'<input[^>]*name="password"[^>]*value="{NEW_PASSWORD}"', page.text)
    assert re.search(rf'<input[^>]*name="password_repeat"[^>]*value="{NEW_PASSWORD}"', page.text)
    # A repeat that does not match: the pair is asked for afresh.
    page = browser.step(
        SIGN_UP,
        username="newbie",
        email="new@example.com",
        password=NEW_PASSWORD,
        password_repeat="something else",
    )
    assert NEW_PASSWORD not in page.text and "something else" not in page.text
    # A password the policy refused is asked for afresh, with its repeat (a pair).
    page = browser.step(
        SIGN_UP,
        username="newbie",
        email="new@example.com",
        password="password",
        password_repeat="password",
    )
    assert 'value="password"' not in page.text
    # Every password field has a Show button (hidden until flows.js can make it work).
    assert 'data-flows-show-password="password"' in page.text
    assert 'data-flows-show-password="password_repeat"' in page.text


@pytest.mark.usefixtures("defaults", "alice")
def test_deleting_the_account_is_a_danger_button(app: Flask) -> None:
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD)
    browser.start("default-unenrollment-flow")
    page = browser.step("default-unenrollment-flow", password=PASSWORD)
    assert browser.stage_type == "prompt"
    assert re.search(r'<button class="flows-button flows-button--danger" type="submit">', page.text)
