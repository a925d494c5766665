"""The policy engine (any/all, negate, failure_result, disabled, user and group bindings),
the built-in policy types, and option validation for stage and policy configuration."""

from __future__ import annotations

import logging
from itertools import count
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask, request

from flask_flows import (
    ConfigError,
    Flow,
    FlowPlanner,
    Group,
    GroupMembership,
    Option,
    Policy,
    PolicyBinding,
    PolicyResult,
)
from flask_flows.extension import FlowsState
from flask_flows.options import validate_options
from flask_flows.planner import FlowNonApplicable
from flask_flows.policies import engine as engine_module

_names = count()


def bind(
    app: Flask,
    slug: str,
    *,
    policy: tuple[str, dict[str, Any]] | None = None,
    user: User | None = None,
    group: str | None = None,
    **fields: Any,
) -> None:
    """Attach a policy ``(type, config)``, a user or a group to flow ``slug``."""
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
        binding = PolicyBinding(**fields)
        if policy is not None:
            policy_type, config = policy
            binding.policy = Policy(name=f"policy-{next(_names)}", type=policy_type, config=config)
        if user is not None:
            binding.user_id = str(user.id)
        if group is not None:
            binding.group = db.session.scalar(sa.select(Group).where(Group.name == group))
        binding.flow = flow
        db.session.add(binding)
        db.session.commit()


def python(function: str) -> tuple[str, dict[str, Any]]:
    return ("python", {"function": function})


def add_member(app: Flask, user: User, group_name: str) -> None:
    with app.app_context():
        group = db.session.scalar(sa.select(Group).where(Group.name == group_name))
        if group is None:
            group = Group(name=group_name)
            db.session.add(group)
            db.session.flush()
        db.session.add(GroupMembership(group_id=group.id, user_id=str(user.id)))
        db.session.commit()


def decide(
    app: Flask,
    state: FlowsState,
    slug: str,
    user: User | None = None,
    *,
    authenticated: bool = True,
) -> tuple[bool, tuple[str, ...]]:
    """Plan ``slug`` for ``user``; the flow's policies decide: ``(applies, messages)``.

    With ``authenticated=False`` the user is only the plan's pending user, nobody is logged in.
    """
    with app.test_request_context():
        flow = state.load_flow(slug)
        assert flow is not None
        subject = state.user_store.get(user.id) if user is not None else None
        try:
            FlowPlanner(state, flow).plan(
                user=subject,
                authenticated_user=subject if authenticated else None,
                request=request._get_current_object(),  # type: ignore[attr-defined]
                use_cache=False,
            )
        except FlowNonApplicable as refusal:
            return False, refusal.messages
    return True, ()


@pytest.fixture
def guarded(make_flow: Any) -> Flow:
    """A one-stage flow the tests bind policies to."""
    return make_flow("guarded", "dummy")  # type: ignore[no-any-return]


@pytest.fixture
def yes_no(flows: Any) -> None:
    flows.policy("yes")(lambda policy_request: True)
    flows.policy("no")(lambda policy_request: (False, ["No entry."]))


# -- the engine ---------------------------------------------------------------------------


def test_no_bindings_pass(app, state, guarded) -> None:
    assert decide(app, state, "guarded") == (True, ())


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (True, (True, ())),
        (PolicyResult(True, ("ignored",)), (True, ())),
        (False, (False, ("You are not allowed to use this flow.",))),
        ((False, "One."), (False, ("One.",))),
        ((False, ["One.", "Two."]), (False, ("One.", "Two."))),
        (PolicyResult(False, ("Result.",)), (False, ("Result.",))),
    ],
    ids=["true", "result-true", "false", "pair-str", "pair-list", "result-false"],
)
def test_python_policy_return_shapes(app, state, flows, guarded, returned, expected) -> None:
    flows.policy("shaped")(lambda policy_request: returned)
    bind(app, "guarded", policy=python("shaped"))
    assert decide(app, state, "guarded") == expected


def test_negate_flips_the_result_but_keeps_messages(app, state, flows, guarded) -> None:
    flows.policy("pass-with-note")(lambda policy_request: (True, ["Noted."]))
    bind(app, "guarded", policy=python("pass-with-note"), negate=True)
    assert decide(app, state, "guarded") == (False, ("Noted.",))


def test_negated_failing_policy_passes(app, state, yes_no, guarded) -> None:
    bind(app, "guarded", policy=python("no"), negate=True)
    assert decide(app, state, "guarded") == (True, ())


@pytest.mark.parametrize(("mode", "applies"), [("any", True), ("all", False)])
def test_flow_policy_engine_mode(app, state, yes_no, make_flow, mode, applies) -> None:
    make_flow("moded", "dummy", policy_engine_mode=mode)
    bind(app, "moded", policy=python("yes"), order=1)
    bind(app, "moded", policy=python("no"), order=2)
    assert decide(app, state, "moded") == (applies, () if applies else ("No entry.",))


