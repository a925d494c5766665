"""Reading and checking blueprint files, before anything touches the database.

Every mistake a developer can make in a blueprint is caught here or, for references
to rows that live in the database, by :mod:`.apply`; either way the
:class:`BlueprintError` names the file, the entry and the field, so the fix is one
look away.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from flask import current_app, has_app_context

from ..models import (
    AuthenticationRequirement,
    DeniedAction,
    Designation,
    Flow,
    FlowStageBinding,
    Group,
    InvalidResponseAction,
    Policy,
    PolicyBinding,
    PolicyEngineMode,
)
from ..options import ConfigError, Option, validate_options
from ..registry import POLICY_TYPES, STAGE_TYPES

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..policies.base import PolicyType
    from ..stages.base import StageType

#: The blueprint format this module reads and writes.
VERSION = 1

#: Document sections in the order they are applied (later ones refer to earlier ones).
SECTIONS = ("groups", "policies", "stages", "flows")

_SLUG = re.compile(r"^[A-Za-z0-9_-]+$")
_SUBJECTS = ("policy", "group", "user")


class BlueprintError(ConfigError):
    """A blueprint cannot be read or applied; the message names file, entry and field."""


class BlueprintDocument(dict[str, Any]):
    """A checked blueprint: a plain dict with every section present and defaults
    filled in, which remembers where it came from for later error messages."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        super().__init__(data)
        self.source = source


class TypeRegistry(Protocol):
    """What validation needs from :class:`~flask_flows.FlowsState`: the type registries."""

    def stage_type(self, name: str) -> StageType: ...

    def policy_type(self, name: str) -> PolicyType: ...


def load_blueprint(
    source: str | Path, *, name: str | None = None, state: TypeRegistry | None = None
) -> BlueprintDocument:
    """Parse and check one blueprint.

    ``source`` is a :class:`~pathlib.Path` to a YAML file, or a ``str`` holding the
    YAML text itself; ``name`` replaces the file name (or ``<string>``) in messages.
    Stage and policy configs are checked against ``state``'s registries, so custom
    types registered on :class:`~flask_flows.Flows` are known; without ``state`` the
    current app's are used, or only the built-in types outside an app context.
    """
    if isinstance(source, Path):
        label = name or str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BlueprintError(f"{label}: cannot read the file: {error}") from error
    else:
        label = name or "<string>"
        text = source
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BlueprintError(f"{label}: invalid YAML{where}: {error.problem}") from error
    except yaml.YAMLError as error:
        raise BlueprintError(f"{label}: invalid YAML: {error}") from error
    if isinstance(data, str) and not isinstance(source, Path):
        raise BlueprintError(
            f"{label}: expected a mapping at the top level, got a string"
            " (pass a pathlib.Path to read a file)"
        )
    return validate_document(data, label, state)


def validate_document(
    data: Any, source: str, state: TypeRegistry | None = None
) -> BlueprintDocument:
    """Check an already-parsed blueprint (see :func:`load_blueprint`)."""
    types = state or _current_types()
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise BlueprintError(
            f"{source}: expected a mapping with 'version: {VERSION}' at the top level, got {got}"
        )
    _reject_unknown(data, ("version", *SECTIONS), source)
    if "version" not in data:
        raise BlueprintError(f"{source}: field 'version': a value is required (version: {VERSION})")
    if data["version"] != VERSION or isinstance(data["version"], bool):
        raise BlueprintError(
            f"{source}: field 'version': this flask-flows reads version {VERSION},"
            f" not {data['version']!r}"
        )
    document: dict[str, Any] = {"version": VERSION}
    problems = Problems()
    for section in SECTIONS:
        entries = data.get(section)
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise BlueprintError(
                f"{source}: field {section!r}: expected a list, got {type(entries).__name__}"
            )
        document[section] = []
        for index, entry in enumerate(entries):
            with problems.collected():
                document[section].append(
                    _SECTION_CHECKS[section](
                        _mapping(entry, f"{source}: {section}[{index}]"), index, source, types
                    )
                )
    problems.raise_any()
    checked = BlueprintDocument(document, source)
    check_unique([checked])
    return checked


