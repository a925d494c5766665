"""The prompt stage through HTTP: every field type renders and validates, passwords are
hashed on receipt, validation policies speak next to their field, bad input never 500s."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher
from browsing import FlowBrowser, plan_context
from factory import User
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, Flows, PolicyResult
from flask_flows.models import Policy
from flask_flows.stages.prompt import MSG_TOO_MUCH, PromptStage
from flask_flows.stages.prompt_checks import (
    MSG_CHARACTERS,
    MSG_CHOOSE,
    MSG_DATE,
    MSG_DATE_TIME,
    MSG_EMAIL,
    MSG_MISMATCH,
    MSG_NUMBER,
    MSG_TICK,
    MSG_USERNAME_TAKEN,
    is_valid_email,
)

SECRET = "s3cret-Plaintext-Value"

ALL_FIELDS: list[dict[str, Any]] = [
    {"field_key": "nickname", "label": "Nickname", "type": "text", "placeholder": "Bobby"},
    {"field_key": "shown", "label": "Shown", "type": "text_read_only", "initial_value": "fixed"},
    {"field_key": "bio", "label": "About you", "type": "textarea", "help_text": "A few words."},
    {
        "field_key": "notes",
        "label": "Notes",
        "type": "textarea_read_only",
        "initial_value": "read me",
    },
    {"field_key": "email", "label": "Email", "type": "email"},
    {
        "field_key": "old_email",
        "label": "Old email",
        "type": "email_read_only",
        "initial_value": "old@example.com",
    },
    {"field_key": "username", "label": "Username", "type": "username"},
    {"field_key": "password", "label": "Password", "type": "password", "repeat": True},
    {"field_key": "age", "label": "Age", "type": "number", "min": 13, "max": 130},
    {"field_key": "terms", "label": "I accept the terms", "type": "checkbox"},
    {
        "field_key": "plan",
        "label": "Plan",
        "type": "radio",
        "choices": [{"value": "free", "label": "Free"}, {"value": "pro", "label": "Pro"}],
    },
    {"field_key": "colour", "label": "Colour", "type": "dropdown", "choices": ["red", "blue"]},
    {"field_key": "birthday", "label": "Birthday", "type": "date"},
    {"field_key": "meeting", "label": "Meeting", "type": "date_time"},
    {"field_key": "source", "label": "Source", "type": "hidden", "initial_value": "web"},
    {"field_key": "intro", "label": "Welcome", "type": "static", "initial_value": "Hello there."},
]

VALID = {
    "nickname": "Bob",
    "bio": "Line one\r\nLine two",
    "email": "bob@example.com",
    "username": "bob",
    "password": SECRET,
    "password_repeat": SECRET,
    "age": "42",
    "terms": "y",
    "plan": "pro",
    "colour": "blue",
    "birthday": "1990-05-17",
    "meeting": "2024-12-31T18:30",
}


def context_of(app: Flask, browser: FlowBrowser, slug: str) -> dict[str, Any]:
    """The context of the plan the browser's session cookie holds for ``slug``."""
    return plan_context(browser.client, slug)


def cookie_text(app: Flask, browser: FlowBrowser) -> str:
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    return repr(app.session_interface.get_signing_serializer(app).loads(cookie.value))  # type: ignore[union-attr]


def errors(response: TestResponse) -> dict[str, str]:
    """Field id → its error text, as the page shows them."""
    return {
        m.group(1): re.sub(r"\s+", " ", m.group(2)).strip()
        for m in re.finditer(r'<p class="flows-error" id="([^"]+)-error">(.*?)</p>', response.text)
    }


