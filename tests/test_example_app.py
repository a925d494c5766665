"""The example app: first start, configuration from the environment, login through its pages."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import FAST_ARGON2, close_connections
from flask import Flask

import example_app
from example_app import create_app, db
from flask_flows import Flow

LOGIN_FLOW = "default-authentication-flow"
PASSWORD = "correct horse battery"

MakeExample = Callable[..., Flask]


@pytest.fixture
def make_example(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeExample]:
    """Builds the example app on the test database through ``DATABASE_URL``, the way a
    deployment configures it; PostgreSQL gets the plain ``postgresql://`` form so the
    app's switch to psycopg 3 is exercised. Its tables are emptied with the others before
    the next test."""
    monkeypatch.setenv(
        "DATABASE_URL", database_url.replace("postgresql+psycopg://", "postgresql://")
    )
    apps: list[Flask] = []

    def make(instance: str = "instance", fast_hash: bool = True, **config: Any) -> Flask:
        config = {"TESTING": True, **(FAST_ARGON2 if fast_hash else {}), **config}
        app = create_app(config, instance_path=str(tmp_path / instance))
        apps.append(app)
        return app

    yield make
    close_connections(apps)


@pytest.fixture
def example(make_example: MakeExample) -> Flask:
    return make_example()


@pytest.fixture(params=[False, True], ids=["plain", "htmx"])
def browser(request: pytest.FixtureRequest, example: Flask) -> FlowBrowser:
    return FlowBrowser(example.test_client(), htmx=request.param)


def create_user(app: Flask, username: str = "alice") -> None:
    """Through the CLI, as the README tells developers to."""
    result = app.test_cli_runner().invoke(
        args=[
            "flows",
            "create-user",
            username,
            "--email",
            f"{username}@example.com",
            "--password",
            PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output


def link(page: str, label: str) -> str:
    match = re.search(rf'<a[^>]* href="([^"]+)"[^>]*>{label}</a>', page)
    assert match, f"no {label!r} link on the page"
    return match.group(1).replace("&amp;", "&")


def flow_revisions(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {flow.slug: flow.revision for flow in db.session.scalars(sa.select(Flow))}


def test_first_start_creates_the_default_flows_once(make_example: MakeExample) -> None:
    first = flow_revisions(make_example())
    assert {LOGIN_FLOW, "default-invalidation-flow"} <= set(first)
    second = flow_revisions(make_example())
    assert second == first  # a restart neither duplicates nor rewrites them


def test_a_deleted_default_flow_stays_deleted(make_example: MakeExample) -> None:
    app = make_example()
    with app.app_context():
        db.session.execute(sa.delete(Flow).where(Flow.slug == "default-invalidation-flow"))
        db.session.commit()
    assert "default-invalidation-flow" not in flow_revisions(make_example())


def test_home_shows_who_is_logged_in(browser: FlowBrowser, example: Flask) -> None:
    create_user(example)
    home = browser.get("/")
    assert "Not signed in" in home.text
    login_url = link(home.text, "Log in")
    assert login_url == "/flows/-/login/?next=/"

    browser.get(login_url)
    browser.follow()
    assert browser.stage_type == "identification"
    browser.step(LOGIN_FLOW, uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/"
    home = browser.get("/")
    assert "Signed in as <strong>alice</strong>" in home.text

    browser.get(link(home.text, "Log out"))
    browser.follow()
    assert browser.stage_type == "user_logout"
    browser.submit("default-invalidation-flow")
    assert browser.redirect_target == "/"
    assert "Not signed in" in browser.get("/").text


def test_account_page_sends_anonymous_users_through_login_and_back(
    browser: FlowBrowser, example: Flask
) -> None:
    create_user(example, "bob")
    response = browser.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/flows/-/login/?next=%2Faccount"

    browser.follow()  # to /flows/-/login/, which sends on to the login flow
    browser.follow()
    assert browser.stage_type == "identification"
    browser.step(LOGIN_FLOW, uid_field="bob", password=PASSWORD)
    assert browser.redirect_target == "/account"
    account = browser.get("/account")
    assert account.status_code == 200
    assert "bob@example.com" in account.text


def test_session_cookie_is_httponly_and_lax(example: Flask) -> None:
    response = example.test_client().get(f"/flows/{LOGIN_FLOW}/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # off by default so http://localhost works


def test_mail_is_printed_only_without_a_mail_server(
    make_example: MakeExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Printed mails carry working recovery links: never once a real server is set."""
    assert make_example("printing").config["FLOWS_MAIL_BACKEND"] == "console"
    monkeypatch.setenv("FLASK_FLOWS_MAIL_SERVER", "smtp.example.com")
    sending = make_example("sending")
    assert sending.config["FLOWS_MAIL_SERVER"] == "smtp.example.com"
    assert sending.config["FLOWS_MAIL_BACKEND"] is None


