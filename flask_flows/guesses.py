"""Every guess at a secret is judged on the server, at the moment it is made.

A password (at login, in a setup flow, on the settings page), a TOTP code and a recovery
code are each checked first, then *judged* here against the account's reputation rows
(:mod:`flask_flows.reputation`): a wrong guess is counted only if a guess may be made
now, and a right one is accepted only then too. A guess that comes too soon is refused
whether it was right or wrong, so the answer says nothing about the secret, and the
person is told when they may try again.

Nothing here reads the plan in the cookie: a client that replays an older cookie, or
sends many guesses at once, meets the same counts (ASVS 6.3.1, NIST 800-63B 5.2.2).
Checking before judging costs one argon2 verification per refused password guess; the
hashing slots (:mod:`flask_flows.passwords`) bound that work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, g, has_request_context, request

from . import reputation, signals
from .i18n import N_, gettext, ngettext

if TYPE_CHECKING:
    from .extension import FlowsState

#: A guess was refused but its wait is already over (a rare race): try again.
MSG_TRY_AGAIN = N_("Too many failed attempts. Please try again.")
#: ``g`` key: standings read for right guesses in this request, for the login that follows.
_STANDINGS = "_flows_guess_standings"


@dataclass(frozen=True)
class Verdict:
    """How the server judged one guess."""

    #: True when the guess came too soon and was not judged (and not counted).
    refused: bool
    #: When the next guess from this IP at this account will be judged (Unix seconds).
    retry_at: float
    #: Failed guesses in a row from this IP at this account, this one included.
    failures: int

    def wait_seconds(self) -> int:
        """Whole seconds until :attr:`retry_at` (0 when a guess may be made now)."""
        return max(0, math.ceil(self.retry_at - time.time()))

    def wait_message(self) -> str | None:
        """ "Too many failed attempts. You can try again in 5 minutes." while the next
        guess must wait, else ``None``; in the request's language."""
        seconds = self.wait_seconds()
        return wait_sentence(seconds) if seconds else None

    def refusal_message(self) -> str:
        """What a refused guess is answered with, in the request's language."""
        return self.wait_message() or gettext(MSG_TRY_AGAIN)

    def after(self, message: str) -> str:
        """``message`` (an English message id) in the request's language, followed by
        the wait the next guess faces, if any."""
        return " ".join(filter(None, [gettext(message), self.wait_message()]))


def wait_sentence(seconds: int) -> str:
    """When the next guess may come, in the words a person uses and their language:
    "... in 1 minute.", "... in 5 minutes.", "... in 2 hours."."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 90:
        return ngettext(
            "Too many failed attempts. You can try again in {count} minute.",
            "Too many failed attempts. You can try again in {count} minutes.",
            minutes,
        )
    return ngettext(
        "Too many failed attempts. You can try again in {count} hour.",
        "Too many failed attempts. You can try again in {count} hours.",
        round(minutes / 60),
    )


def account(state: FlowsState, user: Any | None, identifier: str | None = None) -> str:
    """The reputation key of ``user``, or of ``identifier`` when it matches no user."""
    if user is not None:
        return reputation.user_key(state.user_store.user_id(user))
    return reputation.name_key(identifier or "")


def judge(state: FlowsState, key: str, correct: bool) -> Verdict:
    """Judge one guess at the account ``key`` from the request's IP; ``correct`` is what
    checking the secret found."""
    ip = _ip()
    judged = reputation.judge(state, key, ip, correct)
    found = judged.standing
    verdict = Verdict(judged.refused, found.retry_at, found.failures)
    if correct and not judged.refused:
        g.setdefault(_STANDINGS, {})[(key, reputation.ip_key(ip))] = found
    if verdict.refused:
        state.log.warning(
            "guess at %s refused: %d failures in a row, next allowed in %d s",
            key,
            verdict.failures,
            verdict.wait_seconds(),
        )
    return verdict


def connect_signals(app: Flask) -> None:
    """Keep this app's reputation rows: logins and unknown identifiers (called once per
    app by init_app; failed guesses are counted by :func:`judge` itself)."""
    signals.login_failed.connect(_on_login_failed, sender=app)
    signals.user_logged_in.connect(_on_user_logged_in, sender=app)


def _on_login_failed(
    app: Flask, identifier: str | None = None, stage: Any = None, reason: str = "", **_: Any
) -> None:
    if reason != "unknown_identifier" or not identifier or _pretends(app, stage):
        # Pretending, the password stage that follows judges the guess like any other;
        # scoring here as well would make unknown names lose reputation twice as fast
        # as real accounts, which would tell them apart (ASVS 6.3.8).
        return
    state: FlowsState = app.extensions["flows"]
    reputation.record_miss(state, reputation.name_key(identifier), _ip())


def _on_user_logged_in(app: Flask, user: Any = None, **_: Any) -> None:
    if user is None:
        return
    state: FlowsState = app.extensions["flows"]
    key = account(state, user)
    ip = _ip()
    seen = None
    if has_request_context():
        seen = g.get(_STANDINGS, {}).get((key, reputation.ip_key(ip)))
    rules = state.reputation_rules
    if (
        seen is not None
        and seen.failures == 0
        and seen.familiar_until > seen.now + rules.familiar_for - rules.refresh
    ):
        return  # familiar, refreshed lately and nothing to reset: a login costs no write
    reputation.record_login(state, key, ip)


def _ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def _pretends(app: Flask, stage: Any) -> bool:
    """Whether ``stage`` is an identification stage that lets unknown identifiers continue."""
    if getattr(stage, "type", None) != "identification":
        return False
    state: FlowsState = app.extensions["flows"]
    return bool(state.stage_config(stage)["pretend_user_exists"])
