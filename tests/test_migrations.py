"""flask-flows' own migrations: its tables evolve apart from the app's, keeping their rows.

Before: there were none. A database made by 0.1.0 had ``flows_reputation_score`` and no
way to the current tables but dropping them, and stored ``reputation`` policies kept a
reading the code no longer had (they would have shown a deny stage to every clean
visitor). The 0.1.0 schema is kept as data (``tests/data/flows-0.1.0.*.sql``, dumped from
that release's ``create_all()``), so these tests upgrade exactly what it made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from browsing import FlowBrowser
from click.testing import Result
from factory import create_test_app, db
from flask import Flask

from flask_flows import FlowsModel, FlowStageBinding, migrations
from flask_flows.blueprints import install_default_flows
from flask_flows.reputation import Reputation, record_failure

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 1, 12, 30, 15)
PASSWORD = "correct horse battery"
SLOW_DOWN = "Slow down for a while."


def policy_binding(**values: Any) -> dict[str, Any]:
    """A row of 0.1.0's flows_policy_binding: every column given (it had no defaults)."""
    row = dict.fromkeys(("flow_id", "binding_id", "policy_id", "group_id", "user_id"))
    row.update(order=0, enabled=True, negate=False, failure_result=False, timeout=30)
    return row | values


#: Rows a 0.1.0 install could hold, one table at a time (ids are 1, 2, … in order).
OLD_ROWS: dict[str, list[dict[str, Any]]] = {
    "flows_flow": [
        {
            "slug": "old-login",
            "name": "Old login",
            "title": "Welcome",
            "designation": "authentication",
            "authentication": "none",
            "denied_action": "message",
            "policy_engine_mode": "any",
            "layout": "stacked",
            "revision": 3,
        }
    ],
    "flows_stage": [
        {"name": "old-identification", "type": "identification", "config": {}},
        {"name": "old-throttle", "type": "deny", "config": {"message": SLOW_DOWN}},
        {"name": "old-password", "type": "password", "config": {}},
        {"name": "old-login", "type": "user_login", "config": {}},
    ],
    "flows_binding": [
        {
            "flow_id": 1,
            "stage_id": stage,
            "order": 10 * stage,
            "evaluate_on_plan": True,
            "re_evaluate_policies": stage == 2,
            "invalid_response_action": "retry",
            "policy_engine_mode": "any",
        }
        for stage in (1, 2, 3, 4)
    ],
    "flows_policy": [
        {
            "name": "old-reputation-ip",
            "type": "reputation",
            "config": {"check_identifier": False, "threshold": -10},
            "execution_logging": False,
        },
        {
            "name": "old-reputation-blind",
            "type": "reputation",
            "config": {"check_ip": False, "check_identifier": False},
            "execution_logging": True,
        },
        {
            "name": "old-length",
            "type": "password",
            "config": {"min_length": 12},
            "execution_logging": False,
        },
    ],
    "flows_group": [{"name": "staff", "is_superuser": False}],
    "flows_group_membership": [{"group_id": 1, "user_id": "1"}],
    "flows_policy_binding": [
        # 0.1.0's way: the deny stage runs while the (negated) reputation policy fails.
        policy_binding(binding_id=2, policy_id=1, negate=True),
        policy_binding(flow_id=1, user_id="1", order=5, enabled=False),
        policy_binding(binding_id=2, policy_id=2, order=1, enabled=False, timeout=5),
        policy_binding(binding_id=3, group_id=1, negate=True, enabled=False, failure_result=True),
    ],
    "flows_authenticated_session": [
        {
            "key_hash": "a" * 64,
            "user_id": "1",
            "created": NOW,
            "last_seen": NOW,
            "expires": None,
            "ip_address": "192.0.2.1",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            "password_failures": 2,
        }
    ],
    "flows_flow_token": [
        {
            "token_hash": "b" * 64,
            "flow_slug": "old-login",
            "plan": {"flow": "old-login", "bindings": [1, 2]},
            "user_id": "1",
            "address_hash": "c" * 64,
            "activate_user": True,
            "created": NOW,
            "expires": NOW + timedelta(days=1),
            "used_at": None,
        }
    ],
    "flows_invitation": [
        {
            "token_hash": "d" * 64,
            "flow_slug": "old-login",
            "expires": NOW + timedelta(hours=72),
            "single_use": True,
            "used_at": None,
            "fixed_data": {"email": "bob@example.com"},
            "created_by": "1",
            "created": NOW,
        }
    ],
    "flows_remembered_mfa": [{"key_hash": "e" * 64, "user_id": "1", "expires": NOW}],
    "flows_static_device": [
        {
            "user_id": "1",
            "name": "Recovery codes",
            "confirmed": True,
            "created": NOW,
            "last_used": None,
        }
    ],
    "flows_static_token": [
        {"device_id": 1, "lookup": "k3m9x2qa", "secret_hash": "$argon2id$v=19$m=8,t=1,p=1$x"}
    ],
    "flows_totp_device": [
        {
            "user_id": "1",
            "name": "Phone",
            "secret": "JBSWY3DPEHPK3PXP",
            "digits": 6,
            "algorithm": "sha1",
            "period": 30,
            "confirmed": True,
            "last_step": 59_000_000,
            "created": NOW,
            "last_used": NOW,
        }
    ],
    "flows_user_consent": [
        {
            "user_id": "1",
            "target": "https://reports.example.com",
            "permissions": "profile email",
            "expires": None,
            "created": NOW,
        }
    ],
    "flows_reputation_score": [
        {"kind": "ip", "key": "192.0.2.9", "score": -12, "updated": NOW, "expires": NOW}
    ],
}

