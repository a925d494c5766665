"""Guessing attacks from outside, over real HTTP from several client addresses.

Before: the failure counters lived in the signed cookie and the reputation deny stage
ran once before the password stage, so one cookie captured at the password (or code)
step took any number of guesses; and the throttle was per IP, so ten failures from an
office refused everyone behind it. Now every guess is judged on the server at the
moment it is made (flask_flows.guesses): per (account, IP) pair with growing delays, and
per account across unfamiliar addresses (at most 100 failures an hour).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db, pass_time
from flask import Flask
from live_http import Visitor, serving

from flask_flows import Flow, testing
from flask_flows.config import DEFAULTS
from flask_flows.devices import StaticDevice, TOTPDevice
from flask_flows.extension import FlowsState
from flask_flows.otp import new_recovery_codes, new_totp_secret, store_recovery_codes

PASSWORD = "correct horse battery"
LOGIN = "/flows/login/"
WRONG = "Invalid username or password."
WRONG_CODE = "That code is not valid."
REFUSED = re.compile(r"Too many failed attempts\. You can try again in (\d+) (minute|minutes)\.")
FREE = DEFAULTS["FLOWS_THROTTLE_FREE_FAILURES"]
BURST = DEFAULTS["FLOWS_THROTTLE_ACCOUNT_BURST"]


@pytest.fixture
def base(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


def at_password(base: str, username: str, address: str = "127.0.0.1") -> Visitor:
    visitor = Visitor(base, address=address)
    assert visitor.open(LOGIN) == 200
    assert visitor.submit(LOGIN, uid_field=username) == 200
    assert 'name="password"' in visitor.page
    return visitor


def log_in(base: str, username: str, password: str, address: str = "127.0.0.1") -> Visitor:
    visitor = at_password(base, username, address)
    visitor.submit(LOGIN, password=password)
    return visitor


def signed_in_as(visitor: Visitor) -> str:
    visitor.open("/")
    return visitor.page


def outcome(status: int, page: str, wrong: str = WRONG) -> str:
    """ "wrong" (judged and counted), "refused" (too soon: not judged) or the page."""
    if REFUSED.search(page) and status == 429:
        return "refused"
    if wrong in page:
        return "wrong"
    return page


# -- the replayed cookie --------------------------------------------------------------------


def test_a_captured_password_step_gets_no_more_guesses_than_a_fresh_one(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """40 wrong passwords, each sent with the cookie captured at the password step (so the
    plan's own counter never moves), then the right one: only the free failures were
    judged, the rest were refused with a time to come back, and so was the right one."""
    make_user("alice", password=PASSWORD)
    captured = at_password(base, "alice")
    results = []
    for n in range(40):
        guess = captured.replay()
        status = guess.submit(LOGIN, password=f"guess {n}")
        results.append(outcome(status, guess.page))
    assert results == ["wrong"] * FREE + ["refused"] * (40 - FREE)

    right = captured.replay()
    assert right.submit(LOGIN, password=PASSWORD) == 429
    assert REFUSED.search(right.page)
    assert int(right.response_headers["Retry-After"]) > 0
    assert signed_in_as(right) == "home: anonymous"


@pytest.mark.parametrize("kind", ["totp", "static"])
def test_a_captured_code_step_is_bounded_per_account_from_any_number_of_addresses(
    app: Flask,
    state: FlowsState,
    base: str,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    kind: str,
) -> None:
    """The attacker has the password and a cookie captured at the second factor, and
    replays it from 14 addresses, 5 codes each: the pairs' free failures add up to
    more than the account allows from unfamiliar addresses, so at most BURST are judged
    and then even a fresh address and the right code are refused."""
    make_flow(
        "login",
        "identification",
        "password",
        ("authenticator_validate", {"device_classes": [kind]}),
        "user_login",
    )
    user = make_user("alice", password=PASSWORD)
    with app.app_context():
        if kind == "totp":
            secret = new_totp_secret()
            db.session.add(TOTPDevice(user_id=str(user.id), secret=secret, confirmed=True))
        else:
            codes = new_recovery_codes(2)
            device = StaticDevice(user_id=str(user.id), confirmed=True)
            store_recovery_codes(device, codes, state.hashing)
            db.session.add(device)
        db.session.commit()
    captured = log_in(base, "alice", PASSWORD)
    assert 'name="code"' in captured.page

    judged = refused = 0
    for address in range(2, 16):
        for n in range(FREE):
            guess = captured.replay(address=f"127.0.0.{address}")
            code = f"{n:06d}" if kind == "totp" else f"AAAA-BBBB-CC{n:02d}"
            result = outcome(guess.submit(LOGIN, code=code), guess.page, WRONG_CODE)
            if result == "wrong":
                judged += 1
            else:
                assert result == "refused", result
                refused += 1
    assert judged == BURST  # 70 tried, the account's burst judged (no time passed)
    assert refused == 14 * FREE - BURST

    right = captured.replay(address="127.0.0.99")
    good = pyotp.TOTP(secret).now() if kind == "totp" else codes[0]
    assert right.submit(LOGIN, code=good) == 429
    assert REFUSED.search(right.page)
    assert signed_in_as(right) == "home: anonymous"
    if kind == "static":  # the refused guess did not use the code up
        with app.app_context():
            assert db.session.scalar(
                sa.select(sa.func.count())
                .select_from(StaticDevice)
                .where(StaticDevice.tokens.any())
            )


# -- the throttle's model ---------------------------------------------------------------------


def test_a_bystander_behind_the_attackers_address_logs_in_at_once(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    make_user("bob", password=PASSWORD)
    for n in range(30):
        log_in(base, "alice", f"guess {n}", address="127.0.0.5")
    assert REFUSED.search(log_in(base, "alice", PASSWORD, address="127.0.0.5").page)

    bystander = log_in(base, "bob", PASSWORD, address="127.0.0.5")
    assert signed_in_as(bystander) == "home: bob"


def test_the_owner_logs_in_from_elsewhere_after_fifty_failures(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    for address in range(2, 12):  # 10 addresses, 5 each: no pair is held back yet
        for n in range(FREE):
            page = log_in(base, "alice", f"guess {n}", address=f"127.0.0.{address}").page
            assert WRONG in page
    owner = log_in(base, "alice", PASSWORD, address="127.0.0.50")
    assert signed_in_as(owner) == "home: alice"


def test_once_the_account_limit_is_reached_only_familiar_addresses_get_in(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    assert signed_in_as(log_in(base, "alice", PASSWORD, address="127.0.0.50")) == "home: alice"
    for address in range(2, 2 + BURST // FREE):
        for n in range(FREE):
            log_in(base, "alice", f"guess {n}", address=f"127.0.0.{address}")

    stranger = log_in(base, "alice", PASSWORD, address="127.0.0.60")
    assert REFUSED.search(stranger.page), stranger.page
    assert signed_in_as(stranger) == "home: anonymous"
    owner = log_in(base, "alice", PASSWORD, address="127.0.0.50")
    assert signed_in_as(owner) == "home: alice"


def test_logging_in_to_ones_own_account_does_not_clean_the_address(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """The attacker interleaves logins to an account of their own: the victim's pair
    still counts every failure."""
    make_user("alice", password=PASSWORD)
    make_user("mallory", password=PASSWORD)
    results = []
    for n in range(8):
        mine = log_in(base, "mallory", PASSWORD, address="127.0.0.7")
        assert signed_in_as(mine) == "home: mallory"
        guess = at_password(base, "alice", address="127.0.0.7")
        results.append(outcome(guess.submit(LOGIN, password=f"guess {n}"), guess.page))
    assert results == ["wrong"] * FREE + ["refused"] * (8 - FREE)


def test_delays_grow_and_say_when_to_come_back(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)
    for n in range(FREE - 1):
        page = log_in(base, "alice", f"guess {n}").page
        assert WRONG in page and not REFUSED.search(page)
    # The failure that starts the wait says so at once.
    last = log_in(base, "alice", "one more").page
    assert WRONG in last and "You can try again in 1 minute." in last

    pass_time(app, 61)
    page = log_in(base, "alice", "after the wait").page
    assert WRONG in page and "You can try again in 2 minutes." in page
    pass_time(app, 121)
    page = log_in(base, "alice", "after the next").page
    assert "You can try again in 4 minutes." in page

    # A login ends the run of failures: the owner starts afresh.
    pass_time(app, 241)
    assert signed_in_as(log_in(base, "alice", PASSWORD)) == "home: alice"
    assert not REFUSED.search(log_in(base, "alice", "a typo").page)


def test_an_unknown_account_is_held_back_exactly_like_a_real_one(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice", password=PASSWORD)

    def guesses(username: str, address: str) -> list[tuple[int, str]]:
        seen = []
        for n in range(FREE + 2):
            visitor = at_password(base, username, address)
            status = visitor.submit(LOGIN, password=f"guess {n}")
            seen.append((status, outcome(status, visitor.page)))
        return seen

    assert guesses("alice", "127.0.0.8") == guesses("nobody", "127.0.0.9")


# -- the same judge everywhere a secret is checked ---------------------------------------------


def test_a_setup_flows_password_step_counts_on_the_server(
    app: Flask, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    """The password step of a flow for a logged-in user (as in the setup flows)."""
    make_flow("confirm", "password", "dummy", designation="stage_configuration")
    alice = make_user("alice", password=PASSWORD)
    browser = FlowBrowser(app.test_client())
    testing.log_in(browser.client, alice)
    browser.start("confirm")
    assert browser.stage_type == "password"
    captured = browser.client.get_cookie("session")
    assert captured is not None
    results: list[Any] = []
    for n in range(FREE + 3):
        browser.client.set_cookie("session", captured.value)
        response = browser.submit("confirm", password=f"guess {n}")
        results.append(response.status_code)
    assert results == [200] * FREE + [429] * 3
    browser.client.set_cookie("session", captured.value)
    assert browser.submit("confirm", password=PASSWORD).status_code == 429


def test_parallel_guesses_from_one_address_all_count(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """Parallel guesses from one address all count: never more judged than the free ones."""
    make_user("alice", password=PASSWORD)
    captured = at_password(base, "alice")
    visitors = [captured.replay() for _ in range(12)]
    results: list[str] = []
    ready = threading.Barrier(len(visitors))

    def guess(visitor: Visitor) -> None:
        ready.wait(timeout=30)
        status = visitor.submit(LOGIN, password="parallel guess")
        results.append(outcome(status, visitor.page))
        if results[-1] not in ("wrong", "refused"):
            results[-1] = f"{status} " + " ".join(
                re.findall(r"flows-(?:error|message)[^>]*>([^<]*)", visitor.page)
            )

    threads = [threading.Thread(target=guess, args=(v,)) for v in visitors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["refused"] * (12 - FREE) + ["wrong"] * FREE


def test_htmx_gets_the_wait_in_a_page_it_swaps(
    app: Flask, base: str, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """htmx does not swap 4xx answers: a refused guess reaches it as 200, with the same
    words (and the Retry-After header)."""
    make_user("alice", password=PASSWORD)
    captured = Visitor(base, htmx=True)
    captured.open(LOGIN)
    captured.submit(LOGIN, uid_field="alice")
    assert 'name="password"' in captured.page
    for n in range(FREE):
        guess = captured.replay()
        assert guess.submit(LOGIN, password=f"guess {n}") == 200
        assert WRONG in guess.page
    refused = captured.replay()
    assert refused.submit(LOGIN, password=PASSWORD) == 200
    assert REFUSED.search(refused.page)
    assert int(refused.response_headers["Retry-After"]) > 0


def test_a_refused_guess_costs_the_same_right_or_wrong(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """Refused guesses are free to repeat, so their cost must not depend on the secret:
    a right one and a wrong one run the same statements (the writes a wrong guess would
    make, undone, and the read that says how long to wait)."""
    make_user("alice", password=PASSWORD)
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.step("login", uid_field="alice")
    for n in range(FREE):
        browser.step("login", password=f"guess {n}")
    with app.app_context():
        engine = db.engine

    def statements_of(password: str) -> list[str]:
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "flows_reputation" in statement:
                seen.append(statement)

        browser.start("login")
        browser.step("login", uid_field="alice")
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            response = browser.step("login", password=password)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        assert response.status_code == 429
        return seen

    right, wrong = statements_of(PASSWORD), statements_of("still wrong")
    assert sorted(right) == sorted(wrong)
    kinds = sorted(statement.split()[0].upper() for statement in right)
    assert kinds == ["INSERT", "SELECT"], right
