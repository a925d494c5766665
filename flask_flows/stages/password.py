"""Password: checks the pending user's password with argon2id.

An unknown user (identification pretended) and a wrong password give the same message
after the same single argon2 verification and the same judgement on the server
(:mod:`flask_flows.guesses`), which refuses guesses that come too soon. Failed attempts
are also counted in the plan; at ``failed_attempts_before_cancel`` the plan is cancelled.

Reached with nobody to check (no identification before it, nobody logged in), the
stage denies at once, as authentik's does: the flow is built wrong, and a password typed
there could be wrong for no one.
"""

from __future__ import annotations

from typing import Any

from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from .. import lockouts
from ..i18n import N_
from ..options import Option
from ..plan import AUTH_METHOD, PENDING_USER, PENDING_USER_IDENTIFIER, passkey_login
from .base import (
    WORDING,
    StageForm,
    StageResult,
    StageRun,
    StageType,
    count_failure,
    deny,
    invalid,
    judge_guess,
    locked_out,
    ok,
    refused,
    take_back_method,
)

FAILED_ATTEMPTS = "failed_password_attempts"
WRONG_CREDENTIALS = N_("Invalid username or password.")
#: A signed-in user confirming their password typed no name: only the password is wrong.
WRONG_PASSWORD = N_("Incorrect password.")
ENTER_PASSWORD = N_("Enter your password.")
NO_PENDING_USER = N_("There is no account to check a password for. Please start again.")


def password_field(required: Any = None) -> Any:
    """The field a current password is typed into (here and on an identification page);
    ``required`` replaces the check that it is filled in."""
    return PasswordField(
        N_("Password"),
        validators=[
            required or DataRequired(ENTER_PASSWORD),
            Length(max=4096, message=N_("That password is too long.")),
        ],
        render_kw={"autocomplete": "current-password"},
    )


class PasswordForm(StageForm):
    password = password_field()


class PasswordStage(StageType):
    name = "password"
    revisitable = True
    template = "flows/stages/password.html"
    options = {
        **WORDING,
        "failed_attempts_before_cancel": Option(int, default=5, minimum=1),
        "allow_show_password": Option(bool, default=True),
    }

    def is_interactive(self, run: StageRun) -> bool:
        # After a passkey login (identification's webauthn_stage) there is nothing to
        # ask: the passkey proved more than a password would. With nobody to check,
        # respond() denies at once.
        return passkey_login(run.context) is None and not _nobody(run)

    def form_class(self, run: StageRun) -> type[StageForm]:
        return PasswordForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        identifier = run.context.get(PENDING_USER_IDENTIFIER)
        user = run.state.current_user() if identifier is None else None
        return {
            "identifier": identifier,
            # For password managers, which save and fill the pair: the name the password
            # belongs to, in a hidden autocomplete="username" field.
            "account_name": identifier
            or (run.state.user_store.display_name(user) if user is not None else None),
            "recovery_url": lockouts.recovery_url(run.state, run.flow, search=False),
        }

    def forget(self, run: StageRun) -> None:
        """Back undid this check: the password it proved no longer counts."""
        take_back_method(run, ("password",))

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        if _nobody(run):
            run.state.log.warning(
                "flow %s: password stage %s reached with no pending user; denied",
                run.flow.slug,
                run.stage.name,
            )
            return deny(NO_PENDING_USER)
        if form is None:
            return ok()  # not shown: a passkey login
        assert isinstance(form, PasswordForm)
        return verify(run, self._subject(run), form.password, run.config)

    def _subject(self, run: StageRun) -> Any | None:
        """The pending user; the logged-in user when re-authenticating; ``None`` if pretended."""
        if PENDING_USER in run.context:
            return run.state.user_store.get(run.context[PENDING_USER])
        if PENDING_USER_IDENTIFIER in run.context:
            return None
        return run.state.current_user()


def _nobody(run: StageRun) -> bool:
    """No pending user, no identifier typed, nobody logged in: no password to check."""
    context = run.context
    if PENDING_USER in context or PENDING_USER_IDENTIFIER in context:
        return False
    return run.state.current_user() is None


def verify(run: StageRun, user: Any | None, field: Any, config: dict[str, Any]) -> StageResult:
    """Check the password typed into ``field`` for ``user`` (``None``: an identifier that
    matches no one, checked against a dummy hash all the same), as a password stage with
    ``config`` does: judged on the server, counted in the plan, the plan cancelled at
    ``failed_attempts_before_cancel``. Also what an identification stage with a
    ``password_stage`` runs on its own page."""
    store = run.state.user_store
    correct = store.check_password(user, field.data or "") and user is not None
    verdict = judge_guess(run, user, correct)
    if verdict.refused:
        return refused(verdict)
    if correct:
        run.context[AUTH_METHOD] = "password"
        run.context.pop(FAILED_ATTEMPTS, None)
        run.context[PENDING_USER] = store.user_id(user)
        if store.session.is_modified(user):
            store.session.commit()  # persists a re-hash made with new parameters
        return ok()
    limit = int(config["failed_attempts_before_cancel"])
    if count_failure(run, FAILED_ATTEMPTS, "invalid_password", limit):
        return locked_out(verdict, offer_recovery=True)
    named = PENDING_USER_IDENTIFIER in run.context
    field.errors = [WRONG_CREDENTIALS if named else WRONG_PASSWORD]
    return invalid(verdict.wait_message())
