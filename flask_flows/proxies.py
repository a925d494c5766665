"""Noticing a reverse proxy the app does not know about.

Guesses are judged per account and client IP (:mod:`flask_flows.reputation`), and the
client IP is ``request.remote_addr``. Behind a reverse proxy that is the proxy's
address for every visitor, unless the app applies Werkzeug's ``ProxyFix``: then a few
wrong passwords from anyone hold back everyone. A request that carries
``X-Forwarded-For`` from a loopback or private peer, in an app whose requests did not
pass through ``ProxyFix``, says exactly that; it is logged once per process, with the
line that fixes it.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from flask import request

if TYPE_CHECKING:
    from .extension import FlowsState

#: What ProxyFix leaves in the WSGI environ when it rewrote the request.
_PROXY_FIX_MARK = "werkzeug.proxy_fix.orig"


def warn_if_unfixed(state: FlowsState) -> None:
    """``before_request`` of the flows blueprint (cheap: a header lookup, then once)."""
    if state.proxy_warned or "X-Forwarded-For" not in request.headers:
        return
    if _PROXY_FIX_MARK in request.environ or not _behind_a_proxy(request.remote_addr):
        return
    state.proxy_warned = True
    state.log.warning(
        "flask-flows: requests come through a proxy (X-Forwarded-For from %s), but the app"
        " does not apply ProxyFix, so every visitor has the proxy's address and wrong"
        " passwords from one hold back all: add"
        " `app.wsgi_app = werkzeug.middleware.proxy_fix.ProxyFix(app.wsgi_app, x_for=1)`"
        " (x_for = the number of proxies in front of the app)",
        request.remote_addr,
    )


def _behind_a_proxy(address: str | None) -> bool:
    try:
        peer = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return peer.is_loopback or peer.is_private
