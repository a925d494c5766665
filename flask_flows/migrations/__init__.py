"""flask-flows' own schema history: Alembic migrations for the ``flows_*`` tables.

The tables belong to flask-flows, not to the app, so their history is kept apart from
the app's: the revisions ship in this package, and the database records which one it is
at in a version table of its own, ``flows_alembic_version``, so ``flask db upgrade``
(the app's history, in ``alembic_version``) and ``flask flows db upgrade`` (this one)
never see each other's revisions. The app's autogenerate leaves both the tables and
this version table alone with :func:`flask_flows.autogenerate.include_object`.

A database with no flows tables gets them in their current form and is stamped at the
head (Alembic's advice for new databases); a database made by a version of flask-flows
that had no migrations (0.1.0) is recognised by its tables and stamped at the revision
that matches them, then upgraded. Each upgrade or downgrade runs in one transaction,
on SQLite too, so a failure leaves the tables as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import FlowsModel

if TYPE_CHECKING:
    from alembic.config import Config


#: Where the database records its flows revision (the app's is ``alembic_version``).
VERSION_TABLE = "flows_alembic_version"

#: The revision whose tables a database made before migrations existed has, recognised
#: by a table only that revision has (newest first).
_UNVERSIONED = (("0002", "flows_reputation"), ("0001", "flows_reputation_score"))

logger = logging.getLogger("flask_flows.migrations")


@dataclass(frozen=True)
class Revision:
    """One step of the flows schema's history."""

    id: str
    down: str | None
    message: str


class UnknownSchema(Exception):
    """Flows tables without a recorded revision that match none of the known ones."""


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the flows tables to ``revision`` (the newest by default) and return the
    revisions before and after. Creates them when there are none; adopts tables made
    before migrations existed."""
    from alembic import command

    with _migrating(engine) as (connection, config):
        before = _current(connection)
        if before is None:
            before = _adopt_unversioned(connection, config)
        if before is None and revision == "head":
            FlowsModel.metadata.create_all(connection)
            command.stamp(config, "head")
        else:
            command.upgrade(config, revision)
        return before, _current(connection)


def downgrade(engine: sa.Engine, revision: str) -> tuple[str | None, str | None]:
    """Take the flows tables back to ``revision`` (``base`` drops them all); return the
    revisions before and after."""
    from alembic import command

    with _migrating(engine) as (connection, config):
        before = _current(connection)
        command.downgrade(config, revision)
        return before, _current(connection)


def current(engine: sa.Engine) -> str | None:
    """The revision the database's flows tables are at (``None``: none recorded)."""
    with engine.connect() as connection:
        return _current(connection)


def head() -> str:
    """The newest revision: the one this version of flask-flows needs."""
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def history() -> list[Revision]:
    """Every revision, newest first."""
    return [
        Revision(script.revision, _down(script.down_revision), script.doc)
        for script in _script().walk_revisions()
    ]


# -- helpers -----------------------------------------------------------------------------------


@contextmanager
def _migrating(engine: sa.Engine) -> Iterator[tuple[Connection, Config]]:
    """A connection in one transaction (a real one on SQLite too) and the Alembic config
    that hands it to ``env.py``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    with engine.connect() as connection, _transaction(connection):
        config.attributes["connection"] = connection
        yield connection, config


@contextmanager
def _transaction(connection: Connection) -> Iterator[None]:
    """One transaction around DDL and data alike. Python's sqlite3 driver commits before
    DDL on its own, so on SQLite the driver is told to stay out of the way and the
    transaction is begun by hand, as SQLAlchemy's SQLite documentation shows."""
    if connection.dialect.name != "sqlite":
        with connection.begin():
            yield
        return
    driver: Any = connection.connection.driver_connection
    isolation = driver.isolation_level
    driver.isolation_level = None
    try:
        with connection.begin():
            connection.exec_driver_sql("BEGIN")
            yield
    finally:
        driver.isolation_level = isolation


def _current(connection: Connection) -> str | None:
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(
        sa.text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 (a constant)
    ).scalar()


def _adopt_unversioned(connection: Connection, config: Config) -> str | None:
    """Stamp tables made before migrations existed with the revision they match; ``None``
    when there are no flows tables yet."""
    from alembic import command

    tables = set(sa.inspect(connection).get_table_names())
    if "flows_flow" not in tables:
        return None
    for revision, marker in _UNVERSIONED:
        if marker in tables:
            logger.info("flows tables without a recorded revision: they match %s", revision)
            command.stamp(config, revision)
            return revision
    raise UnknownSchema(
        "flows tables exist but match no known revision of flask-flows' schema; restore"
        f" them from a backup or record their revision in {VERSION_TABLE}"
    )


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(__file__).parent))


def _down(down_revision: Any) -> str | None:
    return down_revision if isinstance(down_revision, str) or down_revision is None else None
