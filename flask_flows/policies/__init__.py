"""Policy types and the engine that evaluates policy bindings."""

from .base import PolicyRequest, PolicyResult, PolicyType
from .engine import evaluate_bindings

__all__ = ["PolicyRequest", "PolicyResult", "PolicyType", "evaluate_bindings"]
