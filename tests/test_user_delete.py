"""The user_delete stage through HTTP: the user and every row flask-flows holds for them
go, in one transaction, and the browser is logged out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import Flow, FlowsModel, PolicyBinding, signals
from flask_flows.config import DEFAULT_CONTACT
from flask_flows.devices import StaticDevice, StaticToken, TOTPDevice
from flask_flows.extension import FlowsState
from flask_flows.reputation import Reputation, record_failure, user_key
from flask_flows.stages.user_delete import (
    MSG_NO_USER,
    MSG_NOT_DELETED,
    MSG_STILL_REFERENCED,
)

PASSWORD = "correct horse battery"


def unenroll(browser: FlowBrowser) -> TestResponse:
    browser.start("unenroll")
    return browser.step("unenroll", password=PASSWORD)


def rows_of(app: Flask, user_id: str) -> dict[str, int]:
    """Rows per flask-flows table that belong to ``user_id`` (directly or via a device)."""
    counts: dict[str, int] = {}
    with app.app_context():
        for table in FlowsModel.metadata.sorted_tables:
            if "user_id" in table.c:
                query = sa.select(sa.func.count()).where(table.c.user_id == user_id)
                counts[table.name] = db.session.scalar(query.select_from(table))
        owned_devices = sa.select(StaticDevice.id).where(StaticDevice.user_id == user_id)
        counts[StaticToken.__tablename__] = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(StaticToken)
            .where(StaticToken.device_id.in_(owned_devices))
        )
    return {name: count for name, count in counts.items() if count}


@pytest.fixture
def unenroll_flow(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(
        "unenroll",
        "password",
        "user_delete",
        designation="unenrollment",
        authentication="require_authenticated",
    )


def give_everything(app: Flask, state: FlowsState, user_id: int, other_flow: Flow) -> None:
    """Group membership, devices with recovery codes and a policy binding naming the user."""
    with app.app_context():
        user = db.session.get(User, user_id)
        state.user_store.add_to_group(user, "members")
        db.session.add(TOTPDevice(user_id=str(user_id), secret="JBSWY3DPEHPK3PXP"))
        device = StaticDevice(user_id=str(user_id))
        db.session.add(device)
        db.session.flush()
        db.session.add(StaticToken(device_id=device.id, lookup="abcd", secret_hash="x"))
        db.session.add(PolicyBinding(flow_id=other_flow.id, user_id=str(user_id), order=99))
        db.session.commit()


@pytest.fixture
def watch_deletions(app: Flask) -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        events.append(kwargs)

    signals.user_deleted.connect(receiver, sender=app)
    yield events
    signals.user_deleted.disconnect(receiver, sender=app)


def test_deleting_removes_every_row_and_logs_out(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
    unenroll_flow: Flow,
    watch_deletions: list[dict[str, Any]],
) -> None:
    alice = make_user("alice", password=PASSWORD)
    bob = make_user("bob", password=PASSWORD)
    members_only = make_flow("members-only", "dummy")
    for user in (alice, bob):
        give_everything(app, state, user.id, members_only)
    elsewhere = FlowBrowser(app.test_client(), htmx=browser.htmx)
    elsewhere.log_in("alice", PASSWORD, slug="login")
    assert elsewhere.whoami() == "home: alice"
    browser.log_in("alice", PASSWORD, slug="login")
    FlowBrowser(app.test_client()).log_in("bob", PASSWORD, slug="login")
    before = rows_of(app, str(alice.id))
    assert set(before) >= {
        "flows_authenticated_session",
        "flows_group_membership",
        "flows_totp_device",
        "flows_static_device",
        "flows_static_token",
        "flows_policy_binding",
    }

    unenroll(browser)
    assert browser.redirect_target == "/"

    with app.app_context():
        assert db.session.get(User, alice.id) is None
    assert rows_of(app, str(alice.id)) == {}
    assert rows_of(app, str(bob.id)) == {**before, "flows_authenticated_session": 1}
    assert browser.client.get("/").text == "home: anonymous"
    assert elsewhere.client.get("/").text == "home: anonymous"
    assert watch_deletions == [{"user_id": str(alice.id)}]


def test_deleting_forgets_the_reputation_of_the_user_identifiers(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    unenroll_flow: Flow,
) -> None:
    """Their own rows, and those their username and email got before the account
    existed; another account's rows stay."""
    alice = make_user("Alice", password=PASSWORD)
    bob = make_user("bob", password=PASSWORD)
    with app.test_request_context(environ_base={"REMOTE_ADDR": "203.0.113.7"}):
        for key in ("name:alice", "name:alice@example.com", user_key(alice.id), user_key(bob.id)):
            record_failure(state, key, "203.0.113.7")
    browser.log_in("Alice", PASSWORD, slug="login")
    unenroll(browser)
    assert browser.redirect_target == "/"
    with app.app_context():
        left = set(db.session.scalars(sa.select(Reputation.identifier)))
    assert left == {user_key(bob.id)}


