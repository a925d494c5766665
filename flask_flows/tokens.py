"""Bearer tokens: mailed links, invitations and server-side session keys; and codes a
person reads and types.

A token is 256 bits from the OS CSPRNG, URL-safe; only its SHA-256 is stored, so the
database alone cannot produce a working link or session. A code (recovery codes, an
invitation given out on paper) uses Crockford's base32 alphabet, grouped by four; what
is typed is read back with :func:`normalise_code` (case, spaces and dashes ignored, the
look-alikes O, I, L, U taken for 0, 1, 1, V).
"""

from __future__ import annotations

import hashlib
import secrets

#: Crockford's base32: no I, L, O or U, which people confuse with 1, 1, 0 and V.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOK_ALIKES = str.maketrans("OILU", "011V")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_code(length: int = 20) -> str:
    """A random code of ``length`` characters (5 bits each: 100 bits for 20), grouped by
    four: ``7K3Q-9XW2-…``."""
    return group_code("".join(secrets.choice(CODE_ALPHABET) for _ in range(length)))


def group_code(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalise_code(code: str) -> str:
    """A typed code as it was made: no spaces or dashes, upper case, look-alikes mapped."""
    cleaned = "".join(code.split()).replace("-", "").upper()
    return cleaned.translate(_LOOK_ALIKES)


def hash_token(token: str) -> str:
    # surrogatepass: whatever arrives in a URL hashes, rather than raising.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
