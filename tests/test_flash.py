"""What a finished flow did, flashed for the app's own pages, and Flask-Login's message
left as the app set it.

Before: flask-flows never called flash(), so after sign-up, login, logout or deletion the
app's flash area stayed empty; and init_app set Flask-Login's ``login_message`` to None
whatever the app had set.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from browsing import FlowBrowser
from factory import MakeApp, User
from flask import Flask, get_flashed_messages
from jinja2 import DictLoader

from flask_flows import Flow
from flask_flows.blueprints import install_default_flows

PASSWORD = "correct horse battery"
LAYOUT = """<title>{% block title %}{% endblock %}</title>
{% for m in get_flashed_messages() %}<p class="flash">{{ m }}</p>{% endfor %}
{% block content %}{% endblock %}"""
QUIET_LAYOUT = "<title>{% block title %}{% endblock %}</title>{% block content %}{% endblock %}"


def build(make_app: MakeApp, layout: str | None = None, **config: object) -> Flask:
    """An app whose /flashes page lists the messages flashed to it, one per line."""
    if layout is not None:
        config["FLOWS_LAYOUT_TEMPLATE"] = "site.html"
    app, _flows = make_app(**config)
    if layout is not None:
        app.jinja_loader = DictLoader({"site.html": layout})  # type: ignore[method-assign,assignment]

    @app.get("/flashes")
    def flashes() -> str:
        return "\n".join(get_flashed_messages()) or "(none)"

    with app.app_context():
        install_default_flows(app.extensions["flows"])
    return app


def log_in(app: Flask) -> FlowBrowser:
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD)
    assert browser.redirect_target == "/"
    return browser


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


def test_a_layout_that_shows_flashes_gets_each_outcome(make_app: MakeApp, alice: User) -> None:
    app = build(make_app, LAYOUT)
    browser = log_in(app)
    assert browser.get("/flashes").text == "You are signed in."
    browser.start("default-invalidation-flow")
    browser.step("default-invalidation-flow")
    assert browser.get("/flashes").text == "You are signed out."


def test_outcomes_of_one_flow_make_one_message(
    make_app: MakeApp, make_flow: Callable[..., Flow]
) -> None:
    app = build(make_app, LAYOUT)
    prompt = {
        "fields": [
            {"field_key": "username", "label": "Username", "type": "username"},
            {"field_key": "password", "label": "Password", "type": "password"},
        ]
    }
    make_flow("join", ("prompt", prompt), "user_write", "user_login", designation="enrollment")
    browser = FlowBrowser(app.test_client())
    browser.start("join")
    browser.step("join", username="bo", password=PASSWORD)
    assert browser.redirect_target == "/"
    assert browser.get("/flashes").text == "Your account was created. You are signed in."


def test_deleting_the_account_says_so(make_app: MakeApp, alice: User) -> None:
    app = build(make_app, LAYOUT)
    browser = log_in(app)
    slug = "default-unenrollment-flow"
    browser.start(slug)
    browser.step(slug, password=PASSWORD)
    browser.step(slug, confirm="y")
    assert browser.get("/flashes").text == "Your account was deleted."


@pytest.mark.parametrize(
    ("layout", "setting", "flashed"),
    [
        (None, None, "(none)"),  # flask-flows' shell: nobody would see it
        (QUIET_LAYOUT, None, "(none)"),  # a layout that shows no flashes
        (None, True, "You are signed in."),
        (LAYOUT, False, "(none)"),
    ],
    ids=["shell", "quiet-layout", "on", "off"],
)
def test_flashing_follows_the_layout_unless_set(
    make_app: MakeApp, alice: User, layout: str | None, setting: bool | None, flashed: str
) -> None:
    app = build(make_app, layout, FLOWS_FLASH=setting)
    assert log_in(app).get("/flashes").text == flashed


def test_the_category_is_the_apps_choice(make_app: MakeApp, alice: User) -> None:
    app = build(make_app, LAYOUT, FLOWS_FLASH_CATEGORY="success")
    browser = log_in(app)
    with browser.client.session_transaction() as session:
        assert session["_flashes"] == [("success", "You are signed in.")]


@pytest.mark.parametrize(
    ("app_message", "layout", "kept"),
    [
        ("Sign in to see your notes.", None, "Sign in to see your notes."),
        (None, None, None),  # Flask-Login's default, unseen in flask-flows' shell
        (None, LAYOUT, "Please log in to access this page."),  # shown by the layout
        (None, QUIET_LAYOUT, None),  # a layout that shows no flashes
    ],
    ids=["the-apps-own", "default-shell", "default-layout", "default-quiet-layout"],
)
def test_flask_logins_message_is_left_as_the_app_set_it(
    app_message: str | None, layout: str | None, kept: str | None
) -> None:
    from flask_login import LoginManager
    from flask_sqlalchemy import SQLAlchemy

    from flask_flows import Flows

    app = Flask(__name__)
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI="sqlite://")
    if layout:
        app.config["FLOWS_LAYOUT_TEMPLATE"] = "site.html"
        app.jinja_loader = DictLoader({"site.html": layout})  # type: ignore[method-assign,assignment]
    manager = LoginManager(app)
    if app_message:
        manager.login_message = app_message
    Flows(app, db=SQLAlchemy(app), user_model=User)
    assert app.test_client().get("/").status_code == 404  # decided at the first request
    assert manager.login_message == kept


@pytest.mark.parametrize("layout", [None, LAYOUT], ids=["shell", "flashing-layout"])
def test_a_flow_that_leads_back_to_settings_says_so_there(
    make_app: MakeApp, alice: User, layout: str | None
) -> None:
    app = build(make_app, layout)
    browser = log_in(app)
    browser.get("/flows/-/settings/")
    slug = "default-password-change"
    browser.start(slug, next="/flows/-/settings/")
    browser.step(slug, password=PASSWORD)
    browser.step(
        slug, password="a new horse battery staple", password_repeat="a new horse battery staple"
    )
    assert browser.redirect_target == "/flows/-/settings/"
    settings = browser.get("/flows/-/settings/").text
    assert "Your password was changed." in settings
    assert "Your password was changed." not in browser.get("/flows/-/settings/").text  # once
    assert browser.get("/flashes").text == "(none)"  # and not again on the app's next page


def test_a_changed_email_address_is_confirmed(
    make_app: MakeApp, make_flow: Callable[..., Flow], alice: User
) -> None:
    app = build(make_app, LAYOUT)
    prompt = {"fields": [{"field_key": "email", "label": "Email", "type": "email"}]}
    make_flow("address", ("prompt", prompt), "user_write", designation="stage_configuration")
    browser = log_in(app)
    browser.get("/flashes")
    browser.start("address")
    browser.step("address", email="alice.new@example.com")
    assert browser.redirect_target == "/"
    assert browser.get("/flashes").text == "Your email address was changed."