#: What 0002 changes in those rows: the policies take authentik's reading.
UPGRADED: dict[tuple[str, int], dict[str, Any]] = {
    ("flows_policy", 1): {"config": {"check_username": False, "threshold": -10}},
    ("flows_policy", 2): {"config": {"check_ip": False, "check_username": False}},
    ("flows_policy_binding", 1): {"negate": False},
    ("flows_policy_binding", 3): {"negate": True},
}


@pytest.fixture
def old_database(empty_database_url: str) -> Iterator[str]:
    """A database as flask-flows 0.1.0 left it: its tables, with rows in each."""
    engine = sa.create_engine(empty_database_url)
    script = (DATA / f"flows-0.1.0.{engine.dialect.name}.sql").read_text()
    with engine.begin() as connection:
        for statement in statements(script):
            connection.exec_driver_sql(statement)
        tables = sa.MetaData()
        tables.reflect(connection)
        for name, rows in OLD_ROWS.items():
            connection.execute(sa.insert(tables.tables[name]), rows)
    engine.dispose()
    yield empty_database_url


def statements(script: str) -> list[str]:
    script = re.sub(r"^--.*$", "", script, flags=re.MULTILINE)
    return [statement for statement in script.split(";\n") if statement.strip()]


def flows_app(url: str) -> Flask:
    app, _flows = create_test_app(url)
    return app


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["flows", *args], input=input)


def rows_of(connection: sa.Connection, name: str) -> list[dict[str, Any]]:
    table = FlowsModel.metadata.tables[name]
    query = sa.select(table).order_by(*table.primary_key.columns)
    return [dict(row._mapping) for row in connection.execute(query)]


def expected_rows(name: str) -> list[dict[str, Any]]:
    """The 0.1.0 rows of ``name`` as the current schema holds them after the upgrade."""
    columns = FlowsModel.metadata.tables[name].columns
    rows = []
    for number, row in enumerate(OLD_ROWS[name], start=1):
        full = {column.name: row.get(column.name) for column in columns}
        if "id" in full:
            full["id"] = number
        full.update(UPGRADED.get((name, number), {}))
        rows.append(full)
    return rows


