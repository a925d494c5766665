"""Expressions (authentik's expression policies and expression-valued options, without
Python): the ``expression`` policy, the options that take ``{expression: "…"}``, what an
expression sees and what the sandbox refuses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, plan_context
from factory import User, db
from flask import Flask, request
from smtp_sink import Mailbox
from test_back_forward import page_url

from flask_flows import Flow, Group, Policy, PolicyBinding
from flask_flows.blueprints import BlueprintError, apply_blueprint, export_flow
from flask_flows.expression_scope import scope
from flask_flows.expressions import SCOPE_NAMES, ExpressionError, compile_expression
from flask_flows.extension import FlowsState
from flask_flows.grants import create_invitation
from flask_flows.mail import wait_for_outgoing_mail
from flask_flows.options import ConfigError
from flask_flows.plan import PROMPT_DATA
from flask_flows.stages.deny import MSG_DENIED
from flask_flows.stages.redirect import MSG_NO_TARGET

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config(mailbox: Mailbox) -> dict[str, Any]:
    """Mail goes to the loopback SMTP server."""
    return {**mailbox.config}


def guard(app: Flask, slug: str, expression: str, **binding: Any) -> None:
    """Bind an expression policy to the flow ``slug``."""
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
        assert flow is not None
        policy = Policy(
            name=f"{slug}-guard",
            type="expression",
            config={"expression": expression, "message": "Staff only."},
        )
        flow.policy_bindings.append(PolicyBinding(policy=policy, order=0, **binding))
        db.session.commit()


# -- the expression policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "passes"),
    [
        ('user.email.endswith("@example.com")', True),
        ('user.email.endswith("@example.org")', False),
        ('"staff" in user.groups', True),
        ('request.method == "GET" and request.path.startswith("/flows/")', True),
        ('ip_in(request.remote_addr, "10.0.0.0/8")', False),  # the test client is 127.0.0.1
        ('ip_in(request.remote_addr, "127.0.0.0/8", "::1")', True),
        ("flow.slug == 'staff-area' and now.year >= 2024", True),
    ],
)
def test_an_expression_policy_decides_from_what_it_sees(
    app: Flask,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
    expression: str,
    passes: bool,
) -> None:
    alice = make_user("alice", password=PASSWORD, email="alice@example.com")
    with app.app_context():
        staff = Group(name="staff")
        db.session.add(staff)
        db.session.flush()
        app.extensions["flows"].user_store.add_to_group(db.session.get(User, alice.id), "staff")
        db.session.commit()
    make_flow("staff-area", ("dummy", {"message": "Welcome, staff."}))
    guard(app, "staff-area", expression)
    browser.log_in("alice", PASSWORD, slug="login")

    page = browser.start("staff-area")

    assert ("Welcome, staff." in page.text) is passes
    assert ("Staff only." in page.text) is not passes


def test_an_expression_sees_the_plans_prompt_data(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """A binding's expression sees the answers of the prompt before it (re-evaluated just
    before its stage runs)."""
    fields = [{"field_key": "plan", "type": "radio", "choices": ["free", "pro"]}]
    flow = make_flow(
        "signup",
        ("prompt", {"fields": fields}),
        ("dummy", {"message": "Pro setup."}),
        ("dummy", {"message": "Done."}),
        designation="enrollment",
    )
    app = browser.client.application
    with app.app_context():
        binding = db.session.get(type(flow.bindings[1]), flow.bindings[1].id)
        policy = Policy(
            name="pro", type="expression", config={"expression": 'prompt_data.plan == "pro"'}
        )
        binding.policy_bindings.append(PolicyBinding(policy=policy, order=0))
        db.session.commit()
    browser.start("signup")
    assert "Done." in browser.step("signup", plan="free").text
    other = browser.fresh()
    other.start("signup")
    assert "Pro setup." in other.step("signup", plan="pro").text


@pytest.mark.parametrize(("failure_result", "passes"), [(False, False), (True, True)])
def test_a_failing_expression_gives_the_failure_result_and_a_log_line(
    app: Flask,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    caplog: pytest.LogCaptureFixture,
    failure_result: bool,
    passes: bool,
) -> None:
    """An expression that fails (here: an attribute of no user) raises in the policy;
    the engine gives the binding's failure_result and logs it with the policy's name
    and the expression, as for any policy that raises."""
    make_flow("guarded", ("dummy", {"message": "Inside."}))
    guard(app, "guarded", "user.email.endswith('@example.com')", failure_result=failure_result)
    with caplog.at_level(logging.ERROR, logger="flask_flows.policies"):
        page = browser.start("guarded")
    assert ("Inside." in page.text) is passes
    [record] = [r for r in caplog.records if r.name == "flask_flows.policies"]
    assert "'guarded-guard' failed" in record.getMessage()
    assert "user.email.endswith" in record.getMessage()
    assert record.exc_info is None  # the expression's mistake, not a traceback to read


@pytest.mark.parametrize(
    ("section", "entry", "named"),
    [
        ("policies", {"type": "expression", "config": {"expression": "user.email ==="}}, ""),
        ("stages", {"type": "deny", "config": {"message": {"expression": "'a' ~"}}}, "'message'"),
        (
            "stages",
            {"type": "deny", "config": {"message": {"expression": "{{ user.email }}"}}},
            r"without \{\{ \}\}",
        ),
        (
            "policies",
            {"type": "expression", "config": {"expression": "secrets(1) or user"}},
            "names 'secrets', which it cannot see",
        ),
        (
            "stages",
            {"type": "deny", "config": {"message": {"expresion": "'a'"}}},
            "an expression is written",
        ),
    ],
)
def test_an_expression_that_cannot_be_read_is_refused_at_apply(
    app: Flask, state: FlowsState, section: str, entry: dict[str, Any], named: str
) -> None:
    blueprint = {"version": 1, section: [{"name": "broken", **entry}]}
    with (
        app.app_context(),
        pytest.raises(BlueprintError, match=rf"'broken'.*{named}"),
    ):
        apply_blueprint(state, blueprint)


# -- expression-valued options -------------------------------------------------------------------


def test_a_deny_message_from_an_expression(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    make_user("alice", password=PASSWORD)
    message = {"expression": '"Sorry " ~ user.username ~ ", sign-ups are closed."'}
    make_flow("closed", ("deny", {"message": message}))
    make_flow("broken", ("deny", {"message": {"expression": "user.nothing.here"}}))
    browser.log_in("alice", PASSWORD, slug="login")
    assert "Sorry alice, sign-ups are closed." in browser.start("closed").text
    assert MSG_DENIED in browser.start("broken").text  # the default, and a log line


def test_a_redirect_target_from_an_expression(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """A URL made by an expression may hold the visitor's input: only a path of this
    site is followed; a flow slug goes through the target flow's own checks."""
    fields = [{"field_key": "plan", "type": "text"}]
    target = {"expression": '"/welcome/" ~ prompt_data.plan'}
    make_flow("to-path", ("prompt", {"fields": fields}), ("redirect", {"target_url": target}))
    browser.start("to-path")
    browser.step("to-path", plan="pro")
    assert browser.redirect_target == "/welcome/pro"
    outside = {"expression": '"https://evil.example.com/" ~ prompt_data.plan'}
    make_flow("to-outside", ("prompt", {"fields": fields}), ("redirect", {"target_url": outside}))
    browser.start("to-outside")
    page = browser.step("to-outside", plan="x")
    assert browser.redirect_target is None and MSG_NO_TARGET in page.text

    make_flow("pro-flow", ("dummy", {"message": "The pro flow."}))
    into = {"expression": 'prompt_data.plan ~ "-flow"'}
    make_flow("to-flow", ("prompt", {"fields": fields}), ("redirect", {"target_flow": into}))
    browser.start("to-flow")
    browser.step("to-flow", plan="pro")
    assert browser.redirect_target == "/flows/pro-flow/"
    browser.start("to-flow")
    page = browser.step("to-flow", plan="nothing")
    assert MSG_NO_TARGET in page.text


