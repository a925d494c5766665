"""The identification stage's ``password_stage`` (authentik's option): the password on the
login page itself, checked with the named password stage's options, in one request."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, without_nonces
from factory import User, db
from flask import Flask

from flask_flows import Flow, Stage
from flask_flows.blueprints import apply_blueprint, install_default_flows
from flask_flows.extension import FlowsState
from flask_flows.options import ConfigError
from flask_flows.stages.password import WRONG_CREDENTIALS

PASSWORD = "correct horse battery"
_TOKENS = re.compile(r'(name="(?:csrf_token|flow_step)"[^>]*value=")[^"]*')


@pytest.fixture
def one_page(app: Flask, make_flow: Callable[..., Flow]) -> Flow:
    """identification (asking for the password, checked as stage "pw" says) → login."""
    with app.app_context():
        db.session.add(
            Stage(name="pw", type="password", config={"failed_attempts_before_cancel": 3})
        )
        db.session.commit()
    return make_flow("one", ("identification", {"password_stage": "pw"}), "user_login")


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


@pytest.mark.usefixtures("one_page", "alice")
def test_one_page_and_one_request_log_in(browser: FlowBrowser) -> None:
    page = browser.start("one")
    assert browser.stage_type == "identification"
    assert re.search(r'<input[^>]*autocomplete="username"[^>]*name="uid_field"', page.text)
    assert re.search(r'<input[^>]*autocomplete="current-password"[^>]*name="password"', page.text)
    assert "data-flows-show-password" in page.text  # the password stage allows showing it
    assert '<span class="flows-button-label">Sign in</span>' in page.text

    browser.step("one", uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/"
    assert browser.whoami() == "home: alice"


@pytest.mark.usefixtures("one_page", "alice")
def test_a_wrong_password_keeps_the_name_and_says_what_a_stranger_hears(
    browser: FlowBrowser,
) -> None:
    browser.start("one")
    wrong = browser.step("one", uid_field="alice", password="nope")
    assert browser.stage_type == "identification"
    assert WRONG_CREDENTIALS in wrong.text
    assert re.search(r'name="uid_field"[^>]*value="alice"', wrong.text)  # kept
    assert "nope" not in wrong.text  # never echoed back

    stranger = browser.fresh()
    stranger.start("one")
    unknown = stranger.step("one", uid_field="nobody", password="nope")
    assert unknown.status_code == wrong.status_code
    normalise = lambda page: without_nonces(_TOKENS.sub(r"\1", page.text)).replace(  # noqa: E731
        "nobody", "alice"
    )
    assert normalise(unknown) == normalise(wrong)


@pytest.mark.usefixtures("one_page", "alice")
def test_the_named_password_stage_sets_when_the_flow_ends(browser: FlowBrowser) -> None:
    browser.start("one")
    for n in range(2):
        browser.step("one", uid_field="alice", password=f"guess {n}")
        assert browser.stage_type == "identification"
    page = browser.step("one", uid_field="alice", password="guess 3")
    assert "Too many failed attempts." in page.text
    assert browser.stage_type is None


def test_a_password_stage_that_does_not_exist_is_named(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow("broken", ("identification", {"password_stage": "missing"}), "user_login")
    with pytest.raises(ConfigError, match=r"'password_stage': there is no password stage named"):
        browser.start("broken")


@pytest.mark.usefixtures("alice")
def test_the_two_step_login_stays_available(browser: FlowBrowser, login_flow: Flow) -> None:
    page = browser.start("login")
    assert 'name="password"' not in page.text
    browser.step("login", uid_field="alice")
    assert browser.stage_type == "password"
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/"


def test_the_stages_guide_two_step_example_asks_on_two_pages(
    app: Flask, state: FlowsState, make_user: Callable[..., User]
) -> None:
    guide = (Path(__file__).parent.parent / "docs" / "stages.md").read_text()
    section = guide.split("For the two-step login", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    with app.app_context():
        install_default_flows(state)
        apply_blueprint(state, example)
        db.session.commit()
    make_user("bo", password=PASSWORD)
    browser = FlowBrowser(app.test_client())
    page = browser.start("two-step-login")
    assert 'name="password"' not in page.text
    browser.step("two-step-login", uid_field="bo")
    assert browser.stage_type == "password"
    browser.step("two-step-login", password=PASSWORD)
    assert browser.redirect_target == "/"


@pytest.mark.usefixtures("one_page", "alice")
def test_the_named_stage_belongs_to_the_flows_definition(
    app: Flask, state: FlowsState, browser: FlowBrowser
) -> None:
    """Loaded with the flow (no query of its own per request), and a change to it is a
    change to the flow: the next request sees it."""
    with app.app_context():
        before = state.load_flow("one")
        assert before is not None
        revision = before.revision
        stage = db.session.scalar(sa.select(Stage).filter_by(name="pw"))
        assert stage is not None
        stage.config = {"allow_show_password": False}
        db.session.commit()
        after = state.load_flow("one")
        assert after is not None and after.revision == revision + 1
    page = browser.start("one")
    assert 'name="password"' in page.text
    assert "data-flows-show-password" not in page.text


def test_a_password_stage_made_after_the_flow_is_found(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    make_flow("later", ("identification", {"password_stage": "pw-later"}), "user_login")
    with pytest.raises(ConfigError):
        browser.start("later")
    with app.app_context():
        db.session.add(Stage(name="pw-later", type="password"))
        db.session.commit()
    browser.start("later")
    browser.step("later", uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/"


@pytest.mark.usefixtures("alice")
def test_back_after_a_login_says_who_is_signed_in(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    page = browser.start("login", next="/orders")
    assert browser.stage_type == "identification"
    assert "You are already signed in as <strong>alice</strong>." in page.text
    assert (
        '<a class="flows-button flows-button--secondary" href="/orders">Continue as alice</a>'
        in (page.text)
    )
    anonymous = browser.fresh().start("login")
    assert "already signed in" not in anonymous.text
