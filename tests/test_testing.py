"""flask_flows.testing: the helpers apps test with, and the recipe in docs/testing.md."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import FAST_ARGON2, MakeApp, User, db
from flask import Flask
from flask_login import current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from smtp_sink import Mailbox, link_in
from sqlalchemy.orm import Mapped, mapped_column

from flask_flows import AuthenticatedSession, Flow, Flows, FlowsUserMixin
from flask_flows.blueprints import install_default_flows
from flask_flows.extension import FlowsState
from flask_flows.testing import FlowClient, log_in, log_out

TESTING_DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
PASSWORD = "correct horse battery"


def session_owners(app: Flask) -> list[str]:
    """The user id of every server-side session."""
    with app.app_context():
        return list(db.session.scalars(sa.select(AuthenticatedSession.user_id)))


# -- a logged-in client ---------------------------------------------------------------------


def test_a_flow_client_made_with_a_user_is_logged_in_server_side(
    app: Flask, make_user: Callable[..., User]
) -> None:
    alice = make_user("alice")
    app.test_client_class = FlowClient
    client = app.test_client(user=alice)
    assert client.get("/").text == "home: alice"
    assert session_owners(app) == [str(alice.id)]

    # A real flask-flows login: ending its session on the server logs the client out.
    with app.app_context():
        db.session.execute(sa.delete(AuthenticatedSession))
        db.session.commit()
    assert client.get("/").text == "home: anonymous"


def test_views_behind_login_required_open(app: Flask, make_user: Callable[..., User]) -> None:
    @app.get("/private")
    @login_required
    def private() -> str:
        return "private"

    alice = make_user("alice")
    assert app.test_client().get("/private").status_code == 302
    app.test_client_class = FlowClient
    assert app.test_client(user=alice).get("/private").text == "private"


def test_log_in_takes_an_id_and_works_on_any_test_client(
    app: Flask, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob")
    client = app.test_client()
    assert type(client) is not FlowClient
    log_in(client, bob.id)
    assert client.get("/").text == "home: bob"


def test_a_user_from_an_ended_app_context_can_be_logged_in(app: Flask) -> None:
    """The usual fixture: created and committed in an app context that has ended, so the
    object is detached and its attributes expired."""
    with app.app_context():
        carol = app.extensions["flows"].user_store.create(username="carol", password=PASSWORD)
        db.session.commit()
    client = app.test_client()
    log_in(client, carol)
    assert client.get("/").text == "home: carol"


def test_logging_in_again_ends_the_earlier_login(
    app: Flask, make_user: Callable[..., User]
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    client = app.test_client()
    log_in(client, alice)
    log_in(client, bob)
    assert client.get("/").text == "home: bob"
    assert session_owners(app) == [str(bob.id)]


@pytest.mark.parametrize("by", ["method", "function"])
def test_log_out_ends_the_login_on_the_server(
    app: Flask, make_user: Callable[..., User], by: str
) -> None:
    alice = make_user("alice")
    app.test_client_class = FlowClient
    client = app.test_client(user=alice)
    client.set_cookie("flows_mfa", "a passed second factor")
    if by == "method":
        client.log_out()
    else:
        log_out(client)
    assert client.get("/").text == "home: anonymous"
    assert session_owners(app) == []
    assert client.get_cookie("flows_mfa") is None


def test_strong_session_protection_accepts_the_login(
    app: Flask, make_user: Callable[..., User]
) -> None:
    """Flask-Login compares the address and user agent the login was made with to the
    request's: the helper logs in as the client's own requests look."""
    app.login_manager.session_protection = "strong"  # type: ignore[attr-defined]
    alice = make_user("alice")
    client = app.test_client()
    log_in(client, alice)
    assert client.get("/").text == "home: alice"


def test_a_persistent_login_gets_a_permanent_cookie(
    app: Flask, make_user: Callable[..., User]
) -> None:
    alice = make_user("alice")
    client = app.test_client()
    log_in(client, alice, persistent=True, duration=3600)
    with app.app_context():
        record = db.session.scalars(sa.select(AuthenticatedSession)).one()
        assert record.expires is not None
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and cookie.expires is not None


@pytest.mark.parametrize("who", [12345, "unsaved"])
def test_a_user_without_a_row_is_a_clear_error(app: Flask, who: object) -> None:
    user = User(username="nobody") if who == "unsaved" else who
    with pytest.raises(ValueError, match="no user with id|no id yet"):
        log_in(app.test_client(), user)


def test_an_inactive_user_is_a_clear_error_not_a_silent_anonymous_client(
    app: Flask, make_user: Callable[..., User]
) -> None:
    dormant = make_user("dormant", active=False)
    client = app.test_client()
    with pytest.raises(ValueError, match="inactive"):
        log_in(client, dormant)
    assert session_owners(app) == []


def test_a_user_model_with_a_uuid_key(tmp_path: Path) -> None:
    """The id may be the key itself (a ``uuid.UUID``), its string, or the user."""
    members = SQLAlchemy()

    class Member(members.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
        id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)

    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="k",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'members.sqlite3'}",
        **FAST_ARGON2,
    )
    members.init_app(app)
    Flows(app, db=members, user_model=Member)

    @app.get("/")
    def home() -> str:
        return str(current_user.username) if current_user.is_authenticated else "anonymous"

    with app.app_context():
        app.extensions["flows"].create_tables()
        member = app.extensions["flows"].user_store.create(username="ulla", password=PASSWORD)
        members.session.commit()
        key = member.id
    try:
        for who in (key, str(key), member):
            client = app.test_client()
            log_in(client, who)
            assert client.get("/").text == "ulla"
    finally:
        with app.app_context():
            members.engine.dispose()


# -- walking flows --------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"FLOWS_URL_PREFIX": "/auth"}])
def test_the_browser_walks_the_default_login_wherever_flows_are_mounted(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, next="/somewhere")
    assert browser.redirect_target == "/somewhere"
    assert browser.whoami() == "home: alice"


def test_a_failed_login_leaves_the_browser_on_the_stage(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", "not the password", slug="login")
    assert browser.stage_type == "password"
    assert browser.redirect_target is None
    assert browser.whoami() == "home: anonymous"


def test_a_protected_page_leads_into_the_login_flow_and_back(
    app: Flask, state: FlowsState, browser: FlowBrowser, make_user: Callable[..., User]
) -> None:
    """docs/testing.md's example, on the default login flow."""

    @app.get("/orders")
    @login_required
    def orders() -> str:
        return "your orders"

    with app.app_context():
        install_default_flows(state)
    make_user("alice")
    browser.get("/orders", follow_redirects=True)
    assert browser.stage_type == "identification"
    browser.step(uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/orders"
    assert browser.follow().text == "your orders"


def test_a_mailed_link_on_another_host_continues_there(
    make_app: MakeApp,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
) -> None:
    """With FLOWS_MAIL_BASE_URL the link names the public host: the Continue button and
    the rest of the flow are pressed there, with that host's cookies."""
    app, _ = make_app(FLOWS_MAIL_BASE_URL="https://accounts.example.com", **mailbox.config)
    make_user("alice")
    make_flow("recover", "identification", "email", "dummy", designation="recovery")
    browser = FlowBrowser(app.test_client())
    browser.start("recover")
    browser.step(uid_field="alice")
    link = link_in(mailbox.wait_for_message())
    assert link.startswith("https://accounts.example.com/flows/-/resume/")

    phone = browser.fresh()
    assert phone.open_link(link).status_code == 303
    phone.follow()
    assert phone.stage_type == "dummy"
    assert phone.last is not None and phone.last.request.host == "accounts.example.com"


def test_a_prompt_field_may_be_called_slug(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    field = {"field_key": "slug", "label": "Shop address", "type": "text", "required": True}
    make_flow("shop", ("prompt", {"fields": [field]}), "dummy", designation="enrollment")
    browser.start("shop")
    browser.step(slug="my-shop")
    assert browser.stage_type == "dummy"


def test_submit_needs_a_page_with_a_form(browser: FlowBrowser) -> None:
    browser.get("/")
    with pytest.raises(AssertionError, match="no form"):
        browser.submit()


# -- the recipe in docs/testing.md ----------------------------------------------------------


def recipe_files() -> dict[str, str]:
    """The Python blocks of docs/testing.md whose first line names a file."""
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", TESTING_DOC.read_text(), re.S)
    return dict(blocks)


def test_the_documented_recipe_passes(pytester: pytest.Pytester) -> None:
    files = recipe_files()
    assert sorted(files) == ["conftest.py", "test_account.py", "yourapp.py"]
    for name, source in files.items():
        (pytester.path / name).write_text(source)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=6)
