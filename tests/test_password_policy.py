"""The password policy: length boundaries, NFKC normalisation, optional composition rules,
zxcvbn, the shipped common-password list, the opt-in k-anonymity breach check against a
range server on loopback, and the messages a prompt stage shows next to the password field."""

from __future__ import annotations

import hashlib
import http.server
import logging
import re
import socket
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from databases import TestDatabase
from factory import db
from flask import Flask, request
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, Policy, PolicyBinding, PolicyRequest, PolicyResult
from flask_flows.extension import FlowsState
from flask_flows.models import PolicyEngineMode
from flask_flows.policies import evaluate_bindings
from flask_flows.policies.password import (
    COMMON_PASSWORDS_FILE,
    MSG_BREACHED,
    MSG_COMMON,
    MSG_MISSING,
    MSG_WEAK,
    common_passwords,
)

# Long, random-looking and on no list: passes every default check.
STRONG = "vX7-kettle-Quorum-94"


@pytest.fixture
def database_url(sqlite_database: TestDatabase) -> str:
    """These checks never touch the database: SQLite alone is enough."""
    return sqlite_database.prepare()


def check(
    app: Flask,
    state: FlowsState,
    password: Any,
    *,
    prompt_data: dict[str, Any] | None = None,
    user: Any = None,
    **config: Any,
) -> PolicyResult:
    """Evaluate a ``password`` policy configured with ``config`` inside a request."""
    policy = Policy(name="password-policy", type="password", config=config)
    data = {"password": password, **(prompt_data or {})}
    with app.test_request_context("/flows/enroll/", method="POST"):
        return state.policy_type("password").evaluate(
            state.policy_config(policy),
            PolicyRequest(
                state=state,
                user=user,
                context={"prompt_data": data},
                request=request._get_current_object(),  # type: ignore[attr-defined]
            ),
        )


# -- length -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "passing"), [(7, False), (8, True), (64, True), (1000, True), (1001, False)]
)
def test_length_boundaries(app: Flask, state: FlowsState, length: int, passing: bool) -> None:
    password = ("Zq7!" * 251)[:length]
    result = check(app, state, password)
    assert result.passing is passing, result.messages
    assert result.field == "password"
    if length == 7:
        assert result.messages == ("Use at least 8 characters.",)
    if length == 1001:
        assert result.messages == ("Use at most 1000 characters.",)


def test_min_and_max_length_are_configurable(app: Flask, state: FlowsState) -> None:
    assert not check(app, state, "Zq7!Zq7!Zq7!Zq", min_length=15).passing
    assert check(app, state, "Zq7!Zq7!Zq7!Zq7", min_length=15).passing
    assert check(app, state, "x" * 65 + "Q7", max_length=64).messages == (
        "Use at most 64 characters.",
    )


def test_max_length_below_64_is_a_config_error(app: Flask, state: FlowsState) -> None:
    with pytest.raises(ConfigError, match="max_length.*at least 64"):
        check(app, state, STRONG, max_length=63)
    with pytest.raises(ConfigError, match="min_length"):
        check(app, state, STRONG, min_length=80, max_length=64)


def test_length_counts_code_points_after_nfkc(app: Flask, state: FlowsState) -> None:
    # U+FB03 "ﬃ" is one code point that NFKC expands to "ffi": 6 typed, 8 after NFKC.
    ligature = "Qz\ufb03x9k"
    assert len(ligature) == 6 and len(unicodedata.normalize("NFKC", ligature)) == 8
    assert check(app, state, ligature).passing
    # Full-width letters normalise one to one: seven of them are still seven characters.
    assert check(app, state, "ｑｚｘ７ｋｗｐ").messages == ("Use at least 8 characters.",)
    # "é" typed as e + combining accent is one character after NFKC.
    assert not check(app, state, "Qzx7kw" + "e\u0301").passing


def test_a_missing_password_fails_with_a_message(app: Flask, state: FlowsState) -> None:
    result = check(app, state, None)
    assert (result.passing, result.messages, result.field) == (False, (MSG_MISSING,), "password")
    other = check(app, state, None, field_key="new_password", prompt_data={"new_password": STRONG})
    assert other.passing and other.field == "new_password"


# -- composition ----------------------------------------------------------------------------


def test_no_composition_rules_by_default(app: Flask, state: FlowsState) -> None:
    assert check(app, state, "kettle quorum lantern").passing


def test_composition_rules_when_configured(app: Flask, state: FlowsState) -> None:
    rules = {"min_uppercase": 1, "min_lowercase": 2, "min_digits": 2, "min_symbols": 1}
    result = check(app, state, "KETTLEQUORUM", **rules)
    assert result.messages == (
        "Use at least 2 lowercase letters.",
        "Use at least 2 digits.",
        "Use at least 1 symbol.",
    )
    assert check(app, state, "Kettle-quorum-42", **rules).passing


# -- zxcvbn ---------------------------------------------------------------------------------


