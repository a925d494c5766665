"""The relying party of passkeys: which domain they are made for, and where pages run.

A passkey is bound to a domain (the relying party ID) and the browser writes the page's
origin into what it signs, so a passkey made for this site is useless to a look-alike
one, provided the server checks both against the right values. Those come from
configuration (``FLOWS_WEBAUTHN_RP_ID``, ``FLOWS_WEBAUTHN_ORIGINS``, else the site's
address in ``SERVER_NAME`` or ``FLOWS_MAIL_BASE_URL``), never from the request's
``Host`` header alone, which a client can forge: outside debug, testing and
``TRUSTED_HOSTS``, an app that offers passkeys without naming its domain refuses to
start (:func:`check_at_start`), and pages offer none where none could work
(:func:`usable_relying_party`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from .authenticators import PasskeyKind
from .models import Stage
from .options import ConfigError, refuse_at_start

if TYPE_CHECKING:
    from .extension import FlowsState

#: Stage types whose pages may run a ceremony (what in their options says they do:
#: :func:`_runs_ceremony`).
CEREMONY_STAGES = ("authenticator_webauthn", "identification", "authenticator_validate")
SETTINGS = "FLOWS_WEBAUTHN_RP_ID (and FLOWS_WEBAUTHN_ORIGINS), SERVER_NAME or FLOWS_MAIL_BASE_URL"


@dataclass(frozen=True)
class RelyingParty:
    """Who passkeys are made for: the RP ID (a domain), its name, the allowed origins."""

    id: str
    name: str
    origins: tuple[str, ...]


def relying_party(state: FlowsState) -> RelyingParty:
    """The RP of this request: from configuration (see :func:`configured`), or, where
    the host cannot be forged (``TRUSTED_HOSTS``) or does not matter (debug and
    testing), the request's own.

    Raises :exc:`ConfigError` when neither says.
    """
    name = str(state.config["FLOWS_BRAND_NAME"])
    rp_id, origins = configured(state.config)
    if rp_id and origins:
        return RelyingParty(rp_id, name, origins)
    if not _request_host_trusted(current_app):
        raise ConfigError(
            f"passkeys need this site's domain, which a request's Host header cannot be"
            f" trusted to give: set {SETTINGS}"
        )
    return RelyingParty(
        rp_id or request.host.rsplit(":", 1)[0].strip("[]"),
        name,
        origins or (f"{request.scheme}://{request.host}",),
    )


def usable_relying_party(state: FlowsState) -> RelyingParty | None:
    """The RP, where passkeys can work for this request; else ``None``, logged once per
    reason, and pages offer no passkeys rather than a button that always fails: when no
    setting names the site's domain (an app that started under the ``flask`` command,
    which only logs that), when the RP ID is an IP address (browsers refuse one:
    ``flask run``'s 127.0.0.1), or when the page is on another host than the RP ID
    (127.0.0.1 for a site whose passkeys are made for localhost)."""
    try:
        rp = relying_party(state)
    except ConfigError as error:
        _warn_once(state, "no domain", "passkeys: not offered: %s", error)
        return None
    host = request.host.rsplit(":", 1)[0].strip("[]")
    if _is_ip(rp.id):
        _warn_once(
            state, "ip", "passkeys: not offered on %s, an IP address; open the site by name", rp.id
        )
        return None
    if not _within(host, rp.id):
        _warn_once(
            state,
            "another host",
            "passkeys: not offered on %s: they are made for %s; open the site at %s",
            host,
            rp.id,
            rp.origins[0],
        )
        return None
    return rp


def _warn_once(state: FlowsState, reason: str, message: str, *args: Any) -> None:
    """Log ``message`` the first time passkeys are not offered for ``reason`` (not per
    host: a client chooses the Host header it sends)."""
    if reason not in state.passkeys_warned:
        state.passkeys_warned.add(reason)
        state.log.warning(message, *args)


def configured(config: Any) -> tuple[str | None, tuple[str, ...]]:
    """The RP ID and origins the configuration names: ``FLOWS_WEBAUTHN_RP_ID`` and
    ``FLOWS_WEBAUTHN_ORIGINS``, else the host of ``SERVER_NAME``, else that of
    ``FLOWS_MAIL_BASE_URL`` (the site's address either way); origins default to that
    address, or https on the RP ID."""
    origins = _configured_origins(config)
    server_name = config.get("SERVER_NAME")
    base = config.get("FLOWS_MAIL_BASE_URL")
    if server_name:
        site: str | None = f"{_scheme(config, server_name)}://{server_name}"
    elif base:
        parts = urlsplit(str(base))
        site = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
    else:
        site = None
    # An address that is an IP gives an RP ID browsers refuse: pages then offer no
    # passkeys (usable_relying_party), and the app still starts.
    rp_id = config["FLOWS_WEBAUTHN_RP_ID"] or (urlsplit(site).hostname if site else None)
    if not origins and rp_id:
        if site and _within(urlsplit(site).hostname or "", rp_id):
            origins = (site,)
        else:
            origins = (f"https://{rp_id}",)
    return rp_id, origins


def check_config(config: Any) -> None:
    """Refuse settings that cannot work: an origin whose host is not the RP ID or below it
    (browsers refuse such a ceremony, so every passkey would fail)."""
    named = config["FLOWS_WEBAUTHN_RP_ID"]
    if named and ("/" in named or ":" in named or _is_ip(named)):
        raise ConfigError(
            f"FLOWS_WEBAUTHN_RP_ID: {named!r} is a domain such as 'example.com', not a URL"
            " or an IP address"
        )
    rp_id, origins = configured(config)
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.path:
            raise ConfigError(
                f"FLOWS_WEBAUTHN_ORIGINS: {origin!r} is not an origin such as 'https://example.com'"
            )
        if rp_id and not _within(parts.hostname, rp_id):
            raise ConfigError(
                f"FLOWS_WEBAUTHN_ORIGINS: {origin!r} is not on the RP ID {rp_id!r} (from"
                " FLOWS_WEBAUTHN_RP_ID, SERVER_NAME or FLOWS_MAIL_BASE_URL) or a subdomain of it"
            )


def check_at_start(app: Flask, state: FlowsState) -> None:
    """Refuse to start an app whose database offers passkeys but whose RP cannot be
    known (see :func:`relying_party`); logged instead under the ``flask`` command."""
    if configured(app.config)[0] or _request_host_trusted(app):
        return
    try:
        with app.app_context():
            rows = state.db.session.execute(
                sa.select(Stage.name, Stage.type, Stage.config).where(
                    Stage.type.in_(CEREMONY_STAGES)
                )
            ).all()
    except (SQLAlchemyError, RuntimeError):
        return  # no tables yet, or no database: each ceremony checks for itself
    found = next((name for name, kind, config in rows if _runs_ceremony(kind, config)), None)
    if found is not None:
        refuse_at_start(
            state.log,
            f"stage {found!r} uses passkeys, and this app does not name its domain: set"
            f" {SETTINGS} (e.g. FLOWS_WEBAUTHN_RP_ID = 'example.com')",
        )


def _scheme(config: Any, server_name: str) -> str:
    """The scheme pages on ``SERVER_NAME`` run on, for passkeys: https, as browsers allow
    passkeys on http only at localhost (Flask's PREFERRED_URL_SCHEME defaults to http,
    which a site behind TLS often leaves as it is)."""
    host = urlsplit(f"//{server_name}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return str(config.get("PREFERRED_URL_SCHEME") or "http")
    return "https"


def _runs_ceremony(kind: str, config: Any) -> bool:
    """Whether a stage of type ``kind`` with ``config`` (as stored) shows passkeys."""
    config = config if isinstance(config, dict) else {}
    if kind == "identification":
        return bool(config.get("webauthn_stage"))
    if kind == "authenticator_validate":
        return PasskeyKind.key in (config.get("device_classes") or ())
    return True


def _configured_origins(config: Any) -> tuple[str, ...]:
    origins = config["FLOWS_WEBAUTHN_ORIGINS"]
    if isinstance(origins, str):
        origins = [origins]
    return tuple(str(origin).rstrip("/") for origin in origins or ())


def _request_host_trusted(app: Flask) -> bool:
    return bool(app.config.get("TRUSTED_HOSTS") or app.debug or app.testing)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _within(host: str, rp_id: str) -> bool:
    return host == rp_id or host.endswith("." + rp_id)
