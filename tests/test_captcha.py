"""The captcha stage against a siteverify-style endpoint served on loopback by the test:
success, failure, scores, garbage, slow and unreachable providers all give clear messages."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from browsing import FlowBrowser
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, Stage
from flask_flows.extension import FlowsState
from flask_flows.stages.captcha import MSG_FAILED, MSG_MISSING, MSG_UNAVAILABLE

SECRET = "private-secret-key-0123"
SITE_KEY = "public-site-key"


class VerifyEndpoint:
    """A siteverify stand-in: records each POST and answers as ``reply`` says."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[str]]] = []
        #: ``(status, body, delay in seconds)`` of the next answers.
        self.reply: tuple[int, bytes, float] = (200, b'{"success": true}', 0.0)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                endpoint.received.append(parse_qs(self.rfile.read(length).decode()))
                status, body, delay = endpoint.reply
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the stage gave up waiting and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/siteverify"

    def answer(self, payload: Any, status: int = 200, delay: float = 0.0) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.reply = (status, body, delay)


@pytest.fixture
def endpoint() -> Iterator[VerifyEndpoint]:
    server = VerifyEndpoint()
    thread = threading.Thread(
        target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def captcha_flow(make_flow: Callable[..., Flow], verify_url: str, **config: Any) -> Flow:
    options = {
        "public_key": SITE_KEY,
        "private_key": SECRET,
        "verify_url": verify_url,
        "timeout": 0.5,
        **config,
    }
    return make_flow("human", ("captcha", options), "dummy")


def solve(browser: FlowBrowser, field: str = "cf-turnstile-response", token: str = "tok") -> Any:
    browser.start("human")
    assert browser.stage_type == "captcha"
    response = browser.submit("human", **{field: token})
    if not browser.htmx and response.status_code == 303:
        return browser.follow()
    return response


def assert_retry(browser: FlowBrowser, response: TestResponse, message: str) -> None:
    assert response.status_code == 200
    assert browser.stage_type == "captcha"
    assert message in response.text


def test_the_page_shows_the_widget_and_never_the_secret(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    captcha_flow(make_flow, endpoint.url)
    page = browser.start("human").text
    assert f'<div class="cf-turnstile" data-sitekey="{SITE_KEY}" data-language="en"></div>' in page
    assert '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js?hl=en"' in page
    assert "<noscript>" in page and "needs JavaScript" in page
    assert SECRET not in page


def test_an_htmx_step_to_the_challenge_loads_it_as_a_whole_page(
    app: Flask, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    """htmx runs no scripts it swaps in, so the widget's script would never load: the
    step that reaches the captcha sends the browser to the flow URL instead, and the
    captcha form posts without htmx."""
    options = {"public_key": SITE_KEY, "private_key": SECRET, "verify_url": endpoint.url}
    make_flow("human", "dummy", ("captcha", options), "dummy")
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.start("human")
    response = browser.submit("human")
    target = response.headers["HX-Redirect"]
    assert target.startswith("/flows/human/?step=")  # the captcha's own page
    page = FlowBrowser(browser.client).get(target)  # the full page load
    assert 'data-stage-type="captcha"' in page.text
    assert '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js?hl=en"' in page.text
    form = page.text[page.text.index('<form class="flows-form"') :]
    assert "hx-post" not in form[: form.index(">")]


def test_a_passed_challenge_continues_and_sends_secret_response_and_ip(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    captcha_flow(make_flow, endpoint.url)
    solve(browser, token="the-widget-token")
    assert browser.stage_type == "dummy"
    assert endpoint.received == [
        {"secret": [SECRET], "response": ["the-widget-token"], "remoteip": ["127.0.0.1"]}
    ]


def test_hcaptcha_field_and_widget_names(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    captcha_flow(
        make_flow,
        endpoint.url,
        response_field="h-captcha-response",
        widget_class="h-captcha",
        js_url="https://js.hcaptcha.com/1/api.js",
    )
    page = browser.start("human").text
    assert f'<div class="h-captcha" data-sitekey="{SITE_KEY}"' in page
    assert 'src="https://js.hcaptcha.com/1/api.js?hl=en"' in page
    solve(browser, field="h-captcha-response", token="h-token")
    assert browser.stage_type == "dummy"
    assert endpoint.received[0]["response"] == ["h-token"]


@pytest.mark.parametrize(
    ("js_url", "script"),
    [
        (
            "https://www.google.com/recaptcha/api.js",
            "https://www.google.com/recaptcha/api.js?hl=de",
        ),
        ("https://js.hcaptcha.com/1/api.js?hl=fr", "https://js.hcaptcha.com/1/api.js?hl=fr"),
    ],
)
def test_the_widget_speaks_the_pages_language(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    endpoint: VerifyEndpoint,
    js_url: str,
    script: str,
) -> None:
    """The page's locale reaches the widget (Turnstile's data-language, the others' hl),
    unless the configured script URL chose a language itself."""
    captcha_flow(make_flow, endpoint.url, js_url=js_url)
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de-AT,de;q=0.9"
    page = browser.start("human").text
    assert f'<script src="{script}" async defer>' in page
    assert 'data-language="de"' in page
    assert "Bestätigen Sie, dass Sie ein Mensch sind" in page


def test_a_failed_challenge_asks_again(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    captcha_flow(make_flow, endpoint.url)
    endpoint.answer({"success": False, "error-codes": ["invalid-input-response"]})
    assert_retry(browser, solve(browser), MSG_FAILED)
    # A second try that passes continues.
    endpoint.answer({"success": True})
    browser.submit("human", **{"cf-turnstile-response": "tok2"})
    if not browser.htmx:
        browser.follow()
    assert browser.stage_type == "dummy"


@pytest.mark.parametrize(
    ("score", "passes"),
    [(0.1, False), (0.49, False), (0.5, True), (0.9, True), (1, True)],
)
def test_scores_are_checked_against_the_thresholds(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    endpoint: VerifyEndpoint,
    score: float,
    passes: bool,
) -> None:
    captcha_flow(make_flow, endpoint.url)
    endpoint.answer({"success": True, "score": score})
    response = solve(browser)
    if passes:
        assert browser.stage_type == "dummy"
    else:
        assert_retry(browser, response, MSG_FAILED)


def test_a_score_above_the_maximum_fails(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    captcha_flow(make_flow, endpoint.url, score_min_threshold=0.0, score_max_threshold=0.5)
    endpoint.answer({"success": True, "score": 0.9})
    assert_retry(browser, solve(browser), MSG_FAILED)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param((200, b"<html>not json</html>"), id="garbage"),
        pytest.param((200, b"[true]"), id="not-an-object"),
        pytest.param((200, b'{"success": true, "score": "high"}'), id="bad-score"),
        pytest.param((500, b'{"success": true}'), id="server-error"),
        pytest.param((200, b"{" * 70000), id="oversized"),
    ],
)
def test_a_nonsense_answer_is_a_clear_retry(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    endpoint: VerifyEndpoint,
    reply: tuple[int, bytes],
) -> None:
    captcha_flow(make_flow, endpoint.url)
    endpoint.answer(reply[1], status=reply[0])
    assert_retry(browser, solve(browser), MSG_UNAVAILABLE)


def test_a_slow_provider_times_out_with_a_clear_retry(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint
) -> None:
    captcha_flow(make_flow, endpoint.url, timeout=0.3)
    endpoint.answer({"success": True}, delay=2.0)
    started = time.monotonic()
    response = solve(browser)
    assert time.monotonic() - started < 1.5
    assert_retry(browser, response, MSG_UNAVAILABLE)


def test_an_unreachable_provider_is_a_clear_retry(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    captcha_flow(make_flow, f"http://127.0.0.1:{closed_port}/siteverify")
    assert_retry(browser, solve(browser), MSG_UNAVAILABLE)


@pytest.mark.parametrize("token", ["", "   ", "x" * 9000])
def test_a_missing_or_absurd_response_is_not_sent_to_the_provider(
    browser: FlowBrowser, make_flow: Callable[..., Flow], endpoint: VerifyEndpoint, token: str
) -> None:
    captcha_flow(make_flow, endpoint.url)
    assert_retry(browser, solve(browser, token=token), MSG_MISSING)
    assert endpoint.received == []


def test_the_secret_stays_out_of_the_logs_and_the_cookie(
    app: Flask,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    endpoint: VerifyEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    captcha_flow(make_flow, endpoint.url)
    endpoint.answer({"success": False, "error-codes": ["timeout-or-duplicate"]})
    solve(browser, token="widget-token-value")
    assert "timeout-or-duplicate" in caplog.text
    assert SECRET not in caplog.text
    with browser.client.session_transaction() as session:
        assert SECRET not in repr(dict(session))
        assert "widget-token-value" not in repr(dict(session))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"verify_url": "file:///etc/passwd"}, "verify_url"),
        ({"js_url": "javascript:alert(1)"}, "js_url"),
        ({"score_min_threshold": 0.9, "score_max_threshold": 0.1}, "score_min_threshold"),
        ({"timeout": 0}, "timeout"),
        ({"private_key": None}, "private_key"),
    ],
)
def test_bad_configuration_names_the_stage_and_field(
    app: Flask, state: FlowsState, config: dict[str, Any], field: str
) -> None:
    options = {"public_key": SITE_KEY, "private_key": SECRET, **config}
    stage = Stage(name="robot-check", type="captcha", config=options)
    with app.app_context(), pytest.raises(ConfigError, match=f"robot-check.*'{field}'"):
        state.stage_config(stage)
