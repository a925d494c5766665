"""User models of other shapes: users that log in by email and have no username.

Before: only undocumented tricks made such a model work (``username = None`` and a login
flow of one's own whose slug sorted first): the default login flow raised on
``username``, sign-up asked for one, ``flask flows create-user`` required one, and the
settings page called the user by their primary key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from factory import FAST_ARGON2
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_flows import Flows, FlowsUserMixin, testing
from flask_flows.blueprints import install_default_flows

PASSWORD = "correct horse battery"
email_db = SQLAlchemy()


class Customer(email_db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    """Customers have an email address and no username."""

    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    username = None  # type: ignore[assignment]


@pytest.fixture
def email_app(tmp_path: Path) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'customers.sqlite3'}",
        SECRET_KEY="x",
        TESTING=True,
        FLOWS_MAIL_BACKEND=lambda message: None,
        FLOWS_MAIL_SEND_IN_BACKGROUND=False,
        **FAST_ARGON2,
    )
    email_db.init_app(app)
    Flows(app, db=email_db, user_model=Customer)
    with app.app_context():
        app.extensions["flows"].create_tables()
        install_default_flows(app.extensions["flows"])
    yield app
    with app.app_context():
        email_db.engine.dispose()


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
