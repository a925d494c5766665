"""Password hashes flask-flows did not make, verified so existing users can log in.

An app that adopts flask-flows keeps its users and their hashes: werkzeug's
``scrypt:``/``pbkdf2:`` (what ``generate_password_hash`` makes, the most common in Flask
apps), passlib's ``$pbkdf2-sha512$`` / ``$pbkdf2-sha256$`` / ``$pbkdf2$``, and bcrypt's
``$2a$``/``$2b$``/``$2y$`` (with the optional ``bcrypt`` package: ``flask-flows[bcrypt]``).
argon2 hashes of any variant and parameters are argon2's own business. A user whose
password matches is re-hashed with argon2id at once (the login's commit keeps it), so
each legacy hash is checked at most until its owner's next login.

Any other format: append a :class:`PasswordFormat` to ``flows.password_formats``::

    flows.password_formats.append(PasswordFormat("md5-crypt", is_md5, verify_md5))

Every check of a legacy hash also spends one argon2 verification, so no check costs less
than a miss does (ASVS 6.3.8). It may cost more: a legacy scheme slower than argon2
shows in the timing until its owner logs in once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.security import check_password_hash

log = logging.getLogger("flask_flows.passwords")


@dataclass(frozen=True)
class PasswordFormat:
    """A hash format: ``matches(hash)`` recognises it, ``verify(hash, password)`` checks a
    password against it (``False`` on a mismatch or a malformed hash, never raising)."""

    name: str
    matches: Callable[[str], bool]
    verify: Callable[[str, str], bool]


def _werkzeug(password_hash: str, password: str) -> bool:
    try:
        return check_password_hash(password_hash, password)
    except (ValueError, TypeError, OverflowError):
        return False


_PBKDF2_DIGESTS = {"$pbkdf2$": "sha1", "$pbkdf2-sha256$": "sha256", "$pbkdf2-sha512$": "sha512"}


def _passlib_pbkdf2(password_hash: str, password: str) -> bool:
    """passlib's ``$pbkdf2-<digest>$<rounds>$<salt>$<checksum>``, salt and checksum in its
    "adapted base64" (``.`` for ``+``, no padding)."""
    try:
        prefix, rounds, salt, checksum = password_hash.rsplit("$", 3)
        digest = _PBKDF2_DIGESTS[prefix + "$"]
        expected = _ab64_decode(checksum)
        actual = hashlib.pbkdf2_hmac(
            digest, password.encode(), _ab64_decode(salt), int(rounds), len(expected)
        )
    except (KeyError, ValueError, OverflowError):
        return False
    return hmac.compare_digest(actual, expected)


def _ab64_decode(text: str) -> bytes:
    return base64.b64decode(text.replace(".", "+") + "=" * (-len(text) % 4), validate=True)


def _bcrypt(password_hash: str, password: str) -> bool:
    try:
        import bcrypt
    except ImportError:
        log.warning(
            "a user's password is a bcrypt hash, and the bcrypt package is not installed"
            " (pip install 'flask-flows[bcrypt]'): the login is refused"
        )
        return False
    try:
        # bcrypt hashed only the first 72 bytes; bcrypt 5 refuses longer input instead.
        return bool(bcrypt.checkpw(password.encode()[:72], password_hash.encode()))
    except ValueError:
        return False


WERKZEUG = PasswordFormat("werkzeug", lambda h: h.startswith(("scrypt:", "pbkdf2:")), _werkzeug)
PASSLIB_PBKDF2 = PasswordFormat(
    "passlib-pbkdf2", lambda h: h.startswith(tuple(_PBKDF2_DIGESTS)), _passlib_pbkdf2
)
BCRYPT = PasswordFormat("bcrypt", lambda h: h.startswith(("$2a$", "$2b$", "$2y$")), _bcrypt)

#: Checked in order for any hash that is not argon2's.
DEFAULT_FORMATS = (WERKZEUG, PASSLIB_PBKDF2, BCRYPT)
