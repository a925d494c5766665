"""Flows pages cannot be framed by other sites (clickjacking), unless the app says so."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from browsing import FlowBrowser
from factory import User
from flask import Flask, Response

from flask_flows import Flow

PASSWORD = "correct horse battery"


def framing(response: Response) -> tuple[str | None, str | None, str | None]:
    headers = response.headers
    return (
        headers.get("Content-Security-Policy"),
        headers.get("X-Frame-Options"),
        headers.get("X-Content-Type-Options"),
    )


def test_every_kind_of_flows_page_refuses_frames(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    pages = [browser.start("login")]  # a stage (a fragment too, for htmx)
    pages.append(browser.step("login", uid_field="alice"))
    pages.append(browser.step("login", password=PASSWORD))  # the redirect out
    pages.append(browser.get("/flows/-/settings/"))
    pages.append(browser.get("/flows/no-such-flow/"))  # the error page
    pages.append(browser.get("/flows/-/resume/not-a-token/"))  # a mailed link's page
    for page in pages:
        assert framing(page) == ("frame-ancestors 'none'", "DENY", "nosniff"), page.request.path


def test_the_apps_own_pages_are_the_apps_business(app: Flask) -> None:
    response = app.test_client().get("/")
    assert framing(response) == (None, None, None)


@pytest.mark.parametrize(
    ("app_config", "expected"),
    [
        ({"FLOWS_FRAME_ANCESTORS": "'self'"}, ("frame-ancestors 'self'", "SAMEORIGIN")),
        (
            {"FLOWS_FRAME_ANCESTORS": "'self' https://portal.example"},
            ("frame-ancestors 'self' https://portal.example", None),
        ),
        ({"FLOWS_FRAME_ANCESTORS": None}, (None, None)),
    ],
    ids=["self", "portal", "off"],
)
def test_an_app_that_embeds_its_flows_says_where(
    app: Flask, login_flow: Flow, expected: tuple[str | None, str | None]
) -> None:
    response = app.test_client().get("/flows/login/")
    assert framing(response)[:2] == expected
    assert framing(response)[2] == "nosniff"


def test_a_policy_the_app_sets_itself_is_kept(app: Flask, login_flow: Flow) -> None:
    @app.after_request
    def talisman_like(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'self'"
        return response

    response = app.test_client().get("/flows/login/")
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; frame-ancestors 'self'"
    )
