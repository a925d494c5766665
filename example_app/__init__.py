"""A small Flask app that uses flask-flows: the code a Flask developer reads first.

Everything flask-flows needs is the one line ``Flows(app, db=db, user_model=User)``;
the rest is ordinary Flask: an app factory, configuration from the environment, and two
pages. Run it with ``flask --app example_app run`` (or ``make run``).

Configuration, in the order it is applied (later wins):

- safe defaults below, and a SQLite file in the instance folder;
- ``DATABASE_URL`` chooses another database (``postgresql://…`` uses psycopg 3);
- any ``FLASK_*`` environment variable sets the key after the prefix, parsed as JSON
  where it can be (``FLASK_FLOWS_ARGON2_TIME_COST=2``, ``FLASK_SESSION_COOKIE_SECURE=true``);
- the ``config`` mapping passed to :func:`create_app` (tests use it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, render_template
from flask_login import current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_flows import Flow, Flows, FlowsUserMixin, get_state
from flask_flows.blueprints import install_default_flows

db = SQLAlchemy()


class User(db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    """The app's own user table; the mixin adds username, email, password_hash, active."""

    __tablename__ = "example_user"

    id: Mapped[int] = mapped_column(primary_key=True)


def create_app(
    config: Mapping[str, Any] | None = None, *, instance_path: str | None = None
) -> Flask:
    """Build the example app; ``instance_path`` moves the SQLite file and the secret key."""
    app = Flask(__name__, instance_path=instance_path)
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url(app.instance_path),
        # Flask already sets HttpOnly; Lax keeps the session cookie off cross-site POSTs.
        SESSION_COOKIE_SAMESITE="Lax",
        # Off so the app works on http://localhost; set FLASK_SESSION_COOKIE_SECURE=true
        # behind HTTPS.
        SESSION_COOKIE_SECURE=False,
        FLOWS_BRAND_NAME="flask-flows example",
    )
    app.config.from_prefixed_env()
    app.config.update(config or {})
    # With no mail server configured, sign-up and recovery mails are printed to the
    # terminal so the links can be followed; with FLASK_FLOWS_MAIL_SERVER set they go
    # there, and working links never reach the terminal or its logs.
    if not app.config.get("FLOWS_MAIL_SERVER"):
        app.config.setdefault("FLOWS_MAIL_BACKEND", "console")
    # Mailed links and passkeys are bound to this address, never to a request's Host
    # header (which a client can forge): where `make run` serves, by name, as passkeys
    # need a domain (not 127.0.0.1). Deployments set FLASK_FLOWS_MAIL_BASE_URL (or
    # FLASK_SERVER_NAME) to their public address.
    if not app.config.get("SERVER_NAME"):
        app.config.setdefault("FLOWS_MAIL_BASE_URL", "http://localhost:5000")
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(Path(app.instance_path))

    db.init_app(app)
    Flows(app, db=db, user_model=User)

    with app.app_context():
        prepare_database()

    register_pages(app)
    return app


def database_url(instance_path: str) -> str:
    """``DATABASE_URL`` if set (with the psycopg 3 driver for PostgreSQL), else SQLite."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{Path(instance_path, 'example.sqlite3')}"
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def instance_secret_key(instance: Path) -> str:
    """The key in ``instance/secret_key``, made on first start; never one in the code.

    The key is written to a private (0600) temporary file and then hard-linked into
    place, which fails if the file exists: workers starting at once all end up reading
    the same complete key, and other users of the machine cannot read it.
    """
    path = instance / "secret_key"
    if not path.exists():
        draft = instance / f".secret_key.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            draft.unlink()
    return path.read_text().strip()


def prepare_database() -> None:
    """Create the tables, and the default flows when the database has no flow yet.

    Later starts cost SQLAlchemy's table checks and one query, and flows edited or
    deleted on purpose are left as they are (``flask flows init`` adds missing defaults,
    ``--restore`` puts back edited ones).
    """
    state = get_state()
    state.create_tables()
    if db.session.scalar(sa.select(Flow.id).limit(1)) is None:
        install_default_flows(state)
        db.session.commit()


def register_pages(app: Flask) -> None:
    @app.get("/")
    def home() -> str:
        """Says who is logged in, with links into the login and logout flows."""
        return render_template("home.html")

    @app.get("/account")
    @login_required
    def account() -> str:
        """Anonymous visitors are sent to the login flow, and come back here after it."""
        return render_template("account.html", user=current_user)


def __getattr__(name: str) -> Flask:
    """``example_app.app`` for ``flask --app example_app`` and WSGI servers.

    It is built on first access rather than at import, so importing ``create_app``
    (as the tests do) creates no instance folder, key file or database.
    """
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
