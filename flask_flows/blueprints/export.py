"""Writing one flow, with everything it refers to, back out as a blueprint.

The output lists every field explicitly and sorts stage and policy configs by key, so
exporting, applying to an empty database and exporting again gives the same text, and
diffs between two exports show only real changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from ..models import Flow, Group, Policy, PolicyBinding, Stage
from .schema import VERSION, BlueprintError

if TYPE_CHECKING:
    from ..extension import FlowsState


def export_flow(state: FlowsState, slug: str) -> str:
    """YAML of the flow ``slug``, its stages and the policies and groups it binds.

    Raises :class:`BlueprintError` when there is no such flow, or when a policy binding
    names a user who no longer exists (a blueprint refers to users by username).
    """
    flow = state.load_flow(slug)
    if flow is None:
        raise BlueprintError(f"no flow with slug {slug!r}")
    exporter = _Exporter(state, flow)
    flow_entry = exporter.flow()
    document: dict[str, Any] = {"version": VERSION}
    if exporter.groups:
        document["groups"] = [_group(group) for group in exporter.groups.values()]
    if exporter.policies:
        document["policies"] = [_policy(policy) for policy in exporter.policies.values()]
    if exporter.stages:
        document["stages"] = [_stage(stage) for stage in exporter.stages.values()]
    document["flows"] = [flow_entry]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


class _Exporter:
    """Walks one flow, collecting the stages, policies and groups it refers to in order."""

    def __init__(self, state: FlowsState, flow: Flow) -> None:
        self.state = state
        self.flow_row = flow
        self.stages: dict[str, Stage] = {}
        self.policies: dict[str, Policy] = {}
        self.groups: dict[str, Group] = {}

    def flow(self) -> dict[str, Any]:
        flow = self.flow_row
        entry: dict[str, Any] = {
            "slug": flow.slug,
            "name": flow.name,
            "title": flow.title,
            "designation": flow.designation.value,
            "authentication": flow.authentication.value,
            "denied_action": flow.denied_action.value,
            "policy_engine_mode": flow.policy_engine_mode.value,
            "layout": flow.layout,
        }
        if flow.policy_bindings:
            entry["policies"] = self.subjects(flow.policy_bindings)
        entry["bindings"] = []
        for binding in flow.bindings:
            self.stages.setdefault(binding.stage.name, binding.stage)
            binding_entry: dict[str, Any] = {
                "stage": binding.stage.name,
                "order": binding.order,
                "evaluate_on_plan": binding.evaluate_on_plan,
                "re_evaluate_policies": binding.re_evaluate_policies,
                "invalid_response_action": binding.invalid_response_action.value,
                "policy_engine_mode": binding.policy_engine_mode.value,
            }
            if binding.policy_bindings:
                binding_entry["policies"] = self.subjects(binding.policy_bindings)
            entry["bindings"].append(binding_entry)
        return entry

    def subjects(self, bindings: list[PolicyBinding]) -> list[dict[str, Any]]:
        entries = []
        for binding in sorted(bindings, key=lambda b: (b.order, b.id)):
            entry: dict[str, Any]
            if binding.policy is not None:
                self.policies.setdefault(binding.policy.name, binding.policy)
                entry = {"policy": binding.policy.name}
            elif binding.group is not None:
                self.groups.setdefault(binding.group.name, binding.group)
                entry = {"group": binding.group.name}
            else:
                entry = {"user": self.username(binding.user_id)}
            entry.update(
                order=binding.order,
                enabled=binding.enabled,
                negate=binding.negate,
                failure_result=binding.failure_result,
                timeout=binding.timeout,
            )
            entries.append(entry)
        return entries

    def username(self, user_id: str | None) -> str:
        user = self.state.user_store.get(user_id)
        username = getattr(user, "username", None)
        if not isinstance(username, str):
            raise BlueprintError(
                f"flow {self.flow_row.slug!r}: a policy binding refers to user id {user_id!r},"
                " who no longer exists; remove the binding or recreate the user"
            )
        return username


def _group(group: Group) -> dict[str, Any]:
    return {"name": group.name, "is_superuser": group.is_superuser}


def _policy(policy: Policy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "type": policy.type,
        "config": dict(sorted((policy.config or {}).items())),
        "execution_logging": policy.execution_logging,
    }


def _stage(stage: Stage) -> dict[str, Any]:
    return {
        "name": stage.name,
        "type": stage.type,
        "config": dict(sorted((stage.config or {}).items())),
    }
