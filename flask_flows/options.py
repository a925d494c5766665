"""Declared, validated configuration for stage and policy types.

A stage or policy type lists its options once; :func:`validate_options` turns the raw
mapping stored in the database or a blueprint into a complete, type-checked dict, and
fails with a :class:`ConfigError` that names the object and the field, so a typo in a
blueprint is caught when it is applied rather than when a user reaches the stage.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .i18n import gettext


class ConfigError(ValueError):
    """A developer-caused configuration error; the message names the object and field."""


_MISSING: Any = object()


@dataclass(frozen=True)
class Option:
    """One configuration field: its type, default and the values it may take."""

    type: type | tuple[type, ...]
    default: Any = _MISSING
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    # ``builtins.type``: the field ``type`` above shadows the builtin in this class body.
    items: builtins.type | None = None
    nullable: bool = False
    help: str = ""
    #: Words a person reads (a heading, a button, a message; a list of them): shown
    #: through the catalogue, so a text that is one of its messages reads in the page's
    #: language, and extracted from blueprints by ``make messages``.
    text: bool = False
    #: May be written as ``{expression: "…"}`` (:mod:`flask_flows.expressions`): compiled
    #: when checked, evaluated when the stage runs (:meth:`StageRun.option`).
    expression: bool = False

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def check(self, value: Any, where: str) -> Any:
        if self.expression:
            from .expressions import compile_expression, is_expression  # they import us

            if is_expression(value):
                return compile_expression(value, where)
            if isinstance(value, Mapping) and len(value) == 1:
                raise ConfigError(f'{where}: an expression is written {{expression: "…"}}')
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{where}: a value is required")
        expected = self.type if isinstance(self.type, tuple) else (self.type,)
        # bool is an int in Python; a YAML `true` must not pass as a number.
        if isinstance(value, bool) and bool not in expected:
            raise ConfigError(f"{where}: expected {_names(expected)}, got a boolean")
        if not isinstance(value, expected):
            raise ConfigError(f"{where}: expected {_names(expected)}, got {type(value).__name__}")
        if self.choices is not None:
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                if item not in self.choices:
                    allowed = ", ".join(repr(c) for c in self.choices)
                    raise ConfigError(f"{where}: {item!r} is not one of {allowed}")
        if self.items is not None and isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if not isinstance(item, self.items):
                    raise ConfigError(f"{where}[{index}]: expected {self.items.__name__}")
            value = list(value)
        if self.minimum is not None and isinstance(value, int) and value < self.minimum:
            raise ConfigError(f"{where}: must be at least {self.minimum}")
        return value


def validate_options(
    options: Mapping[str, Option], raw: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """Return ``raw`` completed with defaults; raise :class:`ConfigError` naming ``where``."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(options))
    if unknown:
        known = ", ".join(sorted(options)) or "none"
        raise ConfigError(f"{where}: unknown option {unknown[0]!r} (known options: {known})")
    result: dict[str, Any] = {}
    for name, option in options.items():
        if name in raw:
            result[name] = option.check(raw[name], f"{where}, field {name!r}")
        elif option.required:
            raise ConfigError(f"{where}, field {name!r}: a value is required")
        else:
            default = option.default
            result[name] = list(default) if isinstance(default, tuple) else default
    return result


def shown(options: Mapping[str, Option], config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as a page shows it: each text option (:attr:`Option.text`) in the
    current language where a catalogue has it, else as configured."""
    result = dict(config)
    for name, option in options.items():
        value = result.get(name)
        if not option.text or not isinstance(value, str | list) or not value:
            continue  # an expression's value is the stage's to show
        result[name] = [gettext(v) for v in value] if isinstance(value, list) else gettext(value)
    return result


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def refuse_at_start(log: Any, message: str) -> None:
    """A configuration an app must not run with: ``ConfigError`` at ``init_app``, but only
    logged under the ``flask`` command, which must keep working (to migrate, to create
    users) while the configuration is fixed."""
    import click

    if click.get_current_context(silent=True) is not None:
        log.error("flask-flows: %s", message)
        return
    raise ConfigError(message)