def test_prompt_initial_values_and_choices_from_expressions(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    make_user("alice", password=PASSWORD, email="alice@example.com")
    fields = [
        {
            "field_key": "nickname",
            "type": "text",
            "initial_value": {"expression": "user.username|capitalize"},
        },
        {
            "field_key": "team",
            "type": "dropdown",
            "choices": {
                "expression": '[{"value": "eng", "label": "Engineering"}]'
                ' + ([{"value": "ops", "label": "Operations"}]'
                ' if user.email.endswith("@example.com") else [])'
            },
        },
        {
            "field_key": "broken",
            "type": "text",
            "required": False,
            "initial_value": {"expression": "user.nope"},
        },
    ]
    make_flow("profile", ("prompt", {"fields": fields}), "dummy", designation="stage_configuration")
    browser.log_in("alice", PASSWORD, slug="login")
    page = browser.start("profile")
    assert 'value="Alice"' in page.text
    assert ">Engineering</option>" in page.text and ">Operations</option>" in page.text
    page = browser.step("profile", nickname="Al", team="sales")
    assert browser.stage_type == "prompt"  # not one of the choices the expression gave
    browser.step("profile", nickname="Al", team="ops")
    assert browser.stage_type == "dummy"
    assert plan_context(browser.client, "profile")[PROMPT_DATA]["team"] == "ops"


def test_user_write_groups_from_an_expression(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """An expression chooses the new user's groups, but only among `allowed_groups`,
    and never one with administrator rights: it may be made of the visitor's answers."""
    with app.app_context():
        db.session.add_all([Group(name="team-eng"), Group(name="team-admins", is_superuser=True)])
        db.session.commit()
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "email", "type": "email"},
        {"field_key": "team", "type": "text"},
    ]
    groups = {"expression": '["team-" ~ prompt_data.team, "newcomers"]'}
    make_flow(
        "join",
        ("prompt", {"fields": fields}),
        (
            "user_write",
            {
                "create_users_group": groups,
                "allowed_groups": ["team-eng", "team-ops", "team-admins"],
            },
        ),
        "dummy",
        designation="enrollment",
    )
    for name, team in (("erin", "eng"), ("mallory", "admins")):
        visitor = browser.fresh()
        visitor.start("join")
        visitor.step("join", username=name, email=f"{name}@example.com", team=team)
        assert visitor.stage_type == "dummy"
    with app.app_context():
        store = app.extensions["flows"].user_store
        erin = store.find_by_identifier("erin", ["username"])
        mallory = store.find_by_identifier("mallory", ["username"])
        assert store.group_names(erin) == {"team-eng"}
        assert store.group_names(mallory) == set()
        assert db.session.scalar(sa.select(Group).where(Group.name == "newcomers")) is None


def test_the_email_recipient_from_an_expression(
    browser: FlowBrowser, make_flow: Callable[..., Flow], mailbox: Mailbox
) -> None:
    """A sign-up's link goes to the address an expression gives (here a second prompt
    field), as authentik's email stage takes its recipient from the plan context."""
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "work_email", "type": "email"},
    ]
    to = {"expression": "prompt_data.work_email"}
    make_flow(
        "join",
        ("prompt", {"fields": fields}),
        ("email", {"to": to}),
        "dummy",
        designation="enrollment",
    )
    browser.start("join")
    page = browser.step("join", username="erin", work_email="erin@work.example")
    assert browser.stage_type == "email"
    assert "erin@work.example" in page.text
    assert mailbox.wait_for_message()["To"] == "erin@work.example"


@pytest.mark.parametrize(
    ("to", "sent"),
    [
        ("user.email|upper", "alice@example.com"),
        ('"attacker@evil.example"', None),
        ("user.username ~ '@evil.example'", None),
    ],
)
def test_a_recovery_link_goes_only_to_an_address_of_the_account(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    mailbox: Mailbox,
    to: str,
    sent: str | None,
) -> None:
    """For an account named at identification, an expression's address is used only when
    it is one of the account's own: a recovery link never goes elsewhere."""
    make_user("alice", password=PASSWORD, email="alice@example.com")
    make_flow(
        "recover",
        "identification",
        ("email", {"to": {"expression": to}}),
        "dummy",
        designation="recovery",
    )
    browser.start("recover")
    page = browser.step("recover", uid_field="alice")
    assert browser.stage_type == "email"
    assert "@example.com" not in page.text and "evil" not in page.text
    assert wait_for_outgoing_mail(timeout=10)
    assert [m["To"] for m in mailbox.messages] == ([sent] if sent else [])
    # An identifier that names nobody: the same page, and no mail.
    mailbox.clear()
    nobody = browser.fresh()
    nobody.start("recover")
    other_page = nobody.step("recover", uid_field="nobody")
    assert nobody.stage_type == "email"
    assert "evil" not in other_page.text
    assert wait_for_outgoing_mail(timeout=10)
    assert mailbox.messages == []


