"""User models of other shapes: users with an email address and no username, and users
with a username and no email address.

Before: only undocumented tricks made an email-only model work (``username = None`` and a
login flow of one's own whose slug sorted first): the default login flow raised on
``username``, sign-up asked for one, ``flask flows create-user`` required one, and the
settings page called the user by their primary key. A username-only model was asked for
an email address at sign-up and mailed a link, and its login page offered a recovery
flow that could only ever say "check your inbox".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from factory import FAST_ARGON2
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_flows import Flows, FlowsUserMixin, testing
from flask_flows.blueprints import install_default_flows

PASSWORD = "correct horse battery"
email_db = SQLAlchemy()
member_db = SQLAlchemy()


class Customer(email_db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    """Customers have an email address and no username."""

    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    username = None  # type: ignore[assignment]


class Member(member_db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    """Members have a username and no email address."""

    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True)
    email = None  # type: ignore[assignment]


#: Mails the apps sent (their FLOWS_MAIL_BACKEND).
SENT: list[Any] = []


def shaped_app(path: Path, db: SQLAlchemy, model: type[Any]) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}",
        SECRET_KEY="x",
        TESTING=True,
        FLOWS_MAIL_BACKEND=SENT.append,
        FLOWS_MAIL_SEND_IN_BACKGROUND=False,
        **FAST_ARGON2,
    )
    db.init_app(app)
    Flows(app, db=db, user_model=model)
    SENT.clear()
    with app.app_context():
        app.extensions["flows"].create_tables()
        install_default_flows(app.extensions["flows"])
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def email_app(tmp_path: Path) -> Iterator[Flask]:
    yield from shaped_app(tmp_path / "customers.sqlite3", email_db, Customer)


@pytest.fixture
def member_app(tmp_path: Path) -> Iterator[Flask]:
    yield from shaped_app(tmp_path / "members.sqlite3", member_db, Member)


def test_create_user_takes_an_email_and_no_username(email_app: Flask) -> None:
    runner = email_app.test_cli_runner()
    refused = runner.invoke(args=["flows", "create-user", "ann", "--password", PASSWORD])
    assert refused.exit_code == 1
    assert "have no username: give --email" in refused.output
    made = runner.invoke(
        args=["flows", "create-user", "--email", "ann@example.com", "--password", PASSWORD]
    )
    assert made.exit_code == 0, made.output
    assert "Created user 'ann@example.com'." in made.output


def test_the_default_flows_log_in_by_email_and_never_show_the_key(email_app: Flask) -> None:
    email_app.test_cli_runner().invoke(
        args=["flows", "create-user", "--email", "ann@example.com", "--password", PASSWORD]
    )
    browser = testing.FlowBrowser(email_app.test_client())
    browser.log_in("ANN@example.com", PASSWORD)
    assert browser.redirect_target == "/"
    settings = browser.get("/flows/-/settings/").text
    assert "Signed in as <strong>ann@example.com</strong>" in settings


def test_the_default_sign_up_asks_for_no_username(email_app: Flask) -> None:
    slug = "default-enrollment-flow"
    browser = testing.FlowBrowser(email_app.test_client())
    page = browser.start(slug).text
    assert 'name="email"' in page
    assert 'name="username"' not in page
    browser.step(slug, email="new@example.com", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.stage_type == "email"


def test_a_username_only_sign_up_asks_for_no_email_and_mails_nothing(member_app: Flask) -> None:
    slug = "default-enrollment-flow"
    browser = testing.FlowBrowser(member_app.test_client())
    page = browser.start(slug).text
    assert 'name="username"' in page
    assert 'name="email"' not in page
    browser.step(slug, username="bo", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.redirect_target == "/"
    assert SENT == []
    assert "Signed in as <strong>bo</strong>" in browser.get("/flows/-/settings/").text
    # With no email link to wait for, a taken username is said at the prompt.
    other = testing.FlowBrowser(member_app.test_client())
    other.start(slug)
    page = other.step(slug, username="BO", password=PASSWORD, password_repeat=PASSWORD)
    assert other.stage_type == "prompt"
    assert "That username is already taken." in page.text


def test_a_username_only_login_offers_no_recovery_it_cannot_give(member_app: Flask) -> None:
    browser = testing.FlowBrowser(member_app.test_client())
    page = browser.start("default-authentication-flow").text
    assert "Forgot" not in page
    assert "default-recovery-flow" not in page
    assert browser.start("default-recovery-flow").status_code == 404
    assert browser.start("default-email-change").status_code == 404
    assert "default-enrollment-flow" in page  # sign-up is still offered


def test_an_operator_sets_a_forgotten_password(member_app: Flask) -> None:
    runner = member_app.test_cli_runner()
    made = runner.invoke(args=["flows", "create-user", "bo", "--password", PASSWORD])
    assert made.exit_code == 0, made.output
    signed_in = testing.FlowBrowser(member_app.test_client())
    signed_in.log_in("bo", PASSWORD)
    assert signed_in.get("/flows/-/settings/").status_code == 200
    result = runner.invoke(args=["flows", "set-password", "BO"], input="new horse battery\n" * 2)
    assert result.exit_code == 0, result.output
    assert "Set the password of 'bo'; 1 session of theirs ended." in result.output
    ended = signed_in.get("/flows/-/settings/")  # that login has ended: off to log in again
    assert ended.status_code == 303
    assert "/flows/-/login/" in ended.headers["Location"]
    old = testing.FlowBrowser(member_app.test_client())
    old.log_in("bo", PASSWORD)
    assert old.stage_type == "identification"  # refused: still asking
    browser = testing.FlowBrowser(member_app.test_client())
    browser.log_in("bo", "new horse battery")
    assert browser.redirect_target == "/"
    missing = runner.invoke(args=["flows", "set-password", "nobody", "--password", PASSWORD])
    assert missing.exit_code == 1
    assert "there is no user 'nobody'" in missing.output


@pytest.mark.parametrize(
    ("password", "refusal"),
    [
        ("short", "Use at least 8 characters."),
        ("password1", "This password is too common"),
        ("   ", "the password must not be empty"),
    ],
)
def test_the_cli_holds_passwords_to_the_default_policy(
    member_app: Flask, password: str, refusal: str
) -> None:
    runner = member_app.test_cli_runner()
    made = runner.invoke(args=["flows", "create-user", "bo", "--password", password])
    assert made.exit_code == 1
    assert refusal in made.output
    runner.invoke(args=["flows", "create-user", "bo", "--password", PASSWORD])
    result = runner.invoke(args=["flows", "set-password", "bo", "--password", password])
    assert result.exit_code == 1
    assert refusal in result.output
    browser = testing.FlowBrowser(member_app.test_client())
    browser.log_in("bo", PASSWORD)  # the old password still holds
    assert browser.redirect_target == "/"


def test_setting_an_inactive_users_password_says_they_still_cannot_log_in(
    member_app: Flask,
) -> None:
    runner = member_app.test_cli_runner()
    runner.invoke(args=["flows", "create-user", "bo", "--password", PASSWORD])
    with member_app.app_context():
        member = member_db.session.scalar(sa.select(Member))
        member.active = False
        member_db.session.commit()
    result = runner.invoke(args=["flows", "set-password", "bo", "--password", "new horse battery"])
    assert result.exit_code == 0, result.output
    assert "The account is inactive: it cannot log in until it is activated." in result.output


def test_the_email_app_keeps_its_recovery_flow(email_app: Flask) -> None:
    page = testing.FlowBrowser(email_app.test_client()).start("default-authentication-flow").text
    assert "default-recovery-flow" in page
