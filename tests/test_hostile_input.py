"""Input that once gave a 500 (or no answer at all) gets a clear 4xx page or a working
response instead: NUL characters, ids beyond any column, a ``next`` in another script."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from browsing import FlowBrowser
from factory import User
from flask import Flask
from live_http import Visitor, serving

from flask_flows import Flow

PASSWORD = "correct horse battery"
BEYOND = "99999999999999999999"  # past PostgreSQL's integer and SQLite's 64 bits


def test_a_nul_in_the_identifier_is_an_unknown_account(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """It matches no one, and is answered like any unknown identifier (pretended)."""
    make_user("alice")
    browser.start("login")
    browser.step("login", uid_field="ali\x00ce")
    assert browser.stage_type == "password"
    response = browser.step("login", password=PASSWORD)
    assert response.status_code == 200
    assert "Invalid username or password." in response.text


@pytest.mark.parametrize("path", ["/flows/%00/", "/flows/login/?next=/%00"])
def test_a_nul_in_the_url_is_a_400(browser: FlowBrowser, login_flow: Flow, path: str) -> None:
    assert browser.get(path).status_code == 400


@pytest.mark.parametrize(
    "action",
    [
        f"/flows/-/settings/sessions/{BEYOND}/end/",
        f"/flows/-/settings/authenticators/totp/{BEYOND}/remove/",
        "/flows/-/settings/sessions/2147483648/end/",
    ],
)
def test_an_id_no_column_can_hold_is_a_404(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow, action: str
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    browser.get("/flows/-/settings/")
    response = browser.post(action, {"csrf_token": browser.csrf_token(), "password": PASSWORD})
    assert response.status_code == 404
    assert "There is nothing here" in response.text


def test_a_body_beyond_any_stage_form_is_refused_unread(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """20 MB bodies were read, parsed and validated: now a 413 page, over real HTTP."""
    make_user("alice")
    with serving(app) as base:
        me = Visitor(base)
        me.open("/flows/login/")
        assert me.submit("/flows/login/", uid_field="alice", filler="x" * 2_000_000) == 413
        assert "more than this form can take" in me.page
        me.open("/flows/login/")  # and nothing broke
        assert me.submit("/flows/login/", uid_field="alice") == 200
        assert 'name="password"' in me.page


def test_thousands_of_fields_are_refused(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    many = {f"f{n}": "1" for n in range(5000)}
    assert browser.submit("login", uid_field="alice", **many).status_code == 413
    browser.start("login")
    assert browser.submit("login", uid_field="alice").status_code in (200, 303)


@pytest.mark.parametrize(
    "app_config", [{"MAX_CONTENT_LENGTH": 4 * 1024 * 1024, "MAX_FORM_PARTS": 6000}]
)
def test_the_apps_own_limits_win(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    fields = {f"f{n}": "1" for n in range(5000)}
    assert browser.submit(
        "login", uid_field="alice", filler="x" * 100_000, **fields
    ).status_code in (
        200,
        303,
    )


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_a_next_in_another_script_reaches_the_browser(
    app: Flask, make_user: Callable[..., User], login_flow: Flow, htmx: bool
) -> None:
    """The raw value in HX-Redirect made werkzeug's server fail the response (gunicorn
    dropped the connection): over real HTTP, the redirect arrives percent-encoded."""
    make_user("alice")
    with serving(app) as base:
        me = Visitor(base, htmx=htmx)
        assert me.open("/flows/login/?next=/caf%C3%A9/%E4%B8%AD") == 200
        me.submit("/flows/login/", uid_field="alice")
        assert 'name="password"' in me.page
        status = me.submit("/flows/login/", password=PASSWORD)
    if htmx:
        assert status == 200
        assert me.response_headers["HX-Redirect"] == "/caf%C3%A9/%E4%B8%AD"
    else:
        # urllib followed the 303 to the app, which has no such page.
        assert status == 404
