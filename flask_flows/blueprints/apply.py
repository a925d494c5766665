"""Writing checked blueprints into the database: an idempotent upsert, all or nothing.

Objects are matched by their natural key (group, policy and stage ``name``, flow
``slug``). A flow's bindings are matched by ``order`` and its policy bindings by
position, and only fields that differ are written: re-applying an unchanged file
writes nothing, so binding ids, running plans and ``Flow.revision`` all survive it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from ..models import (
    AuthenticationRequirement,
    DeniedAction,
    Designation,
    Flow,
    FlowsModel,
    FlowStageBinding,
    Group,
    InvalidResponseAction,
    Policy,
    PolicyBinding,
    PolicyEngineMode,
    Stage,
)
from ..references import References, check_references
from .schema import (
    SECTIONS,
    BlueprintDocument,
    BlueprintError,
    Problems,
    binding_label,
    check_unique,
    entry_label,
    load_blueprint,
    subject_label,
    validate_document,
)

if TYPE_CHECKING:
    from ..extension import FlowsState

Model = TypeVar("Model", bound=FlowsModel)


@dataclass
class ApplyReport:
    """How many groups, policies, stages and flows one apply created, updated or left alone."""

    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    #: Names of objects that differ from the file and were left as they are (applied
    #: with ``keep_changed``), by section.
    kept: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SECTIONS})

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())

    def record(self, section: str, *, created: bool, changed: bool) -> None:
        counts = self.created if created else self.updated if changed else self.unchanged
        counts[section] += 1

    def summary(self) -> str:
        """One line per kind that appeared, e.g. ``flows: 1 created, 0 updated, 0 unchanged``
        (and ``, 1 kept as changed`` when some differ and were kept)."""
        lines = [
            f"{section}: {self.created[section]} created, {self.updated[section]} updated,"
            f" {self.unchanged[section]} unchanged"
            + (f", {len(self.kept[section])} kept as changed" if self.kept[section] else "")
            for section in SECTIONS
            if self.created[section]
            or self.updated[section]
            or self.unchanged[section]
            or self.kept[section]
        ]
        return "\n".join(lines) or "nothing to apply"

    def __str__(self) -> str:
        return self.summary()


def apply_blueprint(
    state: FlowsState,
    document_or_path: Mapping[str, Any] | Path | str,
    *,
    name: str | None = None,
) -> ApplyReport:
    """Apply one blueprint: a parsed mapping, a :class:`~pathlib.Path`, or YAML text.

    Commits on success; on any error rolls the session back (nothing is changed,
    including anything the caller had pending) and raises :class:`BlueprintError`.
    """
    if isinstance(document_or_path, Mapping):
        source = name or str(getattr(document_or_path, "source", "<document>"))
        document = validate_document(dict(document_or_path), source, state)
    else:
        document = load_blueprint(document_or_path, name=name, state=state)
    return apply_documents(state, [document])


def apply_files(state: FlowsState, paths: Iterable[str | Path]) -> ApplyReport:
    """Apply several files in one transaction: all of them, or (on any error) none."""
    documents: list[BlueprintDocument] = []
    problems = Problems()
    for path in paths:
        with problems.collected():
            documents.append(load_blueprint(Path(path), state=state))
    problems.raise_any()
    return apply_documents(state, documents)


def apply_documents(
    state: FlowsState, documents: list[BlueprintDocument], *, keep_changed: bool = False
) -> ApplyReport:
    """Apply loaded documents in one transaction: all of them, or (on any error) none.

    With ``keep_changed`` an object that exists and differs from its document is left as
    it is (and named in :attr:`ApplyReport.kept`): only what is missing is added.
    """
    check_unique(documents)
    session = state.db.session
    try:
        with session.no_autoflush:
            report = _Applier(state, documents, keep_changed=keep_changed).run()
        session.commit()
    except BlueprintError:
        session.rollback()
        raise
    except SQLAlchemyError as error:
        session.rollback()
        sources = ", ".join(document.source for document in documents)
        reason = getattr(error, "orig", None) or error
        raise BlueprintError(f"{sources}: the database refused the change: {reason}") from error
    return report


class _Applier:
    """One apply run: upserts section by section and resolves references by name."""

    def __init__(
        self, state: FlowsState, documents: list[BlueprintDocument], *, keep_changed: bool
    ) -> None:
        self.state = state
        self.session = state.db.session
        self.documents = documents
        self.keep_changed = keep_changed
        self.report = ApplyReport()
        self.groups: dict[str, Group] = {}
        self.policies: dict[str, Policy] = {}
        self.stages: dict[str, Stage] = {}
        self.users: dict[str, str] = {}

    def run(self) -> ApplyReport:
        self._upsert("groups", Group, Group.name, self.groups, self._group_values)
        self._upsert("policies", Policy, Policy.name, self.policies, self._policy_values)
        self._upsert("stages", Stage, Stage.name, self.stages, self._stage_values)
        self._apply_flows()
        self._check_references()
        self.session.flush()
        return self.report

    def _upsert(
        self,
        section: str,
        model: type[Model],
        key: Any,
        defined: dict[str, Model],
        values: Any,
    ) -> None:
        entries = [entry for document in self.documents for entry in document[section]]
        names = [entry["name"] for entry in entries]
        rows = self.session.scalars(sa.select(model).where(key.in_(names)))
        existing: dict[str, Model] = {row.name: row for row in rows}  # type: ignore[attr-defined]
        for entry in entries:
            row = existing.get(entry["name"])
            if row is not None and self.keep_changed and _differs(row, values(entry)):
                defined[entry["name"]] = row
                self.report.kept[section].append(entry["name"])
                continue
            created = row is None
            if row is None:
                row = model(name=entry["name"])
                self.session.add(row)
            changed = _assign(row, values(entry))
            defined[entry["name"]] = row
            self.report.record(section, created=created, changed=changed)

    @staticmethod
    def _group_values(entry: dict[str, Any]) -> dict[str, Any]:
        return {"is_superuser": entry["is_superuser"]}

    @staticmethod
    def _policy_values(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": entry["type"],
            "config": entry["config"],
            "execution_logging": entry["execution_logging"],
        }

    @staticmethod
    def _stage_values(entry: dict[str, Any]) -> dict[str, Any]:
        return {"type": entry["type"], "config": entry["config"]}

    def _apply_flows(self) -> None:
        slugs = [entry["slug"] for document in self.documents for entry in document["flows"]]
        existing = {
            flow.slug: flow
            for flow in self.session.scalars(sa.select(Flow).where(Flow.slug.in_(slugs)))
        }
        for document in self.documents:
            for index, entry in enumerate(document["flows"]):
                where = f"{document.source}: {entry_label('flows', index, entry)}"
                flow = existing.get(entry["slug"])
                if flow is not None and self.keep_changed:
                    if self._would_change(flow, entry, where):
                        self.report.kept["flows"].append(entry["slug"])
                    else:
                        self.report.record("flows", created=False, changed=False)
                    continue
                created = flow is None
                if flow is None:
                    flow = Flow(slug=entry["slug"])
                    self.session.add(flow)
                changed = self._sync_flow(flow, entry, where)
                self.report.record("flows", created=created, changed=changed)

    def _check_references(self) -> None:
        """What the stages and policies written here name elsewhere (a stage, a flow, a
        policy) exists, in the blueprint or the database; the rows kept as changed are
        the database's own and are left to ``flask flows check``."""
        flows = {entry["slug"] for document in self.documents for entry in document["flows"]}
        references = References(
            self.state, stages=self.stages, policies=self.policies.keys(), flows=flows
        )
        problems = Problems()
        for document in self.documents:
            for section, rows in (("stages", self.stages), ("policies", self.policies)):
                for index, entry in enumerate(document[section]):
                    if entry["name"] in self.report.kept[section]:
                        continue
                    where = f"{document.source}: {entry_label(section, index, entry)}, config"
                    with problems.collected():
                        check_references(self.state, rows[entry["name"]], where, references)
        problems.raise_any()

    def _would_change(self, flow: Flow, entry: dict[str, Any], where: str) -> bool:
        """Whether applying ``entry`` would change ``flow``: found by applying it in a
        savepoint, which is then rolled back either way."""
        with self.session.begin_nested() as savepoint:
            changed = self._sync_flow(flow, entry, where)
            self.session.flush()
            savepoint.rollback()
        return changed

    def _sync_flow(self, flow: Flow, entry: dict[str, Any], where: str) -> bool:
        """Make ``flow`` match ``entry``: its fields, policy bindings and stage bindings."""
        changed = _assign(
            flow,
            {
                "name": entry["name"],
                "title": entry["title"],
                "designation": Designation(entry["designation"]),
                "authentication": AuthenticationRequirement(entry["authentication"]),
                "denied_action": DeniedAction(entry["denied_action"]),
                "policy_engine_mode": PolicyEngineMode(entry["policy_engine_mode"]),
                "layout": entry["layout"],
            },
        )
        changed |= self._sync_subjects(flow.policy_bindings, entry["policies"], where)
        changed |= self._sync_bindings(flow, entry["bindings"], where)
        return changed

    def _sync_bindings(self, flow: Flow, entries: list[dict[str, Any]], where: str) -> bool:
        wanted = {entry["order"] for entry in entries}
        current = {binding.order: binding for binding in flow.bindings}
        changed = False
        for binding in list(flow.bindings):
            if binding.order not in wanted:
                flow.bindings.remove(binding)
                changed = True
        for position, entry in enumerate(entries):
            binding_where = f"{where}, {binding_label(position, entry)}"
            found = current.get(entry["order"])
            if found is not None:
                binding = found
            else:
                binding = FlowStageBinding(order=entry["order"])
                flow.bindings.append(binding)
                changed = True
            changed |= _assign(
                binding,
                {
                    "stage": self._stage(entry["stage"], binding_where),
                    "evaluate_on_plan": entry["evaluate_on_plan"],
                    "re_evaluate_policies": entry["re_evaluate_policies"],
                    "invalid_response_action": InvalidResponseAction(
                        entry["invalid_response_action"]
                    ),
                    "policy_engine_mode": PolicyEngineMode(entry["policy_engine_mode"]),
                },
            )
            changed |= self._sync_subjects(
                binding.policy_bindings, entry["policies"], binding_where
            )
        return changed

    def _sync_subjects(
        self, bindings: list[PolicyBinding], entries: list[dict[str, Any]], where: str
    ) -> bool:
        """Make ``bindings`` match ``entries``, reusing rows position by position."""
        current = sorted(bindings, key=lambda b: (b.order, b.id or 0))
        ordered = sorted(enumerate(entries), key=lambda item: item[1]["order"])
        changed = len(current) != len(ordered)
        for stale in current[len(ordered) :]:
            bindings.remove(stale)
        for slot, (position, entry) in enumerate(ordered):
            entry_where = f"{where}, {subject_label(position, entry)}"
            if slot < len(current):
                binding = current[slot]
            else:
                binding = PolicyBinding()
                bindings.append(binding)
            changed |= _assign(
                binding,
                {
                    "policy": self._policy(entry["policy"], entry_where),
                    "group": self._group(entry["group"], entry_where),
                    "user_id": self._user(entry["user"], entry_where),
                    "order": entry["order"],
                    "enabled": entry["enabled"],
                    "negate": entry["negate"],
                    "failure_result": entry["failure_result"],
                    "timeout": entry["timeout"],
                },
            )
        return changed

    def _stage(self, name: str, where: str) -> Stage:
        return self._reference(Stage, name, self.stages, where, "stage")

    def _policy(self, name: str | None, where: str) -> Policy | None:
        return (
            None if name is None else self._reference(Policy, name, self.policies, where, "policy")
        )

    def _group(self, name: str | None, where: str) -> Group | None:
        return None if name is None else self._reference(Group, name, self.groups, where, "group")

    def _reference(
        self, model: type[Model], name: str, known: dict[str, Model], where: str, field_name: str
    ) -> Model:
        if name not in known:
            query = sa.select(model).where(model.name == name)  # type: ignore[attr-defined]
            row: Model | None = self.session.scalar(query)
            if row is None:
                raise BlueprintError(
                    f"{where}, field {field_name!r}: no {field_name} named {name!r}"
                    " in the blueprint or the database"
                )
            known[name] = row
        return known[name]

    def _user(self, username: str | None, where: str) -> str | None:
        if username is None:
            return None
        if username not in self.users:
            store = self.state.user_store
            user = store.find_by_identifier(username, ["username"], case_insensitive=False)
            if user is None:
                raise BlueprintError(f"{where}, field 'user': no user with username {username!r}")
            self.users[username] = store.user_id(user)
        return self.users[username]


def _differs(row: Any, values: dict[str, Any]) -> bool:
    return any(getattr(row, name) != value for name, value in values.items())


def _assign(row: Any, values: dict[str, Any]) -> bool:
    """Set only the attributes that differ, so an unchanged row stays clean."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed
