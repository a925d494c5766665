"""Authenticator validation: the second factor of a login, after the password.

The pending user's *confirmed* devices of the allowed classes decide what happens. With
none, ``not_configured_action`` skips the stage, denies the login, or injects the setup
stages named in ``configuration_stages`` into the plan right after this one. With some,
the user enters a code of one of their kinds (:mod:`flask_flows.authenticators`: an
authenticator app's TOTP code, a recovery code, or an app's own kind), told apart by its
shape, or uses a passkey (a WebAuthn ceremony in the browser, :mod:`flask_flows.passkeys`,
offered above the code field). A passkey login on the identification page that names
this stage as its ``webauthn_stage`` has already satisfied it: the stage is skipped.

Each kind spends a matching code so that of two parallel uses only one wins, and refuses
a replay (ASVS 6.5.1). Every
code is judged on the server before it is used (:mod:`flask_flows.guesses`), which
refuses guesses that come too soon; a failure is also a ``login_failed`` signal and
counts towards the plan's ``failed_attempts_before_cancel``.

With ``last_auth_threshold`` set, a success leaves a ``flows_mfa`` cookie naming a grant
kept on the server (:mod:`flask_flows.remembered_mfa`); while it is younger than the
threshold, the same user's next login skips this stage (this one only, and only while it
still accepts the kind of authenticator that passed it). Logging out, a new password and a
changed authenticator revoke it on the server, so a copy of the cookie stops working too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, after_this_request, has_app_context
from wtforms import HiddenField, StringField
from wtforms.validators import Length, ValidationError

from .. import passkeys, remembered_mfa
from ..authenticators import (
    BUILT_IN_KINDS,
    AuthenticatorKind,
    PasskeyKind,
    RecoveryCodesKind,
    TOTPKind,
)
from ..authenticators import INVALID_CODE as INVALID_CODE  # this stage's words too
from ..authenticators import REPLAYED_CODE as REPLAYED_CODE
from ..authenticators import code_kind as kind_of_code
from ..guesses import Verdict
from ..i18n import N_, gettext, ngettext
from ..models import Stage
from ..options import ConfigError, Option
from ..plan import AUTH_METHOD, AUTH_METHODS, passkey_login
from ..references import References, require_stage
from ..remembered_mfa import MFA_COOKIE
from ..transactions import commit_keeping_loaded_state
from .base import (
    WORDING,
    RequiredUnlessPasskey,
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

TOTP = TOTPKind.key
STATIC = RecoveryCodesKind.key
WEBAUTHN = PasskeyKind.key

NOT_CONFIGURED = N_(
    "This account must use two-step verification, but none is set up yet. "
    "Please contact your administrator to set it up."
)
#: What the code field asks for when the user has an app and recovery codes (one kind:
#: its own hint; other mixes name their kinds).
CODE_HINT_SEVERAL = N_(
    "Enter the code from your authenticator app, or one of your recovery codes"
    " (each works only once)."
)
#: The hint for other mixes: the kinds' labels, as a list in the page's language.
CODE_HINT_ANY = N_("Enter a code from one of these: {kinds}.")
#: How a list of kinds goes on, item by item ("Authenticator app, PIN letter").
LIST_ITEM = N_("{list}, {item}")
NO_USER = N_("There is no account to verify. Please start again.")
PASSKEY_UNAVAILABLE = N_(
    "Your passkey needs JavaScript and a browser that supports passkeys. Turn JavaScript"
    " on, or use another browser."
)
ENTER_CODE = N_("Enter the code.")
#: The field of the choice among several ``configuration_stages``.
SETUP_FIELD = "setup"
CHOOSE_SETUP = N_("Choose a way to set up two-step verification.")


def _code_field(**attributes: str) -> StringField:
    return StringField(
        N_("Code"),
        validators=[
            RequiredUnlessPasskey(ENTER_CODE),
            Length(max=64, message=N_("That code is too long.")),
        ],
        render_kw={
            "autocomplete": "one-time-code",
            "autocorrect": "off",
            "spellcheck": "false",
            **attributes,
        },
    )


class AuthenticatorValidateStage(StageType):
    name = "authenticator_validate"
    revisitable = True
    template = "flows/stages/authenticator_validate.html"
    options = {
        **WORDING,
        "device_classes": Option(
            list,
            default=(TOTP, STATIC),
            items=str,
            help="Keys of the authenticator kinds accepted (totp, static, or an app's own).",
        ),
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
        "webauthn_user_verification": Option(
            str,
            default="preferred",
            choices=("required", "preferred", "discouraged"),
            help="Whether a passkey must check it is its owner (PIN, fingerprint).",
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        if not config["device_classes"]:
            raise ConfigError(f"{where}, field 'device_classes': name at least one device class")
        known = _known_kinds()
        unknown = [key for key in config["device_classes"] if key not in known]
        if unknown:
            raise ConfigError(
                f"{where}, field 'device_classes': {unknown[0]!r} is not an authenticator kind"
                f" (known: {', '.join(known)})"
            )
        if config["not_configured_action"] == "configure" and not config["configuration_stages"]:
            raise ConfigError(
                f"{where}, field 'configuration_stages': not_configured_action 'configure'"
                " needs at least one stage"
            )

    def check_references(self, config: dict[str, Any], where: str, references: References) -> None:
        for name in config["configuration_stages"]:
            require_stage(references, name, where, "configuration_stages")

    def is_interactive(self, run: StageRun) -> bool:
        """Shown to ask for a code (unless a passkey login or a remembered check stands
        in for it), or, to a user with nothing set up, to choose among several
        ``configuration_stages``."""
        user = run.pending_user()
        if user is None or _satisfied_by_passkey(run):
            return False
        classes = _available_classes(run, user)
        if not classes:
            return len(_setup_choices(run)) > 1
        return not _remembered(run, user, classes)

    def form_class(self, run: StageRun) -> type[StageForm]:
        user = run.pending_user()
        classes = _available_classes(run, user) if user is not None else []
        if user is not None and not classes and len(_setup_choices(run)) > 1:
            return _choice_form(run)
        typed = _typed(run, classes)
        fields: dict[str, Any] = {}
        if typed or not classes:
            # A numeric keypad only when every kind the user has takes digits alone. With
            # several kinds there is nothing to pick: the code's shape says which it is.
            numeric = bool(typed) and all(run.state.authenticator_kind(k).numeric for k in typed)
            fields["code"] = (
                _code_field(inputmode="numeric")
                if numeric
                else _code_field(autocapitalize="characters")
            )
        if WEBAUTHN in classes:
            fields["passkey"] = HiddenField()
        return type("AuthenticatorValidateForm", (StageForm,), fields)

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        if hasattr(form, SETUP_FIELD):
            return {"setup_choices": _setup_choices(run)}
        user = run.pending_user()
        classes = _available_classes(run, user) if user is not None else []
        typed = _typed(run, classes)
        context: dict[str, Any] = {"device_classes": classes, "code_hint": _code_hint(run, typed)}
        if user is not None and WEBAUTHN in classes:
            form.passkey.data = ""  # type: ignore[attr-defined]
            devices = passkeys.devices_of(run.state, run.state.user_store.user_id(user))
            options = passkeys.authentication_options(
                run.state, run.context, devices, run.config["webauthn_user_verification"]
            )
            context["passkey_options"] = options
            # Said where nothing else can be done: why the passkey cannot be used (this
            # address of the site, or else until the browser shows it can).
            here = passkeys.UNAVAILABLE_HERE if options is None else PASSKEY_UNAVAILABLE
            context["passkey_unavailable"] = None if typed else here
        return context

    def forget(self, run: StageRun) -> None:
        """Back undid this check: its proof goes with it (the tries used stay used)."""
        take_back_method(run, (*run.state.flows.authenticator_kinds, "remembered"))

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(NO_USER)
        if form is None:
            return self._without_code(run, user)
        if hasattr(form, SETUP_FIELD):
            return _configure(run, user, [form[SETUP_FIELD].data])
        passkey = getattr(form, "passkey", None)
        if passkey is not None and passkey.data:
            return self._passkey(run, user, passkey)
        classes = (
            _typed(run, _available_classes(run, user))
            or [key for key in run.config["device_classes"] if key != WEBAUTHN][:1]
        )
        if not classes or not hasattr(form, "code"):
            form.passkey.errors = [passkeys.NOT_ANSWERED]  # type: ignore[attr-defined]
            return invalid()
        code = form.code.data or ""
        kinds = {key: run.state.authenticator_kind(key) for key in classes}
        method = kind_of_code(code, classes, kinds)
        match = kinds[method].match(run, user, code)
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

    def _passkey(self, run: StageRun, user: Any, field: Any) -> StageResult:
        """The browser's answer to this page's passkey challenge, for one of ``user``'s."""
        assertion = passkeys.authenticate(
            run.state,
            run.context,
            field.data,
            user_id=run.state.user_store.user_id(user),
            require_user_verification=run.config["webauthn_user_verification"] == "required",
        )
        if assertion.device is None:
            field.errors = [assertion.error]
            return invalid()
        return self._passed(run, user, WEBAUTHN)

    def _without_code(self, run: StageRun, user: Any) -> StageResult:
        """The stage was not shown: a passkey login that satisfied it, a remembered check,
        or a user without devices."""
        if _satisfied_by_passkey(run):
            return ok()
        classes = _available_classes(run, user)
        if classes:
            if not _remembered(run, user, classes):
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
            if len(_setup_choices(run)) > 1:
                return invalid()  # the person chooses one: show the choice
            return _configure(run, user, run.config["configuration_stages"])
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
            _remember(run, user, threshold, method)
        return ok()

    def _failed(self, run: StageRun, form: Any, error: str, verdict: Verdict) -> StageResult:
        if count_failure(run, FAILED_ATTEMPTS, "invalid_mfa_code"):
            return locked_out(verdict, offer_recovery=False)
        left = int(run.config["failed_attempts_before_cancel"]) - int(run.context[FAILED_ATTEMPTS])
        form.code.errors = [
            ngettext(
                "{error} {count} try left.",
                "{error} {count} tries left.",
                left,
                error=gettext(error),
            )
        ]
        _clear_code(form)
        return invalid(verdict.wait_message())


