"""``flask flows db …``: upgrade, take back and inspect flask-flows' own tables.

A group of its own under ``flask flows``, apart from Flask-Migrate's ``flask db``: the two
histories never mix (see :mod:`flask_flows.migrations`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from .. import migrations
from ..cli_state import app_state

db_cli = AppGroup(
    "db",
    help="Upgrade or inspect flask-flows' own tables (a history apart from the app's).",
)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade_command(revision: str) -> None:
    """Bring flask-flows' tables to REVISION (default: the newest), keeping their rows;
    creates them on a database that has none."""
    before, after = _run_migration(migrations.upgrade, revision)
    if before == after:
        click.echo(f"flask-flows tables: already at {_described(after)}")
    else:
        click.echo(f"flask-flows tables: {before or 'none'} -> {_described(after)}")


@db_cli.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask first.")
def db_downgrade_command(revision: str, yes: bool) -> None:
    """Take flask-flows' tables back to REVISION, for running an older flask-flows;
    'base' drops them all, with every flow, device and session in them. Asks first:
    the rows of what a revision takes away are lost."""
    if not yes:
        question = (
            "Drop every flask-flows table and all their rows?"
            if revision == "base"
            else f"Take flask-flows' tables back to {revision}, losing the rows of what"
            " later revisions added?"
        )
        click.confirm(question, abort=True)
    before, after = _run_migration(migrations.downgrade, revision)
    click.echo(f"flask-flows tables: {before or 'none'} -> {_described(after)}")


@db_cli.command("current")
def db_current_command() -> None:
    """Show the revision flask-flows' tables are at."""
    found, head = migrations.current(_engine()), migrations.head()
    if found is None:
        click.echo("flask-flows tables: no revision recorded (run: flask flows db upgrade)")
    elif not migrations.known(found):
        click.echo(
            f"flask-flows tables: {found}, made by a newer flask-flows (this one knows up"
            f" to {head})"
        )
    elif found != head:
        click.echo(f"flask-flows tables: {found}, behind {head} (run: flask flows db upgrade)")
    else:
        click.echo(f"flask-flows tables: {_described(found)}")


@db_cli.command("history")
def db_history_command() -> None:
    """List the revisions of flask-flows' tables, newest first."""
    for revision in migrations.history():
        summary = revision.message.strip().splitlines()[0] if revision.message else ""
        click.echo(f"{revision.down or 'base'} -> {revision.id}: {summary}")


def _run_migration(
    step: Callable[[sa.Engine, str], tuple[str | None, str | None]], revision: str
) -> tuple[str | None, str | None]:
    with migration_errors():
        return step(_engine(), revision)


@contextmanager
def migration_errors() -> Iterator[None]:
    """A revision that does not exist, or tables no revision here can work from, are a
    clear error, not a traceback."""
    from alembic.util import CommandError

    try:
        yield
    except (CommandError, migrations.MigrationError) as error:
        raise click.ClickException(str(error)) from error


def _described(revision: str | None) -> str:
    if revision is None:
        return "no tables (base)"
    return f"{revision} (head)" if revision == migrations.head() else revision


def _engine() -> sa.Engine:
    return app_state().db.engine