def test_groups_from_an_expression_need_allowed_groups(app: Flask, state: FlowsState) -> None:
    stage = {
        "name": "join-write",
        "type": "user_write",
        "config": {"create_users_group": {"expression": "prompt_data.team"}},
    }
    with app.app_context(), pytest.raises(BlueprintError, match="'allowed_groups'"):
        apply_blueprint(state, {"version": 1, "stages": [stage]})


def test_an_invitation_code_left_empty_or_typed_again(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """An optional code field left empty is no code (the flow may go on without one); a
    refused code typed again after Back is checked afresh."""
    code_prompt = [{"field_key": "token", "type": "text", "required": False}]
    config = {"continue_flow_without_invitation": True}
    make_flow("maybe", ("prompt", {"fields": code_prompt}), ("invitation", config), "dummy")
    with app.app_context():
        _invitation, token = create_invitation(db.session, flow_slug="maybe")
        db.session.commit()
    browser.start("maybe")
    browser.step("maybe", token="")
    assert browser.stage_type == "dummy"
    other = browser.fresh()
    first = page_url(other.start("maybe"))
    other.step("maybe", token="wrong")
    assert other.stage_type == "invitation"
    other.get(first)  # Back, to the prompt
    assert other.stage_type == "prompt"
    other.step("maybe", token=token)
    assert other.stage_type == "dummy"


# -- what an expression sees, and what it may not do --------------------------------------------


def test_an_expression_never_sees_the_password_hash_or_credentials(
    app: Flask, state: FlowsState, make_user: Callable[..., User]
) -> None:
    alice = make_user("alice", password=PASSWORD, email="alice@example.com")
    headers = {"Cookie": "session=secret", "Authorization": "Bearer secret", "X-Team": "eng"}
    with app.test_request_context("/flows/x/?a=1", headers=headers):
        user = db.session.get(User, alice.id)
        context = {PROMPT_DATA: {"password": {"hash": "$argon2id$secret"}, "plan": "pro"}}
        values = scope(state, user=user, context=context, request=request)
        assert "password_hash" not in values["user"]
        assert values["user"]["email"] == "alice@example.com"
        assert values["prompt_data"] == {"plan": "pro"}
        assert "secret" not in repr(values["context"]) + repr(values["request"])
        assert values["request"]["headers"]["x-team"] == "eng"
        assert values["request"]["args"] == {"a": "1"}
        with pytest.raises(ExpressionError):
            compile_expression("user.password_hash", "test").evaluate(values, 1.0)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("().__class__.__bases__", "unsafe"),
        ("user.__class__.__init__", "unsafe"),
        ("prompt_data.update({'plan': 'free'})", "unsafe"),
        ('"a" * 10000000', "more than"),
        ("9 ** 99999", "bits"),
        ('"a".ljust(1000000000)', "more than"),
        ('"{:>999999999}".format(1)', "not available"),
        ("range(1000000000)|list", "10000 items at most"),
        ('range(10000)|map("string")|map("upper")|map("lower")|map("trim")|list', "time limit"),
        ("user.nothing", "no attribute"),
        ('(["x" * 10000] * 1000)|join', "more than"),
        ('range(10000)|join("ab")', "more than"),
        ('("a" * 10)|replace("a", "a" * 5000)', "more than"),
        ('"%*s" % (999999, "")', "not available"),
        ("(9 ** 64) ** 64", "bits"),
        ('"abc".translate({})', "not available"),
        ("[1]|dictsort", "AttributeError"),
        ('"aaa"|truncate(2, leeway=0)', "AssertionError"),
        ("range(3)|sum(attribute='x')", "numbers only"),
    ],
)
def test_the_sandbox_refuses(source: str, reason: str) -> None:
    """Each of these would escape the sandbox, grow without bound or raise something
    other than a clean failure (a 500)."""
    values = {"user": {"email": "a@example.com"}, "prompt_data": {"plan": "pro"}}
    with pytest.raises(ExpressionError, match=reason):
        compile_expression(source, "test").evaluate(values, 0.005)