def test_any_mode_fails_when_every_policy_fails_and_joins_messages(
    app, state, flows, guarded
) -> None:
    flows.policy("a")(lambda policy_request: (False, ["Same.", "A."]))
    flows.policy("b")(lambda policy_request: (False, ["Same.", "B."]))
    bind(app, "guarded", policy=python("a"), order=1)
    bind(app, "guarded", policy=python("b"), order=2)
    assert decide(app, state, "guarded") == (False, ("Same.", "A.", "B."))


def test_disabled_bindings_are_ignored(app, state, yes_no, guarded) -> None:
    bind(app, "guarded", policy=python("no"), enabled=False)
    assert decide(app, state, "guarded") == (True, ())
    bind(app, "guarded", policy=python("yes"), enabled=False, order=1)
    bind(app, "guarded", policy=python("no"), order=2)
    assert decide(app, state, "guarded") == (False, ("No entry.",))


@pytest.mark.parametrize("failure_result", [False, True])
def test_raising_policy_uses_failure_result_and_is_logged(
    app, state, flows, guarded, caplog, failure_result
) -> None:
    @flows.policy("broken")
    def broken(policy_request: Any) -> bool:
        raise RuntimeError("boom")

    bind(app, "guarded", policy=python("broken"), failure_result=failure_result)
    with caplog.at_level(logging.ERROR, logger="flask_flows.policies"):
        applies, _messages = decide(app, state, "guarded")
    assert applies is failure_result
    [record] = [r for r in caplog.records if r.name == "flask_flows.policies"]
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


@pytest.mark.parametrize("failure_result", [False, True])
@pytest.mark.parametrize(
    ("timeout", "seconds", "overran"), [(30, 31, True), (30, 29, False), (0, 999, False)]
)
def test_a_policy_slower_than_its_timeout_uses_failure_result(
    app, state, flows, guarded, caplog, monkeypatch, failure_result, timeout, seconds, overran
) -> None:
    now = [1000.0]
    monkeypatch.setattr(engine_module, "monotonic", lambda: now[0])

    @flows.policy("slow")
    def slow(policy_request: Any) -> bool:
        now[0] += seconds
        return not failure_result  # its own answer differs from the fallback

    bind(app, "guarded", policy=python("slow"), failure_result=failure_result, timeout=timeout)
    with caplog.at_level(logging.ERROR, logger="flask_flows.policies"):
        applies, _messages = decide(app, state, "guarded")
    assert applies is (failure_result if overran else not failure_result)
    assert ("more than its timeout of 30 s" in caplog.text) is overran


@pytest.mark.parametrize("failure_result", [False, True])
def test_unregistered_python_function_uses_failure_result(
    app, state, guarded, caplog, failure_result
) -> None:
    bind(app, "guarded", policy=python("nobody-registered-me"), failure_result=failure_result)
    with caplog.at_level(logging.ERROR, logger="flask_flows.policies"):
        assert decide(app, state, "guarded")[0] is failure_result
    assert "nobody-registered-me" in caplog.text


def test_raising_policy_is_no_server_error_over_http(
    browser: FlowBrowser, app, flows, guarded, caplog
) -> None:
    flows.policy("broken")(lambda policy_request: 1 / 0)
    bind(app, "guarded", policy=python("broken"), failure_result=False)
    with caplog.at_level(logging.ERROR, logger="flask_flows.policies"):
        response = browser.start("guarded")
    assert response.status_code in (200, 403)
    assert "Request denied" in response.text
    assert "ZeroDivisionError" in caplog.text


def test_user_binding_matches_only_that_user(app, state, make_user, guarded) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    bind(app, "guarded", user=alice)
    assert decide(app, state, "guarded", alice)[0] is True
    assert decide(app, state, "guarded", bob)[0] is False
    assert decide(app, state, "guarded")[0] is False


def test_user_binding_matches_the_pending_user(app, state, make_user, guarded) -> None:
    alice = make_user("alice")
    bind(app, "guarded", user=alice)
    assert decide(app, state, "guarded", alice, authenticated=False)[0] is True


def test_group_binding_matches_members(app, state, make_user, guarded) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    add_member(app, alice, "staff")
    bind(app, "guarded", group="staff")
    assert decide(app, state, "guarded", alice)[0] is True
    assert decide(app, state, "guarded", bob)[0] is False
    assert decide(app, state, "guarded")[0] is False


def test_user_and_group_bindings_any_match_passes(app, state, make_user, guarded) -> None:
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    add_member(app, bob, "staff")
    bind(app, "guarded", user=alice, order=1)
    bind(app, "guarded", group="staff", order=2)
    assert [decide(app, state, "guarded", u)[0] for u in (alice, bob, carol)] == [
        True,
        True,
        False,
    ]