def code_kind(code: str, classes: list[str]) -> str:
    """Which of the built-in kinds in ``classes`` a typed code is for, from its shape: a
    TOTP code is 6 or 8 digits, a recovery code 12 letters and digits (spaces and dashes
    aside); an unclear code goes to the first kind the user has."""
    kinds = {kind.key: kind() for kind in BUILT_IN_KINDS}
    return kind_of_code(code, classes, kinds)


def _clear_code(form: Any) -> None:
    """A code is typed afresh each time; do not echo the refused one into the page."""
    form.code.data = ""
    form.code.raw_data = []


# -- devices and codes --------------------------------------------------------------------------


def _available_classes(run: StageRun, user: Any) -> list[str]:
    """The allowed kinds the user has a usable device of, in the registry's order (one
    query per run for every kind, however often the stage asks)."""
    user_id = run.state.user_store.user_id(user)
    key = f"available_classes:{user_id}"
    if key not in run.memo:
        allowed = set(run.config["device_classes"])
        kinds: list[AuthenticatorKind] = [
            kind for kind in run.state.authenticator_kinds() if kind.key in allowed
        ]
        unknown = allowed - {kind.key for kind in kinds}
        if unknown:  # fail closed: a kind that no longer exists is a broken stage
            raise ConfigError(
                f"stage {run.stage.name!r} (authenticator_validate), field 'device_classes':"
                f" {sorted(unknown)[0]!r} is not an authenticator kind"
            )
        found = run.state.db.session.execute(
            sa.select(*(kind.usable(user_id) for kind in kinds))
        ).one()
        run.memo[key] = [kind.key for kind, present in zip(kinds, found, strict=True) if present]
    return list(run.memo[key])


