"""The built-in stage and policy types, in one place so adding one is one line."""

from __future__ import annotations

from .policies.base import PolicyType
from .policies.builtin import AuthenticatedPolicy, GroupMembershipPolicy, PythonPolicy
from .stages.base import StageType
from .stages.deny import DenyStage
from .stages.dummy import DummyStage
from .stages.identification import IdentificationStage
from .stages.password import PasswordStage
from .stages.redirect import RedirectStage
from .stages.user_login import UserLoginStage
from .stages.user_logout import UserLogoutStage

STAGE_TYPES: tuple[type[StageType], ...] = (
    IdentificationStage,
    PasswordStage,
    UserLoginStage,
    UserLogoutStage,
    DenyStage,
    RedirectStage,
    DummyStage,
)

POLICY_TYPES: tuple[type[PolicyType], ...] = (
    PythonPolicy,
    GroupMembershipPolicy,
    AuthenticatedPolicy,
)