def schema_differences(url: str) -> list[Any]:
    """What Alembic's autogenerate finds between the database's flows tables and the
    models (the app's tables and the version table aside)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            changes = compare_metadata(context, FlowsModel.metadata)
    finally:
        engine.dispose()
    return [change for change in changes if not _elsewhere(change)]


def _elsewhere(change: Any) -> bool:
    if not (isinstance(change, tuple) and change[0] == "remove_table"):
        return False
    name = change[1].name
    return name == migrations.VERSION_TABLE or not name.startswith("flows_")


def test_upgrading_from_0_1_0_keeps_every_row(
    old_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = flows_app(old_database)
    with caplog.at_level(logging.WARNING, logger="flask_flows.migrations"):
        result = run(app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "flask-flows tables: 0001 -> 0003 (head)" in result.output
    with app.app_context(), db.engine.connect() as connection:
        for name in OLD_ROWS:
            if name != "flows_reputation_score":
                assert rows_of(connection, name) == expected_rows(name), name
        tables = sa.inspect(connection).get_table_names()
        assert "flows_reputation_score" not in tables
        assert rows_of(connection, "flows_reputation") == []
    assert migrations.current(sa.create_engine(old_database)) == migrations.head()
    # The blind policy cannot keep its meaning: its owner is told which one it is.
    assert any("'old-reputation-blind' checks nothing" in r.getMessage() for r in caplog.records)
    assert schema_differences(old_database) == []


def test_an_upgraded_flow_decides_as_before(old_database: str) -> None:
    """0.1.0's negated binding, flipped for authentik's reading: a clean visitor goes on
    to the password, an IP whose reputation fell to the threshold meets the deny stage."""
    app = flows_app(old_database)
    assert run(app, "db", "upgrade").exit_code == 0
    with app.app_context():
        db.create_all()
        app.extensions["flows"].user_store.create(username="alice", password=PASSWORD)
        db.session.commit()
    visitor = FlowBrowser(app.test_client())
    visitor.start("old-login")
    visitor.step("old-login", uid_field="alice")
    assert visitor.stage_type == "password"
    with app.app_context():
        for n in range(10):  # one wrong guess at each of ten names, from this IP
            record_failure(app.extensions["flows"], f"name:mallory{n}", "127.0.0.1")
    guesser = FlowBrowser(app.test_client())
    guesser.start("old-login")
    assert SLOW_DOWN in guesser.step("old-login", uid_field="alice").text


def test_downgrading_and_upgrading_again_keeps_every_row(old_database: str) -> None:
    app = flows_app(old_database)
    assert run(app, "db", "upgrade").exit_code == 0
    result = run(app, "db", "downgrade", "0001", "--yes")
    assert result.exit_code == 0, result.output
    assert "flask-flows tables: 0003 -> 0001" in result.output
    with app.app_context(), db.engine.connect() as connection:
        old = sa.MetaData()
        old.reflect(connection, only=["flows_policy", "flows_policy_binding"])
        for name in ("flows_policy", "flows_policy_binding"):
            table = old.tables[name]
            found = connection.execute(sa.select(table).order_by(table.c.id)).mappings()
            assert [{k: row[k] for k in OLD_ROWS[name][0]} for row in found] == [
                {k: row.get(k) for k in OLD_ROWS[name][0]} for row in OLD_ROWS[name]
            ]
        assert "flows_reputation_score" in sa.inspect(connection).get_table_names()
    assert run(app, "db", "upgrade").exit_code == 0
    with app.app_context(), db.engine.connect() as connection:
        for name in OLD_ROWS:
            if name != "flows_reputation_score":
                assert rows_of(connection, name) == expected_rows(name), name


@pytest.mark.parametrize("by", ["revision by revision", "create_all"])
def test_the_revisions_build_what_the_models_declare(empty_database_url: str, by: str) -> None:
    """A new revision must come with every model change: this fails, naming the
    difference, when one is forgotten."""
    engine = sa.create_engine(empty_database_url)
    try:
        if by == "create_all":
            assert migrations.upgrade(engine) == (None, migrations.head())
        else:
            for revision in reversed(migrations.history()):
                migrations.upgrade(engine, revision.id)
        assert migrations.current(engine) == migrations.head()
    finally:
        engine.dispose()
    assert schema_differences(empty_database_url) == []


def test_revision_0001_is_what_0_1_0_created(empty_database_url: str) -> None:
    """The first revision builds the tables 0.1.0's create_all() built, to the index
    and constraint; its downgrade drops them all."""
    engine = sa.create_engine(empty_database_url)
    try:
        migrations.upgrade(engine, "0001")
        with engine.connect() as connection:
            migrated = describe(connection)
        assert migrations.downgrade(engine, "base") == ("0001", None)
        with engine.connect() as connection:
            assert sa.inspect(connection).get_table_names() == [migrations.VERSION_TABLE]
        script = (DATA / f"flows-0.1.0.{engine.dialect.name}.sql").read_text()
        with engine.begin() as connection:
            for statement in statements(script):
                connection.exec_driver_sql(statement)
            created = describe(connection)
    finally:
        engine.dispose()
    assert len(created) == 16
    assert migrated == created


def describe(connection: sa.Connection) -> dict[str, Any]:
    """Tables, columns (type, nullability), indexes and unique constraints, by name."""
    inspector = sa.inspect(connection)
    found = {}
    for table in inspector.get_table_names():
        if table == migrations.VERSION_TABLE:
            continue
        found[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], f["options"].get("ondelete"))
                for f in inspector.get_foreign_keys(table)
            ),
            "checks": check_constraints(connection, table),
        }
    return found


#: A trigger that refuses the last step of 0002 (flipping the bindings' negate), after
#: it created, dropped and rewrote: everything before it must be undone.
REFUSING_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE UPDATE ON flows_policy_binding"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
        "CREATE TRIGGER refuse BEFORE UPDATE ON flows_policy_binding"
        " FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


def test_a_failed_upgrade_changes_nothing(old_database: str) -> None:
    """One transaction per upgrade, on SQLite too (whose Python driver would otherwise
    commit each CREATE TABLE on its own): DDL and data come back as they were."""
    engine = sa.create_engine(old_database)
    try:
        with engine.begin() as connection:
            for statement in REFUSING_TRIGGER[engine.dialect.name]:
                connection.exec_driver_sql(statement)
        with pytest.raises(sa.exc.DatabaseError, match="refused"):
            migrations.upgrade(engine)
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            old = sa.MetaData()
            old.reflect(connection, only=["flows_policy", "flows_reputation_score"])
            configs = connection.execute(
                sa.select(old.tables["flows_policy"].c.config).order_by(sa.text("id"))
            ).scalars()
            assert [c for c in configs] == [p["config"] for p in OLD_ROWS["flows_policy"]]
            scores = connection.execute(sa.select(old.tables["flows_reputation_score"])).all()
            assert len(scores) == 1
        assert "flows_reputation" not in tables
        assert migrations.VERSION_TABLE not in tables  # not even 0.1.0's stamp was kept
    finally:
        engine.dispose()


def test_sqlite_foreign_keys_are_off_while_flows_migrate(tmp_path: Path) -> None:
    """Alembic's batch mode rebuilds a table by copy and drop; with the app's foreign
    keys on (FLOWS_SQLITE_FOREIGN_KEYS) that drop would cascade into its children. A
    rebuild of flows_flow inside a migration keeps every binding."""
    from alembic.operations import Operations

    app = flows_app(f"sqlite:///{tmp_path / 'fk.sqlite3'}")
    with app.app_context():
        engine = db.engine
        migrations.upgrade(engine)
        install_default_flows(app.extensions["flows"])
        bindings = sa.select(sa.func.count()).select_from(FlowStageBinding)
        before = db.session.scalar(bindings)
        db.session.commit()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with engine.connect() as connection, migrations._transaction(connection):
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            operations = Operations(MigrationContext.configure(connection))
            with operations.batch_alter_table("flows_flow", recreate="always"):
                pass
        assert before and db.session.scalar(bindings) == before
        with engine.connect() as connection:  # and on again afterwards
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        engine.dispose()


def test_concurrent_upgrades_wait_for_each_other(empty_database_url: str) -> None:
    """Two deploys running ``flask flows init`` at once on a new database: one creates,
    the other then finds the tables at the head."""
    engines = [sa.create_engine(empty_database_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            results = list(pool.map(migrations.upgrade, engines))
        head = migrations.head()
        assert sorted(results, key=str) == sorted(
            [(None, head), (head, head), (head, head)], key=str
        )
    finally:
        for engine in engines:
            engine.dispose()


def test_tables_from_a_newer_flask_flows_are_refused(empty_database_url: str) -> None:
    engine = sa.create_engine(empty_database_url)
    migrations.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
            .update()
            .values(version_num="0999")
        )
    engine.dispose()
    app = flows_app(empty_database_url)
    head = migrations.head()
    current = run(app, "db", "current").output
    assert (
        f"flask-flows tables: 0999, made by a newer flask-flows (this one knows up to {head})"
        in current
    )
    for args in (("db", "upgrade"), ("init",)):
        result = run(app, *args)
        assert result.exit_code == 1
        assert "at revision 0999, made by a newer flask-flows than this one" in result.output
        assert "Traceback" not in result.output
    with app.app_context():
        db.create_all()
    result = run(app, "check")
    assert "made by a newer flask-flows\n  run that version, or take them back" in result.output


def test_a_0_1_0_database_with_a_development_reputation_table_is_upgraded(
    old_database: str,
) -> None:
    """Between 0.1.0 and migrations, init's create_all() added flows_reputation beside
    0.1.0's tables: it is made again, and the policies are carried over."""
    engine = sa.create_engine(old_database)
    with engine.begin() as connection:
        Reputation.__table__.create(connection)
    engine.dispose()
    app = flows_app(old_database)
    result = run(app, "db", "upgrade")
    assert "flask-flows tables: 0001 -> 0003 (head)" in result.output
    with app.app_context(), db.engine.connect() as connection:
        assert rows_of(connection, "flows_policy") == expected_rows("flows_policy")


