"""The prompt stage's field types: how each is configured, built, checked and stored.

A prompt is configured as a mapping (``field_key``, ``label``, ``type``, ``required``,
``placeholder``, ``initial_value``, ``help_text``, ``order`` and a few keys of its type).
:func:`parse_fields` checks a whole list once, naming the stage and field of any mistake;
:func:`build_field` turns one :class:`PromptField` into a WTForms field with the checks of
:mod:`prompt_checks`; :func:`stored_value` makes the submitted value JSON-safe for the plan.

Read-only types (``text_read_only``, ``textarea_read_only``, ``email_read_only``) and
``hidden`` show their initial value and ignore whatever is submitted for them: the value
comes from the server, so a tampered form cannot change it. ``static`` shows text only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import has_app_context
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.core import UnboundField

from .. import csrf
from ..expressions import Expression, compile_expression, is_expression
from ..i18n import N_, gettext
from ..options import ConfigError
from . import prompt_checks as checks
from .base import StageForm

Choices = tuple[tuple[str, str], ...]

FIELD_TYPES: tuple[str, ...] = (
    "text",
    "text_read_only",
    "textarea",
    "textarea_read_only",
    "email",
    "email_read_only",
    "username",
    "password",
    "number",
    "checkbox",
    "radio",
    "dropdown",
    "date",
    "date_time",
    "hidden",
    "static",
)

#: Types whose value is the configured initial value, never the submitted one.
FIXED_TYPES = frozenset({"text_read_only", "textarea_read_only", "email_read_only", "hidden"})
#: Types with a length limit, and their default limit. The username limit is the
#: column's (FlowsUserMixin), the email one RFC 5321's; a password is never truncated,
#: the limit only bounds the work a request can cause.
DEFAULT_MAX_LENGTH = {
    "text": 255,
    "textarea": 1000,
    "email": 254,
    "username": 150,
    "password": 4096,
}
_COMMON_KEYS = frozenset(
    {"field_key", "label", "type", "required", "placeholder", "initial_value", "help_text", "order"}
)
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "radio": frozenset({"choices"}),
    "dropdown": frozenset({"choices"}),
    "number": frozenset({"min", "max"}),
    "password": frozenset({"repeat", "max_length"}),
    **{t: frozenset({"max_length"}) for t in ("text", "textarea", "email", "username")},
}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: ``initial_value`` written as ``user.<attribute>`` or ``prompt_data.<key>`` is looked up.
REFERENCE = re.compile(r"^(user|prompt_data)\.([A-Za-z_][A-Za-z0-9_]*)$")
#: What an empty repeat field says.
MSG_REPEAT = N_("Enter the password again.")
#: User attributes an initial value may never show.
SECRET_ATTRIBUTES = frozenset({"password_hash", "password"})


@dataclass(frozen=True)
class PromptField:
    """One configured prompt, checked and completed with defaults."""

    key: str
    label: str
    type: str
    required: bool = True
    placeholder: str = ""
    initial_value: Any = None
    help_text: str = ""
    order: int = 0
    #: ``(value, label)`` pairs, or an expression giving them when the form is built.
    choices: Choices | Expression = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    repeat: bool = False

    @property
    def fixed(self) -> bool:
        return self.type in FIXED_TYPES

    @property
    def repeat_key(self) -> str:
        return f"{self.key}_repeat"


def parse_fields(raw: list[Any], where: str) -> list[PromptField]:
    """Check a stage's ``fields`` option; the prompts sorted by ``order`` (stable)."""
    fields: list[PromptField] = []
    keys: set[str] = set()
    for index, entry in enumerate(raw):
        spec = _parse_field(entry, f"{where}, field {index}")
        for key in (spec.key, spec.repeat_key) if spec.repeat else (spec.key,):
            if key in keys:
                raise ConfigError(f"{where}, field {key!r}: the field_key is used twice")
            keys.add(key)
        fields.append(spec)
    if not fields:
        raise ConfigError(f"{where}, field 'fields': list at least one prompt")
    return sorted(fields, key=lambda f: f.order)


