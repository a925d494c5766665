"""User logout: ends the server-side session, so a replayed cookie is anonymous.

It shows a confirmation form: logging out changes state, and state changes only happen
on a POST that carries a CSRF token.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from .. import sessions, signals
from ..outcomes import Outcome
from .base import WORDING, StageForm, StageResult, StageRun, StageType, ok


class UserLogoutStage(StageType):
    name = "user_logout"
    template = "flows/stages/user_logout.html"
    options = {**WORDING}

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        user = run.state.current_user()
        return {"username": run.state.user_store.display_name(user)}

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.state.current_user()
        sessions.log_out(run.state)
        if user is not None:
            run.state.log.info("user_logout: user %s logged out", user.get_id())
            signals.user_logged_out.send(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                user=user,
            )
            run.record(Outcome.signed_out)
        return ok()