def test_the_documented_example_applies_and_decides(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    """docs/expressions.md's first example, applied as written."""
    docs = (Path(__file__).parent.parent / "docs" / "expressions.md").read_text()
    example = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    make_flow("staff-area", ("dummy", {"message": "Welcome, staff."}))
    with app.app_context():
        apply_blueprint(state, example)
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == "staff-area"))
        policy = db.session.scalar(sa.select(Policy).where(Policy.name == "company-only"))
        flow.policy_bindings.append(PolicyBinding(policy=policy, order=0))  # type: ignore[union-attr]
        db.session.commit()
    make_user("alice", password=PASSWORD, email="alice@example.com")
    make_user("bob", password=PASSWORD, email="bob@example.org")
    browser.log_in("alice", PASSWORD, slug="login")
    assert "Welcome, staff." in browser.start("staff-area").text
    other = browser.fresh()
    other.log_in("bob", PASSWORD, slug="login")
    assert "Only Example staff may use this." in other.start("staff-area").text


def test_a_lazy_result_is_made_into_a_list() -> None:
    """A filter's lazy result is a list, so `select(...)` of nothing is false (a
    generator would always be true and grant what it should not)."""
    values = {"user": {"groups": ["readers"]}}
    found = compile_expression('user.groups|select("equalto", "staff")', "test")
    assert found.evaluate(values, 1.0) == []
    assert compile_expression("range(3)|map('string')", "test").evaluate(values, 1.0) == [
        "0",
        "1",
        "2",
    ]


def test_the_names_an_expression_may_use_are_those_it_sees(app: Flask, state: FlowsState) -> None:
    with app.test_request_context("/"):
        values = scope(state, user=None, context={}, request=request)
    assert set(values) == SCOPE_NAMES


def test_an_exported_flow_keeps_its_expressions(app: Flask, state: FlowsState) -> None:
    """`flask flows export` writes an expression-valued option as it was written, and the
    export applies again unchanged."""
    blueprint = """
version: 1
stages:
  - name: closed
    type: deny
    config:
      message: {expression: '"Closed for " ~ (user.username if user else "now")'}
flows:
  - slug: closed-flow
    name: Closed
    designation: authentication
    bindings:
      - {stage: closed, order: 10}
"""
    with app.app_context():
        apply_blueprint(state, blueprint)
        exported = export_flow(state, "closed-flow")
        assert "expression:" in exported and "Closed for" in exported
        report = apply_blueprint(state, exported)
        assert not report.changed


@pytest.mark.parametrize("limit", [0, -1, "fast", True])
def test_the_time_limit_is_checked_at_start(make_app: Callable[..., Any], limit: object) -> None:
    with pytest.raises(ConfigError, match="FLOWS_EXPRESSION_TIME_LIMIT"):
        make_app(FLOWS_EXPRESSION_TIME_LIMIT=limit)
