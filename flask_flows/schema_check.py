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
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.schema import CreateColumn

from .models import FlowsModel

if TYPE_CHECKING:
    from .extension import FlowsState

#: Users whose keys ``--fix`` fills per transaction.
_BATCH = 1000


@dataclass(frozen=True)
class Problem:
    """Something missing, and how to fix it."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"- {self.what}\n  {self.fix}"


def problems(state: FlowsState) -> list[Problem]:
    """Everything the database lacks that flask-flows needs (empty when all is well)."""
    engine = state.db.engine
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    found: list[Problem] = []
    missing = [t.name for t in FlowsModel.metadata.sorted_tables if t.name not in existing]
    if missing:
        found.append(
            Problem(
                f"flask-flows' tables are missing: {', '.join(missing)}", "run: flask flows init"
            )
        )
    table: sa.Table = state.user_store.model.__table__
    if table.name not in existing:
        found.append(
            Problem(
                f"the user table {table.name!r} does not exist",
                "create it with your migrations (or db.create_all() for a new app)",
            )
        )
        return found
    have = {column["name"] for column in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name not in have:
            found.append(
                Problem(f"column {table.name}.{column.name} is missing", _adding(column, engine))
            )
    found.extend(_unkeyed(state, table, have))
    return found


def fill_keys(state: FlowsState) -> int:
    """Give every user written without them their lookup keys; how many were filled."""
    store = state.user_store
    model = store.model
    keyed = [f for f in ("username", "email") if hasattr(model, f"{f}_key") and hasattr(model, f)]
    if not keyed:
        return 0
    missing = sa.or_(
        *(
            sa.and_(getattr(model, f).is_not(None), getattr(model, f"{f}_key").is_(None))
            for f in keyed
        )
    )
    filled = 0
    while True:
        users = list(store.session.scalars(sa.select(model).where(missing).limit(_BATCH)))
        if not users:
            return filled
        for user in users:
            flag_modified(user, keyed[0])  # the write brings the keys along (FlowsUserMixin)
        store.session.commit()
        filled += len(users)


def _adding(column: sa.Column[Any], engine: sa.Engine) -> str:
    """The Alembic operation and the SQL that add ``column`` to its table."""
    table = column.table.name
    spec = [repr(column.name), repr(column.type)]
    if column.server_default is not None:
        default = getattr(column.server_default, "arg", column.server_default)
        spec.append(f"server_default={_sql(default, engine)!r}")
    spec.append(f"nullable={column.nullable}")
    sql = CreateColumn(column).compile(dialect=engine.dialect)
    lines = [
        f"Alembic: op.add_column({table!r}, sa.Column({', '.join(spec)}))",
        f"  SQL: ALTER TABLE {table} ADD COLUMN {str(sql).strip()}",
    ]
    if column.unique:
        index = f"ix_{table}_{column.name}"
        lines.append(
            f"  and: op.create_index({index!r}, {table!r}, [{column.name!r}], unique=True)"
        )
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
    for field in ("username", "email"):
        key = f"{field}_key"
        if {field, key} <= have and hasattr(model, key):
            count = state.db.session.scalar(
                sa.select(sa.func.count())
                .select_from(model)
                .where(getattr(model, field).is_not(None), getattr(model, key).is_(None))
            )
            if count:
                found.append(
                    Problem(
                        f"{count} users have no {key} (written before the column existed), so"
                        " identification cannot find them",
                        "run: flask flows check --fix",
                    )
                )
    return found
