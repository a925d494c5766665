"""The stage UI as HTML: page shell vs htmx fragment, bundled assets, accessible errors,
the cancel form, work-without-JS markup, and app template overrides."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import db
from flask import Flask
from flask.testing import FlaskClient
from jinja2 import FileSystemLoader
from werkzeug.test import TestResponse

from flask_flows import Flow, Flows, Policy, PolicyBinding
from flask_flows.models import DeniedAction
from flask_flows.stages.dummy import DummyStage

PASSWORD = "correct horse battery"
BUNDLED_HTMX = "/flows/static/flows/vendor/htmx.min.js"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Page(HTMLParser):
    """The elements of an HTML page, their attributes and the text inside each of them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element: dict[str, Any] = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index]["tag"] == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, Any]]:
        """Elements of ``tag`` whose attributes include ``attrs`` (``class_`` for class)."""
        wanted = {key.rstrip("_").replace("_", "-"): value for key, value in attrs.items()}
        return [
            e
            for e in self.elements
            if e["tag"] == tag and all(e["attrs"].get(k) == v for k, v in wanted.items())
        ]

    def by_id(self, element_id: str) -> dict[str, Any]:
        [element] = [e for e in self.elements if e["attrs"].get("id") == element_id]
        return element


def to_password_stage(browser: FlowBrowser, slug: str = "login") -> TestResponse:
    browser.start(slug)
    response = browser.submit(slug, uid_field="alice")
    if response.status_code == 303:
        response = browser.follow()
    assert browser.stage_type == "password"
    return response


# -- page shell and fragment ------------------------------------------------------------


def test_full_page_has_the_shell(client: FlaskClient, login_flow: Flow) -> None:
    response = client.get("/flows/login/")
    assert response.status_code == 200
    assert response.text.lstrip().lower().startswith("<!doctype html>")
    page = Page(response.text)
    assert page.find("html", lang="en")
    assert page.find("link", rel="stylesheet", href="/flows/static/flows/flows.css")
    assert page.find("script", src=BUNDLED_HTMX)
    assert page.find("script", src="/flows/static/flows/flows.js")
    assert page.find("meta", name="viewport")
    assert page.by_id("flow-stage")["attrs"]["class"] == "flows-stage"
    # The skip link leads to the stage, and the shell keeps a live region for swaps.
    assert page.find("a", class_="flows-skip", href="#flow-stage")
    assert page.by_id("flows-announcer")["attrs"]["aria-live"] == "polite"
    assert page.find("h1", class_="flows-title")[0]["text"] == "Login"
    assert page.find("section", data_stage_type="identification")


def test_htmx_request_gets_only_the_fragment(client: FlaskClient, login_flow: Flow) -> None:
    response = client.get("/flows/login/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "<head" not in response.text
    assert 'id="flow-stage"' not in response.text  # htmx swaps into the existing one
    assert 'data-stage-type="identification"' in response.text
    assert 'name="csrf_token" type="hidden" value="' in response.text


def test_responses_vary_on_htmx_and_are_not_stored(browser: FlowBrowser, login_flow: Flow) -> None:
    response = browser.start("login")
    assert "HX-Request" in response.vary
    assert response.headers["Cache-Control"] == "no-store"


class TestHtmxFromElsewhere:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"FLOWS_HTMX_URL": "https://cdn.example.com/htmx.org@2.0.11/htmx.min.js"}

    def test_setting_changes_the_script_src(self, client: FlaskClient, login_flow: Flow) -> None:
        page = Page(client.get("/flows/login/").text)
        sources = [s["attrs"].get("src") for s in page.find("script")]
        assert "https://cdn.example.com/htmx.org@2.0.11/htmx.min.js" in sources
        assert BUNDLED_HTMX not in sources


def test_bundled_static_files_are_served(client: FlaskClient, login_flow: Flow) -> None:
    page = Page(client.get("/flows/login/").text)
    urls = [e["attrs"]["href"] for e in page.find("link", rel="stylesheet")]
    urls += [e["attrs"]["src"] for e in page.find("script")]
    assert len(urls) == 4
    kinds = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.data, url
        kinds[url.rsplit("/", 1)[-1]] = response.mimetype
        response.close()
    assert kinds["flows.css"] == "text/css"
    assert kinds["htmx.min.js"] in ("text/javascript", "application/javascript")


def test_theme_exposes_custom_properties_and_respects_user_settings(
    client: FlaskClient, login_flow: Flow
) -> None:
    response = client.get("/flows/static/flows/flows.css")
    css = response.text
    response.close()
    for name in ("--flows-accent", "--flows-radius", "--flows-font", "--flows-space"):
        assert f"{name}:" in css
    assert "@media (prefers-color-scheme: dark)" in css
    assert "@media (prefers-reduced-motion: reduce)" in css
    assert ":focus-visible" in css


