"""Reputation: what the server remembers about guesses, per account and client IP.

One table, ``flows_reputation``, with a row per *(account, IP)* pair as in authentik, plus
one row per account (``ip = ""``). The account is the user (``user:<id>``), so their
username and email share one row; a name that matches no user is scored under the name
itself (``name:<identifier>``), so an unknown account is slowed exactly like a real one.

A pair row holds:

- ``score``: −1 per failed guess or unknown identifier, +1 per login (from a familiar IP
  at most once a day), at most ``FLOWS_REPUTATION_MAX_SCORE``; what the ``reputation``
  policy sums;
- ``failures``: failed guesses in a row since the last login from that IP;
- ``not_before``: no guess from that IP at that account is judged before this time. From
  ``FLOWS_THROTTLE_FREE_FAILURES`` failures on it grows: ``FLOWS_THROTTLE_FIRST_DELAY``
  seconds, doubling with each failure, up to ``FLOWS_THROTTLE_MAX_DELAY``;
- ``familiar_until``: a login from that IP makes it familiar for
  ``FLOWS_THROTTLE_FAMILIAR_DAYS``.

Score and failures count as 0 once the row has not changed for ``FLOWS_REPUTATION_EXPIRY``.

The account row is a rate limit over every unfamiliar IP together (a generic cell rate
algorithm: ``not_before`` moves ``3600 / FLOWS_THROTTLE_ACCOUNT_HOURLY`` seconds forward
per failure and may run ``FLOWS_THROTTLE_ACCOUNT_BURST`` failures ahead), so at most
``BURST + HOURLY`` (100) failed guesses per hour reach an account from addresses it was
never logged in from (ASVS 6.3.1), however many addresses the attacker has; the owner's
familiar addresses keep only their own pair's delays.

Failures on one account never touch another account's rows, so the people behind an
attacker's IP (an office, a carrier NAT) sign in as usual.

Every change is one atomic statement on a connection of its own: a conditional
``INSERT … ON CONFLICT DO UPDATE … WHERE not_before <= now RETURNING`` on PostgreSQL and
SQLite, elsewhere an insert of an empty row, a conditional ``UPDATE`` and a ``SELECT``.
Times are Unix seconds (floats) so that the arithmetic runs in SQL on any database.

The client IP is ``request.remote_addr``: behind a reverse proxy, configure Werkzeug's
``ProxyFix`` so that it is the client's address rather than the proxy's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from . import identifiers
from .models import FlowsModel
from .options import ConfigError

if TYPE_CHECKING:
    from .extension import FlowsState

#: Characters of an ``identifier``: ``user:`` or ``name:`` and an identifier's key.
IDENTIFIER_LENGTH = 255
IP_LENGTH = 64
#: The ``ip`` of an account's own row.
ACCOUNT = ""


class Reputation(FlowsModel):
    """One (account, IP) pair, or an account itself (``ip == ""``); see the module."""

    __tablename__ = "flows_reputation"
    __table_args__ = (
        sa.UniqueConstraint("identifier", "ip", name="flows_reputation_identifier_ip"),
        sa.Index("flows_reputation_ip", "ip"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(sa.String(IDENTIFIER_LENGTH))
    ip: Mapped[str] = mapped_column(sa.String(IP_LENGTH))
    score: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[float] = mapped_column(sa.Float, default=0.0)
    familiar_until: Mapped[float] = mapped_column(sa.Float, default=0.0)
    changed: Mapped[float] = mapped_column(sa.Float, default=0.0)


def user_key(user_id: Any) -> str:
    return f"user:{user_id}"[:IDENTIFIER_LENGTH]


def name_key(identifier: str) -> str:
    """An identifier that matches no user, compared as identification compares it (a
    NUL, which matches no one and PostgreSQL cannot store, is dropped)."""
    return f"name:{identifiers.key(identifier.replace(chr(0), ''))}"[:IDENTIFIER_LENGTH]


def ip_key(ip: str | None) -> str:
    return (ip or "unknown")[:IP_LENGTH]


@dataclass(frozen=True)
class Standing:
    """An account's rows as seen from one IP, at ``now``."""

    now: float
    pair_not_before: float = 0.0
    account_not_before: float = 0.0
    familiar_until: float = 0.0
    failures: int = 0

    @property
    def familiar(self) -> bool:
        """Whether someone logged in to the account from this IP lately."""
        return self.familiar_until > self.now

    @property
    def retry_at(self) -> float:
        """When the next guess from this IP at this account will be judged."""
        account = 0.0 if self.familiar else self.account_not_before
        return max(self.pair_not_before, account)

    @property
    def open(self) -> bool:
        return self.retry_at <= self.now


