"""Identification: who is signing in, by username and/or email.

With ``pretend_user_exists`` (the default) an unknown identifier continues to the next
stage exactly like a known one, so the password stage fails in the same words and the
same time for both, and the form never reveals whether an account exists.

With ``password_stage`` (authentik's option of that name) the page asks for the password
too and checks it as the named password stage would (its options, the same judgement and
counting, :func:`flask_flows.stages.password.verify`): one page and one request for the
login, and the pair password managers fill best. An unknown identifier then fails like a
wrong password, whatever ``pretend_user_exists`` says.

With ``webauthn_stage`` (authentik's option of that name: an ``authenticator_validate``
stage that accepts passkeys) the page also offers "Sign in with a passkey", and the
browser's autofill suggests this site's passkeys in the username field (conditional
mediation). A passkey identifies its owner by itself, and its user verification (PIN,
fingerprint, face: required here) is a second factor beside possession: a passkey login
skips the flow's password stages and stands in for that validation stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app, url_for
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from .. import passkeys, signals
from ..authenticators import PasskeyKind
from ..definitions import referenced_stage
from ..i18n import N_
from ..options import ConfigError, Option
from ..plan import (
    AUTH_METHOD,
    AUTH_METHODS,
    PASSKEY_LOGIN,
    PASSWORDLESS,
    PENDING_USER,
    PENDING_USER_IDENTIFIER,
    REDIRECT,
)
from ..references import require_flow, require_stage
from .base import (
    WORDING,
    RequiredUnlessPasskey,
    StageForm,
    StageResult,
    StageRun,
    StageType,
    invalid,
    ok,
    take_back_method,
)
from .password import ENTER_PASSWORD, password_field, verify

if TYPE_CHECKING:
    from ..models import Stage
    from ..references import References

#: The identifier field's label, by the user fields it matches (in their order).
_FIELD_LABELS = {
    ("username", "email"): N_("Username or email address"),
    ("email", "username"): N_("Email address or username"),
    ("username",): N_("Username"),
    ("email",): N_("Email address"),
}
ENTER_LABEL = N_("Username or email address")
ENTER_IDENTIFIER = N_("Enter your username or email address.")
NO_ACCOUNT = N_("No account matches that username or email address.")


def _uid_field(required: Any, autocomplete: str = "username") -> StringField:
    return StringField(
        N_("Username or email address"),
        validators=[
            required,
            Length(max=254, message=N_("That is too long to be a username or email address.")),
        ],
        render_kw={
            "autocomplete": autocomplete,
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )


class IdentificationForm(StageForm):
    uid_field = _uid_field(DataRequired(ENTER_IDENTIFIER))


class IdentificationStage(StageType):
    name = "identification"
    revisitable = True
    template = "flows/stages/identification.html"
    options = {
        **WORDING,
        "user_fields": Option(
            list, default=("username", "email"), items=str, choices=("username", "email")
        ),
        "case_insensitive_matching": Option(bool, default=True),
        "pretend_user_exists": Option(bool, default=True),
        "enrollment_flow": Option(str, default=None, nullable=True),
        "recovery_flow": Option(str, default=None, nullable=True),
        "password_stage": Option(
            str,
            default=None,
            nullable=True,
            help="Name of a password stage: ask for the password on this page, checked"
            " with that stage's options (the flow then binds no password stage of its own).",
        ),
        "webauthn_stage": Option(
            str,
            default=None,
            nullable=True,
            help="Name of an authenticator_validate stage that accepts passkeys: offer"
            " signing in with a passkey alone, which then stands in for that stage.",
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        # authentik refuses it too: a page that can find nobody.
        if not config["user_fields"]:
            raise ConfigError(
                f"{where}, field 'user_fields': name at least one of 'username', 'email'"
                " (an identification stage with none can find nobody)"
            )

    def check_references(self, config: dict[str, Any], where: str, references: References) -> None:
        """The stages its form stands in for, and the flows it links to, exist."""
        if config["password_stage"]:
            require_stage(references, config["password_stage"], where, "password_stage", "password")
        name = config["webauthn_stage"]
        if name:
            stage = references.stage(name)
            if not _accepts_passkeys(stage, references.state.stage_config):
                raise ConfigError(_no_passkey_stage(where, name))
        for option in ("enrollment_flow", "recovery_flow"):
            if config[option]:
                require_flow(references, config[option], where, option)

    def form_class(self, run: StageRun) -> type[StageForm]:
        password = bool(run.config["password_stage"])
        if run.config["webauthn_stage"]:
            return IdentificationPasskeyPasswordForm if password else IdentificationPasskeyForm
        return IdentificationPasswordForm if password else IdentificationForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        available = run.state.user_store.available_fields
        fields = [f for f in run.config["user_fields"] if f in available]
        form.uid_field.label.text = _FIELD_LABELS.get(tuple(fields), ENTER_LABEL)  # type: ignore[attr-defined]
        if fields == ["email"]:
            form.uid_field.render_kw = {
                **form.uid_field.render_kw,
                "type": "email",
                "autocomplete": "email",
            }  # type: ignore[attr-defined]
        password = _password_config(run)
        signed_in = run.state.current_user()
        passkey_options = None
        if _webauthn_config(run) is not None:
            form.passkey.data = ""  # type: ignore[attr-defined]
            passkey_options = passkeys.authentication_options(
                run.state, run.context, None, "required"
            )
        return {
            "passkey_options": passkey_options,
            "enrollment_url": _flow_url(run.config["enrollment_flow"]),
            "recovery_url": _flow_url(run.config["recovery_flow"]),
            "allow_show_password": bool(password and password["allow_show_password"]),
            # Someone already signed in (Back after a login, an old tab): say so, and
            # offer the way on, before the form that would sign in someone else.
            "signed_in_as": run.state.user_store.display_name(signed_in) if signed_in else None,
            "continue_url": run.context.get(REDIRECT) or run.state.config["FLOWS_DEFAULT_REDIRECT"],
        }

    def forget(self, run: StageRun) -> None:
        """Back undid this page: a password or passkey checked on it no longer counts."""
        if run.config["password_stage"] or run.config["webauthn_stage"]:
            take_back_method(run, ("password", PASSWORDLESS))
        run.context.pop(PASSKEY_LOGIN, None)

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        assert isinstance(form, IdentificationForm)
        passkey = getattr(form, "passkey", None)
        if passkey is not None and passkey.data and _webauthn_config(run) is not None:
            return _passkey_login(run, passkey)
        if run.context.pop(PASSKEY_LOGIN, None) is not None:
            # A name typed after a passkey login (a restart that kept the context): the
            # passkey proved another account, or this one afresh from here.
            take_back_method(run, (PASSWORDLESS,))
        identifier = (form.uid_field.data or "").strip()
        user = run.state.user_store.find_by_identifier(
            identifier, run.config["user_fields"], run.config["case_insensitive_matching"]
        )
        run.context[PENDING_USER_IDENTIFIER] = identifier
        run.context.pop(PENDING_USER, None)
        password = _password_config(run)
        if password is not None:
            assert isinstance(form, IdentificationPasswordForm)
            return verify(run, user, form.password, password)
        if user is not None:
            run.context[PENDING_USER] = run.state.user_store.user_id(user)
            return ok()
        run.context.pop(PENDING_USER, None)
        signals.login_failed.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            identifier=identifier,
            stage=run.stage,
            reason="unknown_identifier",
        )
        run.state.log.info("identification: unknown identifier in flow %s", run.flow.slug)
        if run.config["pretend_user_exists"]:
            return ok()
        form.uid_field.errors = [NO_ACCOUNT]  # type: ignore[attr-defined]
        return invalid()


class IdentificationPasswordForm(IdentificationForm):
    password = password_field()


class IdentificationPasskeyForm(IdentificationForm):
    """With ``webauthn_stage``: a passkey's answer comes instead of the name; the
    autofill of the name field lists passkeys too ("webauthn")."""

    passkey = HiddenField()
    uid_field = _uid_field(RequiredUnlessPasskey(ENTER_IDENTIFIER), "username webauthn")


class IdentificationPasskeyPasswordForm(IdentificationPasskeyForm, IdentificationPasswordForm):
    """The same with the password on the page (``password_stage``): not needed either
    when a passkey answers."""

    password = password_field(RequiredUnlessPasskey(ENTER_PASSWORD))


def _password_config(run: StageRun) -> dict[str, Any] | None:
    """The options of the ``password_stage`` this stage names, ``None`` when it names none."""
    name = run.config["password_stage"]
    if not name:
        return None
    if "password_stage" not in run.memo:
        stage = referenced_stage(run.flow, name)
        if stage is None or stage.type != "password":
            raise ConfigError(
                f"stage {run.stage.name!r} (identification), field 'password_stage':"
                f" there is no password stage named {name!r}"
            )
        run.memo["password_stage"] = run.state.stage_config(stage)
    config: dict[str, Any] = run.memo["password_stage"]
    return config


def _webauthn_config(run: StageRun) -> dict[str, Any] | None:
    """The options of the ``webauthn_stage`` this stage names, ``None`` when it names none."""
    name = run.config["webauthn_stage"]
    if not name:
        return None
    if "webauthn_stage" not in run.memo:
        stage = referenced_stage(run.flow, name)
        if stage is None or not _accepts_passkeys(stage, run.state.stage_config):
            raise ConfigError(_no_passkey_stage(f"stage {run.stage.name!r} (identification)", name))
        run.memo["webauthn_stage"] = run.state.stage_config(stage)
    found: dict[str, Any] = run.memo["webauthn_stage"]
    return found


def _accepts_passkeys(stage: Stage | None, config_of: Callable[[Stage], dict[str, Any]]) -> bool:
    """Whether ``stage`` is a second-factor check a passkey login can stand in for."""
    return (
        stage is not None
        and stage.type == "authenticator_validate"
        and PasskeyKind.key in config_of(stage)["device_classes"]
    )


def _no_passkey_stage(where: str, name: str) -> str:
    return (
        f"{where}, field 'webauthn_stage': there is no authenticator_validate stage named"
        f" {name!r} that accepts passkeys (device_classes with {PasskeyKind.key!r})"
    )


def _passkey_login(run: StageRun, field: Any) -> StageResult:
    """Sign in whoever the passkey belongs to: it names its account itself, and its user
    verification is required (possession and a PIN or biometric: two factors)."""
    assertion = passkeys.authenticate(
        run.state, run.context, field.data, user_id=None, require_user_verification=True
    )
    user = (
        run.state.user_store.get(assertion.device.user_id) if assertion.device is not None else None
    )
    if user is None:
        run.state.log.info("identification: passkey login refused in flow %s", run.flow.slug)
        field.errors = [assertion.error if assertion.device is None else passkeys.UNKNOWN]
        return invalid()
    user_id = run.state.user_store.user_id(user)
    run.context.pop(PENDING_USER_IDENTIFIER, None)
    run.context[PENDING_USER] = user_id
    run.context[AUTH_METHOD] = PASSWORDLESS
    run.context[AUTH_METHODS] = [PASSWORDLESS]
    run.context[PASSKEY_LOGIN] = {"user": user_id, "stage": run.config["webauthn_stage"]}
    run.state.log.info("identification: user %s signed in with a passkey", user_id)
    return ok()


def _flow_url(slug: str | None) -> str | None:
    return url_for("flows.execute", slug=slug) if slug else None
