"""Back, Forward and reload: each stage's page has its own URL, Back returns to an earlier
stage where the plan allows, and a plain browser's refused form comes back through
post/redirect/get (so reload and Forward never post again)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, plan_context
from factory import User, db
from flask import Flask
from jinja2 import ChoiceLoader, DictLoader
from werkzeug.test import TestResponse

from flask_flows import Flow, Stage
from flask_flows.executor import MSG_STALE
from flask_flows.refused_forms import MAX_BYTES, REFUSED
from flask_flows.stages.password import WRONG_CREDENTIALS

PASSWORD = "correct horse battery"
SIGNUP_FIELDS = [
    {"field_key": "username", "type": "username"},
    {"field_key": "nickname", "type": "text", "required": False},
    {"field_key": "password", "type": "password", "repeat": True},
]


def page_url(response: TestResponse) -> str:
    """The stage's own URL, as the page states it (``data-flows-url``)."""
    text = response.get_data(as_text=True)
    start = text.index('data-flows-url="') + len('data-flows-url="')
    return text[start : text.index('"', start)].replace("&amp;", "&")


def back_link(response: TestResponse) -> str | None:
    text = response.get_data(as_text=True)
    if 'class="flows-back' not in text:
        return None
    tag = text[text.index('class="flows-back') :]
    start = tag.index('href="') + len('href="')
    return tag[start : tag.index('"', start)]


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


# -- a URL per stage ---------------------------------------------------------------------


@pytest.mark.usefixtures("alice", "login_flow")
def test_a_plain_browser_steps_through_stage_urls(app: Flask) -> None:
    browser = FlowBrowser(app.test_client())
    first = browser.start("login")
    assert back_link(first) is None  # nothing before the first page
    answer = browser.submit("login", uid_field="alice")
    assert answer.status_code == 303
    password_page = answer.headers["Location"]
    assert urlsplit(password_page).path == "/flows/login/"
    assert parse_qs(urlsplit(password_page).query)["step"]
    page = browser.follow()
    assert browser.stage_type == "password"
    assert page_url(page) == password_page
    assert back_link(page) == page_url(first)


@pytest.mark.usefixtures("alice", "login_flow")
def test_htmx_pushes_each_new_stage_url_and_not_a_page_shown_again(app: Flask) -> None:
    browser = FlowBrowser(app.test_client(), htmx=True)
    first = browser.start("login")
    answer = browser.post(
        "/flows/login/",
        {**browser_hidden(browser), "uid_field": "alice"},
        headers={"HX-Current-URL": f"http://localhost{page_url(first)}"},
    )
    pushed = answer.headers["HX-Push-Url"]
    assert pushed.startswith("/flows/login/?step=") and pushed != page_url(first)
    assert browser.stage_type == "password"
    # A refused password shows the same page again: nothing new in the history.
    refused = browser.post(
        "/flows/login/",
        {**browser_hidden(browser), "password": "wrong"},
        headers={"HX-Current-URL": f"http://localhost{pushed}"},
    )
    assert WRONG_CREDENTIALS in refused.text
    assert "HX-Push-Url" not in refused.headers


def browser_hidden(browser: FlowBrowser) -> dict[str, str]:
    return {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}


