"""The app's flask-flows state for a ``flask flows`` command, or a clear error: an app
that has flask-flows installed but not set up is told how, not shown a traceback."""

from __future__ import annotations

import click

from .extension import FlowsState, get_state


def app_state() -> FlowsState:
    try:
        return get_state()
    except RuntimeError as error:
        raise click.ClickException(
            "flask-flows is not set up in this app: call flows.init_app(app, db=db,"
            " user_model=User) in the app factory (or Flows(app, db=db, user_model=User))"
        ) from error
