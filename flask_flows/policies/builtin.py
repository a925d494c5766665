"""The policy types that ship with the engine: Python callables, groups, authentication."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..i18n import N_
from ..options import ConfigError, Option
from .base import PolicyRequest, PolicyResult, PolicyType

if TYPE_CHECKING:
    from ..references import References


class PythonPolicy(PolicyType):
    """Runs a Python function registered with ``@flows.policy("name")``.

    The function receives the :class:`PolicyRequest` and returns a bool, a
    :class:`PolicyResult`, or a ``(bool, [messages])`` pair.
    """

    name = "python"
    options = {"function": Option(str, help="Name given to @flows.policy().")}
    request_dependent = True

    def check_references(
        self, config: Mapping[str, Any], where: str, references: References
    ) -> None:
        """The function is registered in the app (a typo would fail every visitor)."""
        if config["function"] not in references.state.python_policies:
            raise ConfigError(
                f"{where}, field 'function': no function is registered as"
                f" {config['function']!r} (with @flows.policy({config['function']!r}))"
            )

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        function = request.state.python_policies.get(config["function"])
        if function is None:
            raise ConfigError(f"python policy function {config['function']!r} is not registered")
        return coerce_result(function(request))


class GroupMembershipPolicy(PolicyType):
    """Passes when the plan's user is in the configured group."""

    name = "group_membership"
    options = {
        "group": Option(str),
        "message": Option(str, default=N_("You are not allowed to use this."), text=True),
    }

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        if request.user is None:
            return PolicyResult(False, (config["message"],))
        if config["group"] in request.state.user_store.group_names(request.user):
            return PolicyResult(True)
        return PolicyResult(False, (config["message"],))


class AuthenticatedPolicy(PolicyType):
    """Passes when the request comes from a logged-in user."""

    name = "authenticated"
    options = {"message": Option(str, default=N_("Please log in first."), text=True)}

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        authenticated = request.authenticated_user is not None
        return PolicyResult(authenticated, () if authenticated else (config["message"],))


def coerce_result(value: Any) -> PolicyResult:
    """Accept the shapes a Python policy may return and normalise them."""
    if isinstance(value, PolicyResult):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        passing, messages = value
        if isinstance(messages, str):
            messages = (messages,)
        return PolicyResult(bool(passing), tuple(messages))
    if isinstance(value, bool):
        return PolicyResult(value)
    raise TypeError(f"a policy must return bool, PolicyResult or (bool, messages), not {value!r}")
