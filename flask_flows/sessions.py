"""Server-side authenticated sessions on top of Flask's signed cookie session.

Flask's session lives entirely in the cookie, so on its own a copied cookie stays valid
after logout. Each login therefore records an :class:`AuthenticatedSession` row and puts
a random key in the cookie; every request checks the row still exists, so logout, "end
other sessions" and expiry end the session for real (ASVS 7.4.1, 7.4.3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    g,
    has_request_context,
    request,
    session,
)
from flask_login import login_user, logout_user
from sqlalchemy.engine import Connection, CursorResult

from . import remembered_mfa
from .models import AuthenticatedSession, utcnow
from .remembered_mfa import MFA_COOKIE
from .tokens import hash_token, new_token
from .transactions import commit_keeping_loaded_state

if TYPE_CHECKING:
    from .extension import FlowsState

#: Session key holding the random key of the AuthenticatedSession row.
SESSION_KEY = "_flows_sid"
#: Flask-Login's own session key for the user id.
_LOGIN_KEY = "_user_id"
#: How stale ``last_seen`` may get before a request writes it again.
_LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def log_in(
    state: FlowsState,
    user: Any,
    *,
    duration: int,
    persistent: bool,
    end_other_sessions: bool = False,
) -> AuthenticatedSession:
    """Log ``user`` in on a fresh session and record it server-side."""
    _end_current(state, commit=False)  # in the same transaction as the new row
    _clear_session()
    record, key = _record(state, user, duration, end_other_sessions)
    session.permanent = persistent
    g._flows_logging_in = True  # Flask-Login's signal below is this login's, not the app's
    try:
        login_user(user, remember=False, fresh=True)
    finally:
        g.pop("_flows_logging_in", None)
    session[SESSION_KEY] = key
    g._flows_session = record
    return record


def record_app_login(app: Flask, user: Any, **_: Any) -> None:
    """Flask-Login's ``user_logged_in`` receiver: a login the app made itself with
    ``flask_login.login_user()`` (an OAuth callback, a magic link) gets its server-side
    session too, so session enforcement keeps it rather than undoing it on the next
    request. Written on a connection of its own: the app's transaction, whatever it
    holds, is left to the app. Logins made by flask-flows record their own."""
    if g.get("_flows_logging_in") or not has_request_context():
        return
    state: FlowsState = app.extensions["flows"]
    key, values = _new_session(state, user, duration=0)
    earlier = session.get(SESSION_KEY)
    with state.db.engine.begin() as connection, _no_wait_on_sqlite(connection):
        if isinstance(earlier, str):
            connection.execute(
                sa.delete(AuthenticatedSession).where(
                    AuthenticatedSession.key_hash == hash_token(earlier)
                )
            )
        connection.execute(sa.insert(AuthenticatedSession).values(**values))
    session[SESSION_KEY] = key
    g.pop("_flows_session", None)
    state.log.info("a login by the app's login_user() recorded for user %s", user.get_id())


def _new_session(state: FlowsState, user: Any, duration: int) -> tuple[str, dict[str, Any]]:
    """A new random key, and the row that records a login of ``user`` from this request
    under it (``duration`` seconds, 0 for none of its own)."""
    key = new_token()
    now = utcnow()
    return key, {
        "key_hash": hash_token(key),
        "user_id": state.user_store.user_id(user),
        "created": now,
        "last_seen": now,
        "expires": now + timedelta(seconds=duration) if duration else None,
        "ip_address": (request.remote_addr or "")[:64],
        "user_agent": (request.user_agent.string or "")[:512],
        "password_failures": 0,
    }


@contextmanager
def _no_wait_on_sqlite(connection: Connection) -> Iterator[None]:
    """SQLite has one writer: while the request's own transaction holds uncommitted
    writes, the app's login cannot be recorded beside it. Fail at once, saying so,
    rather than wait out the lock and fail anyway."""
    if connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    connection.exec_driver_sql("PRAGMA busy_timeout = 0")
    try:
        yield
    except sa.exc.OperationalError as error:
        raise RuntimeError(
            "flask-flows could not record this login_user(): on SQLite, commit the"
            " request's changes before logging the user in (or use flask_flows.log_in)"
        ) from error
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(before or 0)}")


def _record(
    state: FlowsState, user: Any, duration: int, end_other_sessions: bool
) -> tuple[AuthenticatedSession, str]:
    """A new server-side session for ``user`` from this request, committed, and the key
    the cookie keeps for it."""
    key, values = _new_session(state, user, duration)
    record = AuthenticatedSession(**values)
    db_session = state.db.session
    db_session.add(record)
    db_session.flush()
    if end_other_sessions:
        db_session.execute(
            sa.delete(AuthenticatedSession).where(
                AuthenticatedSession.user_id == record.user_id,
                AuthenticatedSession.id != record.id,
            )
        )
    commit_keeping_loaded_state(state.db.session)
    return record, key


def log_out(state: FlowsState) -> None:
    """End the current login on the server and in the cookie, and this browser's
    remembered second factor with it (on a shared computer the next person must not
    skip MFA with the password alone)."""
    remembered_mfa.forget_this_browser(state, request)
    _end_current(state)
    logout_user()
    _clear_session()

    @after_this_request
    def forget_mfa(response: Response) -> Response:
        if MFA_COOKIE in request.cookies:
            response.delete_cookie(MFA_COOKIE, httponly=True, samesite="Lax")
        return response


def current_record(state: FlowsState) -> AuthenticatedSession | None:
    """The AuthenticatedSession of this request's login, if it is still valid."""
    if "_flows_session" in g:
        return g._flows_session  # type: ignore[no-any-return]
    record = None
    key = session.get(SESSION_KEY)
    if isinstance(key, str):
        record = state.db.session.scalar(
            sa.select(AuthenticatedSession).where(AuthenticatedSession.key_hash == hash_token(key))
        )
        if record is not None and _lapsed(state, record):
            state.db.session.delete(record)
            state.db.session.commit()
            record = None
    g._flows_session = record
    return record


