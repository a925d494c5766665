"""Reputation scores per client IP and per identifier, for the ``reputation`` policy.

A failed identification, password or code check lowers the score of the request's IP
and of the identifier that was tried by one; a successful login raises both by one, up
to ``FLOWS_REPUTATION_MAX_SCORE`` so a good history cannot bank unlimited credit. A
score not changed for ``FLOWS_REPUTATION_EXPIRY`` seconds counts as 0 and starts from 0
on its next change.

Counters change atomically in the database, with one ``INSERT … ON CONFLICT DO UPDATE``
for all the scores an attempt touches (PostgreSQL, SQLite), or elsewhere an ``UPDATE …
SET score = score + :delta`` per score with an insert when the row is missing, on a
connection of their own: parallel guesses all count (ASVS 6.3.1), and the request's
session, with whatever it has pending, is left alone.

Scores are only written while some ``reputation`` policy exists: nothing else reads
them, and an app that throttles no logins should not pay a write per failed attempt.

The client IP is ``request.remote_addr``: behind a reverse proxy, configure Werkzeug's
``ProxyFix`` so that it is the client's address rather than the proxy's.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from flask import Flask, g, has_app_context, has_request_context, request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from . import signals
from .models import FlowsModel, utcnow

if TYPE_CHECKING:
    from .extension import FlowsState

logger = logging.getLogger("flask_flows.reputation")

KEY_LENGTH = 255
#: ``g`` key of the scores read in this request.
_SCORES_MEMO = "_flows_reputation_scores"


class ReputationKind(enum.StrEnum):
    ip = "ip"
    identifier = "identifier"


class ReputationScore(FlowsModel):
    """The current score of one IP address or one identifier (lowercased)."""

    __tablename__ = "flows_reputation_score"
    __table_args__ = (sa.UniqueConstraint("kind", "key", name="flows_reputation_kind_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    key: Mapped[str] = mapped_column(sa.String(KEY_LENGTH))
    score: Mapped[int] = mapped_column(default=0)
    updated: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime] = mapped_column(default=utcnow)


def normalise_key(kind: ReputationKind, key: str) -> str:
    """Identifiers are compared like identification compares them: trimmed, lowercased."""
    key = key.strip()
    if kind is ReputationKind.identifier:
        key = key.lower()
    return key[:KEY_LENGTH]


def subjects(ip: str | None, identifiers: Iterable[str | None]) -> list[tuple[ReputationKind, str]]:
    """The ``(kind, key)`` pairs to score for a request from ``ip`` about ``identifiers``."""
    found: list[tuple[ReputationKind, str]] = []
    candidates = [(ReputationKind.ip, ip)]
    candidates += [(ReputationKind.identifier, identifier) for identifier in identifiers]
    for kind, raw in candidates:
        if raw and raw.strip():
            pair = (kind, normalise_key(kind, raw))
            if pair not in found:
                found.append(pair)
    return found


def scores(
    state: FlowsState, pairs: list[tuple[ReputationKind, str]]
) -> dict[tuple[str, str], int]:
    """Current scores of ``pairs``; missing and expired ones are 0.

    Within a request the answer is kept until a score changes: the default login flow
    asks twice per step (one policy for the IP, one for the identifier), and both ask
    for the same pairs (see :class:`~flask_flows.policies.reputation.ReputationPolicy`).
    """
    if not pairs:
        return {}
    memo: dict[tuple[tuple[ReputationKind, str], ...], dict[tuple[str, str], int]] | None = None
    if has_app_context():
        memo = g.setdefault(_SCORES_MEMO, {})
        if tuple(pairs) in memo:
            return dict(memo[tuple(pairs)])
    found = _read_scores(state, pairs)
    if memo is not None:
        memo[tuple(pairs)] = dict(found)
    return found


def _read_scores(
    state: FlowsState, pairs: list[tuple[ReputationKind, str]]
) -> dict[tuple[str, str], int]:
    row = ReputationScore
    clause = sa.or_(*(sa.and_(row.kind == kind.value, row.key == key) for kind, key in pairs))
    now = utcnow()
    found = {(kind.value, key): 0 for kind, key in pairs}
    with state.db.engine.connect() as connection:
        for kind, key, score, expires in connection.execute(
            sa.select(row.kind, row.key, row.score, row.expires).where(clause)
        ):
            found[(kind, key)] = score if expires > now else 0
    return found


def adjust(state: FlowsState, pairs: list[tuple[ReputationKind, str]], delta: int) -> None:
    """Add ``delta`` to each score atomically, capped at ``FLOWS_REPUTATION_MAX_SCORE``.

    On PostgreSQL and SQLite all pairs change in one ``INSERT … ON CONFLICT DO UPDATE``
    (one statement per failed or successful attempt); elsewhere pair by pair.
    """
    if not pairs:
        return
    if has_app_context():
        g.pop(_SCORES_MEMO, None)
    if state.db.engine.dialect.name in _UPSERT_DIALECTS:
        _upsert(state, pairs, delta)
        return
    for kind, key in pairs:
        _adjust_one(state, kind, key, delta)


def connect_signals(app: Flask) -> None:
    """Score this app's failed and successful logins (called once per app by init_app)."""
    signals.login_failed.connect(_on_login_failed, sender=app)
    signals.user_logged_in.connect(_on_user_logged_in, sender=app)