def test_downgrading_tables_made_before_migrations_adopts_them_first(old_database: str) -> None:
    app = flows_app(old_database)
    result = run(app, "db", "downgrade", "base", "--yes")
    assert "flask-flows tables: 0001 -> no tables (base)" in result.output
    with app.app_context(), db.engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == [migrations.VERSION_TABLE]


def test_check_asks_for_the_upgrade_and_init_does_it(old_database: str) -> None:
    app = flows_app(old_database)
    with app.app_context():
        db.create_all()  # the app's user table, which flask-flows' check also reads
    result = run(app, "check")
    assert result.exit_code == 1
    assert "tables are at no recorded revision (made before migrations)" in result.output
    assert "run: flask flows db upgrade" in result.output
    result = run(app, "init")
    assert result.exit_code == 0, result.output
    assert "warning: policy 'old-reputation-blind' (reputation)" in result.output
    # What remains is what 0002 could not carry over: the policy that checked nothing.
    result = run(app, "check")
    assert result.exit_code == 1
    assert result.output.count("\n- ") == 1
    assert (
        "policy 'old-reputation-blind' (reputation): check_ip and check_username" in result.output
    )
    assert "correct it with: flask flows apply FILE" in result.output
    with app.app_context(), db.engine.connect() as connection:
        assert rows_of(connection, "flows_totp_device") == expected_rows("flows_totp_device")
        slugs = connection.execute(sa.text("SELECT slug FROM flows_flow")).scalars().all()
    assert {"old-login", "default-authentication-flow"} <= set(slugs)


