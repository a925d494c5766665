"""Benchmark 7: does an anonymous identification POST cost more as users are added?

Every visitor who types a name makes identification look a user up, so the lookup must
not scan the user table: it is one equality on the indexed ``username_key`` /
``email_key`` columns. Measured on SQLite and on a PostgreSQL server started for the
run, with 1,000, 100,000 and 1,000,000 users: wall-clock time of the POST (the database
works in another process on PostgreSQL), for a name that exists and one that does not,
median of several rounds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import CHEAP, LOGIN_SLUG, FlowBrowser, User, db, flows_app, median
from postgres import start_postgres

from flask_flows import identifiers

SIZES = (1_000, 100_000, 1_000_000)
#: Stands in for every added user's password hash: nobody logs in as them.
DUMMY_HASH = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA"


def identification_cost(
    workdir: Path, rounds: int, requests: int, sizes: tuple[int, ...] = SIZES
) -> dict[str, Any]:
    results: dict[str, Any] = {"sizes": list(sizes), "rounds": rounds, "requests": requests}
    results["sqlite"] = _measure(f"sqlite:///{workdir / 'users.sqlite3'}", sizes, rounds, requests)
    with start_postgres(workdir) as postgres:
        results["postgresql"] = _measure(postgres.url, sizes, rounds, requests)
    return results


def _measure(
    database_url: str, sizes: tuple[int, ...], rounds: int, requests: int
) -> dict[str, dict[str, float]]:
    app = flows_app(database_url, CHEAP)  # the login flow and alice
    found: dict[str, dict[str, float]] = {}
    have = 1
    for size in sizes:
        with app.app_context():
            _add_users(have, size)
            have = size
            assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == size
        found[str(size)] = {
            "known": _post_seconds(app, "alice", rounds, requests),
            "unknown": _post_seconds(app, "nobody-at-all", rounds, requests),
        }
    with app.app_context():
        db.engine.dispose()
    return found


def _add_users(start: int, stop: int) -> None:
    """Users ``user<n>`` for n in [start, stop), in one transaction (COPY on PostgreSQL)."""
    columns = (
        "username",
        "email",
        "username_key",
        "email_key",
        "password_hash",
        "active",
        "is_superuser",
    )
    engine = db.engine
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY app_user ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in _rows(start, stop):
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as connection:
            connection.execute(sa.text("ANALYZE app_user"))
        return
    with engine.begin() as connection:
        batch: list[dict[str, Any]] = []
        for row in _rows(start, stop):
            batch.append(dict(zip(columns, row, strict=True)))
            if len(batch) == 10_000:
                connection.execute(sa.insert(User), batch)
                batch = []
        if batch:
            connection.execute(sa.insert(User), batch)


def _rows(start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    for n in range(start, stop):
        name, email = f"user{n}", f"user{n}@example.com"
        yield (name, email, identifiers.key(name), identifiers.key(email), DUMMY_HASH, True, False)


def _post_seconds(app: Any, identifier: str, rounds: int, requests: int) -> float:
    """Median over ``rounds`` of the mean wall time of one identification POST."""
    per_round = []
    for _ in range(rounds + 1):  # the first round warms the caches and is dropped
        spent = 0.0
        for _ in range(requests):
            browser = FlowBrowser(app.test_client())
            browser.start(LOGIN_SLUG)
            began = time.perf_counter()
            browser.submit(LOGIN_SLUG, uid_field=identifier)
            spent += time.perf_counter() - began
            assert browser.last is not None and browser.last.status_code in (200, 303)
        per_round.append(spent / requests)
    return median(per_round[1:])