@pytest.mark.usefixtures("alice", "login_flow")
def test_a_page_htmx_restores_from_history_is_sent_whole(app: Flask) -> None:
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.step("login", uid_field="alice")
    restored = browser.client.get(
        page_url(browser.last),  # type: ignore[arg-type]
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert restored.text.lstrip().startswith("<!doctype html>")
    assert 'data-stage-type="password"' in restored.text


# -- Back -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("alice", "login_flow")
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_back_returns_to_the_earlier_stage_and_its_answer_counts_again(
    app: Flask, make_user: Callable[..., User], htmx: bool
) -> None:
    make_user("bob", password="bobs own password")
    browser = FlowBrowser(app.test_client(), htmx=htmx)
    first = page_url(browser.start("login"))
    browser.step("login", uid_field="alice")
    assert browser.stage_type == "password"
    assert back_link(browser.last) == first  # type: ignore[arg-type]
    alices_form = browser_hidden(browser)

    back = browser.get(first)  # Back (the browser's, or the in-card link)
    assert browser.stage_type == "identification"
    assert back.status_code == 200
    browser.step("login", uid_field="bob")
    assert browser.stage_type == "password"
    assert "bob" in browser.last.text  # type: ignore[union-attr]

    # The page left by Back is stale: its form is not used for bob.
    browser.post("/flows/login/", {**alices_form, "password": PASSWORD})
    assert MSG_STALE in browser.settle().text
    assert browser.whoami() == "home: anonymous"
    browser.step("login", password="bobs own password")
    assert browser.whoami() == "home: bob"


@pytest.mark.usefixtures("alice", "login_flow")
def test_forward_to_a_page_no_longer_reached_shows_where_the_flow_is(app: Flask) -> None:
    browser = FlowBrowser(app.test_client())
    first = page_url(browser.start("login"))
    browser.step("login", uid_field="alice")
    second = page_url(browser.last)  # type: ignore[arg-type]
    browser.get(first)  # Back
    page = browser.get(second)  # Forward: the password was never given for this pass
    assert browser.stage_type == "identification"
    assert page_url(page) == first
    # A page of another plan (an old bookmark) changes nothing either.
    browser.get("/flows/login/?step=someone-else.1")
    assert browser.stage_type == "identification"


def test_no_way_back_past_a_stage_that_changed_something(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    make_flow(
        "join",
        ("prompt", {"fields": SIGNUP_FIELDS}),
        "user_write",
        ("dummy", {"message": "Welcome aboard."}),
        designation="enrollment",
    )
    browser = FlowBrowser(app.test_client())
    form_page = page_url(browser.start("join"))
    browser.step("join", username="carol", password=PASSWORD, password_repeat=PASSWORD)
    assert "Welcome aboard." in browser.last.text  # type: ignore[union-attr]
    assert back_link(browser.last) is None  # type: ignore[arg-type]
    browser.get(form_page)
    assert "Welcome aboard." in browser.last.text  # type: ignore[union-attr]


def test_back_to_a_prompt_shows_what_was_typed_but_no_password(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    make_flow(
        "join",
        ("prompt", {"fields": SIGNUP_FIELDS[:2]}),
        ("prompt", {"fields": SIGNUP_FIELDS[2:]}),
        "user_write",
        designation="enrollment",
    )
    browser = FlowBrowser(app.test_client())
    browser.start("join")
    browser.step("join", username="carol", nickname="Caz")
    page = browser.get(back_link(browser.last))  # type: ignore[arg-type]
    assert 'value="carol"' in page.text and 'value="Caz"' in page.text
    browser.step("join", username="carola", nickname="Caz")
    browser.step("join", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.redirect_target == "/"
    with app.app_context():
        assert db.session.scalars(sa.select(User.username)).all() == ["carola"]


@pytest.mark.usefixtures("alice")
def test_a_stage_that_added_setup_stages_is_not_gone_back_through(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    """authenticator_validate adds a user's setup stages to the plan: going back through
    it would add them twice, so the setup page has no way back."""
    with app.app_context():
        db.session.add(Stage(name="setup-one", type="dummy", config={"message": "Set up."}))
        db.session.commit()
    options = {"not_configured_action": "configure", "configuration_stages": ["setup-one"]}
    make_flow(
        "login", "identification", "password", ("authenticator_validate", options), "user_login"
    )
    browser = FlowBrowser(app.test_client())
    first = page_url(browser.start("login"))
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    assert "Set up." in browser.last.text  # type: ignore[union-attr]
    assert back_link(browser.last) is None  # type: ignore[arg-type]
    browser.get(first)
    assert "Set up." in browser.last.text  # type: ignore[union-attr]


# -- post/redirect/get for refused forms ----------------------------------------------------------


@pytest.mark.usefixtures("alice", "login_flow")
def test_a_refused_form_comes_back_through_a_redirect_and_reload_sends_nothing(
    app: Flask,
) -> None:
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.step("login", uid_field="alice")
    here = page_url(browser.last)  # type: ignore[arg-type]
    answer = browser.post("/flows/login/", {**browser_hidden(browser), "password": "wrong"})
    assert answer.status_code == 303
    assert answer.headers["Location"] == here
    page = browser.follow()
    assert WRONG_CREDENTIALS in page.text
    assert "<title>Error: " in page.text
    assert REFUSED not in plan_context(browser.client, "login")  # shown once, then gone
    reloaded = browser.get(here)
    assert WRONG_CREDENTIALS not in reloaded.text
    assert "<title>Error: " not in reloaded.text
    assert browser.stage_type == "password"


def test_a_plain_refusal_keeps_typed_values_and_a_password_refused_elsewhere(
    app: Flask, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    make_user("taken", password=PASSWORD)
    prompt = {"fields": SIGNUP_FIELDS, "report_taken_username": True}
    make_flow("join", ("prompt", prompt), "user_write", designation="enrollment")
    browser = FlowBrowser(app.test_client())
    browser.start("join")
    fields = {"username": "taken", "nickname": "Tee", "password": PASSWORD}
    answer = browser.post(
        "/flows/join/", {**browser_hidden(browser), **fields, "password_repeat": PASSWORD}
    )
    assert answer.status_code == 303
    # The typed password waits in the sealed plan context, never readable in the cookie.
    cookie = browser.client.get_cookie("session")
    assert cookie is not None and PASSWORD not in repr(
        app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    )
    page = browser.follow()
    assert "That username is already taken." in page.text
    assert 'value="Tee"' in page.text and 'value="taken"' in page.text
    assert page.text.count(f'value="{PASSWORD}"') == 2  # password and its repeat, masked


@pytest.mark.usefixtures("login_flow")
def test_a_refusal_too_large_to_carry_is_answered_at_once(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    fields = [
        {"field_key": "bio", "type": "textarea", "required": False},
        {"field_key": "motto", "type": "text", "required": False},
        {"field_key": "age", "type": "number"},
    ]
    make_flow("about", ("prompt", {"fields": fields}), "dummy", designation="enrollment")
    browser = FlowBrowser(app.test_client())
    browser.start("about")
    bio, motto = "b" * 1000, "m" * 250
    assert len(bio) + len(motto) > MAX_BYTES
    typed = {"bio": bio, "motto": motto, "age": "old"}
    answer = browser.post("/flows/about/", {**browser_hidden(browser), **typed})
    assert answer.status_code == 200  # the page itself: the session cookie must stay small
    assert bio in answer.text and motto in answer.text


@pytest.mark.usefixtures("alice", "login_flow")
def test_a_stale_plain_post_comes_back_through_a_redirect(app: Flask) -> None:
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    old: dict[str, Any] = browser_hidden(browser)
    browser.step("login", uid_field="alice")
    answer = browser.post("/flows/login/", {**old, "uid_field": "alice"})
    assert answer.status_code == 303
    assert MSG_STALE in browser.follow().text
    assert browser.stage_type == "password"


# -- the stages guide's example ---------------------------------------------------------------


def test_the_stages_guide_example_stage_is_returned_to_by_back(
    app: Flask, state: Any, make_flow: Callable[..., Flow]
) -> None:
    """docs/stages.md "Writing a stage type": its class and template, run as written."""
    guide = (Path(__file__).parent.parent / "docs" / "stages.md").read_text()
    section = guide.split("## Writing a stage type", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    template = section.split("```jinja\n", 1)[1].split("```", 1)[0]
    app.jinja_loader = ChoiceLoader(  # type: ignore[assignment]
        [DictLoader({"flows/stages/terms.html": template}), app.jinja_loader]  # type: ignore[list-item]
    )
    exec(compile(code, "docs/stages.md", "exec"), {"flows": state.flows})  # noqa: S102 - the guide's own code
    make_flow("agree", ("terms", {"version": "2"}), ("dummy", {"message": "Thanks."}))
    browser = FlowBrowser(app.test_client())
    page = browser.start("agree")
    assert "Terms of use, version 2" in page.text
    browser.step("agree", accept="no")
    assert "Please accept the terms to continue." in browser.last.text  # type: ignore[union-attr]
    browser.step("agree", accept="YES")
    assert "Thanks." in browser.last.text  # type: ignore[union-attr]
    browser.get(back_link(browser.last))  # type: ignore[arg-type]
    assert browser.stage_type == "terms"