def test_the_db_commands_say_where_the_tables_are(empty_database_url: str) -> None:
    app = flows_app(empty_database_url)
    head = migrations.head()
    assert "no revision recorded" in run(app, "db", "current").output
    assert f"flask-flows tables: none -> {head} (head)" in run(app, "db", "upgrade").output
    assert f"already at {head} (head)" in run(app, "db", "upgrade").output
    assert f"flask-flows tables: {head} (head)" in run(app, "db", "current").output
    history = run(app, "db", "history").output.splitlines()
    assert (
        history[-1]
        == "base -> 0001: flask-flows 0.1.0: the tables as the first release created them."
    )
    assert len(history) == len(migrations.history())
    result = run(app, "db", "downgrade", "0001", input="y\n")
    assert "losing the rows of what later revisions added? [y/N]" in result.output
    assert f"flask-flows tables: {head} -> 0001" in result.output
    assert f"flask-flows tables: 0001, behind {head}" in run(app, "db", "current").output
    result = run(app, "db", "downgrade", "base", input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert "Drop every flask-flows table and all their rows?" in result.output
    assert migrations.current(sa.create_engine(empty_database_url)) == "0001"
    result = run(app, "db", "downgrade", "base", "--yes")
    assert "flask-flows tables: 0001 -> no tables (base)" in result.output


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("", ("upgrade", "0042"), "Can't locate revision identified by '0042'"),
        (
            "CREATE TABLE flows_flow (id INTEGER PRIMARY KEY)",
            ("upgrade",),
            "flows tables exist but match no known revision",
        ),
    ],
    ids=["unknown revision", "unknown tables"],
)
def test_what_cannot_be_upgraded_is_a_clear_error(
    empty_database_url: str, setup: str, args: tuple[str, ...], message: str
) -> None:
    if setup:
        engine = sa.create_engine(empty_database_url)
        with engine.begin() as connection:
            connection.exec_driver_sql(setup)
        engine.dispose()
    result = run(flows_app(empty_database_url), "db", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_init_leaves_the_app_tables_to_its_own_migrations(empty_database_url: str) -> None:
    """Created by init, a table that a pending migration of the app adds would make the
    app's ``flask db upgrade`` fail; with Flask-Migrate, init makes flask-flows' only."""
    app = flows_app(empty_database_url)
    flask_migrate.Migrate(app, db)
    result = run(app, "check")
    assert "flask-flows' tables do not exist\n  run: flask flows init" in result.output
    result = run(app, "init")
    assert result.exit_code == 1
    assert "the user table 'app_user' does not exist" in result.output
    assert "create it with your migrations" in result.output
    with app.app_context(), db.engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
    assert "app_user" not in tables
    assert "flows_flow" in tables


def check_constraints(connection: sa.Connection, table: str) -> list[str]:
    """The names of a table's CHECK constraints. On SQLite they are read from the table's
    SQL: SQLAlchemy 2.0.33 (our lowest) reflects only one of two that nest parentheses."""
    if connection.dialect.name != "sqlite":
        found = sa.inspect(connection).get_check_constraints(table)
        return sorted(str(check["name"]) for check in found)
    sql = connection.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table},
    ).scalar_one()
    return sorted(re.findall(r"CONSTRAINT (\w+) CHECK", sql))


