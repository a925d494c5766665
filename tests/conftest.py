"""Fixtures: a fresh app per test, on SQLite and on a throwaway PostgreSQL server whose
schema is built once per session and emptied before each test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from databases import TestDatabase
from factory import MakeApp, User, close_connections, create_test_app, db
from flask import Flask
from flask.testing import FlaskClient
from postgres import PostgresServer, PostgresUnavailable, start_postgres
from smtp_sink import Mailbox

from flask_flows import Flow, Flows, FlowStageBinding, Stage
from flask_flows.blueprints import install_default_flows
from flask_flows.extension import FlowsState

#: pytester runs the recipe of docs/testing.md as an app's own test suite.
pytest_plugins = ["pytester"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip on a developer machine; fail in CI, where every backend must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: skipping is not allowed)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer | str]:
    """One PostgreSQL server per session (per pytest-xdist worker), or why there is none."""
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except PostgresUnavailable as error:
        yield str(error)
        return
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    database = TestDatabase(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'flows.sqlite3'}")
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def postgresql_database(postgres_server: PostgresServer | str) -> Iterator[TestDatabase]:
    if isinstance(postgres_server, str):
        unavailable(f"PostgreSQL is not available: {postgres_server}")
    assert isinstance(postgres_server, PostgresServer)
    database = TestDatabase(postgres_server.url)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The session's database of this backend, with every table empty."""
    database: TestDatabase = request.getfixturevalue(f"{request.param}_database")
    return database.prepare()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own with no table at all, for tests of the schema itself
    (the session's databases have flask-flows' tables already)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_server")
    if isinstance(server, str):
        unavailable(f"PostgreSQL is not available: {server}")
    name = f"empty_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.make_url(server.url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module to change the app's config."""
    return {}


@pytest.fixture
def make_app(database_url: str) -> Iterator[MakeApp]:
    """``make_app(**config)`` builds a test app on the test database (several apps on one
    database stand for several workers); their connections are closed after the test."""
    apps: list[Flask] = []

    def make(**config: Any) -> tuple[Flask, Flows]:
        app, flows = create_test_app(database_url, **config)
        apps.append(app)
        return app, flows

    yield make
    close_connections(apps)


@pytest.fixture
def app_and_flows(make_app: MakeApp, app_config: dict[str, Any]) -> tuple[Flask, Flows]:
    """A fresh app on empty tables. No app context stays pushed while the test runs:
    each request must get its own, as in production (``g`` is per app context)."""
    return make_app(**app_config)


@pytest.fixture
def app(app_and_flows: tuple[Flask, Flows]) -> Flask:
    return app_and_flows[0]


@pytest.fixture
def flows(app_and_flows: tuple[Flask, Flows]) -> Flows:
    return app_and_flows[1]


@pytest.fixture
def state(app: Flask) -> FlowsState:
    return app.extensions["flows"]  # type: ignore[no-any-return]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(params=[False, True], ids=["plain", "htmx"])
def browser(request: pytest.FixtureRequest, app: Flask) -> FlowBrowser:
    """A flow-stepping client, once as a plain browser and once as htmx."""
    return FlowBrowser(app.test_client(), htmx=request.param)


def detach(obj: Any, *relationships: str) -> Any:
    """Load ``obj``'s columns and the named relationships, so a test can read them after
    the app context (and with it the session) has ended."""
    db.session.refresh(obj)
    for name in relationships:
        getattr(obj, name)
    return obj


@pytest.fixture
def defaults(app: Flask, state: FlowsState) -> None:
    """The shipped default flows, installed as `flask flows init` does."""
    with app.app_context():
        install_default_flows(state)


@pytest.fixture
def make_user(app: Flask, state: FlowsState) -> Callable[..., User]:
    """Create and commit a user; returns it detached (read-only outside an app context)."""

    def make(
        username: str = "alice",
        password: str = "correct horse battery",
        email: str | None = None,
        **attributes: Any,
    ) -> User:
        with app.app_context():
            user = state.user_store.create(
                username=username,
                email=email if email is not None else f"{username}@example.com",
                password=password,
                **attributes,
            )
            db.session.commit()
            return detach(user)  # type: ignore[no-any-return]

    return make


@pytest.fixture
def make_flow(app: Flask) -> Callable[..., Flow]:
    """Build and commit a flow from stage types, ``(stage_type, config)`` pairs or Stages.

    Returns the flow detached, with its bindings and their stages loaded.
    """

    def make(slug: str, *stages: Any, designation: str = "authentication", **fields: Any) -> Flow:
        with app.app_context():
            flow = Flow(slug=slug, name=slug, title=slug.title(), designation=designation, **fields)
            for index, spec in enumerate(stages):
                if isinstance(spec, Stage):
                    stage = spec
                else:
                    stage_type, config = spec if isinstance(spec, tuple) else (spec, {})
                    stage = Stage(
                        name=f"{slug}-{index}-{stage_type}", type=stage_type, config=config
                    )
                flow.bindings.append(FlowStageBinding(stage=stage, order=(index + 1) * 10))
            db.session.add(flow)
            db.session.commit()
            return detach(flow, "bindings")  # type: ignore[no-any-return]

    return make


@pytest.fixture
def login_flow(make_flow: Callable[..., Flow]) -> Flow:
    """identification → password → user_login, like default-authentication-flow."""
    return make_flow("login", "identification", "password", "user_login")


@pytest.fixture
def logout_flow(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow("logout", "user_logout", designation="invalidation")


# -- mail -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Any]:
    """One loopback SMTP server (aiosmtpd) for the whole session."""
    server = Mailbox().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp_server: Any) -> Iterator[Any]:
    """The session's SMTP server, emptied for this test. An app sends its mail there when
    the test module's ``app_config`` includes ``mailbox.config``::

        @pytest.fixture
        def app_config(mailbox):
            return {**mailbox.config}
    """
    from flask_flows.mail import wait_for_outgoing_mail

    smtp_server.clear()
    yield smtp_server
    # A mail still in flight from this test must not land in the next one's mailbox.
    wait_for_outgoing_mail(timeout=10)
