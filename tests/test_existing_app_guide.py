"""docs/existing-app.md, followed on an existing app: an app factory with Flask-SQLAlchemy,
Flask-Migrate and Flask-Login, its own migration history, users whose passwords Werkzeug
hashed, and posts that refer to them. The guide's files replace the app's, its commands
run through the real ``flask`` command, and then: the CLI works, the app's autogenerate
leaves flask-flows' tables alone, the users log in and their hashes become argon2id, and
a user with posts deletes their account through the documented hook.

Before: adoption took 11 to 14 manual steps on such apps, two of them traps (the next
autogenerate dropped every flows table; existing users could not log in).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from guides import DOCS, app_files, importable, write_files

from flask_flows import testing

GUIDE = DOCS / "existing-app.md"
COMMAND = re.compile(r"^\$ (flask .*)$", re.MULTILINE)
FLASK = Path(sys.executable).with_name("flask")

#: The app before flask-flows, as such apps are written (the Flask Mega-Tutorial's shape).
BEFORE = {
    "yourapp/extensions.py": """
        from flask_login import LoginManager
        from flask_migrate import Migrate
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy()
        migrate = Migrate()
        login = LoginManager()
    """,
    "yourapp/models.py": """
        import sqlalchemy as sa
        from flask_login import UserMixin
        from sqlalchemy.orm import Mapped, mapped_column, relationship
        from werkzeug.security import check_password_hash, generate_password_hash

        from .extensions import db, login


        class User(UserMixin, db.Model):
            id: Mapped[int] = mapped_column(primary_key=True)
            username: Mapped[str] = mapped_column(sa.String(64), index=True, unique=True)
            email: Mapped[str] = mapped_column(sa.String(120), index=True, unique=True)
            password_hash: Mapped[str | None] = mapped_column(sa.String(256))
            posts: Mapped[list["Post"]] = relationship(back_populates="author")

            def set_password(self, password):
                self.password_hash = generate_password_hash(password)

            def check_password(self, password):
                return check_password_hash(self.password_hash, password)


        class Post(db.Model):
            id: Mapped[int] = mapped_column(primary_key=True)
            body: Mapped[str] = mapped_column(sa.String(140))
            user_id: Mapped[int] = mapped_column(sa.ForeignKey(User.id), index=True)
            author: Mapped[User] = relationship(back_populates="posts")


        @login.user_loader
        def load_user(user_id):
            return db.session.get(User, int(user_id))
    """,
    "yourapp/__init__.py": """
        from flask import Flask, redirect, request
        from flask_login import current_user, login_user

        from .extensions import db, login, migrate


        def create_app():
            app = Flask(__name__)
            app.config.from_prefixed_env()
            db.init_app(app)
            migrate.init_app(app, db)
            login.init_app(app)
            login.login_view = "log_in"

            from .models import User

            @app.route("/login", methods=["GET", "POST"])
            def log_in():
                user = db.session.scalar(db.select(User).filter_by(username=request.form["u"]))
                if user is None or not user.check_password(request.form["p"]):
                    return "no", 400
                login_user(user)
                return redirect("/")

            @app.route("/")
            def index():
                return f"home: {current_user.username if current_user.is_authenticated else '-'}"

            return app
    """,
}

#: Users and posts made by the app before flask-flows, with Werkzeug's hashes.
SEED = """
from yourapp import create_app
from yourapp.extensions import db
from yourapp.models import Post, User

app = create_app()
with app.app_context():
    for name, password in [("alice", "alice's old password"), ("Bob", "bob's old password")]:
        user = User(username=name, email=f"{name.lower()}@example.com")
        user.set_password(password)
        db.session.add(user)
    db.session.flush()
    alice, bob = db.session.scalars(db.select(User).order_by(User.id))
    db.session.add_all([Post(body="hello", author=alice), Post(body="hi", author=alice)])
    db.session.add(Post(body="bob's", author=bob))
    db.session.commit()
