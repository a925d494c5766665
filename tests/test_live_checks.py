"""Live checks: ``POST /flows/<slug>/-/check/`` answers what submitting would say about
one field (the same rules and messages), as out-of-band swaps, and acts on nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from browsing import FlowBrowser, plan_context
from factory import User
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import Flow
from flask_flows.plan import PLANS_KEY
from flask_flows.policies.password import MSG_COMMON
from flask_flows.stages.prompt_checks import MSG_EMAIL, MSG_ENTER, MSG_MISMATCH

SIGN_UP = "default-enrollment-flow"
STRONG = "violet orbit stapler 93"


@pytest.fixture
def signing_up(app: Flask, defaults: None) -> FlowBrowser:
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.start(SIGN_UP)
    assert browser.stage_type == "prompt"
    return browser


def check(browser: FlowBrowser, field: str, **typed: str) -> TestResponse:
    """What htmx sends when ``field`` is left or paused in: the whole form, and the
    control's name in HX-Trigger-Name."""
    form = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    return browser.client.post(
        f"/flows/{SIGN_UP}/-/check/",
        data={**form, **typed},
        headers={"HX-Request": "true", "HX-Trigger-Name": field},
    )


def feedback(response: TestResponse, field: str) -> str:
    text = response.get_data(as_text=True)
    start = text.index(f'<div class="flows-feedback" id="{field}-feedback" hx-swap-oob="true">')
    return text[start : text.index("</div>", start)]


def test_a_common_password_is_named_as_typed_and_a_strong_one_clears_it(
    signing_up: FlowBrowser,
) -> None:
    weak = check(signing_up, "password", password="password1")
    assert weak.status_code == 200
    assert MSG_COMMON in feedback(weak, "password")
    assert f'<div id="flows-announcer" hx-swap-oob="innerHTML">{MSG_COMMON}</div>' in weak.text
    strong = check(signing_up, "password", password=STRONG)
    assert "flows-error" not in feedback(strong, "password")


def test_the_answer_is_what_submitting_says(app: Flask, defaults: None) -> None:
    plain = FlowBrowser(app.test_client())
    plain.start(SIGN_UP)
    typed = {"username": "", "email": "not-an-address", "password": "password1"}
    page = plain.submit(**typed, password_repeat="password2").text
    live = FlowBrowser(app.test_client(), htmx=True)
    live.start(SIGN_UP)
    for field, message in [
        ("username", MSG_ENTER["username"]),
        ("email", MSG_EMAIL),
        ("password_repeat", MSG_MISMATCH),
    ]:
        assert message in page
        assert message in feedback(check(live, field, **typed, password_repeat="x"), field)
    # A password policy speaks once the fields' own rules pass; the live check says it
    # at once, in the same words.
    assert MSG_COMMON in feedback(check(live, "password", **typed), "password")
    fixed = {**typed, "username": "newbie", "email": "newbie@example.com"}
    assert MSG_COMMON in plain.submit(**fixed, password_repeat="password1").text


def test_a_taken_username_is_not_revealed(
    signing_up: FlowBrowser, make_user: Callable[..., User]
) -> None:
    make_user("alice")
    taken = check(signing_up, "username", username="alice")
    free = check(signing_up, "username", username="alicia")
    assert feedback(taken, "username") == feedback(free, "username")
    assert "flows-error" not in feedback(taken, "username")


def test_a_check_changes_nothing(signing_up: FlowBrowser) -> None:
    def stored() -> object:
        with signing_up.client.session_transaction() as session:
            return session[PLANS_KEY]

    before, context = stored(), plan_context(signing_up.client, SIGN_UP)
    response = check(signing_up, "password", password=STRONG, password_repeat=STRONG)
    assert stored() == before  # the very same sealed plan: nothing hashed, kept or moved
    assert plan_context(signing_up.client, SIGN_UP) == context
    assert response.headers["Cache-Control"] == "no-store"


def test_nothing_is_answered_for_a_stale_or_forged_form_or_another_stage(
    app: Flask, signing_up: FlowBrowser, login_flow: Flow
) -> None:
    form = {"csrf_token": signing_up.csrf_token(), "flow_step": "old.1.0"}
    headers = {"HX-Request": "true", "HX-Trigger-Name": "password"}
    url = f"/flows/{SIGN_UP}/-/check/"
    assert signing_up.client.post(url, data=form, headers=headers).status_code == 204
    no_csrf = {"flow_step": signing_up.step_token(), "password": "password1"}
    assert signing_up.client.post(url, data=no_csrf, headers=headers).status_code == 204
    unknown = {**form, "flow_step": signing_up.step_token()}
    other = {"HX-Request": "true", "HX-Trigger-Name": "flow_step"}
    assert signing_up.client.post(url, data=unknown, headers=other).status_code == 204
    # An identification stage has no live checks: whether an account exists is not told.
    login = FlowBrowser(app.test_client(), htmx=True)
    login.start("login")
    asked = login.client.post(
        "/flows/login/-/check/",
        data={"csrf_token": login.csrf_token(), "flow_step": login.step_token(), "uid_field": "x"},
        headers={"HX-Request": "true", "HX-Trigger-Name": "uid_field"},
    )
    assert asked.status_code == 204


def test_prompt_controls_ask_for_checks_and_others_do_not(
    signing_up: FlowBrowser, app: Flask, login_flow: Flow
) -> None:
    page = signing_up.last.text  # type: ignore[union-attr]
    assert f'data-hx-post="/flows/{SIGN_UP}/-/check/"' in page
    assert 'id="password-feedback"' in page and 'id="password_repeat-feedback"' in page
    login = FlowBrowser(app.test_client())
    assert "-/check/" not in login.start("login").text
