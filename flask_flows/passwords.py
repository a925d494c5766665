"""Password hashing with argon2id, configured from ``FLOWS_ARGON2_*``.

One hasher per app. Verifying against :attr:`PasswordHashing.dummy_hash` when no user
matched costs exactly one argon2 verification, the same as a real miss, so neither
the response nor its timing tells whether an account exists.

Hashes of other formats (an existing app's werkzeug, passlib or bcrypt hashes) verify
through :mod:`flask_flows.password_formats`, and are replaced by argon2id on a match.

argon2 is slow and memory-hard on purpose, which makes it the thing an attacker sends
many of at once. So every hash and verification first runs ``before_slow_work`` (the
app's hook hands the request's database connection back to the pool: twenty parallel
guesses once held twenty connections and took the app down), then waits at most
``FLOWS_ARGON2_WAIT`` seconds for one of ``FLOWS_ARGON2_MAX_CONCURRENT`` slots, and
otherwise raises :exc:`HashingBusy`, which the flows answer with "try again in a
moment" instead of a queue that grows without end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .i18n import N_
from .password_formats import DEFAULT_FORMATS, PasswordFormat

#: What a person sees when every hashing slot stayed taken.
MSG_BUSY = N_("We are handling a lot of sign-ins right now. Please try again in a few seconds.")


class HashingBusy(Exception):
    """Every hashing slot stayed taken for ``FLOWS_ARGON2_WAIT`` seconds: the server is
    overloaded (or under a guessing attack); the user should try again in a moment."""


class PasswordHashing:
    """argon2id hashing with the app's parameters, rehash detection and a timing-safe miss,
    a bounded number at a time."""

    def __init__(
        self,
        time_cost: int,
        memory_cost: int,
        parallelism: int,
        *,
        max_concurrent: int | None = None,
        wait: float = 1.0,
        before_slow_work: Callable[[], None] | None = None,
        formats: Sequence[PasswordFormat] = DEFAULT_FORMATS,
    ) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        self.wait = wait
        self.before_slow_work = before_slow_work
        #: Hashes not made by argon2 that still verify (:mod:`flask_flows.password_formats`).
        self.formats = formats
        self._slots = threading.BoundedSemaphore(max_concurrent or os.cpu_count() or 2)
        # Made up front, so not even the first miss of a process takes longer than a match.
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        with self._slot():
            return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing or malformed hash still costs one verify."""
        with self._slot():
            legacy = self._legacy_format(password_hash)
            if legacy is not None and password_hash is not None:
                self._spend_one_verification(password)
                try:
                    return legacy.verify(password_hash, password)
                except Exception:  # an app's format that raised: a failed check, logged
                    logging.getLogger("flask_flows.passwords").exception(
                        "password format %r raised", legacy.name
                    )
                    return False
            try:
                return self.hasher.verify(password_hash or self.dummy_hash, password) and bool(
                    password_hash
                )
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                if password_hash is not None and not password_hash.startswith("$argon2"):
                    self._spend_one_verification(password)
                return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        if self.before_slow_work is not None:
            self.before_slow_work()
        if not self._slots.acquire(timeout=self.wait):
            raise HashingBusy
        try:
            yield
        finally:
            self._slots.release()

    def _legacy_format(self, password_hash: str | None) -> PasswordFormat | None:
        if not password_hash or password_hash.startswith("$argon2"):
            return None
        return next((f for f in self.formats if f.matches(password_hash)), None)

    def _spend_one_verification(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self.hasher.verify(self.dummy_hash, password)
