"""The test session's databases: the schema is built once, and every test starts on empty
tables.

Creating and dropping the schema for every test cost about two thirds of the suite's
time. A :class:`TestDatabase` creates the tables of flask-flows and of the test app's
``User`` the first time a test asks for it, then empties every table in the database
before each test: whatever a test created (the example app's own tables too) starts
empty for the next one, and ids start again at 1, as on a new schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from factory import db

from flask_flows import migrations


class TestDatabase:
    """One database for the whole session (or one pytest-xdist worker)."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url)
        self._schema_built = False

    def prepare(self) -> str:
        """Build the schema if this is the first test here, else empty every table; returns
        the URL for the test's app."""
        if not self._schema_built:
            migrations.upgrade(self.engine)
            db.metadata.create_all(self.engine)
            self._schema_built = True
        self.empty()
        return self.url

    def empty(self) -> None:
        with self.engine.begin() as connection:
            tables = sa.inspect(connection).get_table_names()
            postgresql = connection.dialect.name == "postgresql"
            if postgresql:
                # DELETE in any order, foreign keys not checked (a superuser setting, for
                # this transaction only): about 20 times faster than TRUNCATE on tables this
                # small. A lock a test left behind fails this after a while, not forever.
                connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
                connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            # On SQLite foreign keys are off on this connection, so the order does not matter.
            for table in tables:
                if table != migrations.VERSION_TABLE:
                    connection.execute(sa.table(table).delete())
            if postgresql:
                connection.exec_driver_sql(
                    "SELECT setval(oid, 1, false) FROM pg_class"
                    " WHERE relkind = 'S' AND relnamespace = current_schema()::regnamespace"
                )
            # No SQLite table uses AUTOINCREMENT: an emptied one numbers from 1 again.

    def dispose(self) -> None:
        self.engine.dispose()
