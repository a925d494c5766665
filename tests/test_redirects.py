"""`next` validation: the unit table of safe_next, then the same values through real flows."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from browsing import FlowBrowser
from flask import Flask

from flask_flows import Flow
from flask_flows.redirects import safe_next

#: Each of these must never be followed: all lead off-site or run script in some browser.
REFUSED = [
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "\\/evil.com",
    "https://evil.com",
    "HTTPS://evil.com/",
    "http:evil.com",
    "https:/evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.com",
    "/%2F%2Fevil.com",
    "/%2f%2fevil.com",
    "/%5Cevil.com",
    "/%5cevil.com",
    "%5C%5Cevil.com",
    "%252F%252Fevil.com",
    "/%252F%252Fevil.com",
    "/%25252F%25252Fevil.com",
    "/%2525252525252F%2525252525252Fevil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "/%09/evil.com",
    "/%0d%0aSet-Cookie:%20x=1",
    " //evil.com",
    "\t//evil.com",
    "evil.com",
    "dashboard",
    "/\x00",
    "/\x7f",
    "",
    None,
    "/" + "a" * 2048,
]

#: Same-site relative paths: followed exactly as given.
ACCEPTED = [
    "/",
    "/dashboard",
    "/dashboard?x=1#y",
    "/a/b/c/",
    "/search?q=%2F%2Fnot-a-host",
    "/path%20with%20spaces",
    "/flows/login/?next=/after",
    "/caf%C3%A9",
]


@pytest.mark.parametrize("target", REFUSED)
def test_safe_next_refuses(target: str | None) -> None:
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ACCEPTED)
def test_safe_next_accepts(target: str) -> None:
    assert safe_next(target) == target


#: The values the brief names, checked end to end.
THROUGH_FLOW = [
    "//evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https://evil.com",
    "http:evil.com",
    "javascript:alert(1)",
    "%2F%2Fevil.com",
    "/%2F%2Fevil.com",
    "/%5Cevil.com",
    "%252F%252Fevil.com",
    "/\t/evil.com",
    " //evil.com",
]


@pytest.fixture
def one_step(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow("one-step", ("dummy", {"message": "only step"}))


def run_with_next(browser: FlowBrowser, target: str) -> str | None:
    """Run the one-step flow with ``next=target`` (sent encoded, so the server sees it as is)."""
    browser.last = browser.client.get(
        "/flows/one-step/", query_string={"next": target}, headers=browser.headers
    )
    assert browser.stage_type == "dummy"
    browser.submit("one-step")
    return browser.redirect_target


@pytest.mark.parametrize("target", THROUGH_FLOW)
def test_flow_refuses_unsafe_next(browser: FlowBrowser, one_step: Flow, target: str) -> None:
    assert run_with_next(browser, target) == "/"


def test_flow_follows_safe_next(browser: FlowBrowser, one_step: Flow) -> None:
    assert run_with_next(browser, "/dashboard?x=1#y") == "/dashboard?x=1#y"


@pytest.mark.parametrize("app_config", [{"FLOWS_DEFAULT_REDIRECT": "/home/"}])
def test_refused_next_goes_to_configured_default(browser: FlowBrowser, one_step: Flow) -> None:
    assert run_with_next(browser, "//evil.com") == "/home/"


@pytest.mark.parametrize("target", THROUGH_FLOW)
def test_default_flow_view_drops_unsafe_next(app: Flask, one_step: Flow, target: str) -> None:
    response = app.test_client().get(
        "/flows/-/default/authentication/", query_string={"next": target}
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/flows/one-step/"
    assert "next" not in parse_qs(location.query)


@pytest.mark.parametrize("target", ["//evil.com", "/%5Cevil.com", "javascript:alert(1)"])
def test_cancel_refuses_unsafe_next(
    browser: FlowBrowser, make_flow: Callable[..., Flow], target: str
) -> None:
    # Not a login, whose cancel goes home whatever its `next`.
    make_flow("consent", ("dummy", {"message": "only step"}), designation="authorization")
    browser.last = browser.client.get(
        "/flows/consent/", query_string={"next": target}, headers=browser.headers
    )
    browser.post("/flows/consent/cancel/", {"csrf_token": browser.csrf_token()})
    assert browser.redirect_target == "/"


def test_cancel_follows_safe_next(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    # Not a login: a cancelled login goes home (test_executor.py).
    make_flow("consent", ("dummy", {"message": "only step"}), designation="authorization")
    browser.last = browser.client.get(
        "/flows/consent/", query_string={"next": "/back?to=1"}, headers=browser.headers
    )
    browser.post("/flows/consent/cancel/", {"csrf_token": browser.csrf_token()})
    assert browser.redirect_target == "/back?to=1"