def test_zxcvbn_threshold(app: Flask, state: FlowsState) -> None:
    weak_but_uncommon = "kettle2019"
    assert check(app, state, weak_but_uncommon).passing  # off by default
    assert check(app, state, weak_but_uncommon, zxcvbn_min_score=3).messages == (MSG_WEAK,)
    assert check(app, state, "vX7-kettle-Quorum-94-lantern", zxcvbn_min_score=4).passing


def test_zxcvbn_knows_the_user(app: Flask, state: FlowsState) -> None:
    password = "quinsworth2019"
    assert check(app, state, password, zxcvbn_min_score=3).passing
    named = check(
        app,
        state,
        password,
        zxcvbn_min_score=3,
        prompt_data={"username": "bartholomew", "email": "quinsworth@example.com"},
    )
    assert named.messages == (MSG_WEAK,)
    pending = SimpleNamespace(username="quinsworth", email=None)
    assert check(app, state, password, zxcvbn_min_score=3, user=pending).messages == (MSG_WEAK,)


def test_zxcvbn_scores_long_passwords_without_failing(app: Flask, state: FlowsState) -> None:
    assert check(app, state, "Zq7!kettle-" * 90, zxcvbn_min_score=4).passing
    assert check(app, state, "a" * 900, zxcvbn_min_score=1).messages == (MSG_WEAK,)


# -- the common-password list -------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["password", "12345678", "PASSWORD", "Iloveyou", "qwertyuiop", "ｐａｓｓｗｏｒｄ"]
)
def test_common_passwords_are_rejected(app: Flask, state: FlowsState, password: str) -> None:
    result = check(app, state, password)
    assert result.messages == (MSG_COMMON,)
    assert result.field == "password"


def test_common_check_can_be_turned_off(app: Flask, state: FlowsState) -> None:
    assert check(app, state, "password1234", check_common=False).passing


def test_shipped_list(app: Flask) -> None:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#")
    words = common_passwords(COMMON_PASSWORDS_FILE)
    assert 300 <= len(words) <= 1500
    assert {"123456", "password", "12345678", "qwerty", "123456789", "111111", "iloveyou"} <= words
    assert all(w == unicodedata.normalize("NFKC", w).casefold() for w in words)
    assert STRONG.casefold() not in words


def test_an_app_can_ship_its_own_list(app: Flask, state: FlowsState, tmp_path: Path) -> None:
    own = tmp_path / "ours.txt"
    own.write_text("# ours\nvx7-kettle-quorum-94\n", encoding="utf-8")
    app.config["FLOWS_COMMON_PASSWORDS_FILE"] = str(own)
    assert check(app, state, STRONG).messages == (MSG_COMMON,)
    assert check(app, state, "password").passing


# -- the engine keeps the field ---------------------------------------------------------------


def test_engine_keeps_the_field_of_failing_results(app: Flask, state: FlowsState) -> None:
    def binding(**config: Any) -> PolicyBinding:
        return PolicyBinding(
            policy=Policy(name="p", type="password", config=config), enabled=True, negate=False
        )

    def evaluate(password: str, *bindings: PolicyBinding) -> PolicyResult:
        with app.app_context():
            return evaluate_bindings(
                bindings,
                PolicyEngineMode.all,
                PolicyRequest(
                    state=state, user=None, context={"prompt_data": {"password": password}}
                ),
            )

    both = evaluate("short", binding(), binding(min_digits=1))
    assert both.field == "password"
    assert both.messages == ("Use at least 8 characters.", "Use at least 1 digit.")
    assert evaluate(STRONG, binding()).passing
    mixed = evaluate("short", binding(), binding(field_key="other"))
    assert not mixed.passing and mixed.field is None


# -- the breached-password range check ---------------------------------------------------------


@dataclass
class RangeServer:
    """A Pwned Passwords-style range API on loopback that records what it was asked."""

    url: str
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    suffixes: dict[str, int] = field(default_factory=dict)

    def body(self) -> bytes:
        lines = [f"{suffix}:{count}" for suffix, count in self.suffixes.items()]
        lines.append("0" * 35 + ":0")  # padding entries, as with Add-Padding
        return "\r\n".join(lines).encode("ascii")


@pytest.fixture
def range_server() -> Iterator[RangeServer]:
    server_state: RangeServer | None = None

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            assert server_state is not None
            server_state.paths.append(self.path)
            server_state.headers.append(dict(self.headers))
            body = server_state.body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state = RangeServer(url=f"http://127.0.0.1:{server.server_address[1]}/range/")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server_state
    server.shutdown()
    server.server_close()
    thread.join()


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def test_breached_password_is_rejected_sending_only_the_prefix(
    app: Flask, state: FlowsState, range_server: RangeServer
) -> None:
    app.config["FLOWS_PWNED_PASSWORDS_URL"] = range_server.url
    digest = sha1(STRONG)
    range_server.suffixes = {digest[5:].lower(): 3, "F" * 35: 9}

    result = check(app, state, STRONG, hibp=True)

    assert result.messages == (MSG_BREACHED,)
    assert range_server.paths == [f"/range/{digest[:5]}"]
    sent = repr(range_server.paths) + repr(range_server.headers)
    assert digest[5:] not in sent.upper()
    assert STRONG not in sent
    assert range_server.headers[0].get("Add-Padding") == "true"


