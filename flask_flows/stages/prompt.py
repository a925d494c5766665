"""Prompt: asks for the values a flow needs (sign-up details, a new password, a profile).

Fields are configured under ``fields`` (see :mod:`flask_flows.stages.prompt_fields` for
the types and their settings). Accepted values land in ``plan.context["prompt_data"]``
keyed by ``field_key``, JSON-safe (dates and times as ISO strings).

Passwords never reach the plan in plaintext: the moment one is accepted it is hashed with
the app's argon2id parameters and the plan keeps ``{"hash": "$argon2id$…"}`` under its
key (read it with :func:`password_hash`); a ``repeat`` field is compared and dropped.
The plaintext exists only during the request, where the stage's ``validation_policies``
see it: they run over a transient context whose ``prompt_data`` holds the submitted
plaintext values, must all pass, and show their messages next to the field a
:class:`~flask_flows.policies.PolicyResult` names in ``field`` (else above the form).

A value the plan already holds in ``prompt_data`` under a field's key (an invitation's
fixed data, an earlier prompt's answer) is the field's initial value, as in authentik.
Otherwise ``initial_value`` is: a literal, or a reference looked up when the form is
shown: ``user.<attribute>`` (the pending or logged-in user; never ``password_hash``) or
``prompt_data.<field_key>`` (an earlier prompt's answer). Read-only fields and ``hidden``
always carry that value, whatever is submitted; an optional field left empty does not
wipe a value an invitation fixed.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

import sqlalchemy as sa
from wtforms.validators import ValidationError
from wtforms.widgets import PasswordInput

from ..expressions import Expression
from ..i18n import N_, gettext
from ..models import Policy
from ..options import ConfigError, Option
from ..plan import FIXED_PROMPT_DATA, PROMPT_DATA
from ..policies import PolicyRequest, PolicyResult
from ..references import References, require_policy
from .base import StageForm, StageResult, StageRun, StageType, invalid, ok
from .prompt_checks import MSG_USERNAME_TAKEN, matches
from .prompt_fields import (
    REFERENCE,
    PromptField,
    build_field,
    build_repeat_field,
    choices_of,
    json_safe,
    parse_fields,
    stored_value,
)

#: The key of a hashed password inside ``prompt_data[<field_key>]``.
HASH_KEY = "hash"
#: The most ``prompt_data`` may take in the session cookie (JSON characters): the whole
#: cookie must stay under the 4 KB browsers keep, with room for other plans and CSRF.
PROMPT_DATA_LIMIT = 2048

MSG_TOO_MUCH = N_("Your answers are too long altogether. Please shorten them.")
MSG_POLICY_FAILED = N_("Please check your answers.")
MSG_POLICY_ERROR = N_("Your answers could not be checked. Please try again.")
#: The heading when none is configured.
DEFAULT_TITLE = N_("Your details")


def password_hash(value: Any) -> str | None:
    """The argon2 hash a prompt stored for a password field, or ``None``."""
    if isinstance(value, dict) and isinstance(value.get(HASH_KEY), str):
        return value[HASH_KEY]
    return None


class PromptStage(StageType):
    name = "prompt"
    revisitable = True
    live_checks = True
    template = "flows/stages/prompt.html"
    options = {
        "fields": Option(list, items=dict, help="The prompts; see prompt_fields."),
        "validation_policies": Option(
            list, default=(), items=str, help="Names of policies that must all pass."
        ),
        "title": Option(str, default=DEFAULT_TITLE, text=True),
        "submit_label": Option(str, default=N_("Continue"), text=True),
        "submit_style": Option(
            str,
            default="primary",
            choices=("primary", "danger"),
            help="danger for a button that destroys something (deleting the account).",
        ),
        "report_taken_username": Option(
            bool,
            default=False,
            help="Say at once that a username is taken. This tells anyone which usernames"
            " exist (ASVS 6.3.8); off, user_write asks for another one when it writes the"
            " account, after the email link in the default sign-up.",
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        parse_fields(config["fields"], where)

    def check_references(self, config: dict[str, Any], where: str, references: References) -> None:
        for name in config["validation_policies"]:
            require_policy(references, name, where, "validation_policies")

    def form_class(self, run: StageRun) -> type[StageForm]:
        attributes: dict[str, Any] = {}
        fields = _fields(run)
        # Two password fields are a password and its confirmation, as in authentik: the
        # second must match the first (a `repeat` field is the same check, built in).
        passwords = [spec.key for spec in fields if spec.type == "password"]
        for spec in fields:
            if spec.type == "static":
                continue
            reported = spec.type == "username" and run.config["report_taken_username"]
            extra = [unique_username(run)] if reported else []
            if len(passwords) == 2 and spec.key == passwords[1]:
                extra.append(matches(passwords[0]))
            spec = within_the_model(run, with_choices(run, spec))
            attributes[spec.key] = build_field(spec, _initial(spec, run), extra)
            if spec.repeat:
                attributes[spec.repeat_key] = build_repeat_field(spec)
        return type("PromptForm", (StageForm,), attributes)

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        fields = _fields(run)
        if form.errors:
            _keep_passwords_typed(form, fields)
        static = {f.key: _static_text(f, run) for f in fields if f.type == "static"}
        return {"fields": fields, "static_text": static}

    def check(self, run: StageRun, form: StageForm, field: str) -> None:
        """The field's own rules; for a password, then the validation policies too (a
        password policy's length, zxcvbn and common list, but not the breached list,
        which is asked over the network on submit only)."""
        if not form[field].validate(form):
            return
        if not any(spec.key == field and spec.type == "password" for spec in _fields(run)):
            return
        values, passwords = _answers(run, form)
        earlier = dict(run.context.get(PROMPT_DATA) or {})
        _policies_pass(run, form, {**earlier, **values, **passwords}, preview=True)

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        assert form is not None
        values, passwords = _answers(run, form)
        earlier = dict(run.context.get(PROMPT_DATA) or {})
        if not _policies_pass(run, form, {**earlier, **values, **passwords}):
            return invalid()
        hashed = {k: {HASH_KEY: run.state.hashing.hash(p)} for k, p in passwords.items()}
        prompt_data = {**earlier, **values, **hashed}
        if len(json.dumps(prompt_data)) > PROMPT_DATA_LIMIT:
            return invalid(MSG_TOO_MUCH)
        run.context[PROMPT_DATA] = prompt_data
        return ok()


def _answers(run: StageRun, form: StageForm) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values to keep, and its passwords (plaintext, to check and hash)."""
    values: dict[str, Any] = {}
    passwords: dict[str, str] = {}
    earlier = run.context.get(PROMPT_DATA) or {}
    fixed = set(run.context.get(FIXED_PROMPT_DATA) or ())
    for spec in _fields(run):
        if spec.type == "static":
            continue
        if spec.fixed:
            values[spec.key] = json_safe(_initial(spec, run))
        elif spec.type == "password":
            if form[spec.key].data:
                passwords[spec.key] = form[spec.key].data
        else:
            value = stored_value(spec, form[spec.key].data)
            # An invitation's value is not wiped by an optional field left empty.
            if value in (None, "") and spec.key in fixed and spec.key in earlier:
                value = earlier[spec.key]
            values[spec.key] = value
    return values, passwords


