"""flask-flows: authentik-style authentication flows for Flask.

A flow is an ordered list of stages bound with policies; ``Flows(app)`` mounts an
executor that runs them with htmx fragment swaps (and plain forms without JavaScript).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .authenticators import AuthenticatorKind, CodeMatch
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
    from .password_formats import PasswordFormat
    from .plan import FlowPlan
    from .planner import FlowNonApplicable, FlowPlanner
    from .policies import PolicyRequest, PolicyResult, PolicyType
    from .stages.base import StageForm, StageResult, StageRun, StageType
    from .users import FlowsUserMixin, UserStore

#: Where each public name lives. Imported on first use, so that importing the package
#: itself (``flask`` loads the ``flows`` command through it in every app of the
#: virtualenv) runs no code that could fail.
_EXPORTS = {
    "AuthenticatorKind": "authenticators",
    "CodeMatch": "authenticators",
    "Flows": "extension",
    "FlowsState": "extension",
    "get_state": "extension",
    "AuthenticatedSession": "models",
    "Flow": "models",
    "FlowsModel": "models",
    "FlowStageBinding": "models",
    "Group": "models",
    "GroupMembership": "models",
    "Policy": "models",
    "PolicyBinding": "models",
    "Stage": "models",
    "log_in": "logins",
    "log_out": "logins",
    "ConfigError": "options",
    "Option": "options",
    "PasswordFormat": "password_formats",
    "FlowPlan": "plan",
    "FlowNonApplicable": "planner",
    "FlowPlanner": "planner",
    "PolicyRequest": "policies",
    "PolicyResult": "policies",
    "PolicyType": "policies",
    "StageForm": "stages.base",
    "StageResult": "stages.base",
    "StageRun": "stages.base",
    "StageType": "stages.base",
    "FlowsUserMixin": "users",
    "UserStore": "users",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # A submodule (``flask_flows.signals`` after a plain ``import flask_flows``).
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'flask_flows' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__version__ = "0.1.0"

__all__ = [
    "AuthenticatedSession",
    "AuthenticatorKind",
    "CodeMatch",
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
    "PasswordFormat",
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
    "log_in",
    "log_out",
]