def test_breach_count_at_or_below_the_allowed_count_passes(
    app: Flask, state: FlowsState, range_server: RangeServer
) -> None:
    app.config["FLOWS_PWNED_PASSWORDS_URL"] = range_server.url
    range_server.suffixes = {sha1(STRONG)[5:]: 3}
    assert check(app, state, STRONG, hibp=True, hibp_allowed_count=3).passing
    assert not check(app, state, STRONG, hibp=True, hibp_allowed_count=2).passing


def test_unbreached_password_passes(
    app: Flask, state: FlowsState, range_server: RangeServer
) -> None:
    app.config["FLOWS_PWNED_PASSWORDS_URL"] = range_server.url
    range_server.suffixes = {"A" * 35: 12}
    assert check(app, state, STRONG, hibp=True).passing
    assert len(range_server.paths) == 1


def test_the_range_check_is_off_by_default_and_skipped_when_already_failing(
    app: Flask, state: FlowsState, range_server: RangeServer
) -> None:
    app.config["FLOWS_PWNED_PASSWORDS_URL"] = range_server.url
    assert check(app, state, STRONG).passing
    assert not check(app, state, "short", hibp=True).passing
    assert range_server.paths == []


def test_range_server_down_lets_the_password_through_with_a_warning(
    app: Flask, state: FlowsState, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more: the connection is refused at once.
    app.config["FLOWS_PWNED_PASSWORDS_URL"] = f"http://127.0.0.1:{port}/range/"
    caplog.set_level(logging.WARNING, logger="flask_flows")

    assert check(app, state, STRONG, hibp=True).passing

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "breached-password check unavailable" in warnings[0].getMessage()
    assert STRONG not in caplog.text


# -- through a prompt stage over HTTP ------------------------------------------------------------


@pytest.fixture
def signup_flow(app: Flask, make_flow: Callable[..., Flow]) -> Flow:
    with app.app_context():
        db.session.add(Policy(name="signup-password", type="password", config={}))
        db.session.commit()
    fields = [
        {"field_key": "username", "label": "Username", "type": "username"},
        {"field_key": "password", "label": "Password", "type": "password", "repeat": True},
    ]
    config = {"fields": fields, "validation_policies": ["signup-password"]}
    return make_flow("signup", ("prompt", config), "dummy", designation="enrollment")


def field_errors(response: TestResponse) -> dict[str, str]:
    """Field id → the error text the page shows under it."""
    return {
        m.group(1): re.sub(r"\s+", " ", m.group(2)).strip()
        for m in re.finditer(r'<p class="flows-error" id="([^"]+)-error">(.*?)</p>', response.text)
    }


def submit(browser: FlowBrowser, **fields: str) -> TestResponse:
    return browser.step("signup", **fields)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Zq7!Zq7", "Use at least 8 characters."),
        ("Password", MSG_COMMON),
        ("ｑｗｅｒｔｙ１２３", MSG_COMMON),
    ],
)
def test_prompt_shows_the_policy_message_next_to_the_password(
    app: Flask, browser: FlowBrowser, signup_flow: Flow, password: str, message: str
) -> None:
    browser.start("signup")
    response = submit(browser, username="carol", password=password, password_repeat=password)
    assert response.status_code == 200
    assert browser.stage_type == "prompt"
    assert field_errors(response) == {"password": message}


def test_prompt_accepts_a_good_password_and_keeps_no_plaintext(
    app: Flask, browser: FlowBrowser, signup_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "Zq7!" * 250  # 1000 characters: the longest the default policy accepts
    browser.start("signup")
    submit(browser, username="carol", password=password, password_repeat=password)
    assert browser.stage_type == "dummy"
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    decoded = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[union-attr]
    assert "Zq7!Zq7!" not in repr(decoded)
    assert "Zq7!Zq7!" not in caplog.text


def test_a_live_check_never_asks_the_breached_password_service(
    app: Flask, signup_flow: Flow, range_server: RangeServer
) -> None:
    """Checked as it is typed, a password meets the policy's own rules; the network is
    asked on submit only (a check on every pause would send prefixes all along)."""
    app.config["FLOWS_PWNED_PASSWORDS_URL"] = range_server.url
    with app.app_context():
        policy = db.session.scalar(sa.select(Policy).where(Policy.name == "signup-password"))
        assert policy is not None
        policy.config = {"hibp": True}
        db.session.commit()
    range_server.suffixes = {sha1(STRONG)[5:].lower(): 3}
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.start("signup")
    form = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    answer = browser.client.post(
        "/flows/signup/-/check/",
        data={**form, "username": "newbie", "password": STRONG},
        headers={"HX-Request": "true", "HX-Trigger-Name": "password"},
    )
    assert answer.status_code == 200 and MSG_BREACHED not in answer.text
    assert range_server.paths == []
    page = browser.submit("signup", username="newbie", password=STRONG, password_repeat=STRONG)
    assert MSG_BREACHED in page.text
    assert len(range_server.paths) == 1
