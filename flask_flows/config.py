"""``FLOWS_*`` configuration keys and their defaults (set with ``setdefault`` in init_app)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Where the blueprint is mounted.
    "FLOWS_URL_PREFIX": "/flows",
    # Where a finished flow goes when the plan has no validated `next`.
    "FLOWS_DEFAULT_REDIRECT": "/",
    # Shown in the page shell and titles; defaults to the app's name.
    "FLOWS_BRAND_NAME": None,
    # A plan older than this (seconds) is restarted with a message.
    "FLOWS_PLAN_MAX_AGE": 3600,
    # How long a cached plan lives (seconds); 0 turns the plan cache off.
    "FLOWS_PLAN_CACHE_TTL": 300,
    # An empty plan (no stage applies) finishes the flow at once instead of failing.
    "FLOWS_ALLOW_EMPTY_FLOWS": True,
    # argon2id parameters; the defaults are argon2-cffi's (RFC 9106 low-memory profile).
    "FLOWS_ARGON2_TIME_COST": 3,
    "FLOWS_ARGON2_MEMORY_COST": 65536,
    "FLOWS_ARGON2_PARALLELISM": 4,
    # Where pages load htmx from; None serves the copy bundled in the package.
    "FLOWS_HTMX_URL": None,
    # Log a user out when their server-side session row is gone (logout elsewhere, expiry).
    "FLOWS_ENFORCE_SESSIONS": True,
    # Point Flask-Login's login_view at the default authentication flow when it has none.
    "FLOWS_SET_LOGIN_VIEW": True,
}


def apply_defaults(config: dict[str, Any], app_name: str) -> None:
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    if not config["FLOWS_BRAND_NAME"]:
        config["FLOWS_BRAND_NAME"] = app_name
