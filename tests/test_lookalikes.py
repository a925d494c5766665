"""Look-alike usernames, through sign-up and login over HTTP.

Before: fullwidth ``ＡＬＩＣＥ``, ``alice`` + U+200B, ``alіce`` with a Cyrillic ``і``, a
right-to-left override, composed and decomposed ``josé``, ``oﬃce`` and ``office`` all
became separate accounts beside the real ones, and on SQLite ``Ärger`` and ``ärger``
both existed, typing one signed in to the other. Now identifiers are compared by one key
(NFKC, case folding) at sign-up and login, names that only look like others are refused,
and the key is unique in the database, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from sqlalchemy.exc import IntegrityError

from flask_flows import Flow, identifiers
from flask_flows.identifiers import MSG_INVISIBLE, MSG_MIXED_SCRIPTS
from flask_flows.stages.prompt_checks import MSG_USERNAME_TAKEN

PASSWORD = "correct horse battery"
SIGNUP_FIELDS = [
    {"field_key": "username", "type": "username"},
    {"field_key": "email", "type": "email"},
    {"field_key": "password", "type": "password", "repeat": True},
]


@pytest.fixture
def signup(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(
        "signup",
        ("prompt", {"fields": SIGNUP_FIELDS}),
        "user_write",
        "user_login",
        designation="enrollment",
    )


def sign_up(app: Flask, username: str, email: str = "new@example.com") -> str:
    browser = FlowBrowser(app.test_client())
    browser.start("signup")
    response = browser.step(
        "signup", username=username, email=email, password=PASSWORD, password_repeat=PASSWORD
    )
    return browser.redirect_target or response.text


def usernames(app: Flask) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(sa.select(User.username)))


@pytest.mark.parametrize(
    ("existing", "typed", "answer"),
    [
        ("alice", "ＡＬＩＣＥ", MSG_USERNAME_TAKEN),
        ("josé", "jose\u0301", MSG_USERNAME_TAKEN),
        ("office", "o\ufb03ce", MSG_USERNAME_TAKEN),
        ("Ärger", "ärger", MSG_USERNAME_TAKEN),
        ("Straße", "STRASSE", MSG_USERNAME_TAKEN),
        ("alice", "alice\u200b", MSG_INVISIBLE),
        ("alice", "\u202eecila", MSG_INVISIBLE),
        ("alice", "al\u0456ce", MSG_MIXED_SCRIPTS),
    ],
    ids=[
        "fullwidth",
        "decomposed",
        "ligature",
        "umlaut-case",
        "sharp-s",
        "zero-width",
        "rtl-override",
        "cyrillic-i",
    ],
)
def test_a_look_alike_of_an_existing_name_is_refused_at_sign_up(
    app: Flask, make_user: Callable[..., User], signup: Flow, existing: str, typed: str, answer: str
) -> None:
    make_user(existing, password=PASSWORD, email="old@example.com")
    page = sign_up(app, typed)
    assert answer in page
    assert usernames(app) == [existing]


def test_names_in_one_script_and_japanese_mixes_are_welcome(app: Flask, signup: Flow) -> None:
    for name, email in [
        ("Ярослав", "a@example.com"),
        ("Ἀθηνᾶ", "b@example.com"),
        ("やまだタロウ山田", "c@example.com"),
        ("zoë-42", "d@example.com"),
    ]:
        assert sign_up(app, name, email) == "/", name
    assert len(usernames(app)) == 4


@pytest.mark.parametrize("typed", ["ＡＬＩＣＥ", "ALICE", "Alice", "ALICE@EXAMPLE.COM"])
def test_login_finds_the_account_by_any_spelling_of_it(
    app: Flask, make_user: Callable[..., User], login_flow: Flow, typed: str
) -> None:
    make_user("alice", password=PASSWORD, email="alice@example.com")
    browser = FlowBrowser(app.test_client())
    browser.log_in(typed, PASSWORD, slug="login")
    assert browser.whoami() == "home: alice"


def test_umlauts_differ_only_in_case_on_sqlite_too(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """SQLite's lower() folds ASCII only, so "ärger" found no "Ärger" there."""
    make_user("Ärger", password=PASSWORD, email="a@example.com")
    browser = FlowBrowser(app.test_client())
    browser.log_in("ärger", PASSWORD, slug="login")
    assert browser.whoami() == "home: Ärger"


def test_the_database_refuses_two_spellings_of_one_name(app: Flask, state: Any) -> None:
    with app.app_context():
        state.user_store.create(username="Ärger", email="a@example.com")
        db.session.commit()
        with pytest.raises(IntegrityError):
            state.user_store.create(username="ärger", email="b@example.com")
        db.session.rollback()
        renamed = state.user_store.create(username="other", email="c@example.com")
        db.session.commit()
        renamed.username = "ÄRGER"  # an update brings its key along too
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_keys() -> None:
    assert identifiers.key("  ＡＬＩＣＥ ") == "alice"
    assert identifiers.key("jose\u0301") == identifiers.key("josé") == "josé"
    assert identifiers.key("Straße") == "strasse"
    assert identifiers.refusal("alice") is None
