"""What an expression sees (:mod:`flask_flows.expressions`), and nothing more.

``user`` (the plan's user: their columns but any password and those starting with
``_``, ``id`` and, when asked, ``groups``), ``request`` (method, path, host, args,
headers, remote_addr, user_agent, is_secure; never cookies, credentials or link tokens),
``context`` (the documented plan context keys, passwords' hashes left out),
``prompt_data``, ``flow`` (slug, designation) and ``now`` (UTC). Read this before adding
to it: whatever is here, a flow's definition can show to a visitor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .flow_tokens import IS_RESTORED
from .plan import (
    AUTH_METHOD,
    AUTH_METHODS,
    PENDING_USER,
    PENDING_USER_IDENTIFIER,
    PROMPT_DATA,
    REDIRECT,
)

if TYPE_CHECKING:
    from flask import Request

    from .extension import FlowsState
    from .models import Flow

#: The plan context keys an expression sees (those of docs/concepts.md); others may hold
#: what must stay on the server (a recovery-code seed, a passkey challenge).
CONTEXT_KEYS = (
    PENDING_USER,
    PENDING_USER_IDENTIFIER,
    REDIRECT,
    AUTH_METHOD,
    AUTH_METHODS,
    PROMPT_DATA,
    "invitation",
    IS_RESTORED,
)
#: Request headers an expression never sees: they carry credentials.
_SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
#: Query arguments it never sees: link tokens.
_SECRET_ARGS = frozenset({"itoken", "token", "flow_token"})
#: User attributes it never sees, besides the store's password column.
_SECRET_ATTRIBUTES = frozenset({"password_hash", "password"})


def scope(
    state: FlowsState,
    *,
    user: Any | None,
    context: Mapping[str, Any],
    request: Request | None,
    flow: Flow | None = None,
) -> dict[str, Any]:
    """What an expression sees (read the module's docstring before adding to it)."""
    prompt_data = {
        key: value
        for key, value in (context.get(PROMPT_DATA) or {}).items()
        if not isinstance(value, Mapping)  # a password's hash
    }
    shown = {key: context[key] for key in CONTEXT_KEYS if key in context}
    return {
        "user": _UserView(state, user) if user is not None else None,
        "request": _request_view(request) if request is not None else None,
        "context": {**shown, PROMPT_DATA: prompt_data},
        "prompt_data": prompt_data,
        "flow": {"slug": flow.slug, "designation": str(flow.designation)} if flow else None,
        "now": datetime.now(UTC),
    }


class _UserView(Mapping[str, Any]):
    """A user's columns (never a password or a column starting with ``_``), ``id`` and,
    when asked, ``groups``."""

    def __init__(self, state: FlowsState, user: Any) -> None:
        self._state = state
        self._user = user
        store = state.user_store
        hidden = {store.password_field, *_SECRET_ATTRIBUTES}
        columns = [c.key for c in store.model.__mapper__.column_attrs]
        self._values: dict[str, Any] = {
            name: getattr(user, name)
            for name in columns
            if name not in hidden and not name.startswith("_")
        }
        self._values["id"] = store.user_id(user)

    def __getitem__(self, key: str) -> Any:
        if key == "groups" and key not in self._values:
            self._values[key] = sorted(self._state.user_store.group_names(self._user))
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _request_view(request: Request) -> dict[str, Any]:
    path = request.path
    if "/-/resume/" in path:  # a mailed link's token is in its path
        path = path.split("/-/resume/", 1)[0] + "/-/resume/"
    return {
        "method": request.method,
        "path": path,
        "host": request.host,
        "args": {k: v for k, v in request.args.items() if k not in _SECRET_ARGS},
        "headers": {
            key.lower(): value
            for key, value in request.headers.items()
            if key.lower() not in _SECRET_HEADERS
        },
        "remote_addr": request.remote_addr,
        "user_agent": request.user_agent.string,
        "is_secure": request.is_secure,
    }
