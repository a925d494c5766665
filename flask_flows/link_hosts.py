"""Where mailed links point: never at a host the request merely claims to be.

A link in a recovery or sign-up mail carries a token that continues the flow. Built from
the request's ``Host`` header, a recovery request sent with ``Host: evil.example`` mails
the victim a link to the attacker's site, and the token it leaks resets the password on
the real one. So outside debug and testing, flask-flows builds mailed links only when
the app names its host: ``FLOWS_MAIL_BASE_URL``, or Flask's ``SERVER_NAME`` or
``TRUSTED_HOSTS`` (which make Flask refuse other ``Host`` headers). An app whose
database holds a stage that mails links refuses to start without one; a stage that
mails links added later fails its request instead of mailing a forgeable link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask, current_app, url_for
from sqlalchemy.exc import SQLAlchemyError

from .models import Stage
from .options import ConfigError, refuse_at_start

if TYPE_CHECKING:
    from .extension import FlowsState

SETTINGS = "FLOWS_MAIL_BASE_URL, SERVER_NAME or TRUSTED_HOSTS"


def mailed_link(endpoint: str, **values: Any) -> str:
    """The absolute URL of ``endpoint`` for a mail, on the app's own host.

    Raises :exc:`ConfigError` when the host could only come from the request.
    """
    config = current_app.config
    base = config["FLOWS_MAIL_BASE_URL"]
    if base:
        return str(base).rstrip("/") + url_for(endpoint, **values)
    if not host_is_pinned(current_app):
        raise ConfigError(
            f"flask-flows refuses to mail a link built from the request's Host header, which"
            f" a client can forge; set {SETTINGS}"
        )
    return url_for(endpoint, **values, _external=True)


def host_is_pinned(app: Flask) -> bool:
    """Whether links may be built for this request: the app names its host, or runs in
    debug or testing (a developer's machine, where the request's host is the right one)."""
    config = app.config
    return bool(
        config["FLOWS_MAIL_BASE_URL"]
        or config.get("SERVER_NAME")
        or config.get("TRUSTED_HOSTS")
        or app.debug
        or app.testing
    )


def check_at_start(
    app: Flask, state: FlowsState, mailing: Callable[[], str | None] | None = None
) -> None:
    """Refuse to start an app that mails links but has not named its host.

    ``mailing`` finds a stage that mails (:func:`mailing_stage`, one query shared with
    the other start-up checks); a database that cannot say yet is left to the check each
    mailed link makes. Under the ``flask`` command the problem is logged instead: the CLI
    must keep working (to migrate, to create users) while the configuration is fixed,
    and it serves no mail links.
    """
    if host_is_pinned(app):
        return
    found = mailing() if mailing is not None else mailing_stage(app, state)
    if found is None:
        return
    refuse_at_start(
        state.log,
        f"stage {found!r} mails links, and this app does not name its host: set {SETTINGS}"
        f" (e.g. FLOWS_MAIL_BASE_URL = 'https://example.com'), so a forged Host header"
        f" cannot point a recovery link at another site",
    )


def mailing_stage(app: Flask, state: FlowsState) -> str | None:
    """The name of a stage in the database that mails links (one query), ``None`` when
    there is none or the database cannot say yet (no tables before ``flask flows init``,
    out of reach, ``db.init_app`` after ``flows.init_app``: logged, and left to the
    check each mail makes)."""
    mailing = sorted(name for name, cls in state.flows.stage_types.items() if cls.mails_links)
    try:
        with app.app_context():
            return state.db.session.scalar(  # type: ignore[no-any-return]
                sa.select(Stage.name).where(Stage.type.in_(mailing)).limit(1)
            )
    except (SQLAlchemyError, RuntimeError):
        state.log.warning(
            "flask-flows: could not check for stages that mail links at start-up; set a"
            " mail host and a way to send before any is used"
        )
        return None