"""


@pytest.fixture
def yourapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app before flask-flows, with its migration history and its users."""
    write_files(tmp_path, {name: textwrap.dedent(code).lstrip() for name, code in BEFORE.items()})
    environment = {
        "FLASK_SECRET_KEY": "an existing app's secret",
        "FLASK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.sqlite3'}",
        "FLASK_FLOWS_MAIL_BASE_URL": "https://app.example.com",
        "FLASK_FLOWS_MAIL_SERVER": "smtp.example.com",  # as the guide sets it; never reached
        "FLASK_FLOWS_ARGON2_TIME_COST": "1",
        "FLASK_FLOWS_ARGON2_MEMORY_COST": "8",
        "FLASK_FLOWS_ARGON2_PARALLELISM": "1",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for command in ("db init", "db migrate -m users-and-posts", "db upgrade"):
        flask(*f"--app yourapp {command}".split())
    run([sys.executable, "-c", SEED])
    with importable(tmp_path):
        yield tmp_path


def run(command: list[str]) -> str:
    done = subprocess.run(  # noqa: S603 (our own interpreter and flask)
        command, capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def flask(*args: str) -> str:
    return run([str(FLASK), *args])


def follow_the_guide(root: Path) -> list[str]:
    """Write the guide's files over the app's, run its commands; their outputs."""
    files = app_files(GUIDE.name)
    assert sorted(files) == sorted(BEFORE)
    write_files(root, files)
    commands = COMMAND.findall(GUIDE.read_text())
    assert commands == [
        'flask --app yourapp db migrate -m "flask-flows columns on the user table"',
        "flask --app yourapp db upgrade",
        "flask --app yourapp flows init",
    ]
    return [flask(*shlex.split(command)[1:]) for command in commands]


def newest_migration(root: Path) -> str:
    scripts = sorted((root / "migrations" / "versions").glob("*.py"), key=os.path.getmtime)
    return scripts[-1].read_text()


def create_app() -> Any:
    import yourapp  # type: ignore[import-not-found]

    app = yourapp.create_app()
    app.config["TESTING"] = True
    return app


def test_following_the_guide_keeps_the_app_its_users_and_its_migrations(
    yourapp: Path,
) -> None:
    migrate_output, _upgrade, init_output = follow_the_guide(yourapp)

    # The app's migration adds flask-flows' columns to its user table, and nothing else.
    migration = newest_migration(yourapp)
    for column in ("active", "is_superuser", "username_key", "email_key"):
        assert f"sa.Column('{column}'" in migration
    assert "flows_" not in migration
    assert "drop_table" not in migration
    assert "flask-flows: filled the lookup keys of 2 users" in init_output
    assert "flask-flows: tables ready" in init_output

    # The app's CLI has both command groups, and autogenerate now finds nothing to do,
    # with flask-flows' tables (and their version table) in the database.
    help_text = flask("--app", "yourapp", "--help")
    assert re.search(r"^\s+db\s", help_text, re.MULTILINE)
    assert re.search(r"^\s+flows\s", help_text, re.MULTILINE)
    assert "No changes in schema detected." in flask("--app", "yourapp", "db", "migrate")
    assert (
        "flows_flow"
        in sa.inspect(
            sa.create_engine(os.environ["FLASK_SQLALCHEMY_DATABASE_URI"])
        ).get_table_names()
    )

    app = create_app()
    from yourapp.extensions import db
    from yourapp.models import Post, User

    # Existing users log in with their old passwords (Bob by his email, in capitals),
    # and their Werkzeug hashes become argon2id.
    with app.app_context():
        assert db.session.scalar(
            sa.select(User.password_hash).filter_by(username="alice")
        ).startswith("scrypt:")
    alice = testing.FlowBrowser(app.test_client())
    alice.log_in("alice", "alice's old password")
    assert alice.redirect_target == "/"
    assert alice.get("/").text == "home: alice"
    bob = testing.FlowBrowser(app.test_client())
    bob.log_in("BOB@EXAMPLE.COM", "bob's old password")
    assert bob.get("/").text == "home: Bob"
    with app.app_context():
        hashes = db.session.scalars(sa.select(User.password_hash).order_by(User.id)).all()
    assert all(h.startswith("$argon2id$") for h in hashes)

    # Alice, who has posts, deletes her account: the guide's receiver removes them.
    slug = "default-unenrollment-flow"
    alice.start(slug)
    alice.step(slug, password="alice's old password")
    alice.step(slug, confirm="y")
    assert alice.get("/").text == "home: anonymous"
    with app.app_context():
        assert db.session.scalars(sa.select(User.username)).all() == ["Bob"]
        assert db.session.scalars(sa.select(Post.body)).all() == ["bob's"]
        db.engine.dispose()
