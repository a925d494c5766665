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

#: The PostgreSQL advisory lock that one migration of flask-flows' tables holds at a time.
_LOCK = 0x666C6F77  # "flow"

logger = logging.getLogger("flask_flows.migrations")


@dataclass(frozen=True)
class Revision:
    """One step of the flows schema's history."""

    id: str
    down: str | None
    message: str


class MigrationError(Exception):
    """Flows tables whose revision this version of flask-flows cannot work from: none
    recorded and matching no known one, or one recorded by a newer flask-flows."""


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the flows tables to ``revision`` (the newest by default) and return the
    revisions before and after. Creates them when there are none; adopts tables made
    before migrations existed."""
    from alembic import command

    with _migrating(engine) as (connection, config):
        before = _recorded(connection, config)
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
        before = _recorded(connection, config)
        if before is not None:
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


def known(revision: str) -> bool:
    """Whether this version of flask-flows has ``revision`` (a newer one made it if not)."""
    return any(step.id == revision for step in history())


# -- helpers -----------------------------------------------------------------------------------


@contextmanager
def _migrating(engine: sa.Engine) -> Iterator[tuple[Connection, Config]]:
    """A connection in one transaction (a real one on SQLite too) that no other migration
    of these tables runs beside (two deploys at once wait for each other), and the
    Alembic config that hands it to ``env.py``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    with engine.connect() as connection, _transaction(connection):
        config.attributes["connection"] = connection
        yield connection, config


@contextmanager
def _transaction(connection: Connection) -> Iterator[None]:
    """One transaction around DDL and data alike, holding the migration lock."""
    if connection.dialect.name == "sqlite":
        with _sqlite_transaction(connection):
            yield
        return
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        yield


@contextmanager
def _sqlite_transaction(connection: Connection) -> Iterator[None]:
    """Python's sqlite3 driver commits before DDL on its own, so it is told to stay out
    of the way and the transaction is begun by hand (``IMMEDIATE``: the write lock at
    once), as SQLAlchemy's SQLite documentation shows. Foreign keys are off meanwhile,
    as Alembic's batch mode needs (rebuilding a table would cascade into its children),
    and the flows tables' references are checked before the commit instead."""
    driver: Any = connection.connection.driver_connection
    isolation = driver.isolation_level
    driver.isolation_level = None
    enforced = driver.execute("PRAGMA foreign_keys").fetchone()[0]
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield
            _check_references(connection)
    finally:
        driver.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
        driver.isolation_level = isolation


def _check_references(connection: Connection) -> None:
    """Refuse (and so roll back) a migration that left a flows row referring to nothing."""
    tables = set(sa.inspect(connection).get_table_names())
    for name in sorted(tables & set(FlowsModel.metadata.tables)):
        broken = connection.exec_driver_sql(f'PRAGMA foreign_key_check("{name}")').fetchall()
        if broken:
            raise MigrationError(f"after migrating, rows of {name} refer to rows that do not exist")


def _recorded(connection: Connection, config: Config) -> str | None:
    """The tables' revision: as recorded, or as recognised for tables made before
    migrations existed (``None``: no flows tables); refuses one only a newer flask-flows
    knows, from which no revision here can go on."""
    found = _current(connection)
    if found is None:
        return _adopt_unversioned(connection, config)
    if not known(found):
        raise MigrationError(
            f"flask-flows' tables are at revision {found}, made by a newer flask-flows than"
            f" this one (which knows up to {head()}); run that version, or take the tables"
            f" back with its 'flask flows db downgrade {head()}'"
        )
    return found


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
    if {"flows_reputation_score", "flows_reputation"} <= tables:
        # 0.1.0's tables, to which a development version between 0.1.0 and migrations
        # added flows_reputation by create_all(): transient counts, made again by 0002.
        logger.warning("dropping flows_reputation, made before migrations, to upgrade 0.1.0")
        connection.execute(sa.text("DROP TABLE flows_reputation"))
        tables.discard("flows_reputation")
    for revision, marker in _UNVERSIONED:
        if marker in tables:
            logger.info("flows tables without a recorded revision: they match %s", revision)
            command.stamp(config, revision)
            return revision
    raise MigrationError(
        "flows tables exist but match no known revision of flask-flows' schema; restore"
        f" them from a backup or record their revision in {VERSION_TABLE}"
    )


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(__file__).parent))


def _down(down_revision: Any) -> str | None:
    return down_revision if isinstance(down_revision, str) or down_revision is None else None
