"""Where authentik users expect authentik's behaviour: each test states what authentik
does in the same situation (its own flow, stage and policy tests), and flask-flows does
the same. Differences kept on purpose are listed in docs/concepts.md ("Coming from
authentik")."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask

from flask_flows import Flow, FlowStageBinding, Policy, PolicyBinding, Stage
from flask_flows.blueprints import BlueprintError, apply_blueprint
from flask_flows.extension import FlowsState
from flask_flows.planner import MSG_LOG_IN
from flask_flows.signals import login_failed
from flask_flows.stages.password import NO_PENDING_USER
from flask_flows.stages.prompt_checks import MSG_MISMATCH
from flask_flows.stages.redirect import MSG_NO_TARGET
from flask_flows.stages.user_write import MSG_REQUIRED

PASSWORD = "correct horse battery"


def test_a_password_stage_with_no_pending_user_denies(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    """authentik's password stage without a pending user denies the flow ("No pending
    user"): a mis-built flow, not a wrong password, so no form, no failed attempt."""
    make_user("alice", password=PASSWORD)
    make_flow("no-one", "password", "user_login")
    failures: list[object] = []
    app = browser.client.application
    with login_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        page = browser.start("no-one")
    assert NO_PENDING_USER in page.text
    assert "Request denied" in page.text
    assert browser.stage_type is None
    assert failures == []
    # Signed in, the same stage is re-authentication: it asks for the password.
    browser.log_in("alice", PASSWORD, slug="login")
    browser.start("no-one")
    assert browser.stage_type == "password"


def test_two_password_fields_in_a_prompt_must_match(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik compares a prompt's two password fields ("Passwords don't match."), so
    a flow ported with `password` and `password_repeat` as two fields refuses a typo."""
    fields = [
        {"field_key": "password", "label": "Password", "type": "password", "order": 1},
        {"field_key": "password_repeat", "label": "Again", "type": "password", "order": 2},
    ]
    make_flow("pair", ("prompt", {"fields": fields}), "dummy", designation="enrollment")
    browser.start("pair")
    page = browser.step("pair", password=PASSWORD, password_repeat=PASSWORD + "!")
    assert browser.stage_type == "prompt"
    assert MSG_MISMATCH in page.text
    browser.step("pair", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.stage_type == "dummy"


@pytest.mark.parametrize("username", ["", "   "])
def test_user_write_refuses_an_account_without_a_username(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], username: str
) -> None:
    """authentik's user_write refuses an empty username; so does flask-flows, saying so
    (the model's username is NOT NULL: an empty string would have been written)."""
    fields = [
        {"field_key": "username", "label": "Name", "type": "text", "required": False},
        {"field_key": "email", "label": "Email", "type": "email"},
    ]
    make_flow(
        "join", ("prompt", {"fields": fields}), "user_write", "dummy", designation="enrollment"
    )
    browser.start("join")
    page = browser.step("join", username=username, email="nameless@example.com")
    assert MSG_REQUIRED["username"] in page.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_user_write_keeps_a_username_it_is_not_given(
    app: Flask,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    """Updating an account without a username in the prompt leaves the name alone."""
    make_user("alice", password=PASSWORD)
    fields = [{"field_key": "email", "label": "Email", "type": "email"}]
    make_flow(
        "profile",
        ("prompt", {"fields": fields}),
        "user_write",
        "dummy",
        designation="stage_configuration",
    )
    browser.log_in("alice", PASSWORD, slug="login")
    browser.start("profile")
    browser.step("profile", email="new@example.com")
    assert browser.stage_type == "dummy"
    with app.app_context():
        assert db.session.scalar(sa.select(User.username)) == "alice"


def test_a_redirect_into_a_flow_the_visitor_may_not_run_denies(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik's redirect stage plans the target flow first and denies when it does not
    apply; it never sends the visitor to a page that turns them away."""
    with app.app_context():
        members = Policy(
            name="members",
            type="group_membership",
            config={"group": "club", "message": "Members only."},
        )
        flow = Flow(slug="club", name="club", designation="stage_configuration")
        flow.policy_bindings.append(PolicyBinding(policy=members, order=0))
        flow.bindings.append(
            FlowStageBinding(stage=Stage(name="club-dummy", type="dummy"), order=10)
        )
        db.session.add(flow)
        db.session.commit()
    make_flow("private", "dummy", authentication="require_authenticated")
    make_flow("to-club", ("redirect", {"target_flow": "club"}))
    make_flow("to-private", ("redirect", {"target_flow": "private"}))
    make_flow("to-nowhere", ("redirect", {"target_flow": "no-such-flow"}))

    for slug, reason in [
        ("to-club", "Members only."),
        ("to-private", MSG_LOG_IN),
        ("to-nowhere", MSG_NO_TARGET),
    ]:
        page = browser.start(slug)
        assert browser.redirect_target is None, slug
        assert "Request denied" in page.text and reason in page.text, slug


def test_an_identification_stage_that_can_find_nobody_is_refused_at_apply(
    app: Flask, state: FlowsState
) -> None:
    """authentik refuses an identification stage with no user fields (and no other way
    in); so does `flask flows apply`, naming the stage and the field."""
    blueprint = """
version: 1
stages:
  - name: nobody
    type: identification
    config: {user_fields: []}
"""
    with app.app_context(), pytest.raises(BlueprintError, match="'nobody'.*user_fields"):
        apply_blueprint(state, blueprint)
