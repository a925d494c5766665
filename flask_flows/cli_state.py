"""What ``flask flows`` commands look up: the app's flask-flows state (an app that has
flask-flows installed but not set up is told how, not shown a traceback) and a user named
as identification names them."""

from __future__ import annotations

from typing import Any

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


def user_named(state: FlowsState, identifier: str) -> Any:
    """The user with this username or email address (compared by key), or a clear error."""
    store = state.user_store
    user = store.find_by_identifier(identifier, store.available_fields)
    if user is None:
        raise click.ClickException(f"there is no user {identifier.strip()!r}")
    return user