def build_field(
    spec: PromptField, initial: Any, extra: list[Callable[..., None]] | None = None
) -> UnboundField:
    """The WTForms field for ``spec``, with ``initial`` as its value before any submission."""
    render_kw: dict[str, Any] = {}
    if spec.placeholder:
        render_kw["placeholder"] = gettext(spec.placeholder)
    validators: list[Callable[..., None]] = []
    if not spec.fixed:
        validators.append(
            checks.Required(checks.required_message(spec.type, spec.label))
            if spec.required
            else checks.optional
        )
    if spec.max_length is not None:
        validators.append(checks.max_length(spec.max_length))
        if spec.type != "password":
            render_kw["maxlength"] = spec.max_length
    validators.extend(checks.TYPE_VALIDATORS.get(spec.type, ()))
    validators.extend(extra or ())
    render_kw.update(_RENDER.get(spec.type, {}))
    kwargs: dict[str, Any] = {
        "label": spec.label,
        "validators": validators,
        "default": _default(spec, initial),
        "render_kw": render_kw,
    }
    if spec.type in ("radio", "dropdown"):
        if isinstance(spec.choices, Expression):
            raise TypeError("evaluate a field's choices before building it")
        choices = [SelectChoice(value, gettext(label)) for value, label in spec.choices]
        if spec.type == "dropdown":
            # Rendered by WTForms itself, not through the template: translated here.
            choices.insert(0, SelectChoice("", gettext("Choose…")))
        validators.append(checks.one_of({value for value, _ in spec.choices}))
        return _FIELD_CLASSES[spec.type](choices=choices, validate_choice=False, **kwargs)
    if spec.type == "number":
        if spec.minimum is not None:
            render_kw["min"] = spec.minimum
        if spec.maximum is not None:
            render_kw["max"] = spec.maximum
        validators.append(checks.bounds(spec.minimum, spec.maximum))
        return PromptIntegerField(invalid_value_message=checks.MSG_NUMBER, **kwargs)
    if spec.type == "date":
        return DateField(invalid_value_message=checks.MSG_DATE, **kwargs)
    if spec.type == "date_time":
        return DateTimeLocalField(invalid_value_message=checks.MSG_DATE_TIME, **kwargs)
    return _FIELD_CLASSES[spec.type](**kwargs)


def build_repeat_field(spec: PromptField) -> UnboundField:
    """The second password field, which must match the first; its value is never stored."""
    validators = [checks.Required(MSG_REPEAT)] if spec.required else []
    return PasswordField(
        # The first field's label as the page shows it (the field macro translates labels).
        gettext("{label} (again)", label=gettext(spec.label)),
        validators=[*validators, checks.matches(spec.key)],
        render_kw={"autocomplete": "new-password"},
    )


def stored_value(spec: PromptField, data: Any) -> Any:
    """A submitted value as the plan context keeps it: JSON-safe, dates as ISO strings."""
    if spec.type in ("username", "email"):
        return (data or "").strip()
    if spec.type in ("text", "textarea"):
        return data or ""
    if spec.type == "checkbox":
        return bool(data)
    if spec.type == "number":
        return data if isinstance(data, int) else None
    return json_safe(data)


def json_safe(value: Any) -> Any:
    """``value`` as something the session's JSON can carry (dates as ISO strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


# -- fields -----------------------------------------------------------------------------


class _Fixed:
    """Ignores submitted data: the field keeps the value the server gave it."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        return


class FixedStringField(_Fixed, StringField):
    pass


class FixedTextAreaField(_Fixed, TextAreaField):
    pass


class FixedHiddenField(_Fixed, HiddenField):
    pass