def _on_login_failed(
    app: Flask, identifier: str | None = None, stage: Any = None, reason: str = "", **_: Any
) -> None:
    if reason == "unknown_identifier" and _pretends(app, stage):
        # The password stage that follows fails for this attempt too and counts it; counting
        # here as well would make unknown accounts lose reputation twice as fast as real
        # ones, which would tell them apart (ASVS 6.3.8).
        return
    _record(app, [identifier], -1)


def _on_user_logged_in(app: Flask, user: Any = None, **_: Any) -> None:
    _record(app, [getattr(user, "username", None), getattr(user, "email", None)], +1)


def _record(app: Flask, identifiers: list[str | None], delta: int) -> None:
    state: FlowsState = app.extensions["flows"]
    ip = request.remote_addr if has_request_context() else None
    try:
        if not state.definitions.uses_policy_type(state.db.engine, "reputation"):
            return
        adjust(state, subjects(ip, identifiers), delta)
    except SQLAlchemyError:
        # Scoring must not turn a login attempt into an error page; the log says it failed.
        logger.exception("reputation: could not record a change of %+d", delta)


def _pretends(app: Flask, stage: Any) -> bool:
    """Whether ``stage`` is an identification stage that lets unknown identifiers continue."""
    if getattr(stage, "type", None) != "identification":
        return False
    state: FlowsState = app.extensions["flows"]
    return bool(state.stage_config(stage)["pretend_user_exists"])


_UPSERT_DIALECTS = frozenset({"postgresql", "sqlite"})


def _new_values() -> dict[str, Any]:
    """A new row's columns, as bound parameters (see :func:`_parameters`)."""
    row = ReputationScore
    return {
        "kind": sa.bindparam("p_kind"),
        "key": sa.bindparam("p_key"),
        "score": sa.bindparam("initial", type_=sa.Integer()),
        "updated": sa.bindparam("now", type_=row.updated.type),
        "expires": sa.bindparam("p_expires", type_=row.expires.type),
    }


def _changes() -> dict[str, Any]:
    """What a change sets on an existing row: the score (an expired one restarts from 0,
    and the result is capped; SET expressions read the row as it was), its time and its
    new expiry."""
    row = ReputationScore
    now = sa.bindparam("now", type_=row.updated.type)
    delta = sa.bindparam("delta", type_=sa.Integer())
    cap = sa.bindparam("cap", type_=sa.Integer())
    current = sa.case((row.expires <= now, 0), else_=row.score)
    return {
        "score": sa.case((current + delta > cap, cap), else_=current + delta),
        "updated": now,
        "expires": sa.bindparam("p_expires", type_=row.expires.type),
    }


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """One ``INSERT … ON CONFLICT DO UPDATE`` per dialect, built once with bound
    parameters: SQLAlchemy compiles it once, not on every failed attempt."""
    row = ReputationScore
    insert = postgresql.insert(row) if dialect == "postgresql" else sqlite.insert(row)
    return insert.values(**_new_values()).on_conflict_do_update(
        index_elements=[row.kind, row.key], set_=_changes()
    )


@functools.cache
def _update_and_insert() -> tuple[Any, Any]:
    """The pair of statements for databases without an upsert, built once."""
    row = ReputationScore
    update = (
        sa.update(row)
        .where(row.kind == sa.bindparam("p_kind"), row.key == sa.bindparam("p_key"))
        .values(**_changes())
    )
    return update, sa.insert(row).values(**_new_values())


def _parameters(state: FlowsState, delta: int) -> dict[str, Any]:
    now = utcnow()
    cap = state.config["FLOWS_REPUTATION_MAX_SCORE"]
    return {
        "now": now,
        "delta": delta,
        "cap": cap,
        "initial": min(delta, cap),
        "p_expires": now + timedelta(seconds=state.config["FLOWS_REPUTATION_EXPIRY"]),
    }


def _upsert(state: FlowsState, pairs: list[tuple[ReputationKind, str]], delta: int) -> None:
    shared = _parameters(state, delta)
    rows = [{**shared, "p_kind": kind.value, "p_key": key} for kind, key in pairs]
    with state.db.engine.begin() as connection:
        connection.execute(_upsert_statement(state.db.engine.dialect.name), rows)


def _adjust_one(state: FlowsState, kind: ReputationKind, key: str, delta: int) -> None:
    parameters = {**_parameters(state, delta), "p_kind": kind.value, "p_key": key}
    update, insert = _update_and_insert()
    engine = state.db.engine
    with engine.begin() as connection:
        if cast(CursorResult[Any], connection.execute(update, parameters)).rowcount:
            return
    try:
        with engine.begin() as connection:
            connection.execute(insert, parameters)
    except IntegrityError:
        # A parallel request inserted the row between our update and insert: add to it.
        with engine.begin() as connection:
            connection.execute(update, parameters)
