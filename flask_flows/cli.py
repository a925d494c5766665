"""``flask flows …`` commands."""

from __future__ import annotations

import click
from flask.cli import AppGroup

flows_cli = AppGroup("flows", help="Manage flask-flows flows, stages, policies and users.")


@flows_cli.command("init")
def init_command() -> None:
    """Create the tables and install the default flows (safe to run again)."""
    from .extension import get_state

    get_state().create_tables()
    click.echo("flask-flows: tables ready")