def _lapsed(state: FlowsState, record: AuthenticatedSession) -> bool:
    """Past the login's own expiry (``user_login``'s ``session_duration``), past
    ``FLOWS_SESSION_MAX_AGE`` since it began, or unused for ``FLOWS_SESSION_IDLE_TIMEOUT``
    (ASVS 7.3.1, 7.3.2): a login must not live for ever because nobody logged out."""
    now = utcnow()
    max_age = state.config["FLOWS_SESSION_MAX_AGE"]
    idle = state.config["FLOWS_SESSION_IDLE_TIMEOUT"]
    return (
        record.is_expired(now)
        or (bool(max_age) and record.created + timedelta(seconds=max_age) <= now)
        or (bool(idle) and record.last_seen + timedelta(seconds=idle) <= now)
    )


def enforce(state: FlowsState) -> None:
    """Before each request: a login without a live server-side session becomes anonymous."""
    if _LOGIN_KEY not in session:
        # Flask-Login would restore a login from an app-set remember-me cookie, and no
        # server-side session stands behind it: have Flask-Login ignore and delete it.
        if current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies:
            session["_remember"] = "clear"
        return
    record = current_record(state)
    if record is None or record.user_id != str(session.get(_LOGIN_KEY)):
        logout_user()
        session.pop(SESSION_KEY, None)
        return
    now = utcnow()
    if now - record.last_seen > _LAST_SEEN_RESOLUTION:
        record.last_seen = now
        state.db.session.commit()


def end_sessions(
    state: FlowsState, user_id: str, *, keep_current: bool, commit: bool = True
) -> int:
    """End every session of ``user_id`` (but this one when ``keep_current``); returns how
    many. With ``commit`` off the caller commits, with its own change."""
    statement = sa.delete(AuthenticatedSession).where(AuthenticatedSession.user_id == user_id)
    current = current_record(state) if keep_current else None
    if current is not None:
        statement = statement.where(AuthenticatedSession.id != current.id)
    result = cast("CursorResult[Any]", state.db.session.execute(statement))
    count = result.rowcount or 0
    if commit:
        state.db.session.commit()
    return count


def _end_current(state: FlowsState, *, commit: bool = True) -> None:
    """Delete this login's row by its key: a Core delete does not mind a row that is
    already gone (two tabs logging out at once, or the user deleted in this request)."""
    key = session.get(SESSION_KEY)
    if isinstance(key, str):
        state.db.session.execute(
            sa.delete(AuthenticatedSession).where(AuthenticatedSession.key_hash == hash_token(key))
        )
        if commit:
            state.db.session.commit()
    g.pop("_flows_session", None)


def _clear_session() -> None:
    """Empty the session, CSRF secret included, and forget this request's CSRF token:
    Flask-WTF caches it in ``g``, and a stage rendered after the login in the same
    (htmx) response must carry a token for the new session."""
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
