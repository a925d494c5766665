"""The ``flask flows`` command as Flask finds it: through the ``flask.commands`` entry
point, in every app of the virtualenv, installed flask-flows or not used.

So loading it must never fail: this module imports nothing of flask-flows, and the real
commands (:mod:`flask_flows.cli`) are imported only when ``flask flows …`` runs. If that
import fails (a dependency too old, a broken install), ``flask --help`` and every other
command of the app keep working, and ``flask flows`` says what went wrong.
"""

from __future__ import annotations

from typing import Any

import click


class LazyFlowsGroup(click.Group):
    """Stands for :data:`flask_flows.cli.flows_cli` until one of its commands is asked for."""

    def _real(self) -> click.Group:
        try:
            from .cli import flows_cli
        except Exception as error:
            raise click.ClickException(
                f"flask-flows cannot be loaded: {type(error).__name__}: {error}\n"
                "Check that its dependencies meet the versions in its pyproject.toml"
                " (pip check)."
            ) from error
        return flows_cli

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._real().get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: Any) -> None:
        self._real()  # a broken install says so here too, not with an empty list
        super().format_help(ctx, formatter)


flows_command = LazyFlowsGroup(
    "flows", help="Manage flask-flows flows, stages, policies and users."
)
