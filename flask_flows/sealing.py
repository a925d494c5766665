"""The plan's context, sealed: encrypted and authenticated inside the session cookie.

Flask's session is signed, not encrypted, so anyone can read it. The plan's context holds
what must not be read there: whether an account exists (``pending_user``, set only for
real accounts), a sign-up's email, username and password hash. So the context travels
sealed with AES-GCM under a key derived from ``SECRET_KEY`` (HKDF-SHA256; a key listed
in ``SECRET_KEY_FALLBACKS`` still opens what it sealed, so keys can be rotated like
Flask's own), bound to the flow's slug, so a context cannot be moved to another flow.

The sealed value is the same size whether or not an account was found: the pending
user's id travels in a fixed-size slot (user ids are at most 64 characters, like the
``user_id`` columns), never in the variable part.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask.sessions import session_json_serializer

_INFO = b"flask-flows plan context v1"
_NONCE = 12
#: Bytes of the pending user's slot: a length byte, then the id padded to 64 bytes.
_SLOT = 64
_PLAIN, _TAGGED = b"j", b"t"


def seal(context: dict[str, Any], slug: str, fixed: str) -> str:
    """``context`` encrypted for the session (URL-safe base64, no padding); the value
    under the key ``fixed`` travels in the fixed-size slot."""
    rest = dict(context)
    pending = rest.pop(fixed, None)
    slot = _slot(pending)
    if slot is None:  # a value that does not fit travels with the rest
        rest[fixed] = pending
        slot = _slot(None)
    assert slot is not None
    plaintext = slot + _dumps(rest)
    nonce = os.urandom(_NONCE)
    sealed = nonce + _cipher(_keys()[0]).encrypt(nonce, plaintext, slug.encode())
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def unseal(value: Any, slug: str, fixed: str) -> dict[str, Any] | None:
    """The context sealed in ``value`` for ``slug``; ``None`` when it is not one (altered,
    sealed for another flow or with a key no longer configured, or not sealed at all)."""
    if not isinstance(value, str):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None
    nonce, sealed = raw[:_NONCE], raw[_NONCE:]
    for key in _keys():
        try:
            plaintext = _cipher(key).decrypt(nonce, sealed, slug.encode())
        except (InvalidTag, ValueError):
            continue
        return _context(plaintext, fixed)
    return None


def _dumps(context: dict[str, Any]) -> bytes:
    """Plain JSON (what the stages store, and quick to read on every request), or Flask's
    tagged JSON, after a marker byte, for what plain JSON would not give back as it was
    (tuples, dates, UUIDs, bytes: what Flask's session takes) that an app's own stage
    may keep in the context. A context that comes back changed would otherwise look
    changed on every request, and be sealed and sent again each time."""
    try:
        plain = json.dumps(context, separators=(",", ":"))
        if json.loads(plain) == context:
            return _PLAIN + plain.encode()
    except TypeError:
        pass
    return _TAGGED + session_json_serializer.dumps(context).encode()


def _loads(data: bytes) -> Any:
    if data[:1] == _TAGGED:
        return session_json_serializer.loads(data[1:].decode())
    return json.loads(data[1:])


def _context(plaintext: bytes, fixed: str) -> dict[str, Any] | None:
    length = plaintext[0]
    context = _loads(plaintext[1 + _SLOT :])
    if not isinstance(context, dict):
        return None
    if length:
        context[fixed] = plaintext[1 : 1 + length].decode()
    return context


def _slot(pending: Any) -> bytes | None:
    """The fixed-size slot for the pending user's id, or ``None`` if it does not fit."""
    if pending is None:
        return bytes(1 + _SLOT)
    if not isinstance(pending, str):
        return None
    encoded = pending.encode()
    if not 0 < len(encoded) <= _SLOT:
        return None
    return bytes([len(encoded)]) + encoded.ljust(_SLOT, b"\0")


def _keys() -> list[bytes]:
    """The app's secret key first, then its fallbacks (Flask 3.1's key rotation)."""
    app = current_app
    secrets = [app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ())]
    keys = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets if s]
    if not keys:
        raise RuntimeError("flask-flows keeps plans in the session, which needs SECRET_KEY")
    return keys


@functools.lru_cache(maxsize=16)
def _cipher(secret: bytes) -> AESGCM:
    """The AES-256-GCM cipher keyed from ``secret`` (derived once per secret)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    return AESGCM(key)
