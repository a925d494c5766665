"""An app's own name for the CSRF field (``WTF_CSRF_FIELD_NAME``) everywhere flask-flows
posts: stage forms, cancel, the settings page's actions, a mailed link's Continue.

Before: the checks read the configured name, but templates wrote ``csrf_token``, so with
another name no flow could advance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from browsing import FlowBrowser
from factory import User
from flask import Flask
from smtp_sink import Mailbox
from test_email_stage import link_in

from flask_flows import Flow

PASSWORD = "correct horse battery"
FIELD = "authenticity_token"


@pytest.fixture
def app_config(mailbox: Mailbox) -> dict[str, Any]:
    return {"WTF_CSRF_FIELD_NAME": FIELD, **mailbox.config}


def test_a_login_advances_with_the_apps_field_name(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    page = browser.start("login").text
    assert f'name="{FIELD}"' in page
    assert 'name="csrf_token"' not in page
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.redirect_target == "/"


def test_a_post_without_the_token_is_refused(
    app: Flask, browser: FlowBrowser, login_flow: Flow
) -> None:
    browser.start("login")
    browser.post("/flows/login/", {"uid_field": "alice", "flow_step": browser.step_token()})
    response = browser.settle()
    assert "The form expired. Please try again." in response.text


def test_cancel_and_the_settings_actions_carry_it(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    browser.start("login")
    cancelled = browser.client.post(
        "/flows/login/cancel/", data={FIELD: browser.csrf_token(), "restart": "1"}
    )
    assert cancelled.status_code == 303
    browser.log_in("alice", PASSWORD, slug="login")
    other = browser.fresh()
    other.log_in("alice", PASSWORD, slug="login")
    settings = browser.get("/flows/-/settings/").text
    assert f'name="{FIELD}"' in settings and 'name="csrf_token"' not in settings
    ended = browser.client.post(
        "/flows/-/settings/sessions/end-others/", data={FIELD: browser.csrf_token()}
    )
    assert ended.status_code == 303
    assert other.client.get("/").text == "home: anonymous"


def test_a_mailed_links_continue_carries_it(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
) -> None:
    make_user("alice", password=PASSWORD)
    make_flow("recover", "identification", "email", "dummy", designation="recovery")
    browser.start("recover")
    browser.step("recover", uid_field="alice")
    page = browser.get(link_in(mailbox.wait_for_message())).text
    assert f'name="{FIELD}"' in page
    assert browser.open_link(link_in(mailbox.messages[-1])).status_code == 303
    browser.follow()
    assert browser.stage_type == "dummy"
