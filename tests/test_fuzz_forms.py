"""Hypothesis throws arbitrary form bodies (keys, values, raw bytes, with and without the
CSRF and step tokens) at every registered stage type: none may answer with a 500."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest
from browsing import FlowBrowser
from factory import User
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_prompt import ALL_FIELDS

from flask_flows import Flow
from flask_flows.registry import STAGE_TYPES

PASSWORD = "correct horse battery"

#: Configs for stage types that need some; captcha verifies against a closed loopback port.
CONFIGS: dict[str, dict[str, Any]] = {
    "prompt": {"fields": ALL_FIELDS},
    "user_login": {"remember_me_offset": 3600},
    "captcha": {
        "public_key": "public",
        "private_key": "private",
        "verify_url": "http://127.0.0.1:9/siteverify",
        "timeout": 1,
    },
    "redirect": {"target_url": "/"},
}
FIELD_NAMES = sorted(
    {f["field_key"] for f in ALL_FIELDS}
    | {"password_repeat", "uid_field", "password", "remember_me", "code", "token"}
)

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_STEP = re.compile(r'name="flow_step" type="hidden" value="([^"]*)"')

values = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.sampled_from(["", "y", "on", "0", "-1", "1e999", "2024-02-30", "\x00", "a@b.c"]),
    st.integers().map(str),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=20), st.binary(max_size=20))
bodies = st.tuples(
    st.lists(st.tuples(keys, values), max_size=12),
    st.sampled_from(["valid", "missing", "wrong"]),
)


@pytest.fixture
def app_config(mailbox: Any) -> dict[str, Any]:
    return {**mailbox.config}


def _encode(part: str | bytes) -> bytes:
    return part if isinstance(part, bytes) else quote_plus(part).encode()


@pytest.mark.parametrize("stage_type", sorted(t.name for t in STAGE_TYPES))
def test_no_form_body_makes_a_stage_fail(
    app: Flask,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
    stage_type: str,
) -> None:
    make_user("alice", password=PASSWORD)
    make_flow("fuzz", (stage_type, CONFIGS.get(stage_type, {})), "dummy")
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.submit("login", uid_field="alice")
    browser.follow()
    browser.submit("login", password=PASSWORD)

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies, htmx=st.booleans())
    def post_anything(body: tuple[list[tuple[Any, Any]], str], htmx: bool) -> None:
        pairs, tokens = body
        headers = {"HX-Request": "true"} if htmx else {}
        page = browser.client.get("/flows/fuzz/", headers=headers)
        assert page.status_code < 500
        parts = [_encode(k) + b"=" + _encode(v) for k, v in pairs]
        csrf, step = _CSRF.search(page.text), _STEP.search(page.text)
        if tokens == "valid" and csrf and step:
            parts += [
                b"csrf_token=" + _encode(csrf.group(1)),
                b"flow_step=" + _encode(step.group(1)),
            ]
        elif tokens == "wrong":
            parts += [b"csrf_token=forged", b"flow_step=0.0"]
        response = browser.client.post(
            "/flows/fuzz/",
            data=b"&".join(parts),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )
        assert response.status_code < 500, response.text[:2000]

    post_anything()
