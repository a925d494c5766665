"""What a finished flow did, said once, in the app's flashed messages.

Stages record what they did (:meth:`StageRun.record`: an account created, a password
changed, a login) in the plan's context. When the flow finishes, the executor makes one
message of them, in a fixed order ("Your account was created. You are signed in."), and
hands it to Flask's ``flash()`` when flashing is on, so the page the flow leads to says
what happened. The message is made in the request's language (each sentence translated,
then joined): the app shows a flash as it is.

``FLOWS_FLASH``: ``True`` or ``False``, or ``None`` (the default) for "when the app shows
flashed messages around flow pages", that is when ``FLOWS_LAYOUT_TEMPLATE`` names a layout
that calls ``get_flashed_messages``. An app whose pages show them but whose flows use
flask-flows' own shell sets it to ``True``. A flow that leads back to the settings page
(the setup flows, a password change started there) says it there instead, whatever the
setting: that page is flask-flows' own and shows its notices.
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, flash, session, url_for

from . import layouts
from .i18n import N_, gettext
from .plan import NOTICES

#: Plan context key: the outcomes recorded so far, in the order they happened.
OUTCOMES = "outcomes"
#: Session key of the notice the settings page shows once.
SETTINGS_NOTICE = "_flows_settings_notice"


class Outcome(enum.StrEnum):
    created = "created"
    password_changed = "password_changed"  # noqa: S105 (an outcome, not a password)
    email_changed = "email_changed"
    authenticator_added = "authenticator_added"
    passkey_added = "passkey_added"
    recovery_codes_saved = "recovery_codes_saved"
    deleted = "deleted"
    signed_in = "signed_in"
    signed_out = "signed_out"


#: The words for each outcome, in the order a message puts them.
SENTENCES = {
    Outcome.created: N_("Your account was created."),
    Outcome.password_changed: N_("Your password was changed."),
    Outcome.email_changed: N_("Your email address was changed."),
    Outcome.authenticator_added: N_("Your authenticator app was added."),
    Outcome.passkey_added: N_("Your passkey was added."),
    Outcome.recovery_codes_saved: N_("Your new recovery codes are ready."),
    Outcome.deleted: N_("Your account was deleted."),
    Outcome.signed_in: N_("You are signed in."),
    Outcome.signed_out: N_("You are signed out."),
}


def record(context: dict[str, Any], outcome: Outcome) -> None:
    recorded = list(context.get(OUTCOMES) or [])
    if outcome.value not in recorded:
        recorded.append(outcome.value)
    context[OUTCOMES] = recorded


def message(context: dict[str, Any]) -> str | None:
    """The flow's outcomes in one message, in the request's language (each sentence
    translated, then joined), then what passing policies said that no page showed;
    ``None`` when there is nothing to say."""
    recorded = set(context.get(OUTCOMES) or [])
    words = [
        gettext(sentence) for outcome, sentence in SENTENCES.items() if outcome.value in recorded
    ]
    words.extend(gettext(notice) for notice in context.get(NOTICES) or ())
    return " ".join(words) or None


def flash_outcome(app: Flask, context: dict[str, Any], target: str) -> None:
    """Say the finished flow's message on the page at ``target``: the settings page's
    notice when it leads there, else a flash when flashing is on for ``app``."""
    text = message(context)
    if not text:
        return
    if urlsplit(target).path == url_for("flows.settings"):
        session[SETTINGS_NOTICE] = text
    elif flashing(app):
        flash(text, app.config["FLOWS_FLASH_CATEGORY"])


def flashing(app: Flask) -> bool:
    setting = app.config["FLOWS_FLASH"]
    if setting is not None:
        return bool(setting)
    return layouts.layout_shows_flashes(app)