def _typed(run: StageRun, classes: list[str]) -> list[str]:
    """The kinds among ``classes`` whose codes are typed into the code field."""
    return [key for key in classes if run.state.authenticator_kind(key).typed]


def _satisfied_by_passkey(run: StageRun) -> bool:
    """Whether a passkey login on the identification page stood in for this stage."""
    proof = passkey_login(run.context)
    return proof is not None and proof.get("stage") == run.stage.name


# -- setting one up ----------------------------------------------------------------------------


def _configure(run: StageRun, user: Any, names: list[str]) -> StageResult:
    """Run the configuration stages ``names`` next, inside this plan."""
    stages = _configuration_stages(run)
    run.plan.inject_stages([stages[name].id for name in names])
    run.state.log.info(
        "authenticator_validate: user %s has no device, running setup %s",
        run.state.user_store.user_id(user),
        ", ".join(names),
    )
    return ok()


def _configuration_stages(run: StageRun) -> dict[str, Stage]:
    """The ``configuration_stages`` by name, in their order (once per run)."""
    if "configuration_stages" not in run.memo:
        names: list[str] = run.config["configuration_stages"]
        rows = run.state.db.session.scalars(sa.select(Stage).where(Stage.name.in_(names)))
        found = {stage.name: stage for stage in rows}
        missing = [name for name in names if name not in found]
        if missing:
            raise ConfigError(
                f"stage {run.stage.name!r} (authenticator_validate), field"
                f" 'configuration_stages': no stage named {missing[0]!r}"
            )
        run.memo["configuration_stages"] = {name: found[name] for name in names}
    stages: dict[str, Stage] = run.memo["configuration_stages"]
    return stages


