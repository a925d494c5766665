"""The built-in stage and policy types, in one place so adding one is one line."""

from __future__ import annotations

from .policies.base import PolicyType
from .policies.builtin import AuthenticatedPolicy, GroupMembershipPolicy, PythonPolicy
from .policies.expression import ExpressionPolicy
from .policies.password import PasswordPolicy
from .policies.reputation import ReputationPolicy
from .stages.authenticator_static import AuthenticatorStaticStage
from .stages.authenticator_totp import AuthenticatorTOTPStage
from .stages.authenticator_validate import AuthenticatorValidateStage
from .stages.authenticator_webauthn import AuthenticatorWebAuthnStage
from .stages.base import StageType
from .stages.captcha import CaptchaStage
from .stages.consent import ConsentStage
from .stages.deny import DenyStage
from .stages.dummy import DummyStage
from .stages.email import EmailStage
from .stages.identification import IdentificationStage
from .stages.invitation import InvitationStage
from .stages.password import PasswordStage
from .stages.prompt import PromptStage
from .stages.redirect import RedirectStage
from .stages.user_delete import UserDeleteStage
from .stages.user_login import UserLoginStage
from .stages.user_logout import UserLogoutStage
from .stages.user_write import UserWriteStage

STAGE_TYPES: tuple[type[StageType], ...] = (
    IdentificationStage,
    PasswordStage,
    UserLoginStage,
    UserLogoutStage,
    PromptStage,
    UserWriteStage,
    UserDeleteStage,
    DenyStage,
    RedirectStage,
    DummyStage,
    EmailStage,
    InvitationStage,
    CaptchaStage,
    ConsentStage,
    AuthenticatorTOTPStage,
    AuthenticatorStaticStage,
    AuthenticatorValidateStage,
    AuthenticatorWebAuthnStage,
)

POLICY_TYPES: tuple[type[PolicyType], ...] = (
    PythonPolicy,
    GroupMembershipPolicy,
    AuthenticatedPolicy,
    PasswordPolicy,
    ReputationPolicy,
    ExpressionPolicy,
)
