"""flask-flows: authentik-style authentication flows for Flask.

A flow is an ordered list of stages bound with policies; ``Flows(app)`` mounts an
executor that runs them with htmx fragment swaps (and plain forms without JavaScript).
"""

from __future__ import annotations

from .extension import Flows, FlowsState, get_state
from .models import (
    AuthenticatedSession,
    Flow,
    FlowsModel,
    FlowStageBinding,
    Group,
    GroupMembership,
    Policy,
    PolicyBinding,
    Stage,
)
from .options import ConfigError, Option
from .plan import FlowPlan
from .planner import FlowNonApplicable, FlowPlanner
from .policies import PolicyRequest, PolicyResult, PolicyType
from .stages.base import StageForm, StageResult, StageRun, StageType
from .users import FlowsUserMixin, UserStore

__version__ = "0.1.0"

__all__ = [
    "AuthenticatedSession",
    "ConfigError",
    "Flow",
    "FlowNonApplicable",
    "FlowPlan",
    "FlowPlanner",
    "FlowStageBinding",
    "Flows",
    "FlowsModel",
    "FlowsState",
    "FlowsUserMixin",
    "Group",
    "GroupMembership",
    "Option",
    "Policy",
    "PolicyBinding",
    "PolicyRequest",
    "PolicyResult",
    "PolicyType",
    "Stage",
    "StageForm",
    "StageResult",
    "StageRun",
    "StageType",
    "UserStore",
    "get_state",
]
