"""The "this browser passed the second factor" grant behind the ``flows_mfa`` cookie.

``authenticator_validate`` with ``last_auth_threshold`` lets the same user skip the
second factor on this browser for a while. The cookie carries a random key, signed with
the user's id and a fingerprint of their password hash; the key names a
:class:`~flask_flows.models.RememberedMfa` row, and only the row makes it count. So a
copy of the cookie stops working when the browser logs out (its row is deleted), when
the password changes, and when an authenticator is added or removed (all the user's
rows are deleted), which the outside attack found it did not.

As in authentik, a grant is bound to the stage that made it and to the kind of
authenticator that passed it: it skips only that stage, and only while the stage still
accepts that kind, so passing a lenient check never skips a stricter one.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask, Request, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from . import signals
from .models import RememberedMfa, utcnow
from .tokens import hash_token, new_token
from .transactions import commit_keeping_loaded_state

if TYPE_CHECKING:
    from .extension import FlowsState

#: The cookie of a passed MFA check; it belongs to the login and is deleted with it.
MFA_COOKIE = "flows_mfa"
#: The signing salt of the cookie.
COOKIE_SALT = "flask-flows-mfa"


def grant(state: FlowsState, user: Any, seconds: int, stage_id: int, method: str) -> str:
    """Record a grant for ``user`` lasting ``seconds``, made by the stage ``stage_id``
    with an authenticator of kind ``method``; returns the cookie's value. The caller
    commits (with the rest of the stage's work)."""
    store = state.user_store
    key = new_token()
    state.db.session.add(
        RememberedMfa(
            key_hash=hash_token(key),
            user_id=store.user_id(user),
            expires=utcnow() + timedelta(seconds=seconds),
        )
    )
    return _serializer().dumps(
        {
            "u": store.user_id(user),
            "p": store.password_fingerprint(user),
            "k": key,
            "s": stage_id,
            "m": method,
        }
    )


def is_granted(
    state: FlowsState,
    request: Request,
    user: Any,
    max_age: int,
    stage_id: int,
    methods: Collection[str],
) -> bool:
    """Whether ``request`` carries a live grant of ``user``'s, younger than ``max_age``,
    made by the stage ``stage_id`` with one of ``methods`` (the kinds it accepts now)."""
    data = _cookie(request, max_age)
    store = state.user_store
    if data is None or data.get("u") != store.user_id(user):
        return False
    if data.get("s") != stage_id or data.get("m") not in methods:
        return False
    if data.get("p") != store.password_fingerprint(user):
        return False
    row_id = state.db.session.scalar(
        sa.select(RememberedMfa.id).where(
            RememberedMfa.key_hash == hash_token(str(data.get("k", ""))),
            RememberedMfa.user_id == store.user_id(user),
            RememberedMfa.expires > utcnow(),
        )
    )
    return row_id is not None


def forget_this_browser(state: FlowsState, request: Request) -> None:
    """Delete the grant the request's cookie names (at logout); the caller commits."""
    data = _cookie(request, max_age=None)
    if data is not None:
        state.db.session.execute(
            sa.delete(RememberedMfa).where(
                RememberedMfa.key_hash == hash_token(str(data.get("k", "")))
            )
        )


def forget_user(state: FlowsState, user_id: str) -> None:
    """Delete every grant of ``user_id`` and commit (a new password or authenticator)."""
    state.db.session.execute(sa.delete(RememberedMfa).where(RememberedMfa.user_id == user_id))
    commit_keeping_loaded_state(state.db.session)  # the user is used right after


def connect_signals(app: Flask) -> None:
    """Revoke a user's grants when their password or authenticators change."""
    for signal in (
        signals.password_changed,
        signals.authenticator_added,
        signals.authenticator_removed,
    ):
        signal.connect(_on_credentials_changed, sender=app)


def _on_credentials_changed(app: Flask, user: Any = None, **_: Any) -> None:
    if user is not None:
        state: FlowsState = app.extensions["flows"]
        forget_user(state, state.user_store.user_id(user))


def _cookie(request: Request, max_age: int | None) -> dict[str, Any] | None:
    value = request.cookies.get(MFA_COOKIE)
    if not value:
        return None
    try:
        data = _serializer().loads(value, max_age=max_age)
    except BadSignature:  # also SignatureExpired
        return None
    return data if isinstance(data, dict) else None


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=COOKIE_SALT)