def shipped_0_1_0_login(connection: sa.Connection, *, also_bound_by: str | None) -> None:
    """0.1.0's default login flow as its init installed it: identification, the IP-wide
    deny stage (two negated reputation policies), password, login; and optionally a flow
    of the app's own that binds that deny stage too."""
    tables = sa.MetaData()
    tables.reflect(connection)
    t = tables.tables

    def insert(table: str, **values: Any) -> int:
        row = connection.execute(sa.insert(t[table]).values(**values))
        return int(row.inserted_primary_key[0])

    flow = OLD_ROWS["flows_flow"][0]
    login = insert("flows_flow", **{**flow, "slug": "default-authentication-flow", "revision": 1})
    stages = {
        name: insert("flows_stage", name=f"default-authentication-{name}", type=kind, config={})
        for name, kind in [
            ("identification", "identification"),
            ("throttle", "deny"),
            ("password", "password"),
            ("login", "user_login"),
        ]
    }
    policies = [
        insert("flows_policy", name=name, type="reputation", config=config, execution_logging=False)
        for name, config in [
            ("default-authentication-reputation-ip", {"check_identifier": False, "threshold": -10}),
            ("default-authentication-reputation-identifier", {"check_ip": False, "threshold": -50}),
        ]
    ]
    for order, name in enumerate(stages, start=1):
        binding = insert(
            "flows_binding",
            flow_id=login,
            stage_id=stages[name],
            order=order * 10,
            evaluate_on_plan=False,
            re_evaluate_policies=name == "throttle",
            invalid_response_action="retry",
            policy_engine_mode="any",
        )
        if name == "throttle":
            for index, policy in enumerate(policies):
                insert(
                    "flows_policy_binding",
                    **policy_binding(
                        binding_id=binding, policy_id=policy, order=index, negate=True
                    ),
                )
    if also_bound_by:
        mine = insert("flows_flow", **{**flow, "slug": also_bound_by})
        insert(
            "flows_binding",
            flow_id=mine,
            stage_id=stages["throttle"],
            order=10,
            evaluate_on_plan=False,
            re_evaluate_policies=False,
            invalid_response_action="retry",
            policy_engine_mode="any",
        )