# -- accessible errors and messages -----------------------------------------------------------


def test_field_error_is_tied_to_its_field(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    response = browser.submit("login", uid_field="")
    response = browser.settle()
    assert response.status_code == 200
    page = Page(response.text)
    [field] = page.find("input", name="uid_field")
    assert field["attrs"]["aria-invalid"] == "true"
    error = page.by_id(field["attrs"]["aria-describedby"])
    assert error["text"] == "Enter your username or email address."
    # The label still names the field.
    assert page.find("label", **{"for": field["attrs"]["id"]})


def test_wrong_password_is_shown_next_to_the_password_field(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    to_password_stage(browser)
    page = Page(browser.submit("login", password="not it").text)
    [field] = page.find("input", name="password")
    assert field["attrs"]["aria-invalid"] == "true"
    assert field["attrs"]["type"] == "password"
    assert field["attrs"].get("value", "") == ""  # a rejected password is never sent back
    assert page.by_id(field["attrs"]["aria-describedby"])["text"] == (
        "Invalid username or password."
    )


def test_valid_field_is_not_marked(browser: FlowBrowser, login_flow: Flow) -> None:
    page = Page(browser.start("login").text)
    [field] = page.find("input", name="uid_field")
    assert "aria-invalid" not in field["attrs"]
    assert "aria-describedby" not in field["attrs"]


def test_messages_are_announced(browser: FlowBrowser, login_flow: Flow) -> None:
    browser.start("login")
    browser.submit("login", uid_field="alice", flow_step="stale")
    page = Page(browser.settle().text)
    [messages] = page.find("div", class_="flows-messages")
    assert messages["attrs"]["aria-live"] == "polite"
    assert "another tab" in messages["text"]


# -- forms: htmx attributes, cancel, no-JS markup ------------------------------------------------


def test_stage_form_posts_plainly_and_through_htmx(browser: FlowBrowser, login_flow: Flow) -> None:
    page = Page(browser.start("login").text)
    [form] = page.find("form", class_="flows-form")
    assert form["attrs"]["method"] == "post"
    assert form["attrs"]["action"] == "/flows/login/"
    assert form["attrs"]["hx-post"] == "/flows/login/"
    assert form["attrs"]["hx-target"] == "#flow-stage"
    assert form["attrs"]["hx-swap"] == "innerHTML"
    assert form["attrs"]["hx-disabled-elt"] == (
        "find button[type='submit'], find [data-flows-passkey-start]"
    )
    assert page.find("span", class_="flows-spinner htmx-indicator", aria_hidden="true")


def test_cancel_form_carries_a_working_csrf_token(client: FlaskClient, login_flow: Flow) -> None:
    html = client.get("/flows/login/?next=/after").text
    start = html.index('<form class="flows-cancel"')
    cancel = Page(html[start : html.index("</form>", start)])
    [form] = cancel.find("form")
    assert form["attrs"]["method"] == "post"
    [token] = cancel.find("input", name="csrf_token", type="hidden")
    assert token["attrs"]["value"]
    assert cancel.find("button", type="submit", class_="flows-link")

    response = client.post(form["attrs"]["action"], data={"csrf_token": token["attrs"]["value"]})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"  # a cancelled login goes home, not to `next`


def test_show_password_waits_for_javascript(
    browser: FlowBrowser, make_user: Callable[..., Any], login_flow: Flow
) -> None:
    make_user("alice")
    html = to_password_stage(browser).text
    page = Page(html)
    [reveal] = page.find("button", class_="flows-reveal")
    assert "hidden" in reveal["attrs"]  # without JS there is nothing to press
    assert reveal["attrs"]["type"] == "button"  # never submits the form
    assert reveal["attrs"]["aria-controls"] == "password"
    # What a screen reader says is the whole "Show password"; the visible word is not
    # said twice.
    assert reveal["text"] == "ShowShow password"
    assert '<span class="flows-reveal-label" aria-hidden="true">Show</span>' in html
    assert '<span class="flows-sr-only flows-reveal-name">Show password</span>' in html


def test_show_password_can_be_turned_off(
    browser: FlowBrowser, make_user: Callable[..., Any], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    make_flow(
        "strict", "identification", ("password", {"allow_show_password": False}), "user_login"
    )
    response = to_password_stage(browser, "strict")
    assert "flows-reveal" not in response.text
    assert Page(response.text).find("input", name="password", type="password")


class SecretStage(DummyStage):
    """A stage showing something that must stay out of htmx's history cache."""

    name: ClassVar[str] = "secret"
    history: ClassVar[bool] = False


def test_secret_stage_stays_out_of_htmx_history(
    browser: FlowBrowser, flows: Flows, make_flow: Callable[..., Flow]
) -> None:
    flows.stage_type(SecretStage)
    make_flow("secret", "secret", "dummy")
    page = Page(browser.start("secret").text)
    assert page.find("section", data_stage_type="secret", hx_history="false")
    browser.submit("secret")
    if browser.last.status_code == 303:
        browser.follow()
    assert browser.stage_type == "dummy"
    assert 'hx-history="false"' not in browser.last.text


# -- denied and error pages ---------------------------------------------------------------------


def test_denied_page_alerts_and_offers_a_way_on(
    app: Flask, browser: FlowBrowser, flows: Flows, make_flow: Callable[..., Flow]
) -> None:
    @flows.policy("closed")
    def closed(request: Any) -> tuple[bool, list[str]]:
        return False, ["Not today."]

    make_flow("closed", "dummy", denied_action=DeniedAction.message_continue)
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == "closed"))
        policy = Policy(name="closed", type="python", config={"function": "closed"})
        flow.policy_bindings.append(PolicyBinding(policy=policy, order=0))
        db.session.commit()

    response = browser.start("closed", next="/elsewhere")
    page = Page(response.text)
    [alert] = page.find("div", role="alert")
    assert alert["text"].strip() == "Not today."
    assert page.find("a", class_="flows-button flows-button--primary", href="/elsewhere")
    assert ("<html" in response.text) is not browser.htmx


def test_denied_by_a_stage_offers_a_restart(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow("closed", ("deny", {"message": "Not today."}))
    page = Page(browser.start("closed").text)
    assert page.find("div", role="alert")[0]["text"].strip() == "Not today."
    [again] = page.find("a", class_="flows-link")
    assert again["attrs"]["href"] == "/flows/closed/"
    assert again["text"] == "Start again"


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (429, "Too many requests. Please wait a moment and try again."),
        (418, "That did not work. Please go back and try again."),
        (503, "Something went wrong on our side. Please try again in a moment."),
    ],
)
def test_an_http_error_from_elsewhere_says_our_words_not_werkzeugs(
    make_app: Any, code: int, says: str
) -> None:
    """An HTTP error raised in a flow request by something else (a rate limiter in the
    app) gets the themed page with a message from the catalogue: werkzeug's English
    description is never shown (it could not be translated)."""
    from flask import abort, request

    app, _ = make_app()

    @app.before_request
    def limit() -> None:
        if request.path.startswith("/flows/"):
            abort(code, description="werkzeug's own words")

    response = app.test_client().get("/flows/anything/")
    assert response.status_code == code
    assert says in response.text
    assert "werkzeug" not in response.text


