"""Logging a user in or out from the app's own code, the way the flows do.

An OAuth callback, a magic link of the app's own, or an administrator's impersonation
logs a user in outside any flow. :func:`log_in` does what the ``user_login`` stage does:
a fresh session (nothing of the visitor's earlier session carried over), a server-side
record that logout and "end other sessions" can end, and flask-flows'
``user_logged_in`` signal (with ``flow=None``). Plain ``flask_login.login_user()`` works
too (the record is made for it), but sends none of flask-flows' signals and keeps the
session it was called in.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from . import sessions, signals
from .extension import get_state


def log_in(
    user: Any, *, persistent: bool = False, duration: int = 0, end_other_sessions: bool = False
) -> None:
    """Log ``user`` in for this request's browser.

    ``persistent`` keeps the login when the browser closes (``PERMANENT_SESSION_LIFETIME``);
    ``duration`` ends it after so many seconds (``0``: the lifetimes of
    ``FLOWS_SESSION_MAX_AGE`` and ``FLOWS_SESSION_IDLE_TIMEOUT`` only);
    ``end_other_sessions`` logs the user out everywhere else. An inactive user is a
    ``ValueError``: the app decides what to tell them.
    """
    state = get_state()
    if not state.user_store.is_active(user):
        raise ValueError(f"user {state.user_store.user_id(user)} is inactive and cannot log in")
    sessions.log_in(
        state,
        user,
        duration=duration,
        persistent=persistent,
        end_other_sessions=end_other_sessions,
    )
    state.log.info("log_in: the app logged user %s in", state.user_store.user_id(user))
    signals.user_logged_in.send(current_app._get_current_object(), user=user, flow=None)  # type: ignore[attr-defined]


def log_out() -> None:
    """End this browser's login, server-side too, as the logout flow does (and send
    flask-flows' ``user_logged_out`` signal)."""
    state = get_state()
    user = state.current_user()
    sessions.log_out(state)
    if user is not None:
        signals.user_logged_out.send(current_app._get_current_object(), user=user)  # type: ignore[attr-defined]
