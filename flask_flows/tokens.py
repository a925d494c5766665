"""Bearer tokens: mailed links, invitations and server-side session keys.

A token is 256 bits from the OS CSPRNG, URL-safe; only its SHA-256 is stored, so the
database alone cannot produce a working link or session.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # surrogatepass: whatever arrives in a URL hashes, rather than raising.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
