"""The user_write stage through HTTP: creating and updating users from prompt data, in
one transaction, with one clear error when two sign-ups race for the same username."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, GroupMembership, identifiers, signals
from flask_flows.stages.user_write import (
    MSG_EMAIL_TAKEN,
    MSG_NO_USER,
    MSG_USERNAME_TAKEN,
    UserWriteStage,
    identifier_lock,
)

OLD = "correct horse battery"
NEW = "a brand new passphrase"

SIGNUP_FIELDS = [
    {"field_key": "username", "type": "username"},
    {"field_key": "email", "type": "email"},
    {"field_key": "password", "type": "password", "repeat": True},
]
NEW_PASSWORD_FIELDS = [{"field_key": "password", "type": "password", "repeat": True}]


def sign_up(browser: FlowBrowser, slug: str = "signup", **fields: Any) -> TestResponse:
    values = {
        "username": "bob",
        "email": "bob@example.com",
        "password": NEW,
        "password_repeat": NEW,
        **fields,
    }
    browser.start(slug)
    return browser.step(slug, **values)


def users(app: Flask) -> list[User]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(User).order_by(User.id)))
        db.session.expunge_all()
        return rows


@contextmanager
def recording(app: Flask, *watched: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for signal in watched:

        def receiver(sender: Any, _name: str = signal.name, **kwargs: Any) -> None:
            events.append((_name, kwargs))

        signal.connect(receiver, sender=app)
        receivers.append((signal, receiver))
    try:
        yield events
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver, sender=app)


def signup_flow(make_flow: Callable[..., Flow], *after: Any, **write: Any) -> Flow:
    return make_flow(
        "signup",
        ("prompt", {"fields": SIGNUP_FIELDS}),
        ("user_write", write),
        *(after or ("user_login",)),
        designation="enrollment",
    )


# -- creating -----------------------------------------------------------------------------


def test_sign_up_creates_the_user_and_logs_them_in(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    signup_flow(make_flow)
    with recording(app, signals.user_created, signals.password_changed) as events:
        response = sign_up(browser)
    assert browser.redirect_target == "/", response.text
    (user,) = users(app)
    assert (user.username, user.email, user.active) == ("bob", "bob@example.com", True)
    assert user.password_hash and PasswordHasher().verify(user.password_hash, NEW)
    assert browser.whoami() == "home: bob"
    assert [name for name, _ in events] == ["user-created"]
    assert events[0][1]["user"].username == "bob"


def test_users_can_be_created_inactive_and_in_a_group(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    signup_flow(make_flow, create_users_as_inactive=True, create_users_group="members")
    response = sign_up(browser)
    assert response.status_code == (200 if browser.htmx else 403)
    assert "This account is disabled." in response.text
    (user,) = users(app)
    assert user.active is False
    with app.app_context():
        assert app.extensions["flows"].user_store.group_names(db.session.get(User, user.id)) == {
            "members"
        }
    assert browser.whoami() == "home: anonymous"


def test_attribute_mapping_writes_other_prompt_keys(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    fields = [
        {"field_key": "handle", "type": "username"},
        {"field_key": "contact", "type": "email"},
    ]
    make_flow(
        "signup",
        ("prompt", {"fields": fields}),
        ("user_write", {"attribute_mapping": {"handle": "username", "contact": "email"}}),
        designation="enrollment",
    )
    browser.start("signup")
    browser.step("signup", handle="dora", contact="dora@example.com")
    (user,) = users(app)
    assert (user.username, user.email, user.password_hash) == ("dora", "dora@example.com", None)


@pytest.mark.parametrize("attribute", ["id", "is_superuser", "active", "password_hash", "_x"])
def test_protected_attributes_cannot_be_mapped(attribute: str) -> None:
    config = {"attribute_mapping": {"anything": attribute}}
    with pytest.raises(ConfigError, match="cannot be written"):
        UserWriteStage().check_config(config, "stage 'w' (user_write)")


def test_never_create_without_a_user_is_refused(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    signup_flow(make_flow, user_creation_mode="never_create")
    response = sign_up(browser)
    assert response.status_code == (200 if browser.htmx else 403)
    assert MSG_NO_USER in response.text
    assert users(app) == []


# -- updating -------------------------------------------------------------------------------


def test_password_change_updates_the_hash_and_ends_other_sessions(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    make_flow: Callable[..., Flow],
) -> None:
    make_user("alice", password=OLD)
    make_flow(
        "change",
        ("prompt", {"fields": NEW_PASSWORD_FIELDS}),
        "user_write",
        designation="stage_configuration",
        authentication="require_authenticated",
    )
    elsewhere = FlowBrowser(app.test_client(), htmx=browser.htmx)
    elsewhere.log_in("alice", OLD, slug="login")
    browser.log_in("alice", OLD, slug="login")
    assert elsewhere.whoami() == browser.whoami() == "home: alice"

    with recording(app, signals.password_changed, signals.user_created) as events:
        browser.start("change")
        browser.step("change", password=NEW, password_repeat=NEW)
    assert browser.redirect_target == "/"
    (user,) = users(app)
    assert PasswordHasher().verify(user.password_hash, NEW)  # type: ignore[arg-type]
    assert [name for name, _ in events] == ["password-changed"]
    assert browser.whoami() == "home: alice"
    assert elsewhere.whoami() == "home: anonymous"


def test_other_sessions_may_be_kept(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    make_flow: Callable[..., Flow],
) -> None:
    make_user("alice", password=OLD)
    make_flow(
        "change",
        ("prompt", {"fields": NEW_PASSWORD_FIELDS}),
        ("user_write", {"terminate_other_sessions_on_password_change": False}),
    )
    elsewhere = FlowBrowser(app.test_client(), htmx=browser.htmx)
    elsewhere.log_in("alice", OLD, slug="login")
    browser.log_in("alice", OLD, slug="login")
    assert browser.whoami() == "home: alice"
    browser.start("change")
    browser.step("change", password=NEW, password_repeat=NEW)
    assert elsewhere.whoami() == "home: alice"


def test_a_profile_update_changes_username_and_email(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    make_flow: Callable[..., Flow],
) -> None:
    make_user("alice", password=OLD)
    fields = [
        {"field_key": "username", "type": "username", "initial_value": "user.username"},
        {"field_key": "email", "type": "email", "initial_value": "user.email"},
    ]
    make_flow("profile", ("prompt", {"fields": fields}), "user_write")
    browser.log_in("alice", OLD, slug="login")
    browser.start("profile")
    browser.step("profile", username="alicia", email="alicia@example.com")
    (user,) = users(app)
    assert (user.username, user.email) == ("alicia", "alicia@example.com")
    assert PasswordHasher().verify(user.password_hash, OLD)  # type: ignore[arg-type]


# -- failures -----------------------------------------------------------------------------


def test_a_failed_write_keeps_nothing_and_says_why(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
) -> None:
    make_user("carol", email="shared@example.com")
    signup_flow(make_flow, create_users_group="members")
    response = sign_up(browser, email="shared@example.com")
    assert response.status_code == 200
    assert browser.stage_type == "user_write"
    assert MSG_EMAIL_TAKEN in response.text
    assert [u.username for u in users(app)] == ["carol"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(GroupMembership)) == 0
    assert browser.whoami() == "home: anonymous"


def test_a_sign_up_waits_for_a_parallel_write_of_the_name_in_another_case(
    app: Flask, make_flow: Callable[..., Flow]
) -> None:
    """Deterministic form of the race below: another transaction is writing "Bob" (and,
    on PostgreSQL, holds the name's lock as user_write does) when "bob" is written. The
    sign-up must wait for it, then see it, however the unique constraint compares."""
    signup_flow(make_flow)
    browser = FlowBrowser(app.test_client())
    responses: list[TestResponse] = []
    with app.app_context():
        engine = db.engine
    with engine.connect() as other:
        transaction = other.begin()
        if engine.dialect.name == "postgresql":
            key = identifier_lock("username", "Bob")
            other.execute(
                sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0)))
            )
        # What another process's ORM write sends (the keys come with every user write).
        other.execute(
            sa.insert(User).values(
                username="Bob",
                email="other@example.com",
                username_key=identifiers.key("Bob"),
                email_key=identifiers.key("other@example.com"),
                active=True,
            )
        )
        thread = threading.Thread(target=lambda: responses.append(sign_up(browser)))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the sign-up did not wait for the other write"
        transaction.commit()
    thread.join(timeout=30)
    assert len(responses) == 1
    assert MSG_USERNAME_TAKEN in responses[0].text
    assert [u.username for u in users(app)] == ["Bob"]


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        ("username", ("bob", "bob"), MSG_USERNAME_TAKEN),
        ("username", ("Bob", "bOB"), MSG_USERNAME_TAKEN),
        ("email", ("Bob@Example.com", "bob@example.COM"), MSG_EMAIL_TAKEN),
    ],
    ids=["same", "username-other-case", "email-other-case"],
)
def test_two_sign_ups_racing_for_one_username_make_one_user(
    app: Flask,
    make_flow: Callable[..., Flow],
    field: str,
    values: tuple[str, str],
    message: str,
) -> None:
    # A dummy stage between prompt and write lets both pass the prompt's own check first.
    make_flow(
        "signup",
        ("prompt", {"fields": SIGNUP_FIELDS}),
        "dummy",
        "user_write",
        designation="enrollment",
    )
    browsers = [FlowBrowser(app.test_client()) for _ in range(2)]
    for index, browser in enumerate(browsers):
        # Each differs in the other field, so only `field` can clash.
        other = {"username": f"bob{index}", "email": f"bob{index}@example.com"}
        sign_up(browser, **{**other, field: values[index]})
        assert browser.stage_type == "dummy"

    barrier = threading.Barrier(2)
    responses: list[TestResponse] = []

    def submit(browser: FlowBrowser) -> None:
        barrier.wait()
        browser.submit("signup")
        responses.append(browser.settle())  # the page each person then sees

    threads = [threading.Thread(target=submit, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(responses) == 2
    assert len(users(app)) == 1
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 303]
    (refused,) = [r for r in responses if r.status_code == 200]
    assert message in refused.text