def test_error_page_is_a_themed_page(client: FlaskClient, login_flow: Flow) -> None:
    response = client.get("/flows/no-such-flow/")
    assert response.status_code == 404
    page = Page(response.text)
    assert page.find("link", rel="stylesheet", href="/flows/static/flows/flows.css")
    [heading] = page.find("h1")
    assert heading["text"] == "Not found"
    assert "There is nothing here" in page.find("div", role="alert")[0]["text"]


# -- app overrides ---------------------------------------------------------------------------


OVERRIDE = """{% extends "flows/stage.html" %}
{% block flows_heading %}Your secret phrase, please{% endblock %}
{% block flows_content %}
{% call ui.stage_form(form, action_url) %}
  {{ ui.field(form.password) }}
  {{ ui.submit("Let me in") }}
{% endcall %}
{% endblock %}
"""


def test_app_template_overrides_the_stage_template(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., Any],
    login_flow: Flow,
    tmp_path: Path,
) -> None:
    stages = tmp_path / "templates" / "flows" / "stages"
    stages.mkdir(parents=True)
    (stages / "password.html").write_text(OVERRIDE)
    # What Flask builds from Flask(template_folder=...): the app's own folder comes first.
    app.jinja_loader = FileSystemLoader(str(tmp_path / "templates"))  # type: ignore[method-assign]
    make_user("alice")

    page = Page(to_password_stage(browser).text)
    assert page.by_id("flows-stage-heading")["text"] == "Your secret phrase, please"
    [submit] = page.find("button", type="submit", class_="flows-button flows-button--primary")
    assert submit["text"].strip() == "Let me in"
    assert not page.find("button", class_="flows-reveal")
    # The other stages still come from the package, and the overridden one still works.
    browser.submit("login", password=PASSWORD)
    assert browser.redirect_target == "/"
    assert browser.get("/").text == "home: alice"