@pytest.mark.parametrize("also_bound_by", [None, "my-login"])
def test_the_shipped_login_flow_loses_its_ip_wide_deny_stage(
    old_database: str, also_bound_by: str | None
) -> None:
    """0.1.0's deny stage locked out everyone behind an attacker's IP; guesses are now
    judged per account and IP. init keeps flows an app changed, so the upgrade itself
    takes the stage out of the shipped flow (and drops it where nothing else binds it)."""
    engine = sa.create_engine(old_database)
    with engine.begin() as connection:
        shipped_0_1_0_login(connection, also_bound_by=also_bound_by)
    engine.dispose()
    app = flows_app(old_database)
    assert run(app, "db", "upgrade").exit_code == 0
    with app.app_context(), db.engine.connect() as connection:
        flow = connection.execute(
            sa.text(
                "SELECT id, revision FROM flows_flow WHERE slug = 'default-authentication-flow'"
            )
        ).one()
        stages = (
            connection.execute(
                sa.text(
                    "SELECT s.name FROM flows_binding b JOIN flows_stage s ON s.id = b.stage_id"
                    ' WHERE b.flow_id = :flow ORDER BY b."order"'
                ),
                {"flow": flow.id},
            )
            .scalars()
            .all()
        )
        names = set(connection.execute(sa.text("SELECT name FROM flows_stage")).scalars())
        policies = set(connection.execute(sa.text("SELECT name FROM flows_policy")).scalars())
        orphans = connection.execute(
            sa.text(
                "SELECT count(*) FROM flows_policy_binding pb WHERE pb.binding_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM flows_binding b WHERE b.id = pb.binding_id)"
            )
        ).scalar()
    assert stages == [
        "default-authentication-identification",
        "default-authentication-password",
        "default-authentication-login",
    ]
    assert flow.revision == 2  # plans in progress restart cleanly
    assert orphans == 0
    assert ("default-authentication-throttle" in names) is bool(also_bound_by)
    assert not policies & {
        "default-authentication-reputation-ip",
        "default-authentication-reputation-identifier",
    }
