"""One-time challenges of passkey ceremonies, kept where the browser's answer finds them.

A challenge waits in a mapping the request can reach again (the plan's context; the
session on the settings page), which the browser holds: so it is taken out when an
answer comes, and the hash of every answered one is kept in ``flows_spent_challenge``
until it expires, so that a copy of an older cookie cannot bring one back. A challenge
is a nonce, not a secret.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import MutableMapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from .devices import SpentChallenge
from .models import utcnow

if TYPE_CHECKING:
    from .extension import FlowsState

#: Where a ceremony's challenge waits for its answer (plan context or session key).
CHALLENGE = "passkey_challenge"
#: How long the browser is given to answer (the ceremony's timeout says the same).
CHALLENGE_SECONDS = 300


def issue_challenge(store: MutableMapping[str, Any], purpose: str) -> bytes:
    """The challenge waiting in ``store`` for ``purpose``, or a new one: a page shown
    again keeps its challenge (and the cookie its size) until it is answered or old."""
    waiting = store.get(CHALLENGE)
    if (
        isinstance(waiting, dict)
        and waiting.get("p") == purpose
        and float(waiting.get("e", 0)) > time.time() + 30
    ):
        return base64url_to_bytes(waiting["c"])
    challenge = secrets.token_bytes(32)
    store[CHALLENGE] = {
        "c": bytes_to_base64url(challenge),
        "p": purpose,
        "e": int(time.time()) + CHALLENGE_SECONDS,
    }
    return challenge


def take_challenge(store: MutableMapping[str, Any], purpose: str) -> dict[str, Any] | None:
    """Remove the challenge for ``purpose`` from ``store`` and return it (``c`` the
    bytes), ``None`` when there is none or it expired: each is answered at most once."""
    waiting = store.pop(CHALLENGE, None)
    if not isinstance(waiting, dict) or waiting.get("p") != purpose:
        return None
    if float(waiting.get("e", 0)) < time.time():
        return None
    return {**waiting, "c": base64url_to_bytes(waiting["c"])}


def spend_challenge(state: FlowsState, challenge: bytes) -> bool:
    """Record ``challenge`` as answered, in one commit with what the session holds
    already; ``False``, with all of it rolled back, if it was answered before (a replay)."""
    session = state.db.session
    now = utcnow()
    session.execute(sa.delete(SpentChallenge).where(SpentChallenge.expires < now))
    session.add(
        SpentChallenge(
            digest=hashlib.sha256(challenge).hexdigest(),
            expires=now + timedelta(seconds=CHALLENGE_SECONDS),
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True
