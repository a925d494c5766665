"""What every policy type implements, and what it is given to decide."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any, ClassVar

from ..options import Option

if TYPE_CHECKING:
    from flask import Request

    from ..extension import FlowsState
    from ..models import Flow
    from ..references import References


@dataclass(frozen=True)
class PolicyResult:
    """A yes/no decision with messages to show the user when it is no.

    ``field`` names the prompt field the messages are about (a password policy names the
    password field), so a prompt stage can show them next to that field rather than
    above the form. ``None`` means the messages concern the request as a whole.
    """

    passing: bool
    messages: tuple[str, ...] = ()
    field: str | None = None

    def __bool__(self) -> bool:
        return self.passing


@dataclass
class PolicyRequest:
    """Everything a policy may look at: the plan's user, the plan context and the request.

    ``user`` is the plan's pending user when one is set, else the logged-in user, else
    ``None``; ``authenticated_user`` is only ever the logged-in user. ``request`` is
    ``None`` when a policy runs outside a request (the CLI).
    """

    state: FlowsState
    user: Any | None
    context: Mapping[str, Any] = dataclass_field(default_factory=dict)
    request: Request | None = None
    authenticated_user: Any | None = None
    #: True when a field is checked as it is typed (a prompt's live check): the answer is
    #: shown, not acted on, so a policy may leave out slow or outward work (the password
    #: policy does not ask the breached-password service).
    preview: bool = False
    #: The flow the policies are evaluated for (``None`` outside one: the CLI).
    flow: Flow | None = None
    #: Names of policies whose answer was replaced by their binding's ``failure_result``
    #: (they raised or overran their timeout): a plan built on that is not cached.
    fallbacks: list[str] = dataclass_field(default_factory=list)


class PolicyType:
    """Base class of policy types. Subclasses set ``name`` and ``options`` and implement
    :meth:`evaluate`."""

    name: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    #: True when the decision may depend on the request itself (IP, headers, time):
    #: plans of flows bound to such a policy are never cached.
    request_dependent: ClassVar[bool] = False

    def check_config(self, config: Mapping[str, Any], where: str) -> None:
        """Cross-field checks beyond :class:`Option`; raise ``ConfigError`` naming ``where``
        (run when a blueprint is applied and once per policy object at run time)."""

    def check_references(
        self, config: Mapping[str, Any], where: str, references: References
    ) -> None:
        """Check what the options name elsewhere exists; raise ``ConfigError`` naming
        ``where``. Run when a blueprint is applied and by ``flask flows check`` (see
        :mod:`flask_flows.references`)."""

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        raise NotImplementedError
