"""The planner: authentication requirements, flow policies, evaluate_on_plan filtering,
re-evaluation markers, and (through HTTP) the executor skipping marked stages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import bind_policy, db, plan_flow
from flask import Flask

from flask_flows import (
    Flow,
    Flows,
    Group,
    GroupMembership,
)
from flask_flows.planner import EmptyFlow, FlowNonApplicable

_HEADING = re.compile(r'id="flows-stage-heading"[^>]*>([^<]*)<')


def bind_python(
    app: Flask, slug: str, function: str, *, order: int | None = None, **fields: Any
) -> None:
    """Bind a ``python`` policy ``function`` to flow ``slug`` (or its binding at ``order``)."""
    bind_policy(app, slug, "python", {"function": function}, order=order, **fields)


def stage_heading(browser: FlowBrowser) -> str | None:
    assert browser.last is not None
    match = _HEADING.search(browser.last.text)
    return match.group(1).strip() if match else None


def submit_and_follow(browser: FlowBrowser, slug: str) -> None:
    """Submit the current stage; a plain browser then follows the 303 back to the flow."""
    browser.step(slug)


# -- authentication requirement ------------------------------------------------------


def test_requirement_none_admits_everyone(app, state, make_flow, make_user) -> None:
    flow = make_flow("open", "dummy")
    alice = make_user("alice")
    assert plan_flow(app, state, "open").bindings == [flow.bindings[0].id]
    assert plan_flow(app, state, "open", alice).bindings == [flow.bindings[0].id]


def test_require_authenticated(app, state, make_flow, make_user) -> None:
    make_flow("private", "dummy", authentication="require_authenticated")
    with pytest.raises(FlowNonApplicable) as refusal:
        plan_flow(app, state, "private")
    assert refusal.value.login_required
    assert plan_flow(app, state, "private", make_user("alice")).bindings


def test_require_unauthenticated(app, state, make_flow, make_user) -> None:
    make_flow("signup", "dummy", authentication="require_unauthenticated")
    assert plan_flow(app, state, "signup").bindings
    with pytest.raises(FlowNonApplicable) as refusal:
        plan_flow(app, state, "signup", make_user("alice"))
    assert not refusal.value.login_required
    assert refusal.value.messages == ("You are already logged in.",)


def test_require_superuser_by_flag_or_group(app, state, make_flow, make_user) -> None:
    make_flow("admin", "dummy", authentication="require_superuser")
    plain = make_user("plain")
    flagged = make_user("root", is_superuser=True)
    staff_member = make_user("staff")
    admin_member = make_user("admin")
    with app.app_context():
        staff = Group(name="staff")
        admins = Group(name="admins", is_superuser=True)
        db.session.add_all([staff, admins])
        db.session.flush()
        db.session.add_all(
            [
                GroupMembership(group_id=staff.id, user_id=str(staff_member.id)),
                GroupMembership(group_id=admins.id, user_id=str(admin_member.id)),
            ]
        )
        db.session.commit()

    with pytest.raises(FlowNonApplicable) as anonymous:
        plan_flow(app, state, "admin")
    assert anonymous.value.login_required
    for user in (plain, staff_member):
        with pytest.raises(FlowNonApplicable) as refusal:
            plan_flow(app, state, "admin", user)
        assert not refusal.value.login_required
        assert refusal.value.messages == ("You need administrator rights to use this.",)
    assert plan_flow(app, state, "admin", flagged).bindings
    assert plan_flow(app, state, "admin", admin_member).bindings


def test_requirement_is_checked_before_flow_policies(app, state, flows, make_flow) -> None:
    calls: list[str] = []

    @flows.policy("recording")
    def recording(policy_request: Any) -> bool:
        calls.append("called")
        return True

    make_flow("private", "dummy", authentication="require_authenticated")
    bind_python(app, "private", "recording")
    with pytest.raises(FlowNonApplicable):
        plan_flow(app, state, "private")
    assert calls == []


def test_require_authenticated_redirects_to_login_over_http(
    browser: FlowBrowser, make_flow
) -> None:
    make_flow("private", "dummy", authentication="require_authenticated")
    browser.start("private", next="/after")
    target = browser.redirect_target
    assert target is not None and target.startswith("/flows/-/login/?next=")
    assert "private" in target


# -- flow policies -----------------------------------------------------------------------


def test_failing_flow_policy_raises_with_its_messages(app, state, flows, make_flow) -> None:
    @flows.policy("closed")
    def closed(policy_request: Any) -> tuple[bool, list[str]]:
        return False, ["Sign-ups are closed."]

    make_flow("signup", "dummy")
    bind_python(app, "signup", "closed")
    with pytest.raises(FlowNonApplicable) as refusal:
        plan_flow(app, state, "signup")
    assert refusal.value.messages == ("Sign-ups are closed.",)
    assert not refusal.value.login_required


def test_failing_flow_policy_without_messages_gets_a_generic_one(
    app, state, flows, make_flow
) -> None:
    flows.policy("no")(lambda policy_request: False)
    make_flow("closed", "dummy")
    bind_python(app, "closed", "no")
    with pytest.raises(FlowNonApplicable) as refusal:
        plan_flow(app, state, "closed")
    assert refusal.value.messages == ("You are not allowed to use this flow.",)


def test_denied_flow_shows_policy_message_over_http(
    browser: FlowBrowser, app, flows, make_flow
) -> None:
    flows.policy("closed")(lambda policy_request: (False, "Sign-ups are closed."))
    make_flow("signup", "dummy", denied_action="message")
    bind_python(app, "signup", "closed")
    response = browser.start("signup")
    assert response.status_code == (200 if browser.htmx else 403)
    assert "Sign-ups are closed." in response.text
    assert browser.stage_type is None


def test_flow_policies_see_the_plan_context(app, state, flows, make_flow) -> None:
    flows.policy("has-redirect")(lambda policy_request: "redirect" in policy_request.context)
    make_flow("ctx", "dummy")
    bind_python(app, "ctx", "has-redirect")
    with pytest.raises(FlowNonApplicable):
        plan_flow(app, state, "ctx")
    plan = plan_flow(app, state, "ctx", context={"redirect": "/x"})
    assert plan.context == {"redirect": "/x"}


# -- bindings: evaluate_on_plan and markers -------------------------------------------------


@pytest.mark.parametrize("passing", [True, False])
def test_evaluate_on_plan_filters_bindings(app, state, flows, make_flow, passing: bool) -> None:
    flows.policy("decide")(lambda policy_request: passing)
    flow = make_flow("filtered", "dummy", "dummy", "dummy")
    bind_python(
        app, "filtered", "decide", order=20, evaluate_on_plan=True, re_evaluate_policies=False
    )
    ids = [b.id for b in flow.bindings]
    plan = plan_flow(app, state, "filtered")
    assert plan.bindings == (ids if passing else [ids[0], ids[2]])
    assert plan.markers == []


def test_binding_policies_without_evaluate_on_plan_do_not_run_at_plan_time(
    app, state, flows, make_flow
) -> None:
    calls: list[int] = []

    @flows.policy("later")
    def later(policy_request: Any) -> bool:
        calls.append(1)
        return False

    flow = make_flow("lazy", "dummy", "dummy")
    bind_python(app, "lazy", "later", order=20)
    plan = plan_flow(app, state, "lazy")
    assert plan.bindings == [b.id for b in flow.bindings]
    assert plan.markers == [flow.bindings[1].id]
    assert calls == []


def test_markers_only_for_re_evaluated_bindings_with_policies(app, state, flows, make_flow) -> None:
    flows.policy("yes")(lambda policy_request: True)
    flow = make_flow("marks", "dummy", "dummy", "dummy")
    bind_python(app, "marks", "yes", order=10, re_evaluate_policies=True)
    bind_python(app, "marks", "yes", order=20, re_evaluate_policies=False)
    # the binding at order 30 has re_evaluate_policies=True (the default) but no policies
    plan = plan_flow(app, state, "marks")
    assert plan.markers == [flow.bindings[0].id]


@pytest.mark.parametrize(("mode", "included"), [("any", True), ("all", False)])
def test_binding_policy_engine_mode(
    app, state, flows, make_flow, mode: str, included: bool
) -> None:
    flows.policy("yes")(lambda policy_request: True)
    flows.policy("no")(lambda policy_request: False)
    flow = make_flow("modes", "dummy", "dummy")
    fields = {"evaluate_on_plan": True, "re_evaluate_policies": False, "policy_engine_mode": mode}
    bind_python(app, "modes", "yes", order=20, **fields)
    bind_python(app, "modes", "no", order=20, **fields)
    plan = plan_flow(app, state, "modes")
    assert (flow.bindings[1].id in plan.bindings) is included


@pytest.mark.parametrize("app_config", [{"FLOWS_ALLOW_EMPTY_FLOWS": False}])
def test_empty_plan_is_an_error_unless_allowed(app, state, flows, make_flow) -> None:
    flows.policy("no")(lambda policy_request: False)
    make_flow("empty", "dummy")
    bind_python(app, "empty", "no", order=10, evaluate_on_plan=True)
    with pytest.raises(EmptyFlow, match="empty"):
        plan_flow(app, state, "empty")


def test_empty_plan_completes_when_allowed(browser: FlowBrowser, app, flows, make_flow) -> None:
    flows.policy("no")(lambda policy_request: False)
    make_flow("empty", "dummy")
    bind_python(app, "empty", "no", order=10, evaluate_on_plan=True)
    browser.start("empty", next="/done")
    assert browser.redirect_target == "/done"


def test_plan_carries_flow_revision_and_slug(app, state, make_flow) -> None:
    make_flow("versioned", "dummy")
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == "versioned"))
        flow.title = "Changed"
        db.session.commit()
        revision = flow.revision
    plan = plan_flow(app, state, "versioned")
    assert (plan.flow_slug, plan.revision) == ("versioned", revision)
    assert revision == 2


# -- run time: re-evaluated markers through HTTP -------------------------------------------


@pytest.fixture
def flag(flows: Flows) -> dict[str, bool]:
    """A switch a python policy reads, flipped by the test between requests."""
    switch = {"on": True}
    flows.policy("flag")(lambda policy_request: switch["on"])
    return switch


@pytest.fixture
def four_steps(app: Flask, make_flow: Callable[..., Flow], flag: dict[str, bool]) -> Flow:
    """dummy ×4; the 2nd and 3rd are bound to the ``flag`` policy (re-evaluated)."""
    flow = make_flow("steps", "dummy", "dummy", "dummy", "dummy")
    bind_python(app, "steps", "flag", order=20)
    bind_python(app, "steps", "flag", order=30)
    return flow


def test_marked_stages_run_while_their_policies_pass(
    browser: FlowBrowser, four_steps, flag
) -> None:
    browser.start("steps")
    seen = [stage_heading(browser)]
    for _ in range(3):
        submit_and_follow(browser, "steps")
        seen.append(stage_heading(browser))
    assert seen == ["steps-0-dummy", "steps-1-dummy", "steps-2-dummy", "steps-3-dummy"]
    browser.submit("steps")
    assert browser.redirect_target == "/"


def test_consecutive_marked_stages_are_all_skipped_when_policies_fail_at_run_time(
    browser: FlowBrowser, four_steps, flag
) -> None:
    browser.start("steps")
    assert stage_heading(browser) == "steps-0-dummy"
    flag["on"] = False  # the plan was built while the flag was on
    submit_and_follow(browser, "steps")
    assert stage_heading(browser) == "steps-3-dummy"
    flag["on"] = True  # skipped stages do not come back
    browser.submit("steps")
    assert browser.redirect_target == "/"


def test_skipped_stage_at_the_end_finishes_the_flow(
    browser: FlowBrowser, app, make_flow, flag
) -> None:
    make_flow("tail", "dummy", "dummy")
    bind_python(app, "tail", "flag", order=20)
    browser.start("tail", next="/after")
    flag["on"] = False
    browser.submit("tail")
    assert browser.redirect_target == "/after"


def test_re_evaluation_reads_the_plan_context_at_that_moment(
    browser: FlowBrowser, app, flows, make_flow
) -> None:
    flows.policy("has-redirect")(lambda policy_request: "redirect" in policy_request.context)
    make_flow("ctx", "dummy", "dummy")
    bind_python(app, "ctx", "has-redirect", order=10)
    browser.start("ctx", next="/after")
    assert stage_heading(browser) == "ctx-0-dummy"
    browser.client.post("/flows/ctx/cancel/", data={"csrf_token": browser.csrf_token()})
    browser.start("ctx")
    assert stage_heading(browser) == "ctx-1-dummy"


def test_evaluate_on_plan_without_re_evaluation_is_decided_once(
    browser: FlowBrowser, app, make_flow, flag
) -> None:
    make_flow("once", "dummy", "dummy", "dummy")
    bind_python(app, "once", "flag", order=20, evaluate_on_plan=True, re_evaluate_policies=False)
    browser.start("once")
    flag["on"] = False  # too late: the plan already holds the stage and no marker
    submit_and_follow(browser, "once")
    assert stage_heading(browser) == "once-1-dummy"

    browser.client.post("/flows/once/cancel/", data={"csrf_token": browser.csrf_token()})
    browser.start("once")  # planned while the flag is off: left out
    flag["on"] = True
    submit_and_follow(browser, "once")
    assert stage_heading(browser) == "once-2-dummy"
