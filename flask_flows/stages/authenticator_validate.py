"""Authenticator validation: the second factor of a login, after the password.

The pending user's *confirmed* devices of the allowed classes decide what happens. With
none, ``not_configured_action`` skips the stage, denies the login, or injects the setup
stages named in ``configuration_stages`` into the plan right after this one. With some,
the user enters a code from their authenticator app (TOTP) or a recovery code; with both
kinds they pick which one first.

A TOTP code is accepted at most once per time step: the step is stored on the device with
a conditional UPDATE, so two parallel requests with the same code cannot both pass, and a
replay is rejected and logged (ASVS 6.5.1). A recovery code is deleted when used. Every
code is judged on the server before it is used (:mod:`flask_flows.guesses`), which
refuses guesses that come too soon; a failure is also a ``login_failed`` signal and
counts towards the plan's ``failed_attempts_before_cancel``.

With ``last_auth_threshold`` set, a success leaves a ``flows_mfa`` cookie naming a grant
kept on the server (:mod:`flask_flows.remembered_mfa`); while it is younger than the
threshold, the same user's next login skips this stage. Logging out, a new password and a
changed authenticator revoke it on the server, so a copy of the cookie stops working too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask import Response, after_this_request
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .. import remembered_mfa
from ..devices import StaticDevice, StaticToken, TOTPDevice
from ..guesses import Verdict
from ..models import Stage, utcnow
from ..options import ConfigError, Option
from ..otp import match_recovery_code, verify_totp
from ..plan import AUTH_METHOD, AUTH_METHODS
from ..remembered_mfa import MFA_COOKIE
from ..transactions import commit_keeping_loaded_state
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

FAILED_ATTEMPTS = "failed_mfa_attempts"

TOTP = "totp"
STATIC = "static"

NOT_CONFIGURED = (
    "This account must use two-factor authentication, but none is set up yet. "
    "Please contact your administrator to set up two-factor authentication."
)
INVALID_CODE = "That code is not valid."
#: What the code field asks for, by the kinds of device the user has.
CODE_HINTS = {
    (TOTP,): "Enter the code your authenticator app shows for this account.",
    (STATIC,): "Enter one of your recovery codes. Each code works only once.",
    (): "Enter the code from your authenticator app, or one of your recovery codes"
    " (each works only once).",
}
REPLAYED_CODE = "This code was already used. Wait for the next code from your app."
NO_USER = "There is no account to verify. Please start again."


def _code_field(**attributes: str) -> StringField:
    return StringField(
        "Code",
        validators=[
            DataRequired("Enter the code."),
            Length(max=64, message="That code is too long."),
        ],
        render_kw={
            "autocomplete": "one-time-code",
            "autocorrect": "off",
            "spellcheck": "false",
            **attributes,
        },
    )


class AuthenticatorValidateForm(StageForm):
    """The code; :meth:`AuthenticatorValidateStage.form_class` adapts it to the user's devices."""

    code = _code_field()


