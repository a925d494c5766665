"""The one CSRF check for flask-flows' own POSTs (stage forms, cancel, mailed links).

It honours ``WTF_CSRF_ENABLED`` and ``WTF_CSRF_FIELD_NAME`` like Flask-WTF, and marks the
request checked as ``CSRFProtect`` does, so a stage form's own CSRF field does not verify
the same token again.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError

from .i18n import N_

#: What a visitor reads when a form's CSRF token is missing, wrong or expired.
MSG_CSRF = N_("The form expired. Please try again.")


def field_name() -> str:
    """The form field that carries the token: ``WTF_CSRF_FIELD_NAME``, as Flask-WTF reads it."""
    return str(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))


def csrf_valid() -> bool:
    """Whether this request's form carries a valid CSRF token (always, when disabled)."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return True
    try:
        validate_csrf(request.form.get(field_name()))
    except ValidationError:
        return False
    g.csrf_valid = True
    return True