def test_flask_env_vars_reach_config(
    make_example: MakeExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_FLOWS_ARGON2_TIME_COST", "2")
    monkeypatch.setenv("FLASK_FLOWS_ARGON2_MEMORY_COST", "8")
    monkeypatch.setenv("FLASK_FLOWS_ARGON2_PARALLELISM", "1")
    monkeypatch.setenv("FLASK_FLOWS_BRAND_NAME", "Env Brand")
    monkeypatch.setenv("FLASK_SESSION_COOKIE_SECURE", "true")
    app = make_example(fast_hash=False)
    assert app.config["FLOWS_ARGON2_TIME_COST"] == 2
    assert app.config["SESSION_COOKIE_SECURE"] is True

    create_user(app)
    with app.app_context():
        state = app.extensions["flows"]
        user = state.user_store.find_by_identifier("alice", ["username"])
        assert ",t=2," in user.password_hash  # the extension hashed with the env value
    client = app.test_client()
    assert "Env Brand" in client.get("/").text
    assert "Secure" in client.get(f"/flows/{LOGIN_FLOW}/").headers["Set-Cookie"]


def test_secret_key_is_generated_once_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("FLASK_SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    first = create_app(FAST_ARGON2, instance_path=str(instance))
    key_file = instance / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.secret_key == key_file.read_text()
    assert len(first.secret_key) >= 64
    assert (instance / "example.sqlite3").is_file()  # SQLite in the instance folder by default

    second = create_app(FAST_ARGON2, instance_path=str(instance))
    assert second.secret_key == first.secret_key
    other = create_app(FAST_ARGON2, instance_path=str(tmp_path / "other"))
    assert other.secret_key != first.secret_key


def test_secret_key_from_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-the-environment")
    instance = tmp_path / "instance"
    app = create_app(FAST_ARGON2, instance_path=str(instance))
    assert app.secret_key == "from-the-environment"
    assert not (instance / "secret_key").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db/app", "postgresql+psycopg://u:p@db/app"),
        ("postgres://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("sqlite:////var/lib/app.db", "sqlite:////var/lib/app.db"),
    ],
)
def test_database_url_uses_psycopg_3_for_postgresql(
    given: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert example_app.database_url("/unused") == expected


def test_sign_up_from_the_home_page_with_the_mail_on_the_terminal(
    browser: FlowBrowser, example: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no mail server configured, the example app prints the confirmation mail, and
    its link finishes the sign-up (here opened from a second browser)."""
    from flask_flows.mail import wait_for_outgoing_mail

    browser.get("/")
    browser.get(link(browser.last.text, "Create an account"))
    while browser.last.status_code in (302, 303):
        browser.follow()
    assert browser.stage_type == "prompt"
    browser.step(
        "default-enrollment-flow",
        username="zoe",
        email="zoe@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    assert browser.stage_type == "email"
    assert wait_for_outgoing_mail(timeout=10)
    printed = capsys.readouterr().err  # the console backend prints on stderr
    assert "--- mail to zoe@example.com" in printed
    # On the address `make run` serves, never the host a request claims.
    resume = re.search(r"http://localhost:5000/flows/-/resume/\S+/", printed)
    assert resume, printed

    phone = FlowBrowser(example.test_client(), htmx=browser.htmx)
    phone.open_link(resume.group(0))
    phone.get(phone.redirect_target, follow_redirects=True)
    home = phone.get("/").text
    assert "Hello, <strong>zoe</strong>" in home
    assert "Change your password" in home and "Delete your account" in home
