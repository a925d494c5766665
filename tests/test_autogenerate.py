"""An app's Flask-Migrate autogenerate leaves flask-flows' tables alone, with one line.

Before: ``flask db migrate`` proposed ``drop_table`` for every ``flows_*`` table (they are
in flask-flows' own MetaData, not the app's), and ``flask db upgrade`` ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_flows import Flows, FlowsUserMixin
from flask_flows.autogenerate import include_object

# Flask-Migrate's own env.py template still calls db.get_engine().
pytestmark = pytest.mark.filterwarnings("ignore:'get_engine' is deprecated")

app_db = SQLAlchemy()


class Writer(app_db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "writer"
    id: Mapped[int] = mapped_column(primary_key=True)


class Note(app_db.Model):  # type: ignore[name-defined,misc]
    """The app's change this migration is for: a new table."""

    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    writer_id: Mapped[int] = mapped_column(sa.ForeignKey("writer.id"))


@contextmanager
def logging_kept() -> Iterator[None]:
    """Alembic's env.py runs logging.config.fileConfig(), which replaces the root
    handlers and disables every logger already made (flask-flows' ones included): put
    them back, or the rest of the session's tests see no log records."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {
        name: (logger.disabled, logger.level)
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (disabled, logger_level) in loggers.items():
            logger = logging.getLogger(name)
            logger.disabled = disabled
            logger.setLevel(logger_level)


def autogenerate(tmp_path: Path, hook: Callable[..., bool] | None) -> str:
    """Set up an app with its tables and flask-flows', run Flask-Migrate's ``init`` and
    ``migrate``, and return the migration it wrote."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.sqlite3'}", SECRET_KEY="x"
    )
    app_db.init_app(app)
    Flows(app, db=app_db, user_model=Writer)
    options: dict[str, Any] = {"include_object": hook} if hook else {}
    flask_migrate.Migrate(app, app_db, **options)
    directory = str(tmp_path / "migrations")
    with app.app_context(), logging_kept():
        app_db.create_all()  # the app's tables, as its migration history made them
        app.extensions["flows"].create_tables()
        Note.__table__.drop(app_db.engine)  # the app's new model, not in the database yet
        flask_migrate.init(directory)
        flask_migrate.migrate(directory, message="add notes")
        app_db.engine.dispose()
    (script,) = (tmp_path / "migrations" / "versions").glob("*.py")
    return script.read_text()


def test_without_the_line_autogenerate_would_drop_every_flows_table(tmp_path: Path) -> None:
    script = autogenerate(tmp_path, None)
    assert "op.drop_table('flows_totp_device')" in script


def test_with_the_documented_line_it_leaves_them_alone(tmp_path: Path) -> None:
    script = autogenerate(tmp_path, include_object)
    assert "flows_" not in script
    assert "op.create_table('note'" in script  # the app's own change is still found
