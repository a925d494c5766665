"""User login: turns the plan's pending user into a logged-in Flask-Login user.

It starts a fresh session (nothing from before the login survives), records an
:class:`~flask_flows.models.AuthenticatedSession` so the login can be ended from the
server, and can end the user's other sessions.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from wtforms import BooleanField

from .. import sessions, signals
from ..i18n import N_
from ..options import Option
from ..outcomes import Outcome
from .base import WORDING, StageForm, StageResult, StageRun, StageType, deny, ok

MSG_NO_USER = N_("There is no account to log in to. Please start again.")
MSG_DISABLED = N_("This account is disabled.")


class UserLoginForm(StageForm):
    remember_me = BooleanField(N_("Stay signed in on this device"))


class UserLoginStage(StageType):
    name = "user_login"
    template = "flows/stages/user_login.html"
    options = {
        **WORDING,
        "session_duration": Option(
            int, default=0, minimum=0, help="Seconds; 0 ends the session with the browser."
        ),
        "remember_me_offset": Option(
            int, default=0, minimum=0, help="Extra seconds when the user ticks 'stay signed in'."
        ),
        "terminate_other_sessions": Option(bool, default=False),
    }

    def is_interactive(self, run: StageRun) -> bool:
        return run.config["remember_me_offset"] > 0

    def form_class(self, run: StageRun) -> type[StageForm]:
        return UserLoginForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        user = run.pending_user()
        return {"username": run.state.user_store.display_name(user)}

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(MSG_NO_USER)
        if not run.state.user_store.is_active(user):
            run.state.log.info("user_login: refused inactive user %s", user.get_id())
            return deny(MSG_DISABLED)
        remember = isinstance(form, UserLoginForm) and bool(form.remember_me.data)
        duration = run.config["session_duration"]
        if remember:
            duration += run.config["remember_me_offset"]
        sessions.log_in(
            run.state,
            user,
            duration=duration,
            persistent=remember or run.config["session_duration"] > 0,
            end_other_sessions=run.config["terminate_other_sessions"],
        )
        run.state.log.info("user_login: user %s logged in via %s", user.get_id(), run.flow.slug)
        signals.user_logged_in.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user=user,
            flow=run.flow,
        )
        run.record(Outcome.signed_in)
        return ok()
