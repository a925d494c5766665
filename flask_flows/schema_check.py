"""Does the database hold what flask-flows needs? What exactly is missing, and how to add it.

An existing app's user table predates flask-flows: the columns ``FlowsUserMixin`` adds
(or the app's model declares for it) are not there until the app's own migrations add
them, and ``db.create_all()`` never alters a table. Without this check, ``flask flows
init`` said "tables ready" and the app then failed on ``no such column`` at the first
login. ``flask flows check`` (run by ``init`` too) compares the model with the table and
prints, for each missing column, the Alembic operation and the SQL that add it; with
``--fix`` it fills the lookup keys of users written before those columns existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn

from . import identifiers, migrations
from .models import FlowsModel, Policy, Stage
from .options import ConfigError
from .references import References, check_references

if TYPE_CHECKING:
    from .extension import FlowsState

#: Users whose keys ``--fix`` fills per transaction.
_BATCH = 1000


@dataclass(frozen=True)
class Problem:
    """Something missing, and how to fix it."""

    what: str
    fix: str
    #: The user table or one of its columns is missing: the app's migrations add it.
    in_user_table: bool = False
    #: A stored stage or policy is refused: one flow fails, the database is ready.
    in_definitions: bool = False

    def __str__(self) -> str:
        return f"- {self.what}\n  {self.fix}"


def problems(state: FlowsState) -> list[Problem]:
    """Everything the database lacks that flask-flows needs (empty when all is well)."""
    engine = state.db.engine
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    found: list[Problem] = []
    tables = [t.name for t in FlowsModel.metadata.sorted_tables]
    missing = [name for name in tables if name not in existing]
    if len(missing) == len(tables):
        found.append(Problem("flask-flows' tables do not exist", "run: flask flows init"))
    else:
        found.extend(_behind(engine))
        if missing and not found:
            found.append(
                Problem(
                    f"flask-flows' tables are missing: {', '.join(missing)}",
                    "restore them from a backup",
                )
            )
    if not missing:
        found.extend(_invalid_definitions(state))
    table: sa.Table = state.user_store.model.__table__
    if table.name not in existing:
        found.append(
            Problem(
                f"the user table {table.name!r} does not exist",
                "create it with your migrations (or db.create_all() for a new app)",
                in_user_table=True,
            )
        )
        return found
    have = {column["name"] for column in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name not in have:
            found.append(
                Problem(
                    f"column {table.name}.{column.name} is missing",
                    _adding(column, engine),
                    in_user_table=True,
                )
            )
    found.extend(_unkeyed(state, table, have))
    return found


def fill_keys(state: FlowsState) -> int:
    """Give every user written without them their lookup keys; how many were filled.

    Needs the key columns (``problems`` says how to add them). Two users whose names
    differ only in case, width or accents would get one key: that is refused with their
    names, for the operator to settle (identification could only ever find one of them).
    """
    store = state.user_store
    model = store.model
    fields = _keyed_fields(state)
    if not fields:
        return 0
    filled = 0
    while True:
        users = list(
            store.session.scalars(
                sa.select(model)
                .where(sa.or_(*(_unkeyed_rows(model, f) for f in fields)))
                .limit(_BATCH)
            )
        )
        if not users:
            return filled
        for user in users:
            for field in fields:
                value = getattr(user, field)
                setattr(user, f"{field}_key", identifiers.key(value) if value else None)
        try:
            store.session.commit()
        except sa.exc.IntegrityError as error:
            store.session.rollback()
            raise KeyCollision(
                "two users would share a lookup key (names that differ only in case, width"
                f" or accents); rename one of them, then run --fix again: {error.orig}"
            ) from error
        filled += len(users)


class KeyCollision(Exception):
    """Filling the keys would give two users one key."""


def _invalid_definitions(state: FlowsState) -> list[Problem]:
    """Stored stages and policies whose configuration this version refuses (written by
    hand, or carried over from a version that accepted it), or that name a stage, flow
    or policy that is not there (deleted since): their flows would fail."""
    session = state.db.session
    references = References(state)
    rows: list[Stage | Policy] = [
        *session.scalars(sa.select(Stage)),
        *session.scalars(sa.select(Policy)),
    ]
    found = []
    for row in rows:
        kind = "stage" if isinstance(row, Stage) else "policy"
        try:
            check_references(state, row, f"{kind} {row.name!r} ({row.type})", references)
        except ConfigError as error:
            found.append(
                Problem(str(error), "correct it with: flask flows apply FILE", in_definitions=True)
            )
    return found


def _behind(engine: sa.Engine) -> list[Problem]:
    """A problem when flask-flows' tables are not at the revision this version needs."""
    at, needed = migrations.current(engine), migrations.head()
    if at == needed:
        return []
    if at is not None and not migrations.known(at):
        return [
            Problem(
                f"flask-flows' tables are at revision {at}, made by a newer flask-flows",
                f"run that version, or take them back with its: flask flows db downgrade {needed}",
            )
        ]
    where = f"at revision {at}" if at else "at no recorded revision (made before migrations)"
    return [
        Problem(
            f"flask-flows' tables are {where}; this version needs {needed}",
            "run: flask flows db upgrade",
        )
    ]


