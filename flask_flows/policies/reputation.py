"""The ``reputation`` policy, as in authentik: passes when the summed score of the client
IP and/or the account being tried is at or below ``threshold``, so a *bad* reputation
matches.

Bind it plainly to a captcha (or deny) stage, with ``re_evaluate_policies``, to show
that stage only to clients or accounts that failed a lot lately. Guessing itself is
bounded anyway, on every guess (:mod:`flask_flows.guesses`); this policy is for asking
more of suspicious visitors, such as one IP trying many accounts. Scores and how they
change live in :mod:`flask_flows.reputation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..i18n import N_
from ..options import ConfigError, Option
from ..plan import PENDING_USER, PENDING_USER_IDENTIFIER
from ..reputation import name_key, total_score, user_key
from .base import PolicyRequest, PolicyResult, PolicyType


class ReputationPolicy(PolicyType):
    name = "reputation"
    options = {
        "check_ip": Option(bool, default=True),
        "check_username": Option(bool, default=True),
        "threshold": Option(int, default=-5),
        "message": Option(str, default=N_("Too many failed attempts from here lately."), text=True),
    }
    request_dependent = True

    def check_config(self, config: Mapping[str, Any], where: str) -> None:
        if not config["check_ip"] and not config["check_username"]:
            raise ConfigError(
                f"{where}: check_ip and check_username are both off, so it would check"
                " nothing; turn one on"
            )

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        ip = request.request.remote_addr if request.request is not None else None
        score = total_score(
            request.state,
            ip if config["check_ip"] and request.request is not None else None,
            _account(request) if config["check_username"] else None,
        )
        if score <= config["threshold"]:
            return PolicyResult(True, (config["message"],))
        return PolicyResult(False)


def _account(request: PolicyRequest) -> str | None:
    """The account of the plan: its pending user, else the identifier typed, else the
    logged-in user; ``None`` before anyone is known."""
    context = request.context
    if context.get(PENDING_USER) is not None:
        return user_key(context[PENDING_USER])
    identifier = context.get(PENDING_USER_IDENTIFIER)
    if isinstance(identifier, str) and identifier.strip():
        return name_key(identifier)
    if request.user is not None:
        return user_key(request.state.user_store.user_id(request.user))
    return None
