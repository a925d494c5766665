"""The planner: turns a flow definition, a user and a request into a :class:`FlowPlan`.

It checks the flow's authentication requirement and the flow's own policies, filters
bindings whose ``evaluate_on_plan`` policies fail and marks those with
``re_evaluate_policies`` for the executor. What passing policies say (authentik's
messages of passing results) goes into the plan context under ``notices``, for the
executor to show on the first page. It reads no Flask globals: everything it
needs comes in as arguments, which keeps it testable and its results cacheable.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Lock
from typing import TYPE_CHECKING, Any

from .i18n import N_
from .models import AuthenticationRequirement, Designation, Flow, FlowStageBinding
from .options import ConfigError
from .plan import NOTICES, FlowPlan, add_notices
from .policies import PolicyRequest, PolicyResult, evaluate_bindings

if TYPE_CHECKING:
    from flask import Request

    from .extension import FlowsState


#: Why a flow does not apply, for the person (message ids, shown in their language).
MSG_NOT_ALLOWED = N_("You are not allowed to use this flow.")
MSG_LOG_IN = N_("Please log in to continue.")
MSG_LOGGED_IN_ALREADY = N_("You are already logged in.")
MSG_SUPERUSERS_ONLY = N_("You need administrator rights to use this.")


class FlowNonApplicable(Exception):
    """The flow does not apply to this request; ``messages`` say why, for the user."""

    def __init__(
        self,
        messages: tuple[str, ...] | list[str],
        *,
        login_required: bool = False,
        logged_in_already: bool = False,
    ):
        super().__init__("; ".join(messages))
        self.messages = tuple(messages)
        self.login_required = login_required
        #: A flow for visitors who are not logged in (sign-up, recovery) opened by one who
        #: is: the executor sends them on instead of refusing.
        self.logged_in_already = logged_in_already


class EmptyFlow(Exception):
    """Every stage was filtered out and the app does not allow empty flows."""


@dataclass(frozen=True)
class _CachedPlan:
    expires: float
    bindings: tuple[int, ...]
    markers: tuple[int, ...]


class PlanCache:
    """Per-process cache of plans for flows that depend only on the flow and the user.

    Keys include the flow revision, so a changed flow simply stops matching; stale
    entries for older revisions of the same flow are dropped when a newer one is stored.
    """

    def __init__(self, ttl: int, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[int, int, str], _CachedPlan] = {}
        #: The revision entries of each flow were last stored for: only a change of it
        #: needs the scan for stale entries.
        self._revisions: dict[int, int] = {}
        self._lock = Lock()

    def get(self, key: tuple[int, int, str]) -> _CachedPlan | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires <= time.monotonic():
            return None
        return entry

    def put(self, key: tuple[int, int, str], bindings: list[int], markers: list[int]) -> None:
        if self.ttl <= 0:  # FLOWS_PLAN_CACHE_TTL = 0 turns the cache off
            return
        flow_id, revision, _user = key
        with self._lock:
            if self._revisions.get(flow_id, revision) != revision:
                stale = [k for k in self._entries if k[0] == flow_id and k[1] != revision]
                for k in stale:
                    del self._entries[k]
            self._revisions[flow_id] = revision
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = _CachedPlan(
                time.monotonic() + self.ttl, tuple(bindings), tuple(markers)
            )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._revisions.clear()

    def __len__(self) -> int:
        return len(self._entries)


class FlowPlanner:
    """Builds plans for one flow."""

    def __init__(self, state: FlowsState, flow: Flow) -> None:
        self.state = state
        self.flow = flow

    def plan(
        self,
        *,
        user: Any | None,
        authenticated_user: Any | None,
        request: Request | None,
        context: Mapping[str, Any] | None = None,
        use_cache: bool = True,
    ) -> FlowPlan:
        """Check the flow applies and return a fresh plan, or raise :class:`FlowNonApplicable`."""
        context = dict(context or {})
        carried = list(context.get(NOTICES) or ())
        policy_request = PolicyRequest(
            state=self.state,
            user=user,
            context=context,
            request=request,
            authenticated_user=authenticated_user,
            flow=self.flow,
        )
        self._check_requirement(authenticated_user)

        cache_key = self._cache_key(user, authenticated_user) if use_cache else None
        cached = self.state.plan_cache.get(cache_key) if cache_key else None
        if cached is not None:
            bindings, markers = list(cached.bindings), list(cached.markers)
        else:
            flow_result = evaluate_bindings(
                self.flow.policy_bindings, self.flow.policy_engine_mode, policy_request
            )
            if not flow_result.passing:
                raise FlowNonApplicable(flow_result.messages or (MSG_NOT_ALLOWED,))
            add_notices(context, flow_result.messages)
            bindings, markers = self._select_bindings(policy_request, context)
            # A policy that raised or timed out may answer otherwise next time, and what
            # policies said is said to each visitor (a cached plan would not say it).
            said = list(context.get(NOTICES) or ()) != carried
            if cache_key and not policy_request.fallbacks and not said:
                self.state.plan_cache.put(cache_key, bindings, markers)

        if not bindings and not self.state.config["FLOWS_ALLOW_EMPTY_FLOWS"]:
            raise EmptyFlow(f"flow {self.flow.slug!r} has no stages that apply")
        return FlowPlan(
            flow_slug=self.flow.slug,
            revision=self.flow.revision,
            bindings=bindings,
            markers=markers,
            context=context,
        )

    def _check_requirement(self, authenticated_user: Any | None) -> None:
        requirement = self.flow.authentication
        if requirement is AuthenticationRequirement.require_authenticated:
            if authenticated_user is None:
                raise FlowNonApplicable((MSG_LOG_IN,), login_required=True)
        elif requirement is AuthenticationRequirement.require_unauthenticated:
            if authenticated_user is not None:
                raise FlowNonApplicable((MSG_LOGGED_IN_ALREADY,), logged_in_already=True)
        elif requirement is AuthenticationRequirement.require_superuser and (
            authenticated_user is None or not self.state.user_store.is_superuser(authenticated_user)
        ):
            raise FlowNonApplicable(
                (MSG_SUPERUSERS_ONLY,), login_required=authenticated_user is None
            )

    def _select_bindings(
        self, policy_request: PolicyRequest, context: dict[str, Any]
    ) -> tuple[list[int], list[int]]:
        bindings: list[int] = []
        markers: list[int] = []
        for binding in self.flow.bindings:
            if binding.evaluate_on_plan:
                result = self.binding_result(binding, policy_request)
                if not result.passing:
                    continue
                add_notices(context, result.messages)
            bindings.append(binding.id)
            if binding.re_evaluate_policies and binding.policy_bindings:
                markers.append(binding.id)
        return bindings, markers

    def binding_result(
        self, binding: FlowStageBinding, policy_request: PolicyRequest
    ) -> PolicyResult:
        """What the binding's policies decide (and, passing, what they said)."""
        return evaluate_bindings(
            binding.policy_bindings, binding.policy_engine_mode, policy_request
        )

    def _cache_key(
        self, user: Any | None, authenticated_user: Any | None
    ) -> tuple[int, int, str] | None:
        """A key when the plan depends on nothing but flow and user, else ``None``."""
        if self.flow.designation is Designation.stage_configuration:
            return None
        if self._depends_on_request():
            return None
        store = self.state.user_store
        subject = user if user is not None else authenticated_user
        user_key = store.user_id(subject) if subject is not None else ""
        auth_key = store.user_id(authenticated_user) if authenticated_user is not None else ""
        return (self.flow.id, self.flow.revision, f"{user_key}|{auth_key}")

    def _depends_on_request(self) -> bool:
        policy_bindings = list(self.flow.policy_bindings)
        for binding in self.flow.bindings:
            if binding.evaluate_on_plan:
                policy_bindings.extend(binding.policy_bindings)
        for policy_binding in policy_bindings:
            policy = policy_binding.policy
            if policy is None:
                continue
            try:
                policy_type = self.state.policy_type(policy.type)
            except ConfigError:
                # An unknown type gets the binding's failure_result from the engine (which
                # logs it); never cache a plan built on that.
                return True
            if policy_type.request_dependent:
                return True
        return False
