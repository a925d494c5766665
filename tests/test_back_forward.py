"""Back, Forward and reload: each stage's page has its own URL, Back returns to an earlier
stage where the plan allows, and a plain browser's refused form comes back through
post/redirect/get (so reload and Forward never post again)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, plan_context
from factory import User, db
from flask import Flask
from jinja2 import ChoiceLoader, DictLoader
from werkzeug.test import TestResponse

from flask_flows import Flow, Stage
from flask_flows.devices import TOTPDevice
from flask_flows.executor import MSG_STALE
from flask_flows.otp import new_totp_secret
from flask_flows.refused_forms import REFUSED
from flask_flows.stages.dummy import DummyStage
from flask_flows.stages.password import WRONG_CREDENTIALS
from flask_flows.stages.user_write import MSG_EMAIL_TAKEN, UserWriteStage

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
def test_back_from_an_added_setup_stage_drops_it(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    """authenticator_validate adds a user's setup stages to the plan. Back from the setup
    returns to the choice (or the page before it), and the stages it added are dropped:
    choosing again adds only the new choice, once."""
    with app.app_context():
        db.session.add_all(
            [
                Stage(name="setup-one", type="dummy", config={"message": "Set up one."}),
                Stage(name="setup-two", type="dummy", config={"message": "Set up two."}),
            ]
        )
        db.session.commit()
    options = {
        "not_configured_action": "configure",
        "configuration_stages": ["setup-one", "setup-two"],
    }
    make_flow(
        "login", "identification", "password", ("authenticator_validate", options), "user_login"
    )
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.step("login", uid_field="alice")
    choice = page_url(browser.step("login", password=PASSWORD))
    assert browser.stage_type == "authenticator_validate"
    browser.step("login", setup="setup-one")
    assert "Set up one." in browser.last.text  # type: ignore[union-attr]
    assert back_link(browser.last) == choice  # type: ignore[arg-type]

    browser.get(choice)  # Back: "I have no phone after all"
    assert browser.stage_type == "authenticator_validate"
    browser.step("login", setup="setup-two")
    assert "Set up two." in browser.last.text  # type: ignore[union-attr]
    browser.step("login")  # setup two done: setup one is not run after all
    assert browser.redirect_target == "/"
    assert browser.whoami() == "home: alice"


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


def test_a_plain_refusal_keeps_typed_values_and_never_carries_a_password(
    app: Flask, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    """A password never rides in the session, sealed or not: a refusal that shows a
    typed password again is answered with the page itself; others are redirected with
    the other values carried."""
    make_user("taken", password=PASSWORD)
    prompt = {"fields": SIGNUP_FIELDS, "report_taken_username": True}
    make_flow("join", ("prompt", prompt), "user_write", designation="enrollment")
    browser = FlowBrowser(app.test_client())
    browser.start("join")
    fields = {"username": "taken", "nickname": "Tee", "password_repeat": PASSWORD}
    answer = browser.post(
        "/flows/join/", {**browser_hidden(browser), **fields, "password": PASSWORD}
    )
    assert answer.status_code == 200  # the page, the password kept in it (masked)
    assert "That username is already taken." in answer.text
    assert answer.text.count(f'value="{PASSWORD}"') == 2
    assert REFUSED not in plan_context(browser.client, "join")

    answer = browser.post("/flows/join/", {**browser_hidden(browser), **fields, "password": ""})
    assert answer.status_code == 303  # nothing secret to show: post/redirect/get
    assert PASSWORD not in repr(plan_context(browser.client, "join"))
    page = browser.follow()
    assert "That username is already taken." in page.text
    assert 'value="Tee"' in page.text and 'value="taken"' in page.text
    assert PASSWORD not in page.text


def test_a_refusal_too_large_for_the_cookie_is_answered_at_once(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    """What the plan already holds counts: a refusal that would take the session past
    what browsers keep is answered with the page itself, not lost with the cookie."""
    first = [{"field_key": f"note{n}", "type": "textarea", "required": False} for n in range(2)]
    second = [
        {"field_key": "bio", "type": "textarea", "required": False},
        {"field_key": "age", "type": "number"},
    ]
    make_flow(
        "about",
        ("prompt", {"fields": first}),
        ("prompt", {"fields": second}),
        "dummy",
        designation="enrollment",
    )
    browser = FlowBrowser(app.test_client())
    browser.start("about")
    browser.step("about", note0="n" * 950, note1="o" * 950)  # kept in the plan, sealed
    typed = {"bio": "b" * 1000, "age": "old"}
    answer = browser.post("/flows/about/", {**browser_hidden(browser), **typed})
    assert answer.status_code == 200  # the page itself, with what was typed
    assert "b" * 1000 in answer.text
    cookie = answer.headers["Set-Cookie"]
    assert len(cookie) < 4096
    # A small refusal on the same page still goes through the redirect.
    small = browser.post("/flows/about/", {**browser_hidden(browser), "age": "old"})
    assert small.status_code == 303


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


# -- what going back undoes --------------------------------------------------------------------


def test_back_past_a_second_factor_takes_its_proof_back(
    app: Flask, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    """alice proves a TOTP code, then Back to the first page and bob (no second factor)
    signs in: the plan must not say that bob proved a TOTP code."""
    alice = make_user("alice", password=PASSWORD)
    make_user("bob", password=PASSWORD)
    secret = new_totp_secret()
    with app.app_context():
        db.session.add(TOTPDevice(user_id=str(alice.id), secret=secret, confirmed=True))
        db.session.commit()
    validate = {"not_configured_action": "skip"}
    make_flow(
        "login",
        "identification",
        "password",
        ("authenticator_validate", validate),
        ("dummy", {"message": "Signed in, nearly."}),
        "user_login",
    )
    browser = FlowBrowser(app.test_client())
    first = page_url(browser.start("login"))
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    browser.step("login", code=pyotp.TOTP(secret).now())
    assert "Signed in, nearly." in browser.last.text  # type: ignore[union-attr]
    assert plan_context(browser.client, "login")["auth_methods"] == ["password", "totp"]

    browser.get(first)
    browser.step("login", uid_field="bob")
    browser.step("login", password=PASSWORD)
    assert "Signed in, nearly." in browser.last.text  # type: ignore[union-attr]
    context = plan_context(browser.client, "login")
    assert "totp" not in context.get("auth_methods", [])
    assert context["auth_method"] == "password"


def test_back_to_a_whole_page_stage_loads_it_whole_for_htmx(
    app: Flask, state: Any, make_flow: Callable[..., Flow]
) -> None:
    """A stage whose own scripts must run (a captcha) is never swapped in by htmx, also
    when Back returns to it."""

    @state.flows.stage_type
    class Scripted(DummyStage):
        name = "scripted"
        full_page = True

    make_flow("human", ("scripted", {"message": "A widget."}), ("dummy", {"message": "Next."}))
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.start("human")
    browser.submit("human")
    assert "Next." in browser.last.text  # type: ignore[union-attr]
    back = back_link(browser.last)  # type: ignore[arg-type]
    answer = browser.get(back)  # type: ignore[arg-type]
    assert answer.headers["HX-Redirect"] == back  # the whole page of that stage
    assert "A widget." not in answer.text


def test_a_stage_that_acted_without_a_form_is_not_run_again_by_the_redirect(
    app: Flask, make_flow: Callable[..., Flow], make_user: Callable[..., User], monkeypatch: Any
) -> None:
    make_user("first", password=PASSWORD, email="shared@example.com")
    fields = [*SIGNUP_FIELDS, {"field_key": "email", "type": "email"}]
    make_flow("join", ("prompt", {"fields": fields}), "user_write", designation="enrollment")
    runs: list[str] = []
    original = UserWriteStage.respond

    def counted(self: UserWriteStage, run: Any, form: Any) -> Any:
        runs.append(run.request.method)
        return original(self, run, form)

    monkeypatch.setattr(UserWriteStage, "respond", counted)
    browser = FlowBrowser(app.test_client())
    browser.start("join")
    typed = {"username": "second", "email": "shared@example.com"}
    page = browser.step("join", **typed, password=PASSWORD, password_repeat=PASSWORD)
    assert MSG_EMAIL_TAKEN in page.text
    assert runs == ["POST"]


def test_back_from_asking_another_username_tries_the_new_one_afresh(
    app: Flask, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    make_user("taken", password=PASSWORD)
    make_flow("join", ("prompt", {"fields": SIGNUP_FIELDS}), "user_write", designation="enrollment")
    browser = FlowBrowser(app.test_client())
    browser.start("join")
    browser.step("join", username="taken", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.stage_type == "user_write"  # asks for another username
    browser.get(back_link(browser.last))  # type: ignore[arg-type]
    assert browser.stage_type == "prompt"
    browser.step("join", username="free", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.redirect_target == "/"
    with app.app_context():
        assert sorted(db.session.scalars(sa.select(User.username))) == ["free", "taken"]