@dataclass(frozen=True)
class Judgement:
    """What judging one guess found: refused (too soon, so neither checked nor counted),
    counted (a wrong guess), and the standing after it."""

    refused: bool
    counted: bool
    standing: Standing


class Rules:
    """The ``FLOWS_THROTTLE_*`` and ``FLOWS_REPUTATION_*`` numbers of one app."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.free = int(config["FLOWS_THROTTLE_FREE_FAILURES"])
        self.first_delay = float(config["FLOWS_THROTTLE_FIRST_DELAY"])
        self.max_delay = float(config["FLOWS_THROTTLE_MAX_DELAY"])
        hourly = int(config["FLOWS_THROTTLE_ACCOUNT_HOURLY"])
        burst = int(config["FLOWS_THROTTLE_ACCOUNT_BURST"])
        if self.free < 1 or hourly < 1 or burst < 1:
            raise ConfigError(
                "FLOWS_THROTTLE_FREE_FAILURES, FLOWS_THROTTLE_ACCOUNT_HOURLY and"
                " FLOWS_THROTTLE_ACCOUNT_BURST must be at least 1"
            )
        if not 0 < self.first_delay <= self.max_delay:
            raise ConfigError(
                "FLOWS_THROTTLE_FIRST_DELAY must be more than 0 and at most"
                " FLOWS_THROTTLE_MAX_DELAY"
            )
        #: Seconds the account's ``not_before`` moves per failure, and how far it may lead.
        self.interval = 3600.0 / hourly
        self.tolerance = (burst - 1) * self.interval
        self.familiar_for = float(config["FLOWS_THROTTLE_FAMILIAR_DAYS"]) * 86400.0
        #: A familiar pair's login is written again (score +1, familiarity renewed) once
        #: this long has passed since the last time; a login in between changes nothing.
        self.refresh = min(86400.0, self.familiar_for)
        self.expiry = float(config["FLOWS_REPUTATION_EXPIRY"])
        self.cap = int(config["FLOWS_REPUTATION_MAX_SCORE"])
        self._statements: dict[tuple[str, str], Any] = {}

    def upsert(self, dialect: str, change: str) -> Any:
        """The statement for ``change`` on ``dialect``, built once per app with bound
        parameters, so SQLAlchemy compiles it once rather than on every guess."""
        key = (dialect, change)
        if key not in self._statements:
            self._statements[key] = _upsert(self, dialect, change)
        return self._statements[key]

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        if failures < self.free:
            return 0.0
        return min(self.first_delay * 2.0 ** (failures - self.free), self.max_delay)

    def delays(self) -> dict[int, float]:
        """Every delay below the cap by failure count (the cap is the SQL's ``else``)."""
        found: dict[int, float] = {}
        failures = self.free
        while (delay := self.delay(failures)) < self.max_delay:
            found[failures] = delay
            failures += 1
        return found


# -- reading -----------------------------------------------------------------------------------


def _standing(
    state: FlowsState, connection: Connection, identifier: str, ip: str, now: float
) -> Standing:
    """The account's pair row for ``ip`` and its own row, in one query."""
    rows = connection.execute(_standing_query(), {"p_identifier": identifier, "p_ip": ip})
    found: dict[str, Any] = {"now": now}
    expiry = state.reputation_rules.expiry
    for found_ip, failures, not_before, familiar_until, changed in rows:
        if found_ip == ACCOUNT:
            found["account_not_before"] = not_before
            continue
        fresh = changed > now - expiry
        found.update(
            pair_not_before=not_before,
            familiar_until=familiar_until,
            failures=failures if fresh else 0,
        )
    return Standing(**found)


@functools.cache
def _standing_query() -> Any:
    """Built once: the query runs on every guess."""
    row = Reputation
    return sa.select(row.ip, row.failures, row.not_before, row.familiar_until, row.changed).where(
        row.identifier == sa.bindparam("p_identifier"),
        sa.or_(row.ip == sa.bindparam("p_ip"), row.ip == ACCOUNT),
    )


def total_score(state: FlowsState, ip: str | None, identifier: str | None) -> int:
    """Sum of the scores of the pairs with this IP or this account (authentik's reading);
    pass ``None`` for a side not checked."""
    row = Reputation
    matches = []
    if ip is not None:
        matches.append(row.ip == ip_key(ip))
    if identifier is not None:
        matches.append(sa.and_(row.identifier == identifier, row.ip != ACCOUNT))
    if not matches:
        return 0
    stale = time.time() - state.reputation_rules.expiry
    query = sa.select(sa.func.coalesce(sa.func.sum(row.score), 0)).where(
        sa.or_(*matches), row.changed > stale
    )
    with state.db.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


# -- writing -----------------------------------------------------------------------------------


def judge(state: FlowsState, identifier: str, ip: str | None, correct: bool) -> Judgement:
    """Judge one guess at ``identifier`` from ``ip``, all on one connection.

    A wrong guess is counted by conditional writes (the pair's row, then the account's
    unless the pair is familiar), each only while its ``not_before`` has passed, so
    parallel guesses all count and none slips past a wait another just started; if
    either refuses, nothing is kept and the rows are read to say when to come back. A
    right guess only reads the rows. Refused guesses are free to repeat, so a refused
    right one also makes (and undoes) the writes: its work, and so its time, is a
    refused wrong one's, and says nothing about the secret.
    """
    rules = state.reputation_rules
    address = ip_key(ip)
    now = time.time()
    with state.db.engine.connect() as connection:
        if correct:
            found = _standing(state, connection, identifier, address, now)
            if not found.open:
                _count_failure(connection, rules, identifier, address, now)
                connection.rollback()
            return Judgement(refused=not found.open, counted=False, standing=found)
        counted = _count_failure(connection, rules, identifier, address, now)
        if counted is None:
            connection.rollback()
            found = _standing(state, connection, identifier, address, now)
            return Judgement(refused=True, counted=False, standing=found)
        connection.commit()
        return Judgement(refused=False, counted=True, standing=counted)


def record_failure(state: FlowsState, identifier: str, ip: str | None) -> Judgement:
    """Count one wrong guess at ``identifier`` from ``ip`` if one may be made now."""
    return judge(state, identifier, ip, correct=False)


def _count_failure(
    connection: Connection, rules: Rules, identifier: str, address: str, now: float
) -> Standing | None:
    """The standing after counting a failure, or ``None`` if a row refused it."""
    pair = _change(connection, rules, _PAIR_FAILURE, identifier, address, now)
    if pair is None:
        return None
    account = None
    if pair.familiar_until <= now:
        account = _change(connection, rules, _ACCOUNT_FAILURE, identifier, ACCOUNT, now)
        if account is None:
            return None
    return Standing(
        now=now,
        pair_not_before=pair.not_before,
        account_not_before=account.not_before if account is not None else 0.0,
        familiar_until=pair.familiar_until,
        failures=pair.failures,
    )


def record_login(state: FlowsState, identifier: str, ip: str | None) -> None:
    """A login from ``ip``: the pair's failures end, its score rises, it is familiar."""
    with state.db.engine.begin() as connection:
        _change(connection, state.reputation_rules, _LOGIN, identifier, ip_key(ip), time.time())


def record_miss(state: FlowsState, identifier: str, ip: str | None) -> None:
    """An identifier that matches no account, typed at identification: the score only."""
    with state.db.engine.begin() as connection:
        _change(connection, state.reputation_rules, _MISS, identifier, ip_key(ip), time.time())


def forget(session: Any, accounts: Iterable[str]) -> None:
    """Delete the rows of ``accounts`` (their keys; in the caller's transaction)."""
    keys = list(accounts)
    if keys:
        session.execute(sa.delete(Reputation).where(Reputation.identifier.in_(keys)))


# -- the statements ---------------------------------------------------------------------------

_PAIR_FAILURE = "pair_failure"
_ACCOUNT_FAILURE = "account_failure"
_LOGIN = "login"
_MISS = "miss"
#: Changes that apply only once ``not_before`` has passed.
_GUARDED = frozenset({_PAIR_FAILURE, _ACCOUNT_FAILURE})
_UPSERT_DIALECTS = frozenset({"postgresql", "sqlite"})
_RETURNED = (
    Reputation.not_before,
    Reputation.familiar_until,
    Reputation.failures,
)


@dataclass(frozen=True)
class _Row:
    not_before: float
    familiar_until: float
    failures: int


def _change(
    connection: Connection, rules: Rules, change: str, identifier: str, ip: str, now: float
) -> _Row | None:
    """Apply ``change`` to one row (created empty if missing); ``None`` if it was refused."""
    parameters = {"p_identifier": identifier, "p_ip": ip, "now": now}
    parameters["stale"] = now - rules.expiry
    parameters["familiar"] = now + rules.familiar_for
    dialect = connection.dialect.name
    if dialect in _UPSERT_DIALECTS and not _force_generic:
        found = connection.execute(rules.upsert(dialect, change), parameters).first()
    else:
        found = _generic(connection, rules, change, parameters)
    if found is None:
        return None
    return _Row(found.not_before, found.familiar_until, found.failures)


#: Tests set this to run the statements other databases get on PostgreSQL and SQLite.
_force_generic = False


def _generic(
    connection: Connection, rules: Rules, change: str, parameters: dict[str, Any]
) -> Any | None:
    row = Reputation
    where = sa.and_(row.identifier == sa.bindparam("p_identifier"), row.ip == sa.bindparam("p_ip"))
    if connection.execute(sa.select(row.id).where(where), parameters).first() is None:
        try:
            with connection.begin_nested():
                connection.execute(sa.insert(row).values(_empty_values()), parameters)
        except IntegrityError:
            pass  # a parallel request made it: change theirs
    update = sa.update(row).where(where).values(**_changes(change, rules))
    if change in _GUARDED:
        update = update.where(row.not_before <= sa.bindparam("now", type_=sa.Float()))
    if not cast(CursorResult[Any], connection.execute(update, parameters)).rowcount:
        return None
    found = sa.select(*_RETURNED).where(where)
    return connection.execute(found, parameters).first()


def _upsert(rules: Rules, dialect: str, change: str) -> Any:
    """``INSERT … ON CONFLICT DO UPDATE [WHERE] RETURNING`` for one dialect and change."""
    row = Reputation
    insert = postgresql.insert(row) if dialect == "postgresql" else sqlite.insert(row)
    # A missing row is an empty one with the change applied.
    statement = insert.values(**_fresh_values(change, rules))
    where = row.not_before <= sa.bindparam("now", type_=sa.Float()) if change in _GUARDED else None
    return statement.on_conflict_do_update(
        index_elements=[row.identifier, row.ip], set_=_changes(change, rules), where=where
    ).returning(*_RETURNED)


def _empty_values() -> dict[str, Any]:
    return {
        "identifier": sa.bindparam("p_identifier"),
        "ip": sa.bindparam("p_ip"),
        "score": 0,
        "failures": 0,
        "not_before": 0.0,
        "familiar_until": 0.0,
        "changed": 0.0,
    }


def _fresh_values(change: str, rules: Rules) -> dict[str, Any]:
    """The columns of a new row that ``change`` makes, as SQL expressions of the
    parameters (what :func:`_changes` would make of an empty row)."""
    now = sa.bindparam("now", type_=sa.Float())
    values = _empty_values()
    values["changed"] = now
    if change == _PAIR_FAILURE:
        delay = rules.delay(1)
        values.update(score=-1, failures=1, not_before=now + delay if delay else 0.0)
    elif change == _ACCOUNT_FAILURE:
        values.update(not_before=now - rules.tolerance + rules.interval)
    elif change == _LOGIN:
        values.update(
            score=min(1, rules.cap), familiar_until=sa.bindparam("familiar", type_=sa.Float())
        )
    else:
        values.update(score=-1)
    return values


def _changes(change: str, rules: Rules) -> dict[str, Any]:
    """What ``change`` sets on an existing row (SET expressions read the row as it was)."""
    row = Reputation
    now = sa.bindparam("now", type_=sa.Float())
    fresh = row.changed > sa.bindparam("stale", type_=sa.Float())
    score = sa.case((fresh, row.score), else_=0)
    failures = sa.case((fresh, row.failures), else_=0)
    if change == _PAIR_FAILURE:
        after = failures + 1
        delays = rules.delays()
        # Below the free failures the row's time stays as it is: a parallel request that
        # read the clock a moment earlier must not find a guess "in the future" and stop.
        not_before = sa.case(
            (after < rules.free, row.not_before),
            *((after == count, now + seconds) for count, seconds in delays.items()),
            else_=now + rules.max_delay,
        )
        return {"score": score - 1, "failures": after, "not_before": not_before, "changed": now}
    if change == _ACCOUNT_FAILURE:
        earliest = now - rules.tolerance
        ahead = sa.case((row.not_before > earliest, row.not_before), else_=earliest)
        return {"not_before": ahead + rules.interval, "changed": now}
    if change == _LOGIN:
        return {
            "score": sa.case((score + 1 > rules.cap, rules.cap), else_=score + 1),
            "failures": 0,
            "not_before": 0.0,
            "familiar_until": sa.bindparam("familiar", type_=sa.Float()),
            "changed": now,
        }
    return {"score": score - 1, "failures": failures, "changed": now}
