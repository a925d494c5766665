"""The plan's context is sealed in the session cookie: read from outside, the cookie says
nothing about whether an account exists and holds no personal data.

Before: Flask's session is signed, not encrypted, so the cookie showed ``pending_user``
after identification (only for real accounts: it gave them away) and, during sign-up,
the email, the username and the new password's argon2 hash.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from browsing import FlowBrowser, plan_context
from factory import User
from flask import Flask

from flask_flows import Flow
from flask_flows.blueprints import install_default_flows
from flask_flows.executor import MSG_EXPIRED, PLANS_KEY
from flask_flows.extension import FlowsState

PASSWORD = "correct horse battery"


def readable(browser: FlowBrowser) -> str:
    """The session cookie as anyone holding it can read it, without the key."""
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    payload = cookie.value.split(".")[-3] if cookie.value.startswith(".") else cookie.value
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    if cookie.value.startswith("."):
        data = zlib.decompress(data)
    return data.decode()


def identified(app: Flask, username: str, slug: str = "login") -> FlowBrowser:
    browser = FlowBrowser(app.test_client())
    browser.start(slug)
    browser.submit(slug, uid_field=username)
    return browser


def test_after_identification_the_cookie_does_not_tell_real_accounts_apart(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice", password=PASSWORD)
    known = identified(app, "alice")
    unknown = identified(app, "zorro")  # as long as "alice": the identifier typed is in it
    for browser in (known, unknown):
        text = readable(browser)
        assert "pending_user" not in text
        assert PLANS_KEY in text  # this is the session that holds the plan
    assert isinstance(json.loads(readable(known))[PLANS_KEY]["login"]["c"], str)  # sealed
    # The same size, before Flask's compression (whose output varies with the random
    # CSRF token and nonce alike for both).
    assert len(readable(known)) == len(readable(unknown))
    # The server still reads it.
    assert plan_context(known.client, "login")["pending_user"] == str(alice.id)
    assert "pending_user" not in plan_context(unknown.client, "login")


def test_sign_up_data_is_not_in_the_cookie(app: Flask, state: FlowsState) -> None:
    with app.app_context():
        install_default_flows(state)
    slug = "default-enrollment-flow"
    browser = FlowBrowser(app.test_client())
    browser.start(slug)
    browser.step(
        slug,
        username="zelda",
        email="zelda@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    assert browser.stage_type == "email"
    text = readable(browser)
    for secret in ("zelda", "argon2", PASSWORD):
        assert secret not in text
    assert plan_context(browser.client, slug)["prompt_data"]["username"] == "zelda"


def tamper(browser: FlowBrowser, slug: str, change: Callable[[dict[str, Any]], Any]) -> None:
    with browser.client.session_transaction() as session:
        plans = dict(session[PLANS_KEY])
        plans[slug] = change(dict(plans[slug]))
        session[PLANS_KEY] = plans


@pytest.mark.parametrize(
    "change",
    [
        lambda plan: {**plan, "c": plan["c"][:-4] + "AAAA"},
        lambda plan: {**plan, "c": {"pending_user": "1"}},
        lambda plan: {**plan, "c": "not even base64 !"},
    ],
    ids=["altered", "plain context", "garbage"],
)
def test_an_altered_context_restarts_the_flow(
    app: Flask, make_user: Callable[..., User], login_flow: Flow, change: Any
) -> None:
    make_user("alice", password=PASSWORD)
    browser = identified(app, "alice")
    tamper(browser, "login", change)
    page = browser.get("/flows/login/")
    assert page.status_code == 200
    assert browser.stage_type == "identification"
    assert MSG_EXPIRED in page.text


def test_a_context_sealed_for_one_flow_does_not_open_in_another(
    app: Flask, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice", password=PASSWORD)
    make_flow("login", "identification", "password", "user_login")
    make_flow("other", "identification", "password", "user_login")
    browser = identified(app, "alice")
    browser.start("other")
    with browser.client.session_transaction() as session:
        login_context = session[PLANS_KEY]["login"]["c"]
    tamper(browser, "other", lambda plan: {**plan, "c": login_context})
    browser.get("/flows/other/")
    assert browser.stage_type == "identification"


def test_a_rotated_key_still_opens_what_the_old_one_sealed(
    make_app: Any, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice", password=PASSWORD)
    old, _ = make_app(SECRET_KEY="the old key")
    browser = identified(old, "alice")
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    new, _ = make_app(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=["the old key"])
    client = new.test_client()
    client.set_cookie("session", cookie.value)
    moved = FlowBrowser(client)
    moved.get("/flows/login/")
    assert moved.stage_type == "password"
    assert plan_context(moved.client, "login")["pending_user"] == str(alice.id)
    moved.step("login", password=PASSWORD)
    assert moved.whoami() == "home: alice"
