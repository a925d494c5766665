"""The ``reputation`` policy: passes while the client IP and the identifier being tried
have a score above ``threshold``.

Bind it, negated, to a deny or captcha stage with ``re_evaluate_policies`` so that stage
runs once guessing has pushed a score down: it slows guessing per IP and per account
(ASVS 6.3.1). Scores and how they change live in :mod:`flask_flows.reputation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..options import Option
from ..plan import PENDING_USER_IDENTIFIER
from ..reputation import scores, subjects
from .base import PolicyRequest, PolicyResult, PolicyType


class ReputationPolicy(PolicyType):
    name = "reputation"
    options = {
        "check_ip": Option(bool, default=True),
        "check_identifier": Option(bool, default=True),
        "threshold": Option(int, default=-5),
        "message": Option(str, default="Too many failed attempts. Please try again later."),
    }
    request_dependent = True

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        ip = request.request.remote_addr if request.request is not None else None
        identifier = request.context.get(PENDING_USER_IDENTIFIER)
        identifier = identifier if isinstance(identifier, str) else None
        # Read both subjects even when checking one: the policy for the other, usually
        # bound beside this one, then finds them in the request's memo (one query).
        found = scores(request.state, subjects(ip, [identifier]))
        checked = subjects(
            ip if config["check_ip"] else None,
            [identifier if config["check_identifier"] else None],
        )
        if all(found[(kind.value, key)] > config["threshold"] for kind, key in checked):
            return PolicyResult(True)
        return PolicyResult(False, (config["message"],))
