"""Keeping an app's Alembic autogenerate away from flask-flows' tables.

flask-flows keeps its tables in a ``MetaData`` of its own, so an app's migrations never
know them: Flask-Migrate's ``flask db migrate`` found ``flows_*`` tables in the database
that the app's models do not declare and proposed to drop them all (TOTP devices,
recovery codes, sessions), and ``flask db upgrade`` would have done it, months later, in
an unrelated migration. One line in the app keeps them out::

    from flask_flows.autogenerate import include_object

    Migrate(app, db, include_object=include_object)

An app with an ``include_object`` of its own calls this one first (see
:func:`include_object`).
"""

from __future__ import annotations

from typing import Any

from .migrations import VERSION_TABLE
from .models import FlowsModel


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's ``include_object`` hook: ``False`` for flask-flows' tables and for the
    indexes, constraints and columns that belong to them, and for their version table,
    so autogenerate neither creates nor drops nor alters them; ``True`` for everything
    else."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in FlowsModel.metadata.tables and table != VERSION_TABLE