def test_a_refused_deletion_keeps_everything(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    unenroll_flow: Flow,
    watch_deletions: list[dict[str, Any]],
) -> None:
    alice = make_user("alice", password=PASSWORD)
    elsewhere = FlowBrowser(app.test_client())
    elsewhere.log_in("alice", PASSWORD, slug="login")
    browser.log_in("alice", PASSWORD, slug="login")

    def refuse(mapper: Any, connection: Any, target: Any) -> None:
        # What the app's own foreign key to its users would do.
        raise sa.exc.IntegrityError("DELETE FROM app_user", {}, Exception("still referenced"))

    sa.event.listen(User, "before_delete", refuse)
    try:
        response = unenroll(browser)
    finally:
        sa.event.remove(User, "before_delete", refuse)
    assert response.status_code == 200
    assert browser.stage_type == "user_delete"
    assert MSG_STILL_REFERENCED.format(contact=DEFAULT_CONTACT) in response.text
    with app.app_context():
        assert db.session.get(User, alice.id) is not None
    assert rows_of(app, str(alice.id)) == {"flows_authenticated_session": 1}
    assert elsewhere.client.get("/").text == "home: alice"
    assert watch_deletions == []
    # The login that asked is over; the account can be used again.
    assert browser.client.get("/").text == "home: anonymous"
    again = FlowBrowser(app.test_client())
    again.log_in("alice", PASSWORD, slug="login")
    assert again.whoami() == "home: alice"


def test_without_a_user_nothing_is_deleted(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    make_flow("unenroll", "user_delete", designation="unenrollment")
    response = browser.start("unenroll")
    assert MSG_NO_USER in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


# -- the app's own rows that refer to the user ---------------------------------------------------


@pytest.fixture
def posts(app: Flask) -> Iterator[sa.Table]:
    """An app table whose rows refer to their author, with a plain foreign key (no
    cascade), as most apps have."""
    table = sa.Table(
        "app_post",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("author_id", sa.Integer, sa.ForeignKey(User.__table__.c.id), nullable=False),
    )
    with app.app_context():
        table.create(db.engine)
    yield table
    with app.app_context():
        table.drop(db.engine)


def write_post(app: Flask, posts: sa.Table, author_id: int) -> None:
    with app.app_context():
        db.session.execute(sa.insert(posts).values(author_id=author_id))
        db.session.commit()


@pytest.mark.parametrize("app_config", [{"FLOWS_SUPPORT_CONTACT": "help@example.com"}])
def test_an_account_the_apps_rows_refer_to_says_so_and_whom_to_ask(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    unenroll_flow: Flow,
    posts: sa.Table,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: "Please try again later", which could never work."""
    alice = make_user("alice", password=PASSWORD)
    write_post(app, posts, alice.id)
    browser.log_in("alice", PASSWORD, slug="login")
    response = unenroll(browser)
    assert response.status_code == 200
    assert MSG_STILL_REFERENCED.format(contact="help@example.com") in response.text
    assert "try again later" not in response.text
    assert "rows of the app still refer to it" in caplog.text
    assert "user_deleting" in caplog.text
    with app.app_context():
        assert db.session.get(User, alice.id) is not None


def test_a_user_deleting_receiver_clears_the_apps_rows_in_the_same_transaction(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    unenroll_flow: Flow,
    posts: sa.Table,
) -> None:
    alice = make_user("alice", password=PASSWORD)
    write_post(app, posts, alice.id)
    browser.log_in("alice", PASSWORD, slug="login")

    # What docs/users.md shows an app doing.
    def delete_their_posts(sender: Flask, user: Any, **extra: Any) -> None:
        db.session.execute(sa.delete(posts).where(posts.c.author_id == user.id))

    with signals.user_deleting.connected_to(delete_their_posts, app):
        unenroll(browser)
    assert browser.redirect_target == "/"
    with app.app_context():
        assert db.session.get(User, alice.id) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(posts)) == 0


def test_sqlite_foreign_keys_hold_whichever_init_comes_first(tmp_path: Any) -> None:
    """FLOWS_SQLITE_FOREIGN_KEYS used to take effect only when db.init_app ran first."""
    from flask_sqlalchemy import SQLAlchemy

    from flask_flows import Flows

    late_db = SQLAlchemy()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'order.sqlite3'}"
    )
    Flows().init_app(app, db=late_db, user_model=User)
    late_db.init_app(app)

    @app.route("/pragma")
    def pragma() -> str:
        return str(late_db.session.execute(sa.text("PRAGMA foreign_keys")).scalar())

    assert app.test_client().get("/pragma").text == "1"
    with app.app_context():
        late_db.engine.dispose()


def test_a_failure_of_another_kind_says_to_try_again_later(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
    unenroll_flow: Flow,
) -> None:
    """A database that is out of reach (not a refusing foreign key): trying again may
    work, so that is what the page says."""
    alice = make_user("alice", password=PASSWORD)
    browser.log_in("alice", PASSWORD, slug="login")

    def unreachable(mapper: Any, connection: Any, target: Any) -> None:
        raise sa.exc.OperationalError("DELETE FROM app_user", {}, Exception("server gone"))

    sa.event.listen(User, "before_delete", unreachable)
    try:
        response = unenroll(browser)
    finally:
        sa.event.remove(User, "before_delete", unreachable)
    assert MSG_NOT_DELETED in response.text
    with app.app_context():
        assert db.session.get(User, alice.id) is not None
