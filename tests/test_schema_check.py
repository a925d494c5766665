"""An existing app's user table, checked: ``flask flows check`` (and ``init``) say exactly
which columns flask-flows needs and how to add them, then fill the lookup keys.

Before: ``flask flows init`` printed "tables ready" over a user table that lacked
``active``, ``is_superuser`` and the keys, and the app then failed with ``no such column``
at the first login; the mixin's NOT NULL columns had no server default, so they could not
even be added to a table with rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from factory import FAST_ARGON2
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import generate_password_hash

from flask_flows import Flow, Flows, FlowStageBinding, FlowsUserMixin, Stage, testing

PASSWORD = "correct horse battery"
existing_db = SQLAlchemy()


class Member(existing_db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    """The app's model, with flask-flows' mixin added; its table predates the mixin."""

    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)


#: The table as the app had it: its users, with werkzeug hashes, before flask-flows.
BEFORE = """
CREATE TABLE member (
    id INTEGER PRIMARY KEY,
    username VARCHAR(64) NOT NULL UNIQUE,
    email VARCHAR(254) UNIQUE,
    password_hash VARCHAR(256)
)
"""


@pytest.fixture
def existing_app(tmp_path: Path) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'existing.sqlite3'}",
        SECRET_KEY="x",
        TESTING=True,
        **FAST_ARGON2,
    )
    existing_db.init_app(app)
    Flows(app, db=existing_db, user_model=Member)
    with app.app_context(), existing_db.engine.begin() as connection:
        connection.exec_driver_sql(BEFORE)
        for name in ("ann", "bob"):
            connection.execute(
                sa.text("INSERT INTO member (username, email, password_hash) VALUES (:u, :e, :h)"),
                {"u": name, "e": f"{name}@example.com", "h": generate_password_hash(PASSWORD)},
            )
    yield app
    with app.app_context():
        existing_db.engine.dispose()


def flows_command(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["flows", *args])


def test_init_refuses_a_user_table_without_the_columns_and_says_how_to_add_them(
    existing_app: Flask,
) -> None:
    result = flows_command(existing_app, "init")
    assert result.exit_code == 1
    assert "tables ready" not in result.output
    for column in ("active", "is_superuser", "username_key", "email_key"):
        assert f"column member.{column} is missing" in result.output
    assert "op.add_column('member', sa.Column('active', sa.Boolean()" in result.output
    assert "op.create_index('ix_member_username_key', 'member', ['username_key'], unique=True)" in (
        result.output
    )


def test_following_the_check_makes_existing_users_log_in(existing_app: Flask) -> None:
    output = flows_command(existing_app, "check").output
    statements = re.findall(r"SQL: (.+)", output)
    assert len(statements) == 6  # four columns, two unique indexes
    with existing_app.app_context(), existing_db.engine.begin() as connection:
        for statement in statements:  # the SQL the check printed, as an operator runs it
            connection.exec_driver_sql(statement)

    result = flows_command(existing_app, "check")
    assert result.exit_code == 1
    assert "2 users have no username_key" in result.output
    assert "flask flows check --fix" in result.output
    result = flows_command(existing_app, "check", "--fix")
    assert "filled the lookup keys of 2 users" in result.output
    assert "no username_key" not in result.output
    result = flows_command(existing_app, "init")  # the flows' own tables, and all is well
    assert result.exit_code == 0, result.output
    assert "tables ready" in result.output
    assert flows_command(existing_app, "check").exit_code == 0

    with existing_app.app_context():
        flow = Flow(slug="login", name="login", title="Log in", designation="authentication")
        for order, kind in enumerate(("identification", "password", "user_login")):
            stage = Stage(name=f"login-{kind}", type=kind, config={})
            flow.bindings.append(FlowStageBinding(stage=stage, order=(order + 1) * 10))
        existing_db.session.add(flow)
        existing_db.session.commit()
    browser = testing.FlowBrowser(existing_app.test_client())
    browser.log_in("ANN", PASSWORD, slug="login")
    assert browser.redirect_target == "/"
    with existing_app.app_context():
        ann = existing_db.session.scalar(sa.select(Member).where(Member.username == "ann"))
        assert ann is not None and ann.password_hash.startswith("$argon2id$")


def test_sign_up_offers_no_more_characters_than_the_model_stores(existing_app: Flask) -> None:
    with existing_app.app_context():
        existing_db.drop_all()
        existing_db.create_all()
        existing_app.extensions["flows"].create_tables()
        flow = Flow(slug="join", name="join", title="Join", designation="enrollment")
        stage = Stage(
            name="join-prompt",
            type="prompt",
            config={"fields": [{"field_key": "username", "type": "username"}]},
        )
        flow.bindings.append(FlowStageBinding(stage=stage, order=10))
        existing_db.session.add(flow)
        existing_db.session.commit()
    browser = testing.FlowBrowser(existing_app.test_client())
    page = browser.start("join").text
    assert 'maxlength="64"' in page
    refused = browser.step("join", username="x" * 65)
    assert browser.stage_type == "prompt"
    assert "Use at most 64 characters." in refused.text


def test_fix_refuses_two_users_that_would_share_a_key(existing_app: Flask) -> None:
    """ "Ann" and "ann" could both exist before the keys; filling them would make one
    account of two, so --fix names the clash instead of choosing."""
    output = flows_command(existing_app, "check").output
    with existing_app.app_context(), existing_db.engine.begin() as connection:
        for statement in re.findall(r"SQL: (.+)", output):
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(
            "INSERT INTO member (username, email, active, is_superuser) VALUES ('ANN', NULL, 1, 0)"
        )
    result = flows_command(existing_app, "check", "--fix")
    assert result.exit_code == 1
    assert "two users would share a lookup key" in result.output
    assert "Traceback" not in result.output
