"""An existing app's users log in with the hashes they have, and leave with argon2id.

Before: werkzeug's ``scrypt:``/``pbkdf2:`` hashes (what Flask apps store), passlib's and
bcrypt's were all "invalid": every existing user was locked out. The hashes below were
made by werkzeug here, and by passlib and bcrypt once, for this file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from werkzeug.security import generate_password_hash

from flask_flows import Flow, Flows, PasswordFormat
from flask_flows.extension import FlowsState
from flask_flows.stages.password import WRONG_CREDENTIALS

PASSWORD = "correct horse battery"
#: Made with passlib 1.7 (``pbkdf2_sha512/sha256.using(rounds=1000)``), bcrypt 5 (cost 4)
#: and argon2-cffi (argon2i, cheap parameters), all for PASSWORD.
PASSLIB_PBKDF2_SHA512 = (
    "$pbkdf2-sha512$1000$eU.pdU5p7R1j7F2rVQoh5A$qdMWCGr.Sry1QFqxIXVbE4e82ilqi7FNWlgFcCnNs"
    ".ZpiPr58Ee0F1hEWAhn.s8SWiTlaeKyxh.KwK3wIDhVHw"
)
PASSLIB_PBKDF2_SHA256 = (
    "$pbkdf2-sha256$1000$JyQEwLi31rrX2nsvpbRWig$1o8FZFppkPkY8nT6j4bTq0zUUImRz8U1tiYdGX4f8VU"
)
BCRYPT = "$2b$04$syG7KfNNfL7HJ/iR6mTcl.v0vN7Dr768HWQPsAeb/I93CjKUaWPYi"
ARGON2I = (
    "$argon2i$v=19$m=8,t=1,p=1$8zi2S7kHY7tAIcLfgwdOcg$n1Rlali7dI4tEJXM9Pa667hM790TJmZDWbk1Ej6aS/U"
)

HASHES = {
    "werkzeug-scrypt": lambda: generate_password_hash(PASSWORD),
    "werkzeug-pbkdf2": lambda: generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
    "passlib-pbkdf2-sha512": lambda: PASSLIB_PBKDF2_SHA512,
    "passlib-pbkdf2-sha256": lambda: PASSLIB_PBKDF2_SHA256,
    "bcrypt": lambda: BCRYPT,
    "argon2i": lambda: ARGON2I,
}


def with_hash(app: Flask, make_user: Callable[..., User], password_hash: str) -> None:
    """``alice``, written by the app before flask-flows, with ``password_hash``."""
    alice = make_user("alice", password=None)
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == alice.id).values(password_hash=password_hash)
        )
        db.session.commit()


def stored_hash(app: Flask) -> str:
    with app.app_context():
        return str(db.session.scalar(sa.select(User.password_hash)))


@pytest.mark.parametrize("kind", list(HASHES))
def test_an_existing_user_logs_in_and_is_rehashed_with_argon2id(
    app: Flask, make_user: Callable[..., User], login_flow: Flow, kind: str
) -> None:
    with_hash(app, make_user, HASHES[kind]())
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", "not the password", slug="login")
    assert WRONG_CREDENTIALS in browser.last.text  # type: ignore[union-attr]
    assert not stored_hash(app).startswith("$argon2id$")

    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"
    assert stored_hash(app).startswith("$argon2id$")
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD, slug="login")  # and with the new hash
    assert browser.whoami() == "home: alice"


@pytest.mark.parametrize("kind", ["werkzeug-pbkdf2", "passlib-pbkdf2-sha512", "bcrypt"])
def test_a_miss_on_a_legacy_hash_still_costs_one_argon2_verification(
    app: Flask,
    state: FlowsState,
    make_user: Callable[..., User],
    login_flow: Flow,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    with_hash(app, make_user, HASHES[kind]())
    calls: list[str] = []
    verify = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str, password: str) -> bool:
        calls.append(hash)
        return verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", "not the password", slug="login")
    assert calls == [state.hashing.dummy_hash]


def test_an_app_adds_a_format_of_its_own(app: Flask, flows: Flows, state: FlowsState) -> None:
    """The extension point: a PasswordFormat appended to ``flows.password_formats``."""

    def is_sha256(password_hash: str) -> bool:
        return password_hash.startswith("sha256$")

    def check_sha256(password_hash: str, password: str) -> bool:
        return password_hash == "sha256$" + hashlib.sha256(password.encode()).hexdigest()

    flows.password_formats.append(PasswordFormat("plain-sha256", is_sha256, check_sha256))
    with app.app_context():
        user = state.user_store.create(username="old", email="old@example.com")
        user.password_hash = "sha256$" + hashlib.sha256(PASSWORD.encode()).hexdigest()
        assert not state.user_store.check_password(user, "nope")
        assert state.user_store.check_password(user, PASSWORD)
        assert user.password_hash.startswith("$argon2id$")
        db.session.rollback()
