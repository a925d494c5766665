"""Where authentik users expect authentik's behaviour: each test states what authentik
does in the same situation (its own flow, stage and policy tests), and flask-flows does
the same. Differences kept on purpose are listed in docs/concepts.md ("Coming from
authentik")."""

from __future__ import annotations

from collections.abc import Callable

from browsing import FlowBrowser
from factory import User

from flask_flows import Flow
from flask_flows.signals import login_failed
from flask_flows.stages.password import NO_PENDING_USER
from flask_flows.stages.prompt_checks import MSG_MISMATCH

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