class Problems:
    """The mistakes of a whole blueprint, said together: each entry is checked even after
    one was refused, so a file with three mistakes takes one run to see them all."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def collected(self) -> Iterator[None]:
        try:
            yield
        except ConfigError as error:  # a BlueprintError too
            self.messages.append(str(error))

    def raise_any(self) -> None:
        if len(self.messages) == 1:
            raise BlueprintError(self.messages[0])
        if self.messages:
            listed = "\n".join(f"- {message}" for message in self.messages)
            raise BlueprintError(f"{len(self.messages)} problems:\n{listed}")


def check_unique(documents: list[BlueprintDocument]) -> None:
    """Each group, policy, stage and flow is defined once across ``documents``."""
    for section in SECTIONS:
        key = natural_key(section)
        seen: dict[str, str] = {}
        for document in documents:
            for index, entry in enumerate(document[section]):
                label = f"{document.source}: {entry_label(section, index, entry)}"
                if entry[key] in seen:
                    raise BlueprintError(
                        f"{label}, field {key!r}: {entry[key]!r} is already defined in"
                        f" {seen[entry[key]]}"
                    )
                seen[entry[key]] = label


def natural_key(section: str) -> str:
    """The field that identifies an entry of ``section`` in the database."""
    return "slug" if section == "flows" else "name"


def entry_label(section: str, index: int, entry: Mapping[str, Any]) -> str:
    """``flows[0] (slug 'x')``: how messages point at one entry."""
    key = natural_key(section)
    value = entry.get(key)
    return f"{section}[{index}]" + (f" ({key} {value!r})" if isinstance(value, str) else "")


def binding_label(index: int, entry: Mapping[str, Any]) -> str:
    stage = entry.get("stage")
    return f"bindings[{index}]" + (f" (stage {stage!r})" if isinstance(stage, str) else "")


def subject_label(index: int, entry: Mapping[str, Any]) -> str:
    for subject in _SUBJECTS:
        if isinstance(entry.get(subject), str):
            return f"policies[{index}] ({subject} {entry[subject]!r})"
    return f"policies[{index}]"


# Field specs. Defaults are read from the models so the two never disagree.


def _default(column: sa.orm.InstrumentedAttribute[Any]) -> Any:
    value = column.property.columns[0].default.arg  # type: ignore[union-attr]
    return value.value if isinstance(value, enum.Enum) else value


def _choice(enum_type: type[enum.Enum], column: Any = None) -> Option:
    values = tuple(member.value for member in enum_type)
    if column is None:
        return Option(str, choices=values)
    return Option(str, default=_default(column), choices=values)


_GROUP_FIELDS = {
    "name": Option(str),
    "is_superuser": Option(bool, default=_default(Group.is_superuser)),
}
_POLICY_FIELDS = {
    "name": Option(str),
    "type": Option(str),
    "config": Option(dict, default=None, nullable=True),
    "execution_logging": Option(bool, default=_default(Policy.execution_logging)),
}
_STAGE_FIELDS = {
    "name": Option(str),
    "type": Option(str),
    "config": Option(dict, default=None, nullable=True),
}
_FLOW_FIELDS = {
    "slug": Option(str),
    "name": Option(str),
    "title": Option(str, default=_default(Flow.title)),
    "designation": _choice(Designation),
    "authentication": _choice(AuthenticationRequirement, Flow.authentication),
    "denied_action": _choice(DeniedAction, Flow.denied_action),
    "policy_engine_mode": _choice(PolicyEngineMode, Flow.policy_engine_mode),
    "layout": Option(str, default=_default(Flow.layout)),
    "policies": Option(list, default=()),
    "bindings": Option(list, default=()),
}
_BINDING_FIELDS = {
    "stage": Option(str),
    "order": Option(int, default=_default(FlowStageBinding.order)),
    "evaluate_on_plan": Option(bool, default=_default(FlowStageBinding.evaluate_on_plan)),
    "re_evaluate_policies": Option(bool, default=_default(FlowStageBinding.re_evaluate_policies)),
    "invalid_response_action": _choice(
        InvalidResponseAction, FlowStageBinding.invalid_response_action
    ),
    "policy_engine_mode": _choice(PolicyEngineMode, FlowStageBinding.policy_engine_mode),
    "policies": Option(list, default=()),
}
_SUBJECT_FIELDS = {
    "policy": Option(str, default=None, nullable=True),
    "group": Option(str, default=None, nullable=True),
    "user": Option(str, default=None, nullable=True),
    "order": Option(int, default=_default(PolicyBinding.order)),
    "enabled": Option(bool, default=_default(PolicyBinding.enabled)),
    "negate": Option(bool, default=_default(PolicyBinding.negate)),
    "failure_result": Option(bool, default=_default(PolicyBinding.failure_result)),
    "timeout": Option(int, default=_default(PolicyBinding.timeout), minimum=0),
}
_MAX_LENGTH = {"slug": 64, "name": 128, "title": 256, "layout": 32, "type": 64, "user": 150}


def _check_group(
    entry: dict[str, Any], index: int, source: str, types: TypeRegistry
) -> dict[str, Any]:
    return _fields(entry, _GROUP_FIELDS, f"{source}: {entry_label('groups', index, entry)}")


def _check_policy(
    entry: dict[str, Any], index: int, source: str, types: TypeRegistry
) -> dict[str, Any]:
    return _check_typed(
        entry,
        _POLICY_FIELDS,
        f"{source}: {entry_label('policies', index, entry)}",
        types.policy_type,
    )


def _check_stage(
    entry: dict[str, Any], index: int, source: str, types: TypeRegistry
) -> dict[str, Any]:
    return _check_typed(
        entry, _STAGE_FIELDS, f"{source}: {entry_label('stages', index, entry)}", types.stage_type
    )


def _check_typed(
    entry: dict[str, Any], fields: Any, where: str, lookup: Callable[[str], StageType | PolicyType]
) -> dict[str, Any]:
    """A stage or policy entry: its fields, a known type, and a config that type accepts."""
    checked = _fields(entry, fields, where)
    checked["config"] = checked["config"] or {}
    try:
        typed = lookup(checked["type"])
    except ConfigError as error:
        raise BlueprintError(f"{where}, field 'type': {error}") from error

    def check() -> None:
        config = validate_options(typed.options, checked["config"], f"{where}, config")
        typed.check_config(config, f"{where}, config")

    _config_error(check)
    return checked


def _check_flow(
    entry: dict[str, Any], index: int, source: str, types: TypeRegistry
) -> dict[str, Any]:
    where = f"{source}: {entry_label('flows', index, entry)}"
    flow = _fields(entry, _FLOW_FIELDS, where)
    if not _SLUG.match(flow["slug"]):
        raise BlueprintError(
            f"{where}, field 'slug': use only letters, digits, '-' and '_' (it is part of URLs)"
        )
    flow["policies"] = _subjects(flow["policies"], where)
    bindings = []
    orders: dict[int, str] = {}
    for position, raw in enumerate(flow["bindings"]):
        binding_where = f"{where}, {binding_label(position, raw if isinstance(raw, dict) else {})}"
        binding = _fields(_mapping(raw, binding_where), _BINDING_FIELDS, binding_where)
        if binding["order"] in orders:
            raise BlueprintError(
                f"{binding_where}, field 'order': order {binding['order']} is already used by"
                f" {orders[binding['order']]} (orders must be unique within a flow)"
            )
        orders[binding["order"]] = binding_label(position, binding)
        binding["policies"] = _subjects(binding["policies"], binding_where)
        bindings.append(binding)
    flow["bindings"] = bindings
    return flow


def _subjects(entries: list[Any], where: str) -> list[dict[str, Any]]:
    checked = []
    for position, raw in enumerate(entries):
        entry_where = f"{where}, {subject_label(position, raw if isinstance(raw, dict) else {})}"
        entry = _fields(_mapping(raw, entry_where), _SUBJECT_FIELDS, entry_where)
        given = [subject for subject in _SUBJECTS if entry[subject] is not None]
        if len(given) != 1:
            found = ", ".join(repr(s) for s in given) or "none"
            raise BlueprintError(
                f"{entry_where}: set exactly one of the fields 'policy', 'group' and 'user'"
                f" (found: {found})"
            )
        checked.append(entry)
    return checked


_SECTION_CHECKS = {
    "groups": _check_group,
    "policies": _check_policy,
    "stages": _check_stage,
    "flows": _check_flow,
}


def _fields(entry: dict[str, Any], fields: dict[str, Option], where: str) -> dict[str, Any]:
    _reject_unknown(entry, tuple(fields), where)
    checked = _config_error(lambda: validate_options(fields, entry, where))
    for name, limit in _MAX_LENGTH.items():
        value = checked.get(name)
        if isinstance(value, str) and name in fields:
            if not value.strip() and not fields[name].nullable and fields[name].required:
                raise BlueprintError(f"{where}, field {name!r}: must not be empty")
            if len(value) > limit:
                raise BlueprintError(f"{where}, field {name!r}: at most {limit} characters")
    return checked


def _reject_unknown(entry: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in entry:
        if key not in known:
            raise BlueprintError(
                f"{where}: unknown field {key!r} (known fields: {', '.join(known)})"
            )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BlueprintError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _config_error(check: Any) -> Any:
    """Run ``check``, re-raising its :class:`ConfigError` as a :class:`BlueprintError`."""
    try:
        return check()
    except BlueprintError:
        raise
    except ConfigError as error:
        raise BlueprintError(str(error)) from error


def _current_types() -> TypeRegistry:
    if has_app_context() and "flows" in current_app.extensions:
        return current_app.extensions["flows"]  # type: ignore[no-any-return]
    return _BuiltinTypes()


class _BuiltinTypes:
    """The built-in stage and policy types, for checking files outside an app."""

    def stage_type(self, name: str) -> StageType:
        return _lookup({t.name: t for t in STAGE_TYPES}, name, "stage")()

    def policy_type(self, name: str) -> PolicyType:
        return _lookup({t.name: t for t in POLICY_TYPES}, name, "policy")()


def _lookup(known: dict[str, Any], name: str, kind: str) -> Any:
    if name not in known:
        raise ConfigError(f"unknown {kind} type {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error
    instead of silently keeping the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"the key {key!r} is given twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)