class PromptIntegerField(IntegerField):
    """An integer field that refuses absurdly long input before converting it."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist and len(str(valuelist[0])) > 30:
            self.data = None
            raise ValueError(checks.MSG_NUMBER)
        super().process_formdata(valuelist)


_FIELD_CLASSES: dict[str, type[Any]] = {
    "text": StringField,
    "text_read_only": FixedStringField,
    "textarea": TextAreaField,
    "textarea_read_only": FixedTextAreaField,
    "email": StringField,
    "email_read_only": FixedStringField,
    "username": StringField,
    "password": PasswordField,
    "checkbox": BooleanField,
    "radio": RadioField,
    "dropdown": SelectField,
    "hidden": FixedHiddenField,
}

_RENDER: dict[str, dict[str, Any]] = {
    "text_read_only": {"readonly": True},
    "textarea_read_only": {"readonly": True},
    "email": {"type": "email", "autocomplete": "email", "spellcheck": "false"},
    "email_read_only": {"type": "email", "readonly": True},
    "username": {"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    "password": {"autocomplete": "new-password"},
}


def _default(spec: PromptField, initial: Any) -> Any:
    """``initial`` as the field type holds it (a date field wants a date, not a string)."""
    if spec.type == "password" or initial is None:
        return None
    if spec.type == "checkbox":
        return bool(initial)
    if spec.type == "number":
        try:
            return int(initial)
        except (TypeError, ValueError, OverflowError):
            return None
    if spec.type in ("date", "date_time"):
        if isinstance(initial, date):
            return initial
        try:
            parsed = datetime.fromisoformat(str(initial))
        except ValueError:
            return None
        return parsed.date() if spec.type == "date" else parsed
    return str(initial)


# -- configuration ----------------------------------------------------------------------------


def _reserved_keys() -> set[str]:
    """Form fields every stage form has: the CSRF token (under the app's name for it too)
    and the plan step."""
    reserved = {"csrf_token", "flow_step"}
    if has_app_context():
        reserved.add(csrf.field_name())
    return reserved


def _parse_field(entry: Any, where: str) -> PromptField:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    key = entry.get("field_key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ConfigError(
            f"{where}, field_key: use a name of letters, digits and '_' (got {key!r})"
        )
    where = f"{where.rsplit(', field ', 1)[0]}, field {key!r}"
    if hasattr(StageForm, key) or key in _reserved_keys():
        raise ConfigError(f"{where}: the field_key {key!r} is reserved")
    field_type = entry.get("type")
    if field_type not in FIELD_TYPES:
        raise ConfigError(f"{where}: unknown type {field_type!r} (known: {', '.join(FIELD_TYPES)})")
    unknown = sorted(set(entry) - _COMMON_KEYS - _TYPE_KEYS.get(field_type, frozenset()))
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]!r} is not a setting of {field_type} fields")
    label = entry.get("label", key.replace("_", " ").capitalize())
    for name in ("label", "placeholder", "help_text"):
        if not isinstance(entry.get(name, ""), str):
            raise ConfigError(f"{where}, {name}: expected a string")
    required = entry.get("required", True)
    repeat = entry.get("repeat", False)
    for name, value in (("required", required), ("repeat", repeat)):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}, {name}: expected true or false")
    initial = _initial_value(entry.get("initial_value"), f"{where}, initial_value")
    minimum, maximum = _int(entry, "min", where), _int(entry, "max", where)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ConfigError(f"{where}: min is greater than max")
    return PromptField(
        key=key,
        label=label,
        type=field_type,
        required=required,
        placeholder=entry.get("placeholder", ""),
        initial_value=initial,
        help_text=entry.get("help_text", ""),
        order=_int(entry, "order", where, default=0) or 0,
        choices=_choices(entry, field_type, where),
        minimum=minimum,
        maximum=maximum,
        max_length=_int(entry, "max_length", where, default=DEFAULT_MAX_LENGTH.get(field_type)),
        repeat=repeat,
    )


def _initial_value(initial: Any, where: str) -> Any:
    """A plain value, a ``user.…``/``prompt_data.…`` reference, or an expression."""
    if is_expression(initial):
        return compile_expression(initial, where)
    if initial is not None and not isinstance(initial, str | int | float | bool):
        raise ConfigError(f"{where}: expected a plain value or {{expression: …}}")
    match = REFERENCE.match(initial) if isinstance(initial, str) else None
    if match and (match.group(2) in SECRET_ATTRIBUTES or match.group(2).startswith("_")):
        raise ConfigError(f"{where}: {initial!r} cannot be shown in a form")
    return initial


def _choices(entry: Mapping[str, Any], field_type: str, where: str) -> Choices | Expression:
    if field_type not in ("radio", "dropdown"):
        return ()
    raw = entry.get("choices")
    if is_expression(raw):
        return compile_expression(raw, f"{where}, choices")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}, choices: list the choices of this {field_type} field")
    return choices_of(raw, f"{where}, choices")


def choices_of(raw: list[Any], where: str) -> Choices:
    """``(value, label)`` pairs of a list of strings or ``{value, label}`` mappings (an
    expression's result too); a ``ConfigError`` naming ``where`` for anything else."""
    choices: list[tuple[str, str]] = []
    for item in raw:
        if isinstance(item, str):
            choices.append((item, item))
        elif isinstance(item, Mapping) and isinstance(item.get("value"), str):
            label = item.get("label", item["value"])
            choices.append((item["value"], str(label)))
        else:
            raise ConfigError(f"{where}: each choice is a string or {{value, label}}")
    if any(value == "" for value, _ in choices):
        raise ConfigError(f"{where}: a choice cannot have an empty value")
    return tuple(choices)


def _int(entry: Mapping[str, Any], name: str, where: str, default: int | None = None) -> int | None:
    value = entry.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}, {name}: expected a whole number")
    if name == "max_length" and value is not None and value < 1:
        raise ConfigError(f"{where}, max_length: must be at least 1")
    return value