@pytest.fixture
def all_fields(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(
        "signup", ("prompt", {"fields": ALL_FIELDS}), "dummy", designation="enrollment"
    )


# -- rendering ----------------------------------------------------------------------------


def test_every_field_type_renders(browser: FlowBrowser, all_fields: Flow) -> None:
    page = browser.start("signup").text
    assert browser.stage_type == "prompt"
    assert ("<html" in page) is not browser.htmx
    assert re.search(r'<input[^>]*id="nickname"[^>]*placeholder="Bobby"', page)
    assert re.search(r'<input[^>]*id="shown"[^>]*readonly[^>]*value="fixed"', page)
    assert re.search(r'<textarea[^>]*id="bio"', page)
    assert 'id="bio-hint">A few words.' in page
    assert re.search(r'<textarea[^>]*id="notes"[^>]*readonly[^>]*>\s*read me</textarea>', page)
    assert re.search(r'<input[^>]*id="email"[^>]*type="email"', page)
    assert re.search(r'<input[^>]*id="old_email"[^>]*readonly[^>]*value="old@example.com"', page)
    assert re.search(r'<input[^>]*autocomplete="username"[^>]*id="username"', page)
    assert re.search(r'<input[^>]*id="password"[^>]*type="password"', page)
    assert re.search(r'<input[^>]*id="password_repeat"[^>]*type="password"', page)
    assert re.search(r'<input[^>]*id="age"[^>]*max="130"[^>]*min="13"[^>]*type="number"', page)
    assert re.search(r'<input[^>]*id="terms"[^>]*type="checkbox"', page)
    assert len(re.findall(r'<input[^>]*name="plan"[^>]*type="radio"', page)) == 2
    assert re.search(r'<select[^>]*id="colour"', page)
    assert '<option value="blue">blue</option>' in page
    assert re.search(r'<input[^>]*id="birthday"[^>]*type="date"', page)
    assert re.search(r'<input[^>]*id="meeting"[^>]*type="datetime-local"', page)
    assert re.search(r'<input[^>]*name="source"[^>]*type="hidden"[^>]*value="web"', page)
    assert "Hello there." in page and "Welcome" in page
    assert page.index('id="nickname"') < page.index('id="meeting"')


def test_fields_follow_their_order(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> None:
    make_flow(
        "ordered",
        (
            "prompt",
            {
                "fields": [
                    {"field_key": "second", "type": "text", "order": 2},
                    {"field_key": "first", "type": "text", "order": 1},
                ]
            },
        ),
    )
    page = browser.start("ordered").text
    assert page.index('id="first"') < page.index('id="second"')
    assert "Second" in page  # the label defaults to the key, readable


# -- accepting values ---------------------------------------------------------------------


def test_valid_values_land_in_prompt_data(
    app: Flask, browser: FlowBrowser, all_fields: Flow
) -> None:
    browser.start("signup")
    browser.step("signup", **VALID, shown="tampered", notes="tampered", source="tampered")
    assert browser.stage_type == "dummy"
    data = context_of(app, browser, "signup")["prompt_data"]
    assert data == {
        "nickname": "Bob",
        "shown": "fixed",
        "bio": "Line one\r\nLine two",
        "notes": "read me",
        "email": "bob@example.com",
        "old_email": "old@example.com",
        "username": "bob",
        "password": {"hash": data["password"]["hash"]},
        "age": 42,
        "terms": True,
        "plan": "pro",
        "colour": "blue",
        "birthday": "1990-05-17",
        "meeting": "2024-12-31T18:30:00",
        "source": "web",
    }
    assert PasswordHasher().verify(data["password"]["hash"], SECRET)
    assert SECRET not in cookie_text(app, browser)


def test_optional_fields_may_stay_empty(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    optional = [
        {**f, "required": False}
        for f in ALL_FIELDS
        if f["type"] not in ("static", "hidden") and not f["type"].endswith("read_only")
    ]
    make_flow("opt", ("prompt", {"fields": optional}), "dummy")
    browser.start("opt")
    browser.step("opt", age="", birthday="", meeting="", colour="")
    assert browser.stage_type == "dummy", errors(browser.last)  # type: ignore[arg-type]
    data = context_of(app, browser, "opt")["prompt_data"]
    assert data["age"] is None and data["birthday"] is None and data["terms"] is False
    assert data["nickname"] == "" and data["plan"] is None
    assert "password" not in data


# -- refusing values -----------------------------------------------------------------------


def test_missing_required_values_are_named_per_field(
    browser: FlowBrowser, all_fields: Flow
) -> None:
    browser.start("signup")
    response = browser.step("signup")
    assert response.status_code == 200
    assert browser.stage_type == "prompt"
    found = errors(response)
    # Each says what to do, naming the field where its type does not.
    assert {key: found[key] for key in found if key not in ("terms", "plan", "colour")} == {
        "nickname": "Fill in “Nickname”.",
        "bio": "Fill in “About you”.",
        "email": "Enter an email address.",
        "username": "Enter a username.",
        "password": "Enter a password.",
        "password_repeat": "Enter the password again.",
        "age": "Enter a number.",
        "birthday": "Enter a date.",
        "meeting": "Enter a date and time.",
    }
    assert found["terms"] == MSG_TICK
    assert found["plan"] == "Choose an option for “Plan”."
    assert found["colour"] == "Choose an option for “Colour”."
    assert "shown" not in found and "source" not in found


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", MSG_EMAIL),
        ("email", "a@b", MSG_EMAIL),
        ("email", "two@@example.com", MSG_EMAIL),
        ("email", "sp ace@example.com", MSG_EMAIL),
        ("age", "twelve", MSG_NUMBER),
        ("age", "4.5", MSG_NUMBER),
        ("age", "9" * 5000, MSG_NUMBER),
        ("age", "12", "Enter a number from 13 to 130."),
        ("age", "131", "Enter a number from 13 to 130."),
        ("plan", "enterprise", MSG_CHOOSE),
        ("colour", "green", MSG_CHOOSE),
        ("birthday", "17/05/1990", MSG_DATE),
        ("birthday", "1990-02-30", MSG_DATE),
        ("meeting", "tomorrow", MSG_DATE_TIME),
        ("nickname", "x" * 256, "Use at most 255 characters."),
        ("nickname", "nul\x00byte", MSG_CHARACTERS),
        ("bio", "bell\x07", MSG_CHARACTERS),
        ("username", "two words", "A username cannot contain spaces."),
        ("password_repeat", "something else", MSG_MISMATCH),
    ],
)
def test_bad_values_get_a_message_next_to_the_field(
    browser: FlowBrowser, all_fields: Flow, field: str, value: str, message: str
) -> None:
    browser.start("signup")
    response = browser.step("signup", **{**VALID, field: value})
    assert response.status_code == 200
    assert browser.stage_type == "prompt"
    assert errors(response) == {field: message}


def test_an_unticked_required_checkbox_is_refused(browser: FlowBrowser, all_fields: Flow) -> None:
    browser.start("signup")
    values = {k: v for k, v in VALID.items() if k != "terms"}
    assert errors(browser.step("signup", **values)) == {"terms": MSG_TICK}


def test_a_refused_form_keeps_values_and_a_password_refused_nowhere(
    browser: FlowBrowser, all_fields: Flow
) -> None:
    browser.start("signup")
    page = browser.step("signup", **{**VALID, "age": "9"}).text
    assert 'value="Bob"' in page
    # The error is elsewhere: the password typed stays (masked), not to be typed again.
    assert re.search(rf'<input[^>]*name="password"[^>]*value="{SECRET}"', page)
    # A password the form refused is never echoed back.
    page = browser.step("signup", **{**VALID, "password_repeat": "not the same"}).text
    assert "not the same" not in page


def test_a_designer_may_report_a_taken_username_at_once_ignoring_case(
    browser: FlowBrowser, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    make_user("alice")
    prompt = {"fields": ALL_FIELDS, "report_taken_username": True}
    make_flow("signup", ("prompt", prompt), "dummy", designation="enrollment")
    browser.start("signup")
    assert errors(browser.step("signup", **{**VALID, "username": "ALICE"})) == {
        "username": MSG_USERNAME_TAKEN
    }


def test_by_default_a_taken_username_is_not_told_at_the_prompt(
    browser: FlowBrowser, all_fields: Flow, make_user: Callable[..., User]
) -> None:
    make_user("alice")
    browser.start("signup")
    page = browser.step("signup", **{**VALID, "username": "ALICE"})
    assert MSG_USERNAME_TAKEN not in page.text
    assert errors(page) == {}


def test_a_user_may_keep_their_own_username(
    browser: FlowBrowser, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    make_user("alice", password="correct horse battery")
    fields = [
        {"field_key": "username", "type": "username", "initial_value": "user.username"},
        {"field_key": "email", "type": "email_read_only", "initial_value": "user.email"},
    ]
    make_flow("profile", "identification", "password", ("prompt", {"fields": fields}), "dummy")
    browser.start("profile")
    browser.step("profile", uid_field="alice")
    page = browser.step("profile", password="correct horse battery").text
    assert re.search(r'id="username"[^>]*value="alice"', page)
    assert re.search(r'id="email"[^>]*value="alice@example.com"', page)
    browser.step("profile", username="Alice", email="evil@example.com")
    assert browser.stage_type == "dummy"


def test_initial_value_never_shows_a_password_hash() -> None:
    fields = [{"field_key": "h", "type": "text", "initial_value": "user.password_hash"}]
    with pytest.raises(ConfigError, match="cannot be shown"):
        PromptStage().check_config({"fields": fields}, "stage 'p' (prompt)")


# -- validation policies --------------------------------------------------------------------


@pytest.fixture
def policy_flow(app: Flask, flows: Flows, make_flow: Callable[..., Flow]) -> Flow:
    @flows.policy("no_admin")
    def no_admin(request: Any) -> PolicyResult:
        data = request.context["prompt_data"]
        if data.get("username") == "admin":
            return PolicyResult(False, ("That username is reserved.",), field="username")
        return PolicyResult(True)

    @flows.policy("password_not_username")
    def password_not_username(request: Any) -> PolicyResult:
        data = request.context["prompt_data"]
        if data.get("password") == data.get("username"):
            return PolicyResult(False, ("Choose a password unlike your username.",), "password")
        return PolicyResult(True)

    @flows.policy("closed_on_sunday")
    def closed(request: Any) -> PolicyResult:
        if request.context["prompt_data"].get("username") == "sunday":
            return PolicyResult(False, ("Sign-ups are closed today.",))
        return PolicyResult(True)

    from factory import db

    with app.app_context():
        for name in ("no_admin", "password_not_username", "closed_on_sunday"):
            db.session.add(Policy(name=name, type="python", config={"function": name}))
        db.session.commit()
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "password", "type": "password", "repeat": True},
    ]
    names = ["no_admin", "password_not_username", "closed_on_sunday"]
    return make_flow("pol", ("prompt", {"fields": fields, "validation_policies": names}), "dummy")


def test_policy_messages_show_next_to_their_field(browser: FlowBrowser, policy_flow: Flow) -> None:
    browser.start("pol")
    response = browser.step("pol", username="admin", password="admin", password_repeat="admin")
    assert errors(response) == {
        "username": "That username is reserved.",
        "password": "Choose a password unlike your username.",
    }


def test_policy_messages_without_a_field_show_above_the_form(
    browser: FlowBrowser, policy_flow: Flow
) -> None:
    browser.start("pol")
    response = browser.step("pol", username="sunday", password=SECRET, password_repeat=SECRET)
    assert browser.stage_type == "prompt"
    assert errors(response) == {}
    assert '<p class="flows-message">Sign-ups are closed today.</p>' in response.text


def test_policies_passing_let_the_flow_continue(
    app: Flask, browser: FlowBrowser, policy_flow: Flow
) -> None:
    browser.start("pol")
    browser.step("pol", username="carol", password=SECRET, password_repeat=SECRET)
    assert browser.stage_type == "dummy"
    assert SECRET not in cookie_text(app, browser)


# -- hostile input -----------------------------------------------------------------------


def test_an_oversized_body_gives_field_errors(browser: FlowBrowser, all_fields: Flow) -> None:
    browser.start("signup")
    big = {k: "x" * 100_000 for k in ("nickname", "bio", "email", "username", "password")}
    response = browser.step("signup", **{**VALID, **big})
    assert response.status_code == 200
    found = errors(response)
    assert found["nickname"] == "Use at most 255 characters."
    assert found["bio"] == "Use at most 1000 characters."
    assert found["password"] == "Use at most 4096 characters."


def test_non_utf8_bytes_give_a_clean_page(browser: FlowBrowser, all_fields: Flow) -> None:
    browser.start("signup")
    csrf, token = browser.csrf_token(), browser.step_token()
    for body in (
        f"csrf_token={csrf}&flow_step={token}&nickname=%ff%fe&username=%ED%A0%80".encode(),
        f"csrf_token={csrf}&flow_step={token}&nickname=".encode() + b"\xff\xfe\x00",
    ):
        response = browser.client.post(
            "/flows/signup/",
            data=body,
            content_type="application/x-www-form-urlencoded",
            headers=browser.headers,
        )
        if response.status_code == 303:  # a plain browser: post/redirect/get
            response = browser.client.get(response.headers["Location"])
        assert response.status_code == 200
        assert 'data-stage-type="prompt"' in response.text


def test_prompt_data_too_big_for_the_cookie_is_refused(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    fields = [{"field_key": f"t{i}", "type": "textarea"} for i in range(3)]
    make_flow("big", ("prompt", {"fields": fields}), "dummy")
    browser.start("big")
    response = browser.step("big", t0="a" * 1000, t1="b" * 1000, t2="c" * 1000)
    assert browser.stage_type == "prompt"
    assert MSG_TOO_MUCH in response.text


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ([{"field_key": "a", "type": "colour"}], "field 'a': unknown type 'colour'"),
        ([{"field_key": "a", "type": "radio"}], "field 'a', choices"),
        ([{"field_key": "a", "type": "text"}, {"field_key": "a", "type": "text"}], "used twice"),
        (
            [
                {"field_key": "p", "type": "password", "repeat": True},
                {"field_key": "p_repeat", "type": "text"},
            ],
            "used twice",
        ),
        ([{"field_key": "csrf_token", "type": "text"}], "reserved"),
        ([{"field_key": "flow_step", "type": "text"}], "reserved"),
        ([{"field_key": "data", "type": "text"}], "reserved"),
        ([{"field_key": "has space", "type": "text"}], "field_key"),
        ([{"field_key": "a", "type": "text", "choices": ["x"]}], "'choices' is not a setting"),
        ([{"field_key": "n", "type": "number", "min": 5, "max": 1}], "min is greater"),
        ([{"field_key": "n", "type": "text", "required": "yes"}], "required"),
        ([], "at least one prompt"),
    ],
)
def test_bad_field_config_names_stage_and_field(fields: list[Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)) as raised:
        PromptStage().check_config({"fields": fields}, "stage 'sign-up' (prompt)")
    assert "stage 'sign-up' (prompt)" in str(raised.value)


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("a@example.com", True),
        ("first.last+tag@sub.example.co.uk", True),
        ("jörg@bücher.de", True),
        ("a@localhost", False),
        (".a@example.com", False),
        ("a..b@example.com", False),
        ("a@-example.com", False),
        ("a@example.123", False),
        ('"q"@example.com', False),
        ("a@exa_mple.com", False),
        ("x" * 65 + "@example.com", False),
    ],
)
def test_the_email_check_is_conservative(address: str, valid: bool) -> None:
    assert is_valid_email(address) is valid