def _keyed_fields(state: FlowsState) -> list[str]:
    """The identifier fields the model has together with their ``<field>_key`` column."""
    store = state.user_store
    return [f for f in ("username", "email") if store.has_field(f) and store.has_field(f"{f}_key")]


def _unkeyed_rows(model: Any, field: str) -> sa.ColumnElement[bool]:
    """A user with a value in ``field`` (not empty) and no key for it."""
    value = getattr(model, field)
    return sa.and_(value.is_not(None), value != "", getattr(model, f"{field}_key").is_(None))


def _adding(column: sa.Column[Any], engine: sa.Engine) -> str:
    """The Alembic operation and the SQL that add ``column`` to its table."""
    table = column.table.name
    quoted = engine.dialect.identifier_preparer.format_table(column.table)
    spec = [repr(column.name), f"sa.{column.type!r}"]
    if column.server_default is not None:
        default = getattr(column.server_default, "arg", column.server_default)
        spec.append(f"server_default={_sql(default, engine)!r}")
    spec.append(f"nullable={column.nullable}")
    sql = CreateColumn(column).compile(dialect=engine.dialect)
    lines = [
        f"Alembic: op.add_column({table!r}, sa.Column({', '.join(spec)}))",
        f"  SQL: ALTER TABLE {quoted} ADD COLUMN {str(sql).strip()}",
    ]
    if column.unique:
        index = f"ix_{table}_{column.name}"
        name = engine.dialect.identifier_preparer.quote(column.name)
        lines.append(
            f"  and: op.create_index({index!r}, {table!r}, [{column.name!r}], unique=True)"
        )
        lines.append(f"  SQL: CREATE UNIQUE INDEX {index} ON {quoted} ({name})")
    if not column.nullable and column.server_default is None:
        lines.append(
            "  (NOT NULL without a default: on a table with rows, add it nullable, fill it,"
            " then make it NOT NULL)"
        )
    return "\n".join(lines)


def _sql(default: Any, engine: sa.Engine) -> str:
    if isinstance(default, str):
        return default
    return str(default.compile(dialect=engine.dialect))


def _unkeyed(state: FlowsState, table: sa.Table, have: set[str]) -> list[Problem]:
    model = state.user_store.model
    found = []
    for field in _keyed_fields(state):
        if {field, f"{field}_key"} <= have:
            count = state.db.session.scalar(
                sa.select(sa.func.count()).select_from(model).where(_unkeyed_rows(model, field))
            )
            if count:
                found.append(
                    Problem(
                        f"{count} users have no {field}_key (written before the column existed),"
                        " so identification cannot find them",
                        "run: flask flows check --fix",
                    )
                )
    return found
