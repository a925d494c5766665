"""A burst of password guesses over HTTP must not take the app down.

The attack: twenty parallel wrong passwords for a real account held twenty pooled
connections while argon2 ran, exhausted the pool ("QueuePool limit … reached"), and
answered HTTP 500 after the pool timeout, while an unrelated visitor waited as long.
Here the example of a small deployment: a pool of three connections, a threaded server
on loopback, real argon2 work, twenty attackers and one bystander.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from factory import MakeApp
from flask import Flask
from live_http import Visitor, serving

from flask_flows import Flow
from flask_flows.config import DEFAULTS

FREE_FAILURES = DEFAULTS["FLOWS_THROTTLE_FREE_FAILURES"]

PASSWORD = "correct horse battery"
ATTACKERS = 20
#: A deployment, not a test run: errors become pages, a small pool (whose timeout is
#: short, so the test is too), and the default argon2 parameters (about 0.1 s a check).
DEPLOYED = {
    "TESTING": False,
    "FLOWS_ARGON2_TIME_COST": 3,
    "FLOWS_ARGON2_MEMORY_COST": 65536,
    "FLOWS_ARGON2_PARALLELISM": 4,
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 2, "max_overflow": 0, "pool_timeout": 1},
}


@pytest.fixture
def server(make_app: MakeApp, login_flow: Flow) -> Iterator[tuple[str, Flask]]:
    app, _ = make_app(**DEPLOYED)
    with app.app_context():  # hashed with the deployed parameters: every check costs them
        app.extensions["flows"].user_store.create(username="alice", password=PASSWORD)
        app.extensions["sqlalchemy"].session.commit()
    with serving(app) as base:
        yield base, app


def test_parallel_wrong_passwords_get_answers_and_a_bystander_gets_in(
    server: tuple[str, Flask],
) -> None:
    base, _ = server
    attackers = [Visitor(base) for _ in range(ATTACKERS)]
    for attacker in attackers:
        assert attacker.open("/flows/login/") == 200
        assert attacker.submit("/flows/login/", uid_field="alice") == 200
        assert 'name="password"' in attacker.page

    statuses: list[int] = []
    pages: list[str] = []
    start = threading.Barrier(ATTACKERS + 1)

    def guess(attacker: Visitor) -> None:
        start.wait()
        status = attacker.submit("/flows/login/", password="not the password")
        statuses.append(status)
        pages.append(attacker.page)

    threads = [threading.Thread(target=guess, args=(a,)) for a in attackers]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(0.05)  # the guesses are in flight
    bystander = Visitor(base)
    began = time.monotonic()
    bystander_status = bystander.open("/flows/login/")
    bystander_wait = time.monotonic() - began
    for thread in threads:
        thread.join(timeout=60)

    assert len(statuses) == ATTACKERS
    assert all(status < 500 for status in statuses), sorted(statuses)
    answers: dict[str, Any] = {"wrong": 0, "busy": 0, "refused": 0}
    for page in pages:
        if "Invalid username or password." in page:
            answers["wrong"] += 1
        elif "Please try again in a few seconds." in page:
            answers["busy"] += 1
        elif "Too many failed attempts. You can try again in 1 minute." in page:
            answers["refused"] += 1
    assert sum(answers.values()) == ATTACKERS, answers
    # Parallel guesses from one address all count: the free ones, then refusals.
    assert 0 < answers["wrong"] <= FREE_FAILURES, answers
    assert bystander_status == 200 and 'name="uid_field"' in bystander.page
    assert bystander_wait < 1.0, f"the bystander waited {bystander_wait:.2f} s"


def test_a_busy_answer_is_not_a_failed_attempt(server: tuple[str, Flask]) -> None:
    """When every hashing slot is taken, the guess is not checked and not counted: the
    owner who retries a moment later gets in."""
    base, app = server
    owner = Visitor(base)
    owner.open("/flows/login/")
    owner.submit("/flows/login/", uid_field="alice")
    slots = app.extensions["flows"].hashing._slots
    held = 0
    while slots.acquire(blocking=False):  # someone else's hashing fills every slot
        held += 1
    try:
        assert owner.submit("/flows/login/", password=PASSWORD) == 200
        assert "Please try again in a few seconds." in owner.page
        assert 'name="password"' in owner.page
    finally:
        for _ in range(held):
            slots.release()
    owner.submit("/flows/login/", password=PASSWORD)
    assert owner.open("/") == 200
    assert owner.page == "home: alice"