# -- built-in policy types ------------------------------------------------------------------


def test_group_membership_policy(app, state, make_user, guarded) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    add_member(app, alice, "beta")
    bind(app, "guarded", policy=("group_membership", {"group": "beta", "message": "Beta only."}))
    assert decide(app, state, "guarded", alice) == (True, ())
    assert decide(app, state, "guarded", bob) == (False, ("Beta only.",))
    assert decide(app, state, "guarded") == (False, ("Beta only.",))


def test_group_membership_policy_default_message(app, state, make_user, guarded) -> None:
    bind(app, "guarded", policy=("group_membership", {"group": "beta"}))
    assert decide(app, state, "guarded", make_user("bob")) == (
        False,
        ("You are not allowed to use this.",),
    )


def test_authenticated_policy_needs_a_logged_in_user(app, state, make_user, guarded) -> None:
    alice = make_user("alice")
    bind(app, "guarded", policy=("authenticated", {}))
    assert decide(app, state, "guarded", alice) == (True, ())
    assert decide(app, state, "guarded") == (False, ("Please log in first.",))
    # a pending user is not a logged-in one
    assert decide(app, state, "guarded", alice, authenticated=False) == (
        False,
        ("Please log in first.",),
    )


def test_invalid_policy_config_uses_failure_result(app, state, guarded, caplog) -> None:
    bind(app, "guarded", policy=("group_membership", {"groop": "beta"}), failure_result=True)
    with caplog.at_level(logging.ERROR, logger="flask_flows.policies"):
        assert decide(app, state, "guarded")[0] is True
    assert "groop" in caplog.text


# -- option validation -------------------------------------------------------------------------

OPTIONS = {
    "name": Option(str),
    "size": Option(int, default=3, minimum=1),
    "mode": Option(str, default="a", choices=("a", "b")),
    "fields": Option(list, default=("username",), choices=("username", "email"), items=str),
    "note": Option(str, default=None, nullable=True),
}
WHERE = "stage 'login-id' (identification)"


def test_options_are_completed_with_defaults() -> None:
    config = validate_options(OPTIONS, {"name": "x"}, WHERE)
    assert config == {"name": "x", "size": 3, "mode": "a", "fields": ["username"], "note": None}


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"name": "x", "colour": "red"}, "colour", "unknown option"),
        ({"name": 5}, "name", "expected str, got int"),
        ({"name": "x", "size": True}, "size", "got a boolean"),
        ({"name": "x", "size": "3"}, "size", "expected int, got str"),
        ({"name": "x", "size": 0}, "size", "at least 1"),
        ({"name": "x", "mode": "c"}, "mode", "'c' is not one of 'a', 'b'"),
        ({"name": "x", "fields": ["phone"]}, "fields", "'phone' is not one of"),
        ({"name": "x", "fields": "email"}, "fields", "expected list"),
        ({}, "name", "a value is required"),
        ({"name": None}, "name", "a value is required"),
    ],
    ids=[
        "unknown",
        "wrong-type",
        "bool-for-int",
        "str-for-int",
        "minimum",
        "choices",
        "list-choices",
        "str-for-list",
        "required",
        "null",
    ],
)
def test_option_errors_name_object_and_field(raw, field, fragment) -> None:
    with pytest.raises(ConfigError) as error:
        validate_options(OPTIONS, raw, WHERE)
    message = str(error.value)
    assert message.startswith(WHERE)
    assert repr(field) in message
    assert fragment in message


def test_default_lists_are_not_shared_between_configs() -> None:
    first = validate_options(OPTIONS, {"name": "x"}, WHERE)
    first["fields"].append("email")
    assert validate_options(OPTIONS, {"name": "x"}, WHERE)["fields"] == ["username"]


def test_bool_option_accepts_bool() -> None:
    options = {"flag": Option(bool, default=False)}
    assert validate_options(options, {"flag": True}, WHERE) == {"flag": True}
    with pytest.raises(ConfigError, match="'flag': expected bool, got int"):
        validate_options(options, {"flag": 1}, WHERE)


def test_stage_config_errors_name_the_stage(app, state, make_flow) -> None:
    flow = make_flow("bad", ("dummy", {"fail": "yes"}))
    with pytest.raises(ConfigError) as error:
        state.stage_config(flow.bindings[0].stage)
    assert "stage 'bad-0-dummy' (dummy), field 'fail'" in str(error.value)


def test_policy_config_errors_name_the_policy(app, state) -> None:
    with app.app_context():
        policy = Policy(name="beta-only", type="group_membership", config={})
        with pytest.raises(ConfigError) as error:
            state.policy_config(policy)
    assert "policy 'beta-only' (group_membership), field 'group'" in str(error.value)