class AuthenticatorValidateStage(StageType):
    name = "authenticator_validate"
    revisitable = True
    template = "flows/stages/authenticator_validate.html"
    options = {
        **WORDING,
        "device_classes": Option(list, default=(TOTP, STATIC), choices=(TOTP, STATIC), items=str),
        "not_configured_action": Option(
            str,
            default="skip",
            choices=("skip", "deny", "configure"),
            help="What to do for a user without a device of the allowed classes.",
        ),
        "configuration_stages": Option(
            list,
            default=(),
            items=str,
            help="Stage names to run for not_configured_action configure.",
        ),
        "last_auth_threshold": Option(
            int,
            default=0,
            minimum=0,
            help="Seconds a passed check is remembered in a signed cookie; 0 turns this off.",
        ),
        "failed_attempts_before_cancel": Option(int, default=5, minimum=1),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        if not config["device_classes"]:
            raise ConfigError(f"{where}, field 'device_classes': name at least one device class")
        if config["not_configured_action"] == "configure" and not config["configuration_stages"]:
            raise ConfigError(
                f"{where}, field 'configuration_stages': not_configured_action 'configure'"
                " needs at least one stage"
            )

    def is_interactive(self, run: StageRun) -> bool:
        user = run.pending_user()
        return (
            user is not None and bool(_available_classes(run, user)) and not _remembered(run, user)
        )

    def form_class(self, run: StageRun) -> type[StageForm]:
        user = run.pending_user()
        classes = _available_classes(run, user) if user is not None else []
        # Recovery codes have letters: a numeric keypad only when TOTP is the only kind.
        # With both kinds there is nothing to pick: the code's shape says which it is.
        fields: dict[str, Any] = {
            "code": _code_field(inputmode="numeric")
            if classes == [TOTP]
            else _code_field(autocapitalize="characters")
        }
        return type("AuthenticatorValidateForm", (AuthenticatorValidateForm,), fields)

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        user = run.pending_user()
        classes = _available_classes(run, user) if user is not None else []
        return {
            "device_classes": classes,
            "code_hint": CODE_HINTS.get(tuple(classes), CODE_HINTS[()]),
        }

    def forget(self, run: StageRun) -> None:
        """Back undid this check: its proof goes with it (the tries used stay used)."""
        take_back_method(run, (TOTP, STATIC, "remembered"))

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(NO_USER)
        if form is None:
            return self._without_code(run, user)
        assert isinstance(form, AuthenticatorValidateForm)
        classes = _available_classes(run, user) or [TOTP]
        code = form.code.data or ""
        if code_kind(code, classes) == TOTP:
            method, match = TOTP, _match_totp(run, user, code)
        else:
            method, match = STATIC, _match_recovery_code(run, user, code)
        # Judged before a matching code is spent: a refused guess must not use it up.
        verdict = judge_guess(run, user, match.spend is not None)
        if verdict.refused:
            _clear_code(form)
            return refused(verdict)
        error = match.error if match.spend is None else match.spend()
        if error is None:
            return self._passed(run, user, method)
        return self._failed(run, form, error, verdict)

    # -- outcomes ---------------------------------------------------------------------------

    def _without_code(self, run: StageRun, user: Any) -> StageResult:
        """The stage was not shown: a remembered check, or a user without devices."""
        if _available_classes(run, user):
            if not _remembered(run, user):
                # Fail closed: this user needs a code, so show the form.
                return invalid()
            _record_method(run, "remembered")
            return ok()
        action = run.config["not_configured_action"]
        user_id = run.state.user_store.user_id(user)
        if action == "deny":
            run.state.log.info("authenticator_validate: user %s has no device, denied", user_id)
            return deny(NOT_CONFIGURED)
        if action == "configure":
            run.plan.inject_stages(_configuration_stage_ids(run))
            run.state.log.info(
                "authenticator_validate: user %s has no device, running setup", user_id
            )
        return ok()

    def _passed(self, run: StageRun, user: Any, method: str) -> StageResult:
        run.context.pop(FAILED_ATTEMPTS, None)
        _record_method(run, method)
        run.state.log.info(
            "authenticator_validate: user %s passed with %s in flow %s",
            run.state.user_store.user_id(user),
            method,
            run.flow.slug,
        )
        threshold = run.config["last_auth_threshold"]
        if threshold > 0:
            _remember(run, user, threshold)
        return ok()

    def _failed(
        self, run: StageRun, form: AuthenticatorValidateForm, error: str, verdict: Verdict
    ) -> StageResult:
        if count_failure(run, FAILED_ATTEMPTS, "invalid_mfa_code"):
            return locked_out(verdict, offer_recovery=False)
        left = int(run.config["failed_attempts_before_cancel"]) - int(run.context[FAILED_ATTEMPTS])
        form.code.errors = [f"{error} {left} {'try' if left == 1 else 'tries'} left."]
        _clear_code(form)
        return invalid(verdict.wait_message())


def code_kind(code: str, classes: list[str]) -> str:
    """Which kind of code was typed, from its shape: a TOTP code is 6 or 8 digits, a
    recovery code 12 letters and digits (spaces and dashes aside). Only kinds in
    ``classes`` are answered; an unclear code goes to TOTP when the user has it."""
    compact = "".join(code.split()).replace("-", "")
    looks_totp = compact.isdigit() and len(compact) <= 8
    if STATIC in classes and (TOTP not in classes or not looks_totp):
        return STATIC
    return TOTP


def _clear_code(form: AuthenticatorValidateForm) -> None:
    """A code is typed afresh each time; do not echo the refused one into the page."""
    form.code.data = ""
    form.code.raw_data = []


# -- devices and codes --------------------------------------------------------------------------


def _totp_devices(run: StageRun, user: Any) -> list[TOTPDevice]:
    return list(
        run.state.db.session.scalars(
            sa.select(TOTPDevice)
            .where(
                TOTPDevice.user_id == run.state.user_store.user_id(user),
                TOTPDevice.confirmed.is_(True),
            )
            .order_by(TOTPDevice.id)
        )
    )


def _static_devices(run: StageRun, user: Any) -> list[StaticDevice]:
    """Confirmed recovery code sets that still have a code left."""
    return list(
        run.state.db.session.scalars(
            sa.select(StaticDevice)
            .where(
                StaticDevice.user_id == run.state.user_store.user_id(user),
                StaticDevice.confirmed.is_(True),
                StaticDevice.tokens.any(),
            )
            .order_by(StaticDevice.id)
        )
    )


def _available_classes(run: StageRun, user: Any) -> list[str]:
    """The allowed device classes the user has a usable device of, TOTP first (one
    query per run, however often the stage asks)."""
    user_id = run.state.user_store.user_id(user)
    key = f"available_classes:{user_id}"
    if key not in run.memo:
        has_totp = sa.exists().where(TOTPDevice.user_id == user_id, TOTPDevice.confirmed.is_(True))
        has_static = sa.exists().where(
            StaticDevice.user_id == user_id,
            StaticDevice.confirmed.is_(True),
            StaticDevice.tokens.any(),
        )
        found = run.state.db.session.execute(sa.select(has_totp, has_static)).one()
        allowed = run.config["device_classes"]
        run.memo[key] = [
            kind
            for kind, present in zip((TOTP, STATIC), found, strict=True)
            if present and kind in allowed
        ]
    return list(run.memo[key])


@dataclass(frozen=True)
class _Match:
    """What checking a code found: ``spend`` uses up the matching code (``None`` when
    nothing matched, then ``error`` says why) and returns an error if a parallel request
    used it first."""

    spend: Callable[[], str | None] | None = None
    error: str = INVALID_CODE


def _match_totp(run: StageRun, user: Any, code: str) -> _Match:
    replayed: TOTPDevice | None = None
    for device in _totp_devices(run, user):
        check = verify_totp(device, code)
        if check.accepted and check.step is not None:
            return _Match(functools.partial(_spend_totp_step, run, device, check.step))
        if check.replayed:
            replayed = device
    if replayed is None:
        return _Match()
    run.state.log.warning(
        "authenticator_validate: replayed TOTP code for user %s, device %s",
        run.state.user_store.user_id(user),
        replayed.id,
    )
    return _Match(error=REPLAYED_CODE)


def _spend_totp_step(run: StageRun, device: TOTPDevice, step: int) -> str | None:
    """Store ``step`` as the device's last, conditional on the stored one, so of two
    parallel uses of one code only one wins (ASVS 6.5.1)."""
    session = run.state.db.session
    spent = _execute(
        session,
        sa.update(TOTPDevice)
        .where(TOTPDevice.id == device.id, TOTPDevice.last_step < step)
        .values(last_step=step, last_used=utcnow())
        .execution_options(synchronize_session=False),
    )
    session.commit()
    return None if spent.rowcount == 1 else REPLAYED_CODE


def _match_recovery_code(run: StageRun, user: Any, code: str) -> _Match:
    token = match_recovery_code(_static_devices(run, user), code, run.state.hashing)
    if token is None:
        return _Match()
    return _Match(functools.partial(_spend_recovery_code, run, token.id, token.device_id))


def _spend_recovery_code(run: StageRun, token_id: int, device_id: int) -> str | None:
    """Delete the used code with a DELETE that reports its row count: of two parallel
    uses of one code only one wins."""
    session = run.state.db.session
    used = _execute(
        session,
        sa.delete(StaticToken)
        .where(StaticToken.id == token_id)
        .execution_options(synchronize_session=False),
    )
    session.execute(
        sa.update(StaticDevice)
        .where(StaticDevice.id == device_id)
        .values(last_used=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return None if used.rowcount == 1 else INVALID_CODE


def _configuration_stage_ids(run: StageRun) -> list[int]:
    names: list[str] = run.config["configuration_stages"]
    rows = run.state.db.session.execute(
        sa.select(Stage.name, Stage.id).where(Stage.name.in_(names))
    )
    found = {name: stage_id for name, stage_id in rows}
    missing = [name for name in names if name not in found]
    if missing:
        raise ConfigError(
            f"stage {run.stage.name!r} (authenticator_validate), field 'configuration_stages':"
            f" no stage named {missing[0]!r}"
        )
    return [found[name] for name in names]


def _record_method(run: StageRun, method: str) -> None:
    methods = list(run.context.get(AUTH_METHODS) or [])
    if not methods and run.context.get(AUTH_METHOD):
        methods.append(run.context[AUTH_METHOD])
    methods.append(method)
    run.context[AUTH_METHODS] = methods
    if method != "remembered":
        run.context[AUTH_METHOD] = method


# -- the "this browser passed MFA" cookie -----------------------------------------------------


def _remember(run: StageRun, user: Any, threshold: int) -> None:
    value = remembered_mfa.grant(run.state, user, threshold)
    commit_keeping_loaded_state(run.state.db.session)
    secure = run.request.is_secure

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(
            MFA_COOKIE, value, max_age=threshold, httponly=True, samesite="Lax", secure=secure
        )
        return response


def _remembered(run: StageRun, user: Any) -> bool:
    """True when the request carries this user's live MFA grant, within the threshold."""
    threshold = run.config["last_auth_threshold"]
    if threshold <= 0 or MFA_COOKIE not in run.request.cookies:
        return False
    return remembered_mfa.is_granted(run.state, run.request, user, threshold)


def _execute(session: Any, statement: sa.Executable) -> sa.CursorResult[Any]:
    """Run an UPDATE or DELETE; its result reports how many rows it changed."""
    return cast(sa.CursorResult[Any], session.execute(statement))