def _keep_passwords_typed(form: StageForm, fields: list[PromptField]) -> None:
    """After a refusal elsewhere on the form, a password the person typed is shown again
    (masked) rather than lost. A password and its repeat go together: when either was
    refused (a policy, a mismatch), both are asked for afresh."""
    for spec in (f for f in fields if f.type == "password"):
        pair = [key for key in (spec.key, spec.repeat_key) if key in form]
        if pair and not any(form[key].errors for key in pair):
            for key in pair:
                form[key].widget = PasswordInput(hide_value=False)


def _initial(spec: PromptField, run: StageRun) -> Any:
    """What the field shows first (and what a hidden or read-only field keeps), as in
    authentik: the value the plan already holds under its key, else its
    ``initial_value``."""
    held = _held(spec, run)
    return held if held is not None else resolve_initial(spec, run)


def _held(spec: PromptField, run: StageRun) -> Any:
    """The plain value the plan holds under the field's key: an invitation's fixed data,
    an earlier prompt's answer, this form's own answer shown again ("Wrong address?
    Change it"). Never a password, which the plan holds only as a hash."""
    held = (run.context.get(PROMPT_DATA) or {}).get(spec.key)
    if spec.type != "password" and isinstance(held, str | int | float | bool):
        return held
    return None


def resolve_initial(spec: PromptField, run: StageRun) -> Any:
    """The field's ``initial_value``, with a ``user.…``/``prompt_data.…`` reference looked
    up, or an expression evaluated (``None`` when it fails)."""
    value = spec.initial_value
    if isinstance(value, Expression):
        found = run.evaluate(value, None, f"field {spec.key!r}, initial_value")
        return json_safe(found) if isinstance(found, bool | int | float | str | date) else None
    match = REFERENCE.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    source, name = match.groups()
    if source == "user":
        user = run.pending_user()
        if name == run.state.user_store.password_field:  # a renamed hash column too
            return None
        found = getattr(user, name, None) if user is not None else None
    else:
        found = (run.context.get(PROMPT_DATA) or {}).get(name)
    # Only plain values: never a hashed password or an object's repr.
    if found is None or isinstance(found, bool | int | float | str | date):
        return json_safe(found)
    return None


