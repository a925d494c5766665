"""Password hashing with argon2id, configured from ``FLOWS_ARGON2_*``.

One hasher per app. Verifying against :attr:`PasswordHashing.dummy_hash` when no user
matched costs exactly one argon2 verification, the same as a real miss, so neither
the response nor its timing tells whether an account exists.
"""

from __future__ import annotations

import contextlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHashing:
    """argon2id hashing with the app's parameters, rehash detection and a timing-safe miss."""

    def __init__(self, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # Made up front, so not even the first miss of a process takes longer than a match.
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing or malformed hash still costs one verify."""
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

    def _spend_one_verification(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self.hasher.verify(self.dummy_hash, password)
