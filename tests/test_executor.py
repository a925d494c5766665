"""The executor through HTTP: stepping, htmx vs plain responses, restarts, denials, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, plan_context
from factory import db
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flows import (
    Flow,
    Flows,
    FlowStageBinding,
    Policy,
    PolicyBinding,
    Stage,
    StageForm,
    StageResult,
    StageRun,
    StageType,
)
from flask_flows.executor import (
    MSG_CHANGED,
    MSG_CSRF,
    MSG_EXPIRED,
    MSG_OTHER_TAB,
    MSG_STALE,
    PLANS_KEY,
)
from flask_flows.models import AuthenticationRequirement, DeniedAction, InvalidResponseAction
from flask_flows.options import ConfigError

PASSWORD = "correct horse battery"
FAIL_MESSAGE = "This step did not accept the submission."
POLICY_MESSAGE = "The policy said no."


# -- helpers ---------------------------------------------------------------------------


def plan_in_session(client: FlaskClient, slug: str) -> dict[str, Any] | None:
    with client.session_transaction() as session:
        return session.get(PLANS_KEY, {}).get(slug)  # type: ignore[no-any-return]


def edit_plan(client: FlaskClient, slug: str, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Replace the stored plan of ``slug`` with what ``edit`` returns for it."""
    with client.session_transaction() as session:
        plans = dict(session[PLANS_KEY])
        plans[slug] = edit(dict(plans[slug]))
        session[PLANS_KEY] = plans


def find_flow(slug: str) -> Flow:
    flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
    assert flow is not None
    return flow


def bind_python_policy(app: Flask, slug: str, function: str) -> None:
    """Bind the Python policy ``function`` to the flow ``slug`` itself."""
    with app.app_context():
        flow = find_flow(slug)
        policy = Policy(name=f"{slug}-{function}", type="python", config={"function": function})
        flow.policy_bindings.append(PolicyBinding(policy=policy, order=0))
        db.session.commit()


def set_binding(app: Flask, slug: str, index: int, **fields: Any) -> None:
    with app.app_context():
        flow = find_flow(slug)
        binding = flow.bindings[index]
        for name, value in fields.items():
            setattr(binding, name, value)
        db.session.commit()


def assert_whole_page(response: TestResponse) -> None:
    assert response.text.lstrip().lower().startswith("<!doctype html>")


def assert_fragment(response: TestResponse) -> None:
    assert "<html" not in response.text.lower()
    assert 'data-stage-type="' in response.text


@pytest.fixture
def nope_policy(flows: Flows) -> str:
    """A Python policy that always refuses, with a message."""

    @flows.policy("nope")
    def nope(request: Any) -> tuple[bool, list[str]]:
        return False, [POLICY_MESSAGE]

    return "nope"


@pytest.fixture
def two_dummies(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(
        "two",
        ("dummy", {"message": "first step"}),
        ("dummy", {"message": "second step"}),
        designation="authorization",
    )


# -- stepping ---------------------------------------------------------------------------


def test_get_renders_first_stage(browser: FlowBrowser, login_flow: Flow) -> None:
    response = browser.start("login")
    assert response.status_code == 200
    assert browser.stage_type == "identification"
    assert "HX-Request" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"
    if browser.htmx:
        assert_fragment(response)
    else:
        assert_whole_page(response)


def test_plain_post_redirects_then_shows_next_stage(
    client: FlaskClient, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser = FlowBrowser(client)
    browser.start("login")
    response = browser.submit("login", uid_field="alice")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/flows/login/?step=")  # the next page's URL
    page = browser.follow()
    assert page.status_code == 200
    assert browser.stage_type == "password"
    assert_whole_page(page)


def test_htmx_post_returns_next_fragment(
    client: FlaskClient, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser = FlowBrowser(client, htmx=True)
    browser.start("login")
    response = browser.submit("login", uid_field="alice")
    response = browser.settle()
    assert response.status_code == 200
    assert browser.stage_type == "password"
    assert_fragment(response)


def test_end_of_flow_redirect(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two")
    browser.step("two")
    assert "second step" in browser.last.text  # type: ignore[union-attr]
    response = browser.submit("two")
    if browser.htmx:
        assert response.status_code == 200
        assert response.headers["HX-Redirect"] == "/"
        assert "Location" not in response.headers
    else:
        assert response.status_code == 303
        assert response.headers["Location"] == "/"
        assert "HX-Redirect" not in response.headers
    assert plan_in_session(browser.client, "two") is None
    assert "HX-Request" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"


def test_next_is_kept_and_honoured(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser.start("login", next="/dashboard")
    browser.step("login", uid_field="alice")
    assert browser.stage_type == "password"
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/dashboard"


def test_empty_flow_finishes_at_once(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("empty")
    response = browser.start("empty", next="/done")
    assert response.status_code == (200 if browser.htmx else 303)
    assert browser.redirect_target == "/done"


def test_two_flows_in_two_tabs(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow("one", ("dummy", {"message": "one-a"}), ("dummy", {"message": "one-b"}))
    make_flow("other", ("dummy", {"message": "other-a"}), ("dummy", {"message": "other-b"}))
    tab1 = browser
    tab2 = FlowBrowser(browser.client, htmx=browser.htmx)

    tab1.start("one", next="/from-one")
    tab2.start("other", next="/from-other")
    tab1.step("one")
    assert "one-b" in tab1.last.text  # type: ignore[union-attr]
    tab2.step("other")
    assert "other-b" in tab2.last.text  # type: ignore[union-attr]

    tab1.submit("one")
    assert tab1.redirect_target == "/from-one"
    # The other tab's plan is untouched by the first one finishing.
    assert "other-b" in tab2.get("/flows/other/").text
    tab2.submit("other")
    assert tab2.redirect_target == "/from-other"


# -- restarts -----------------------------------------------------------------------------


def test_a_stale_post_shows_where_the_flow_is(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser.start("login", next="/kept")
    old_form = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    browser.step("login", uid_field="alice")
    assert browser.stage_type == "password"

    response = browser.post("/flows/login/", {**old_form, "uid_field": "bob"})
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_STALE in response.text
    assert browser.stage_type == "password"  # nothing lost, nothing of the old form used
    assert "alice" in response.text
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/kept"


def test_a_double_submit_shows_the_next_step(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two")
    form = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    first = browser.post("/flows/two/", form)
    assert first.status_code in (200, 303)
    second = browser.post("/flows/two/", form)
    second = browser.settle()
    assert second.status_code == 200
    assert MSG_STALE in second.text
    assert "second step" in second.text


def test_a_tab_left_behind_never_checks_its_password_against_another_account(
    app: Flask, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    """Tab A waits at alice's password; tab B (same browser) starts again and names bob.
    A's password must not be tried against bob: A is told the flow went on elsewhere."""
    make_user("alice")
    make_user("bob")
    tab_a = FlowBrowser(app.test_client())
    tab_a.start("login")
    tab_a.step("login", uid_field="alice")
    assert tab_a.stage_type == "password"
    alices_form = {"csrf_token": tab_a.csrf_token(), "flow_step": tab_a.step_token()}

    tab_a.post("/flows/login/cancel/", {"csrf_token": tab_a.csrf_token(), "restart": "1"})
    tab_a.follow()
    tab_a.step("login", uid_field="bob")  # "tab B", sharing the cookie
    assert tab_a.stage_type == "password"

    tab_a.post("/flows/login/", {**alices_form, "password": PASSWORD})
    assert MSG_OTHER_TAB in tab_a.settle().text
    assert tab_a.stage_type == "password"
    assert tab_a.whoami() == "home: anonymous"


def test_tampered_cookie_starts_over(
    client: FlaskClient, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser = FlowBrowser(client)
    browser.start("login")
    browser.step("login", uid_field="alice")
    assert browser.stage_type == "password"
    cookie = client.get_cookie("session")
    assert cookie is not None
    value = cookie.value
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    client.set_cookie("session", tampered)

    response = browser.get("/flows/login/")
    assert response.status_code == 200
    assert browser.stage_type == "identification"


def test_tampered_cookie_post_restarts_with_message(
    client: FlaskClient, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser = FlowBrowser(client)
    browser.start("login")
    browser.step("login", uid_field="alice")
    form = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    cookie = client.get_cookie("session")
    assert cookie is not None
    client.set_cookie("session", "x" + cookie.value[1:])

    response = browser.post("/flows/login/", {**form, "password": PASSWORD})
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_EXPIRED in response.text
    assert browser.stage_type == "identification"
    assert client.get("/").text == "home: anonymous"


def test_post_without_plan(browser: FlowBrowser, two_dummies: Flow) -> None:
    response = browser.post("/flows/two/", {"flow_step": "1.0"})
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_EXPIRED in response.text
    assert "first step" in response.text


@pytest.mark.parametrize("app_config", [{"FLOWS_PLAN_MAX_AGE": 60}])
def test_expired_plan_by_max_age(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two")
    browser.step("two")
    assert "second step" in browser.last.text  # type: ignore[union-attr]
    edit_plan(browser.client, "two", lambda plan: {**plan, "t": plan["t"] - 61})

    response = browser.submit("two")
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_EXPIRED in response.text
    assert "first step" in response.text


def test_expired_plan_on_get(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two", next="/after")
    browser.step("two")
    edit_plan(browser.client, "two", lambda plan: {**plan, "t": plan["t"] - 100_000})
    response = browser.get("/flows/two/")
    assert MSG_EXPIRED in response.text
    assert "first step" in response.text


def test_flow_changed_mid_flow_restarts(
    app: Flask, browser: FlowBrowser, two_dummies: Flow
) -> None:
    browser.start("two", next="/after-change")
    browser.step("two")
    assert "second step" in browser.last.text  # type: ignore[union-attr]
    with app.app_context():
        flow = find_flow("two")
        stage = flow.bindings[1].stage
        stage.config = {"message": "second step, edited"}
        db.session.commit()

    response = browser.submit("two")
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_CHANGED in response.text
    assert "first step" in response.text
    # `next` survives the restart (authentik loses it; we keep it).
    browser.step("two")
    assert "second step, edited" in browser.last.text  # type: ignore[union-attr]
    browser.submit("two")
    assert browser.redirect_target == "/after-change"


def test_binding_removed_mid_flow_restarts(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow(
        "three",
        ("dummy", {"message": "step one"}),
        ("dummy", {"message": "step two"}),
        ("dummy", {"message": "step three"}),
    )
    browser.start("three")
    browser.step("three")
    with app.app_context():
        flow = find_flow("three")
        flow.bindings.remove(flow.bindings[2])
        db.session.commit()
    browser.submit("three")
    response = browser.settle()
    assert MSG_CHANGED in response.text
    assert "step one" in response.text


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        ["r", "b"],
        {"r": "x"},
        {"r": 1, "b": ["a"], "m": [], "c": {}, "t": 0, "s": 0, "n": "x"},
        7,
    ],
)
def test_garbage_plan_restarts(browser: FlowBrowser, two_dummies: Flow, garbage: Any) -> None:
    browser.start("two")
    browser.step("two")
    edit_plan(browser.client, "two", lambda plan: garbage)
    response = browser.submit("two")
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_EXPIRED in response.text
    assert "first step" in response.text


@pytest.mark.parametrize("garbage", ["garbage", ["x"], 3])
def test_garbage_plans_mapping_restarts(
    browser: FlowBrowser, two_dummies: Flow, garbage: Any
) -> None:
    browser.start("two")
    with browser.client.session_transaction() as session:
        session[PLANS_KEY] = garbage
    response = browser.get("/flows/two/")
    assert response.status_code == 200
    assert "first step" in response.text
    browser.step("two")
    assert "second step" in browser.last.text  # type: ignore[union-attr]


def test_unknown_slug_is_html_404(browser: FlowBrowser) -> None:
    response = browser.get("/flows/no-such-flow/")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "There is nothing here" in response.text
    assert "Traceback" not in response.text


def test_missing_csrf_shows_stage_again(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    browser.start("login")
    response = browser.post(
        "/flows/login/", {"flow_step": browser.step_token(), "uid_field": "alice"}
    )
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_CSRF in response.text
    assert browser.stage_type == "identification"
    assert plan_context(browser.client, "login") == {}
    # Nothing moved on: the next GET shows the same stage.
    browser.get("/flows/login/")
    assert browser.stage_type == "identification"


def test_forged_post_without_any_token_changes_nothing(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    """A cross-site POST (no CSRF, no step) must not reset a flow the user is in."""
    make_user("alice")
    browser.start("login", next="/kept")
    browser.step("login", uid_field="alice")
    assert browser.stage_type == "password"
    response = browser.post("/flows/login/", {"uid_field": "mallory"})
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_CSRF in response.text
    browser.get("/flows/login/")
    assert browser.stage_type == "password"
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/kept"


# -- invalid responses ----------------------------------------------------------------


@pytest.fixture
def failing_flow(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(
        "failing",
        "identification",
        ("dummy", {"fail": True, "message": "failing step"}),
    )


def test_invalid_response_retry(
    browser: FlowBrowser, make_user: Callable[..., Any], failing_flow: Flow
) -> None:
    make_user("alice")
    browser.start("failing")
    browser.step("failing", uid_field="alice")
    response = browser.submit("failing")
    response = browser.settle()
    assert response.status_code == 200
    assert FAIL_MESSAGE in response.text
    assert "failing step" in response.text
    assert plan_context(browser.client, "failing")["pending_user"]


@pytest.mark.parametrize(
    ("action", "keeps_context"),
    [(InvalidResponseAction.restart, False), (InvalidResponseAction.restart_with_context, True)],
)
def test_invalid_response_restart(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., Any],
    failing_flow: Flow,
    action: InvalidResponseAction,
    keeps_context: bool,
) -> None:
    make_user("alice")
    set_binding(app, "failing", 1, invalid_response_action=action)
    browser.start("failing", next="/next-kept")
    browser.step("failing", uid_field="alice")
    assert "failing step" in browser.last.text  # type: ignore[union-attr]

    response = browser.submit("failing")
    response = browser.settle()
    assert response.status_code == 200
    assert FAIL_MESSAGE in response.text
    assert browser.stage_type == "identification"
    context = plan_context(browser.client, "failing")
    assert context["redirect"] == "/next-kept"
    assert ("pending_user" in context) is keeps_context
    assert ("pending_user_identifier" in context) is keeps_context


# -- denied flows --------------------------------------------------------------------------


def test_denied_message(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    make_flow("guarded", "dummy", denied_action=DeniedAction.message)
    bind_python_policy(app, "guarded", nope_policy)
    response = browser.start("guarded", next="/somewhere")
    assert response.status_code == (200 if browser.htmx else 403)
    assert POLICY_MESSAGE in response.text
    assert 'href="/somewhere"' not in response.text
    assert browser.stage_type is None


def test_denied_continue(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    make_flow("guarded", "dummy", denied_action=DeniedAction.continue_)
    bind_python_policy(app, "guarded", nope_policy)
    browser.start("guarded", next="/somewhere")
    assert browser.redirect_target == "/somewhere"
    browser.start("guarded")
    assert browser.redirect_target == "/"


def test_denied_message_continue(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    make_flow("guarded", "dummy", denied_action=DeniedAction.message_continue)
    bind_python_policy(app, "guarded", nope_policy)
    response = browser.start("guarded", next="/somewhere")
    assert response.status_code == (200 if browser.htmx else 403)
    assert POLICY_MESSAGE in response.text
    assert 'href="/somewhere"' in response.text


def test_denied_continue_refuses_unsafe_next(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    make_flow("guarded", "dummy", denied_action=DeniedAction.continue_)
    bind_python_policy(app, "guarded", nope_policy)
    browser.start("guarded", next="//evil.com")
    assert browser.redirect_target == "/"


def test_stage_denial_shows_message_even_with_continue(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """denied_action is about the flow not applying; a stage that denies always says why."""
    make_flow(
        "blocked", ("deny", {"message": "Blocked here."}), denied_action=DeniedAction.continue_
    )
    response = browser.start("blocked")
    assert "Blocked here." in response.text
    assert browser.redirect_target is None


# -- authentication requirement --------------------------------------------------------------


def test_require_authenticated_redirects_to_login(
    browser: FlowBrowser,
    make_user: Callable[..., Any],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
) -> None:
    make_user("alice")
    make_flow(
        "members",
        ("dummy", {"message": "members only"}),
        designation="authorization",
        authentication=AuthenticationRequirement.require_authenticated,
    )
    browser.start("members", next="/after")
    target = browser.redirect_target
    assert target is not None
    parts = urlsplit(target)
    assert parts.path == "/flows/-/login/"
    assert parse_qs(parts.query)["next"] == ["/flows/members/?next=/after"]

    # Round trip: log in through the default authentication flow, come back, finish.
    browser.follow()
    assert parse_qs(urlsplit(browser.redirect_target or "").query)["next"] == [
        "/flows/members/?next=/after"
    ]
    browser.follow()
    assert browser.stage_type == "identification"
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/flows/members/?next=/after"
    browser.follow()
    assert "members only" in browser.last.text  # type: ignore[union-attr]
    browser.submit("members")
    assert browser.redirect_target == "/after"


def test_require_unauthenticated_denies_logged_in(
    browser: FlowBrowser,
    make_user: Callable[..., Any],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
) -> None:
    make_user("alice")
    make_flow(
        "signup",
        "dummy",
        designation="enrollment",
        authentication=AuthenticationRequirement.require_unauthenticated,
        denied_action=DeniedAction.message,
    )
    browser.start("signup")
    assert browser.stage_type == "dummy"
    browser.log_in("alice", PASSWORD, slug="login")
    response = browser.start("signup")
    assert response.status_code == (200 if browser.htmx else 403)
    assert "You are already logged in." in response.text
    assert browser.stage_type is None


def test_require_superuser(
    browser: FlowBrowser,
    make_user: Callable[..., Any],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
) -> None:
    make_user("alice")
    make_user("root", is_superuser=True)
    make_flow(
        "admin",
        ("dummy", {"message": "admin area"}),
        designation="authorization",
        authentication=AuthenticationRequirement.require_superuser,
        denied_action=DeniedAction.message,
    )
    browser.start("admin")
    assert (browser.redirect_target or "").startswith("/flows/-/login/?next=")

    browser.log_in("alice", PASSWORD, slug="login")
    response = browser.start("admin")
    assert "You need administrator rights to use this." in response.text
    assert browser.stage_type is None

    other = FlowBrowser(browser.client.application.test_client(), htmx=browser.htmx)
    other.log_in("root", PASSWORD, slug="login")
    assert "admin area" in other.start("admin").text


def test_a_newer_next_replaces_the_plans_target(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    """Sent to log in from /index, then from /explore, with the plan of the first still
    in the session: the login ends on /explore. Before, it ended on /index."""
    make_user("alice")
    browser.start("login", next="/index")
    browser.start("login", next="/explore")
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == "/explore"


@pytest.mark.parametrize("sign_up_next", [None, "/welcome"])
def test_a_next_into_sign_up_after_logging_in_goes_on_instead_of_refusing(
    browser: FlowBrowser,
    make_user: Callable[..., Any],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
    sign_up_next: str | None,
) -> None:
    """A sign-up page sent someone to log in, with `next` back to the sign-up: once
    logged in they go where the sign-up would have led, or home, not to a 403."""
    make_user("alice")
    make_flow(
        "signup",
        "dummy",
        designation="enrollment",
        authentication=AuthenticationRequirement.require_unauthenticated,
    )
    back = "/flows/signup/" + (f"?next={sign_up_next}" if sign_up_next else "")
    browser.start("login", next=back)
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    assert browser.redirect_target == back
    response = browser.follow()
    assert response.status_code in (200, 303)
    assert browser.redirect_target == (sign_up_next or "/")


# -- default flow for a designation ----------------------------------------------------------


def test_default_flow_picks_first_passing_by_slug(
    app: Flask, client: FlaskClient, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    make_flow("c-login", "dummy")
    make_flow("a-login", "dummy")
    make_flow("b-login", "dummy")
    make_flow("0-enrol", "dummy", designation="enrollment")
    bind_python_policy(app, "a-login", nope_policy)
    response = client.get("/flows/-/default/authentication/?next=/x%3Fy%3D1")
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/flows/b-login/"
    assert parse_qs(location.query)["next"] == ["/x?y=1"]
    assert client.get("/flows/-/login/?next=/y").headers["Location"] == "/flows/b-login/?next=/y"


@pytest.mark.parametrize("app_config", [{"FLOWS_DEFAULT_FLOWS": {"authentication": "z-login"}}])
def test_the_app_names_its_default_flow(
    app: Flask, client: FlaskClient, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    """Not the first by slug: the one FLOWS_DEFAULT_FLOWS names, while the visitor may
    run it; else the first they may (authentik's rule)."""
    for slug in ("a-login", "z-login"):
        make_flow(slug, "dummy")
    assert client.get("/flows/-/login/").headers["Location"] == "/flows/z-login/"
    assert client.get("/flows/-/default/authentication/").headers["Location"] == "/flows/z-login/"
    bind_python_policy(app, "z-login", nope_policy)
    assert client.get("/flows/-/login/").headers["Location"] == "/flows/a-login/"


@pytest.mark.parametrize(
    ("chosen", "refusal"),
    [
        ({"signin": "a-login"}, "'signin' is not a designation"),
        ({"authentication": ""}, "expected a flow slug"),
        (["a-login"], "expected a dict"),
    ],
)
def test_a_wrong_default_flow_setting_is_refused(chosen: object, refusal: str) -> None:
    from factory import create_test_app

    with pytest.raises(ConfigError, match=refusal):
        create_test_app("sqlite://", FLOWS_DEFAULT_FLOWS=chosen)


@pytest.mark.parametrize("app_config", [{"FLOWS_DEFAULT_FLOWS": {"authentication": "gone"}}])
def test_a_default_flow_that_does_not_exist_falls_back_and_is_logged(
    client: FlaskClient, make_flow: Callable[..., Flow], caplog: pytest.LogCaptureFixture
) -> None:
    make_flow("a-login", "dummy")
    assert client.get("/flows/-/login/").headers["Location"] == "/flows/a-login/"
    assert "FLOWS_DEFAULT_FLOWS names 'gone' for authentication" in caplog.text


def test_default_flow_drops_unsafe_next(
    client: FlaskClient, make_flow: Callable[..., Flow]
) -> None:
    make_flow("a-login", "dummy")
    response = client.get("/flows/-/default/authentication/?next=//evil.com")
    assert response.headers["Location"] == "/flows/a-login/"


@pytest.mark.parametrize("designation", ["recovery", "no-such-designation"])
def test_default_flow_404(
    client: FlaskClient, make_flow: Callable[..., Flow], designation: str
) -> None:
    make_flow("a-login", "dummy")
    response = client.get(f"/flows/-/default/{designation}/")
    assert response.status_code == 404
    assert "There is nothing here" in response.text


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_drops_plan_and_leaves(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two", next="/back")
    browser.step("two")
    token = browser.csrf_token()
    browser.post("/flows/two/cancel/", {"csrf_token": token})
    assert browser.redirect_target == "/back"
    assert plan_in_session(browser.client, "two") is None
    assert "first step" in browser.get("/flows/two/").text


def test_cancel_without_next_goes_home(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two")
    browser.post("/flows/two/cancel/", {"csrf_token": browser.csrf_token()})
    assert browser.redirect_target == "/"


def test_a_cancelled_login_goes_home_not_back_to_the_page_that_asked_for_it(
    browser: FlowBrowser, login_flow: Flow
) -> None:
    browser.start("login", next="/members-only")
    browser.post("/flows/login/cancel/", {"csrf_token": browser.csrf_token()})
    assert browser.redirect_target == "/"


def test_cancel_with_restart(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two", next="/back")
    browser.step("two")
    browser.post("/flows/two/cancel/", {"csrf_token": browser.csrf_token(), "restart": "1"})
    assert browser.redirect_target == "/flows/two/?next=/back"
    response = browser.follow()
    assert "first step" in response.text
    browser.step("two")
    browser.submit("two")
    assert browser.redirect_target == "/back"


def test_cancel_without_csrf_does_not_cancel(browser: FlowBrowser, two_dummies: Flow) -> None:
    browser.start("two", next="/back")
    browser.step("two")
    response = browser.post("/flows/two/cancel/", {})
    response = browser.settle()
    assert response.status_code == 200
    assert MSG_CSRF in response.text
    assert "second step" in response.text
    assert plan_in_session(browser.client, "two") is not None
    browser.submit("two")
    assert browser.redirect_target == "/back"


def test_cancel_unknown_flow_is_404(client: FlaskClient) -> None:
    assert client.post("/flows/nope/cancel/", data={}).status_code == 404


def test_cancel_by_get_not_allowed(client: FlaskClient, two_dummies: Flow) -> None:
    assert client.get("/flows/two/cancel/").status_code == 405


# -- re-evaluated binding policies ---------------------------------------------------------


def test_binding_policy_skips_stage(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], nope_policy: str
) -> None:
    make_flow(
        "skipping",
        ("dummy", {"message": "step one"}),
        ("dummy", {"message": "skipped step"}),
        ("dummy", {"message": "step three"}),
    )
    with app.app_context():
        flow = find_flow("skipping")
        binding: FlowStageBinding = flow.bindings[1]
        policy = Policy(name="skip-nope", type="python", config={"function": nope_policy})
        binding.policy_bindings.append(PolicyBinding(policy=policy))
        db.session.commit()
    browser.start("skipping")
    browser.step("skipping")
    assert "step three" in browser.last.text  # type: ignore[union-attr]
    assert "skipped step" not in browser.last.text  # type: ignore[union-attr]


def test_stage_bound_to_two_flows(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    shared = Stage(name="shared", type="dummy", config={"message": "shared step"})
    make_flow("first", shared)
    make_flow("second", shared)
    assert "shared step" in browser.start("first").text
    assert "shared step" in browser.start("second").text


def broken_stage(flows: Flows) -> None:
    @flows.stage_type
    class BrokenStage(StageType):
        name = "broken"
        template = "flows/stages/dummy.html"

        def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
            raise RuntimeError("secret internals")


def test_stage_bug_shows_error_page(
    browser: FlowBrowser, flows: Flows, make_flow: Callable[..., Flow]
) -> None:
    """In production a stage that raises gives a calm 500 page, not a stack trace."""
    broken_stage(flows)
    make_flow("buggy", "broken")
    browser.app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    browser.start("buggy")
    response = browser.submit("buggy")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "config",
    [{}, {"TESTING": False, "DEBUG": True}, {"TESTING": False, "PROPAGATE_EXCEPTIONS": True}],
)
def test_a_stage_bug_surfaces_in_testing_and_debug(
    browser: FlowBrowser, flows: Flows, make_flow: Callable[..., Flow], config: dict[str, bool]
) -> None:
    """Under TESTING, debug or PROPAGATE_EXCEPTIONS the bug propagates, as Flask does:
    the test fails on it and the debugger shows it."""
    broken_stage(flows)
    make_flow("buggy", "broken")
    browser.app.config.update(config)
    browser.start("buggy")
    with pytest.raises(RuntimeError, match="secret internals"):
        browser.submit("buggy")


def test_a_form_is_never_read_by_a_later_stage(
    browser: FlowBrowser, flows, make_flow: Callable[..., Flow]
) -> None:
    """A stage that stops needing a form between GET and POST (a consent remembered in
    another tab, say) passes on its own; the next stage must not take the body as its own."""
    from flask_flows import StageType

    switch = {"interactive": True}

    @flows.stage_type
    class Switching(StageType):
        name = "switching"
        template = "flows/stages/dummy.html"

        def is_interactive(self, run: StageRun) -> bool:
            return switch["interactive"]

        def challenge(self, run: StageRun, form: StageForm) -> dict[str, str]:
            return {"message": "Switching stage."}

    make_flow("switch", "switching", ("dummy", {"fail": True}))
    browser.start("switch")
    assert "Switching stage." in browser.last.text
    switch["interactive"] = False
    response = browser.step("switch")
    assert browser.stage_type == "dummy"
    assert "This step did not accept the submission." not in response.text


def test_a_plan_stored_before_plans_had_a_nonce_still_works() -> None:
    """A link mailed before the upgrade holds a plan without one; a page rendered then
    carries a step token without one: both are taken as they were meant."""
    from flask_flows.plan import FlowPlan, same_plan

    stored = {"r": 1, "b": [10, 20], "m": [], "c": {}, "t": 0, "s": 1}
    plan = FlowPlan.from_session("login", stored)
    assert plan is not None and plan.nonce
    assert same_plan(plan, "20.1")
    assert same_plan(plan, plan.token)
    assert not same_plan(plan, "other.20.1")
