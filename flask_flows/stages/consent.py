"""Consent: asks the user to allow a target (usually an application) to act for them.

For authorization flows. ``mode`` decides what is remembered:

- ``always_require``: ask every time, remember nothing;
- ``permanent``: remember the answer until the consent row is deleted;
- ``expiring``: remember it for ``consent_expire_in`` seconds.

A remembered consent counts only while it covers every permission asked for now, so
asking for more later asks again. The target is the configured ``target``, else the
plan context's ``application``, else the flow slug. Declining is the usual Cancel.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..grants import UserConsent
from ..i18n import N_, ngettext
from ..models import utcnow
from ..options import Option
from .base import WORDING, StageForm, StageResult, StageRun, StageType, deny, ok

#: Plan context key an authorization flow may set to name what is being consented to.
APPLICATION = "application"

MSG_NO_USER = N_("Please log in before giving consent.")

FOUR_WEEKS = 4 * 7 * 24 * 3600


class ConsentStage(StageType):
    name = "consent"
    template = "flows/stages/consent.html"
    options = {
        **WORDING,
        "mode": Option(
            str, default="always_require", choices=("always_require", "permanent", "expiring")
        ),
        "consent_expire_in": Option(
            int, default=FOUR_WEEKS, minimum=1, help="Seconds an expiring consent lasts."
        ),
        "target": Option(
            str,
            default=None,
            nullable=True,
            help="What is consented to; default the plan's application, else the flow slug.",
        ),
        "permissions": Option(list, default=(), items=str, text=True, help="Shown to the user."),
    }

    def is_interactive(self, run: StageRun) -> bool:
        # Without a user there is nothing to ask: respond() denies at once.
        user = run.pending_user()
        return user is not None and self._remembered(run, user) is None

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        return {
            "target": _target(run),
            "permissions": run.config["permissions"],
            "remembered_for": _duration(run.config["consent_expire_in"]),
        }

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(MSG_NO_USER)
        if form is None:
            # Not interactive with a user: a remembered consent covers this request.
            return ok()
        if run.config["mode"] != "always_require":
            self._remember(run, run.state.user_store.user_id(user))
        return ok()

    def _remembered(self, run: StageRun, user: Any) -> UserConsent | None:
        if run.config["mode"] == "always_require":
            return None
        consent = run.state.db.session.scalar(
            sa.select(UserConsent).where(
                UserConsent.user_id == run.state.user_store.user_id(user),
                UserConsent.target == _target(run),
            )
        )
        if consent is None or consent.is_expired() or not consent.covers(run.config["permissions"]):
            return None
        return consent

    def _remember(self, run: StageRun, user_id: str) -> None:
        """Store or refresh the consent; a concurrent insert for the same pair is updated."""
        expires = None
        if run.config["mode"] == "expiring":
            expires = utcnow() + timedelta(seconds=run.config["consent_expire_in"])
        values = {"permissions": "\n".join(run.config["permissions"]), "expires": expires}
        session = run.state.db.session
        target = _target(run)
        for _attempt in range(2):
            where = (UserConsent.user_id == user_id, UserConsent.target == target)
            updated = session.execute(
                sa.update(UserConsent)
                .where(*where)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if updated.rowcount:  # type: ignore[attr-defined]
                session.commit()
                return
            try:
                session.add(UserConsent(user_id=user_id, target=target, **values))
                session.commit()
                return
            except IntegrityError:
                # Another request inserted the same (user, target) first: update that row.
                session.rollback()
        raise RuntimeError(f"consent for target {target!r} could not be stored")


def _target(run: StageRun) -> str:
    configured = run.config["target"]
    if configured:
        return str(configured)[:256]
    return str(run.context.get(APPLICATION) or run.flow.slug)[:256]


def _duration(seconds: int) -> str:
    """``consent_expire_in`` in words, to the largest whole unit: "28 days", "90 minutes",
    in the page's language."""
    if seconds >= 86400 and seconds % 86400 == 0 or seconds >= 2 * 86400:
        return ngettext("{count} day", "{count} days", seconds // 86400)
    if seconds >= 3600 and seconds % 3600 == 0 or seconds >= 2 * 3600:
        return ngettext("{count} hour", "{count} hours", seconds // 3600)
    if seconds >= 60 and seconds % 60 == 0 or seconds >= 2 * 60:
        return ngettext("{count} minute", "{count} minutes", seconds // 60)
    return ngettext("{count} second", "{count} seconds", seconds)
