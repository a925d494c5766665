"""The peer: Flask-Security-Too's login form on its own app, models and database.

Same argon2id parameters as flask-flows, given to passlib through
``SECURITY_PASSWORD_HASH_PASSLIB_OPTIONS`` (FST 5.x; ``SECURITY_PASSWORD_HASH_OPTIONS``
is the pre-passlib-1.7 way and argon2 ignores it). Everything else is FST's default,
including its HMAC pre-hash of the password (``SECURITY_PASSWORD_SINGLE_HASH``), which
costs microseconds.
"""

from __future__ import annotations

from typing import Any

from common import PASSWORD, SECRET_KEY
from flask import Flask
from flask_security import Security, SQLAlchemyUserDatastore, auth_required, hash_password
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
    pass


class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
    pass


# FST's user model refers to this one whenever the `webauthn` package is installed (a
# dependency of flask-flows): its documented models, unused by the password login.
class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):  # type: ignore[name-defined,misc]
    pass


EMAIL = "alice@example.com"


def fst_app(database_url: str, profile: dict[str, int]) -> Flask:
    """FST with one user; ``/protected`` answers 200 only to a logged-in user."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=database_url,
        SECURITY_PASSWORD_SALT="bench-salt",  # noqa: S106
        SECURITY_PASSWORD_HASH="argon2",  # noqa: S106
        SECURITY_PASSWORD_HASH_PASSLIB_OPTIONS={
            "argon2__type": "ID",
            "argon2__rounds": profile["time_cost"],
            "argon2__memory_cost": profile["memory_cost"],
            "argon2__parallelism": profile["parallelism"],
        },
        SECURITY_POST_LOGIN_VIEW="/",
    )
    db.init_app(app)
    app.security = Security(app, SQLAlchemyUserDatastore(db, User, Role))  # type: ignore[attr-defined]

    @app.route("/")
    def home() -> str:
        return "home"

    @app.route("/protected")
    @auth_required()
    def protected() -> str:
        return "protected"

    with app.app_context():
        db.create_all()
        app.security.datastore.create_user(email=EMAIL, password=hash_password(PASSWORD))  # type: ignore[attr-defined]
        db.session.commit()
        stored = db.session.scalar(db.select(User.password))
    expected = "m={memory_cost},t={time_cost},p={parallelism}".format(**profile)
    assert stored.startswith("$argon2id$") and expected in stored, stored
    return app


def stored_hash(app: Flask) -> Any:
    with app.app_context():
        return db.session.scalar(db.select(User.password))