def _static_text(spec: PromptField, run: StageRun) -> Any:
    """A static field's text: the value the plan holds under its key, else a configured
    sentence in the page's language (where the catalogue has it), else a looked-up value
    as it is."""
    held = _held(spec, run)
    if held is not None:
        return held
    value = spec.initial_value
    if isinstance(value, str) and value and REFERENCE.match(value) is None:
        return gettext(value)
    return resolve_initial(spec, run)


#: Field types that are the account's own columns of the same name.
_ACCOUNT_FIELDS = ("username", "email")


def _fields(run: StageRun) -> list[PromptField]:
    """The parsed fields, once per run (form_class and challenge or respond all ask)."""
    if "fields" not in run.memo:
        fields = parse_fields(run.config["fields"], f"stage {run.stage.name!r} (prompt)")
        # A username or email prompt is left out where the user model has no such
        # column, so the default sign-up works for an email-only or username-only
        # model as it is.
        store = run.state.user_store
        fields = [f for f in fields if f.type not in _ACCOUNT_FIELDS or store.has_field(f.type)]
        run.memo["fields"] = fields
    return list(run.memo["fields"])


def unique_username(run: StageRun) -> Any:
    """A validator: the username is free, case-insensitively, or already the user's own."""

    def check(form: StageForm, field: Any) -> None:
        username = (field.data or "").strip()
        if field.errors or not username:
            return
        if run.state.user_store.username_taken(username, exclude=run.pending_user()):
            raise ValidationError(MSG_USERNAME_TAKEN)

    return check


def _policies_pass(
    run: StageRun, form: StageForm, prompt_data: dict[str, Any], *, preview: bool = False
) -> bool:
    """Run every validation policy over the submitted (plaintext) data; place messages.
    ``preview`` for a live check (:attr:`PolicyRequest.preview`)."""
    names = run.config["validation_policies"]
    if not names:
        return True
    request = PolicyRequest(
        state=run.state,
        user=run.pending_user(),
        context={**run.context, PROMPT_DATA: prompt_data},
        request=run.request,
        authenticated_user=run.state.current_user(),
        preview=preview,
        flow=run.flow,
    )
    internal = {form.meta.csrf_field_name, "flow_step"}
    field_names = {name for name in form._fields if name not in internal}
    passing = True
    for name in names:
        result = _evaluate(run, name, request)
        if result.passing:
            continue
        passing = False
        target = result.field
        for message in result.messages or (MSG_POLICY_FAILED,):
            if target in field_names:
                form[target].errors.append(message)
            elif message not in run.messages:
                run.messages.append(message)
    return passing


def _evaluate(run: StageRun, name: str, request: PolicyRequest) -> PolicyResult:
    policy = run.state.db.session.scalar(sa.select(Policy).where(Policy.name == name))
    if policy is None:
        raise ConfigError(
            f"stage {run.stage.name!r} (prompt), field 'validation_policies': "
            f"no policy is named {name!r}"
        )
    try:
        config = run.state.policy_config(policy)
        return run.state.policy_type(policy.type).evaluate(config, request)
    except Exception:
        # Fail closed, like the policy engine; the log says why, the user is asked to retry.
        run.state.log.exception("prompt: validation policy %r raised", name)
        return PolicyResult(False, (MSG_POLICY_ERROR,))


def with_choices(run: StageRun, spec: PromptField) -> PromptField:
    """``spec`` with its choices evaluated, when an expression gives them (authentik's
    choices expression): a list of strings or ``{value, label}`` mappings. One that
    fails or gives anything else offers no choice, and the log says why."""
    if not isinstance(spec.choices, Expression):
        return spec
    found = run.evaluate(spec.choices, None, f"field {spec.key!r}, choices")
    try:
        if not isinstance(found, list | tuple):
            raise ConfigError(f"expected a list, got {type(found).__name__}")
        choices = choices_of(list(found), f"field {spec.key!r}, choices")
    except ConfigError as error:
        run.state.log.error(
            "stage %r: the choices expression gave no choices: %s", run.stage.name, error
        )
        choices = ()
    return dataclasses.replace(spec, choices=choices)


def within_the_model(run: StageRun, spec: PromptField) -> PromptField:
    """A username or email prompt offers no more characters than the app's user model
    can store (a ``String(64)`` username is not offered 150)."""
    if spec.type not in ("username", "email"):
        return spec
    length = run.state.user_store.column_length(spec.type)
    if length is None or (spec.max_length is not None and spec.max_length <= length):
        return spec
    return dataclasses.replace(spec, max_length=length)
