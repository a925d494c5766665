"""Headers that keep flows pages out of other sites' frames (clickjacking) and stop
browsers from guessing content types.

A login or settings page shown inside an attacker's invisible frame can be clicked
through ("remove this authenticator", "end all sessions") by a user who thinks they
click something else. Every response of the flows blueprint therefore says who may
frame it: CSP ``frame-ancestors`` for current browsers and ``X-Frame-Options`` for old
ones, from ``FLOWS_FRAME_ANCESTORS``. A policy already on the response is kept, and the
app's own ``after_request`` handlers (Flask-Talisman's too) run after this one, so theirs
has the last word.
"""

from __future__ import annotations

from flask import Response, current_app


def add_framing_headers(response: Response) -> Response:
    """``after_request`` of the flows blueprint."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    ancestors = current_app.config["FLOWS_FRAME_ANCESTORS"]
    if not ancestors or "Content-Security-Policy" in response.headers:
        return response
    response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    legacy = {"'none'": "DENY", "'self'": "SAMEORIGIN"}.get(ancestors.strip())
    if legacy is not None:
        response.headers.setdefault("X-Frame-Options", legacy)
    return response
