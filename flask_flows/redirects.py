"""Validation of ``next`` targets: only same-origin relative paths are ever followed."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import request

# Enough rounds to see through double and triple percent-encoding of `//` or `\`.
_DECODE_ROUNDS = 4


def app_home() -> str:
    """The app's home page, where a way out leads when ``next`` could lead back into the
    login (a cancelled login, a lockout): the root of the app, wherever it is mounted."""
    return request.script_root + "/"


def safe_next(target: str | None) -> str | None:
    """Return ``target`` if it is a relative path on this site, else ``None``.

    Refuses scheme-relative (``//host``), backslash (``/\\host``, which browsers treat as
    ``//host``), absolute and ``javascript:`` URLs, control characters, and any of those
    hidden behind percent-encoding.
    """
    if not target or len(target) > 2048:
        return None
    candidate = target
    for _ in range(_DECODE_ROUNDS):
        if not _is_safe_path(candidate):
            return None
        decoded = unquote(candidate)
        if decoded == candidate:
            return target
        candidate = decoded
    return None


def _is_safe_path(value: str) -> bool:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return False
    if "\\" in value:
        return False
    if not value.startswith("/") or value.startswith("//"):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