def _setup_choices(run: StageRun) -> list[tuple[str, str]]:
    """What a user without a device chooses among, as in authentik: each configuration
    stage's name and label (its ``device_name``, else its ``title``, else its name, in
    the page's language), when ``not_configured_action`` is ``configure``."""
    if run.config["not_configured_action"] != "configure":
        return []
    if "setup_choices" not in run.memo:
        choices = []
        for name, stage in _configuration_stages(run).items():
            config = run.state.stage_config(stage)
            label = config.get("device_name") or config.get("title")
            choices.append((name, gettext(label) if label else name))
        run.memo["setup_choices"] = choices
    found: list[tuple[str, str]] = run.memo["setup_choices"]
    return found


def _choice_form(run: StageRun) -> type[StageForm]:
    """The choice among the configuration stages: one submit button per stage."""
    names = {name for name, _label in _setup_choices(run)}

    def one_of_them(form: StageForm, field: Any) -> None:
        if field.data not in names:
            raise ValidationError(CHOOSE_SETUP)

    field = StringField(validators=[one_of_them])
    return type("AuthenticatorChoiceForm", (StageForm,), {SETUP_FIELD: field})


def _record_method(run: StageRun, method: str) -> None:
    methods = list(run.context.get(AUTH_METHODS) or [])
    if not methods and run.context.get(AUTH_METHOD):
        methods.append(run.context[AUTH_METHOD])
    methods.append(method)
    run.context[AUTH_METHODS] = methods
    if method != "remembered":
        run.context[AUTH_METHOD] = method


# -- the "this browser passed MFA" cookie -----------------------------------------------------


def _remember(run: StageRun, user: Any, threshold: int, method: str) -> None:
    value = remembered_mfa.grant(run.state, user, threshold, run.stage.id, method)
    commit_keeping_loaded_state(run.state.db.session)
    secure = run.request.is_secure

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(
            MFA_COOKIE, value, max_age=threshold, httponly=True, samesite="Lax", secure=secure
        )
        return response


def _remembered(run: StageRun, user: Any, classes: list[str]) -> bool:
    """True when the request carries this user's live MFA grant, within the threshold,
    made by this stage with one of the ``classes`` it accepts of the user's now."""
    threshold = run.config["last_auth_threshold"]
    if threshold <= 0 or MFA_COOKIE not in run.request.cookies:
        return False
    return remembered_mfa.is_granted(run.state, run.request, user, threshold, run.stage.id, classes)


def _known_kinds() -> list[str]:
    """The registered kind keys of the current app (the built-in ones outside one)."""
    if has_app_context():
        from ..extension import get_state

        return list(get_state().flows.authenticator_kinds)
    return [kind.key for kind in BUILT_IN_KINDS]


def _code_hint(run: StageRun, classes: list[str]) -> str:
    """What the code field asks for, by the kinds the user has (a message id, or a hint
    naming the kinds in the page's language)."""
    if len(classes) == 1:
        return run.state.authenticator_kind(classes[0]).code_hint
    if not classes or set(classes) == {TOTP, STATIC}:
        return CODE_HINT_SEVERAL
    labels = [gettext(run.state.authenticator_kind(key).label) for key in classes]
    kinds = labels[0]
    for label in labels[1:]:
        kinds = gettext(LIST_ITEM, list=kinds, item=label)
    return gettext(CODE_HINT_ANY, kinds=kinds)
