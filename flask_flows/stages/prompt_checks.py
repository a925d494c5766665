"""The prompt stage's checks: WTForms validators that speak in sentences.

Each refuses what would break storage or mail (control characters, lone surrogates,
malformed addresses) with a message a person can act on; the field types in
:mod:`prompt_fields` pick them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from wtforms.validators import StopValidation, ValidationError

from .. import identifiers
from ..i18n import N_, gettext, ngettext
from .base import StageForm

MSG_REQUIRED = N_("Fill in this field.")
MSG_CHOOSE = N_("Choose one of the options.")
MSG_TICK = N_("Tick this box to continue.")
#: What an empty required field says, by type: what to do, in the person's words.
MSG_ENTER = {
    "username": N_("Enter a username."),
    "email": N_("Enter an email address."),
    "password": N_("Enter a password."),
    "number": N_("Enter a number."),
    "date": N_("Enter a date."),
    "date_time": N_("Enter a date and time."),
}
MSG_EMAIL = N_("Enter a valid email address, like name@example.com.")
MSG_NUMBER = N_("Enter a whole number.")
MSG_DATE = N_("Enter a date, like 2024-12-31.")
MSG_DATE_TIME = N_("Enter a date and time, like 2024-12-31 18:30.")
MSG_CHARACTERS = N_("This contains characters that are not allowed here.")
MSG_USERNAME_SPACES = N_("A username cannot contain spaces.")
MSG_USERNAME_TAKEN = N_("That username is already taken.")
MSG_MISMATCH = N_("The passwords do not match.")


def is_valid_email(value: str) -> bool:
    """A deliberately conservative check of ``local@domain.tld`` without a dependency.

    It accepts what people type (dots, plus tags, international letters) and refuses
    what would break mail or storage: spaces, quotes, brackets, control characters,
    empty labels, a numeric top-level domain. Whether the address works is for the
    verification email to find out.
    """
    if len(value) > 254 or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not 0 < len(local) <= 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    if any(ch in '"(),:;<>[\\] ' or not ch.isprintable() for ch in local):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return False
    return all(
        0 < len(label) <= 63
        and not label.startswith("-")
        and not label.endswith("-")
        and all(ch.isalnum() or ch == "-" for ch in label)
        for label in labels
    )


class Required:
    """Like WTForms' InputRequired, but a whitespace-only value counts as missing, an
    unticked box as not given, and a value that could not be read keeps its own message."""

    field_flags = {"required": True}

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, form: StageForm, field: Any) -> None:
        if field.process_errors:
            raise StopValidation()
        data = field.data
        if data is None or data is False or (isinstance(data, str) and not data.strip()):
            field.errors[:] = []
            raise StopValidation(self.message)


def optional(form: StageForm, field: Any) -> None:
    """An empty optional field is fine: stop, and drop any error about its emptiness."""
    raw = field.raw_data
    if not raw or not str(raw[0]).strip():
        field.errors[:] = []
        raise StopValidation()


def max_length(limit: int) -> Callable[[StageForm, Any], None]:
    def check(form: StageForm, field: Any) -> None:
        if isinstance(field.data, str) and len(field.data) > limit:
            raise StopValidation(
                ngettext("Use at most {count} character.", "Use at most {count} characters.", limit)
            )

    return check


def plain_text(multiline: bool) -> Callable[[StageForm, Any], None]:
    """Refuse control characters (NUL breaks PostgreSQL text) and lone surrogates
    (they cannot be encoded); a text area may hold tabs and line breaks."""
    allowed = "\t\r\n" if multiline else ""

    def check(form: StageForm, field: Any) -> None:
        data = field.data
        if isinstance(data, str) and any(
            unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed for ch in data
        ):
            raise StopValidation(MSG_CHARACTERS)

    return check


def email_address(form: StageForm, field: Any) -> None:
    value = (field.data or "").strip()
    if not is_valid_email(value):
        raise ValidationError(MSG_EMAIL)
    if (reason := identifiers.refusal(value)) is not None:
        raise ValidationError(reason)


def username(form: StageForm, field: Any) -> None:
    value = (field.data or "").strip()
    if any(ch.isspace() for ch in value):
        raise ValidationError(MSG_USERNAME_SPACES)
    if (reason := identifiers.refusal(value)) is not None:
        raise ValidationError(reason)


def one_of(values: set[str]) -> Callable[[StageForm, Any], None]:
    def check(form: StageForm, field: Any) -> None:
        if field.data not in values:
            raise ValidationError(MSG_CHOOSE)

    return check


def bounds(minimum: int | None, maximum: int | None) -> Callable[[StageForm, Any], None]:
    def check(form: StageForm, field: Any) -> None:
        value = field.data
        if not isinstance(value, int):
            return
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            raise ValidationError(
                gettext(
                    "Enter a number from {minimum} to {maximum}.", minimum=minimum, maximum=maximum
                )
            )
        if minimum is not None and value < minimum:
            raise ValidationError(gettext("Enter a number of at least {minimum}.", minimum=minimum))
        if maximum is not None and value > maximum:
            raise ValidationError(gettext("Enter a number of at most {maximum}.", maximum=maximum))

    return check


def matches(other: str) -> Callable[[StageForm, Any], None]:
    def check(form: StageForm, field: Any) -> None:
        if (field.data or "") != (form[other].data or ""):
            raise ValidationError(MSG_MISMATCH)

    return check


TYPE_VALIDATORS: dict[str, tuple[Callable[[StageForm, Any], None], ...]] = {
    "text": (plain_text(False),),
    "textarea": (plain_text(True),),
    "email": (plain_text(False), email_address),
    "username": (plain_text(False), username),
    "password": (plain_text(False),),
}


def required_message(field_type: str, label: str = "") -> str:
    """What a required field left empty says: what to do ("Enter a username."), naming
    the field by its label where its type does not say ("Fill in “Nickname”."), as the
    page shows that label (through the catalogue, like the field macro does)."""
    if field_type == "checkbox":
        return MSG_TICK
    if field_type in ("radio", "dropdown"):
        return (
            gettext("Choose an option for “{label}”.", label=gettext(label))
            if label
            else MSG_CHOOSE
        )
    if field_type in MSG_ENTER:
        return MSG_ENTER[field_type]
    return gettext("Fill in “{label}”.", label=gettext(label)) if label else MSG_REQUIRED
