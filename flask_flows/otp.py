"""One-time codes: TOTP verification with replay protection, and recovery codes.

Both setup and login verify codes through :func:`verify_totp`, which is also what the
RFC 6238 test vectors run through. A code is accepted at most once per time step: the
device remembers the last step it accepted, and a code for that step or an earlier one
is a replay (ASVS 6.5.1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyotp

from .devices import StaticDevice, StaticToken, TOTPDevice
from .tokens import CODE_ALPHABET, group_code, normalise_code

if TYPE_CHECKING:
    from .passwords import PasswordHashing

ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
#: Steps either side of now that still count: clocks drift, people type slowly.
WINDOW = 1
_LOOKUP_LENGTH = 4
_SECRET_LENGTH = 8


def new_totp_secret() -> str:
    """A 160-bit base32 secret (RFC 4226 recommends at least 128 bits)."""
    return pyotp.random_base32(32)


def totp(device: TOTPDevice) -> pyotp.TOTP:
    return pyotp.TOTP(
        device.secret,
        digits=device.digits,
        digest=ALGORITHMS[device.algorithm],
        interval=device.period,
    )


def provisioning_uri(device: TOTPDevice, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return totp(device).provisioning_uri(name=account, issuer_name=issuer)


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking a TOTP code: accepted (with its step), replayed, or wrong."""

    accepted: bool
    step: int | None = None
    replayed: bool = False


def verify_totp(device: TOTPDevice, code: str, now: float | None = None) -> CodeCheck:
    """Check ``code`` against the steps around ``now``; the caller stores ``step`` on success.

    Every candidate step is compared in constant time, whatever matched, so timing does
    not reveal which step (or whether a replayed one) matched.
    """
    code = normalise_digits(code)
    if len(code) != device.digits or not code.isdigit():
        return CodeCheck(False)
    generator = totp(device)
    # The time step (RFC 6238: T = floor(Unix time / period)), computed here: pyotp's own
    # timecode() takes a datetime in the oldest versions we allow.
    current = int((time.time() if now is None else now) // generator.interval)
    matched: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(generator.generate_otp(step), code) and matched is None:
            matched = step
    if matched is None:
        return CodeCheck(False)
    if matched <= (device.last_step or 0):
        return CodeCheck(False, step=matched, replayed=True)
    return CodeCheck(True, step=matched)


def normalise_digits(code: str) -> str:
    return "".join(code.split()).replace("-", "")


def new_recovery_seed() -> bytes:
    """256 bits from the OS CSPRNG, from which :func:`recovery_codes` derives a set."""
    return secrets.token_bytes(32)


def recovery_codes(seed: bytes, count: int) -> list[str]:
    """``count`` codes like ``7K3Q-9XW2-HF4D`` (60 bits each), derived from ``seed``.

    The same seed gives the same codes, so a setup page shown again (a reload, a form
    error) shows the set the person may already have saved rather than a new one. The
    bytes come from HMAC-SHA256 over a counter (a DRBG in the manner of NIST SP 800-90A);
    the 32-letter alphabet takes five bits of a byte, so every letter is equally likely.
    """
    codes: list[str] = []
    lookups: set[str] = set()
    length = _LOOKUP_LENGTH + _SECRET_LENGTH
    block = 0
    while len(codes) < count:
        digest = hmac.new(seed, block.to_bytes(8, "big"), hashlib.sha256).digest()
        block += 1
        raw = "".join(CODE_ALPHABET[byte & 31] for byte in digest[:length])
        if raw[:_LOOKUP_LENGTH] in lookups:
            continue
        lookups.add(raw[:_LOOKUP_LENGTH])
        codes.append(group_code(raw))
    return codes


def new_recovery_codes(count: int) -> list[str]:
    """``count`` codes from a fresh seed (60 bits each, from the OS CSPRNG)."""
    return recovery_codes(new_recovery_seed(), count)


def store_recovery_codes(device: StaticDevice, codes: list[str], hashing: PasswordHashing) -> None:
    """Attach hashed tokens for ``codes`` to ``device``; the plaintext is not kept."""
    for code in codes:
        raw = normalise_code(code)
        device.tokens.append(
            StaticToken(lookup=raw[:_LOOKUP_LENGTH], secret_hash=hashing.hash(raw[_LOOKUP_LENGTH:]))
        )


def match_recovery_code(
    devices: list[StaticDevice], code: str, hashing: PasswordHashing
) -> StaticToken | None:
    """The unused token ``code`` belongs to, or ``None``; one argon2 verification either way.

    The first four characters pick the token, so a check costs one hash however many
    codes are left, and a miss costs the same as a hit.
    """
    raw = normalise_code(code)
    if len(raw) != _LOOKUP_LENGTH + _SECRET_LENGTH:
        hashing.verify(None, raw)
        return None
    lookup, secret = raw[:_LOOKUP_LENGTH], raw[_LOOKUP_LENGTH:]
    token = next((t for device in devices for t in device.tokens if t.lookup == lookup), None)
    if hashing.verify(token.secret_hash if token else None, secret):
        return token
    return None
