"""What the authenticator setup stages share: a named device for the plan's user.

Both stages show secrets (``history = False`` keeps them out of htmx's history cache),
check their ``device_name`` option the same way, and act at once, without a form, when
there is no user to set anything up for (their ``respond`` then denies).
"""

from __future__ import annotations

from typing import Any

from wtforms import StringField
from wtforms.validators import DataRequired

from ..options import ConfigError
from .base import StageRun, StageType
from .prompt_checks import max_length

#: Longest device name, as the ``name`` columns of the device tables allow.
NAME_MAX = 128


def name_field(label: str, required: str) -> StringField:
    """The field a device's name is typed into (the setup stages, and renaming one on the
    settings page): trimmed, required with the message ``required``, at most NAME_MAX.
    ``label`` and ``required`` are English message ids."""
    return StringField(
        label,
        filters=[strip],
        validators=[DataRequired(required), max_length(NAME_MAX)],
        render_kw={"autocomplete": "off", "maxlength": NAME_MAX},
    )


def strip(value: str | None) -> str | None:
    """A WTForms filter: the value without surrounding white space."""
    return value.strip() if isinstance(value, str) else value


class AuthenticatorSetupStage(StageType):
    history = False

    def check_config(self, config: dict[str, Any], where: str) -> None:
        if not config["device_name"].strip() or len(config["device_name"]) > NAME_MAX:
            raise ConfigError(f"{where}, field 'device_name': 1 to {NAME_MAX} characters")

    def is_interactive(self, run: StageRun) -> bool:
        return run.pending_user() is not None
