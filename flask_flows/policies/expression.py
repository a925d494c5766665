"""The ``expression`` policy: authentik's expression policy, without Python.

Passes when its expression (:mod:`flask_flows.expressions`: a Jinja2 expression in the
immutable sandbox, over the plan's user, the request, the plan context and prompt data)
is true. An expression that fails (a mistake, a value it may not touch, the time limit)
raises, so the policy engine gives the binding's ``failure_result`` and logs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..expression_scope import scope
from ..expressions import ExpressionError, compile_expression, time_limit
from ..i18n import N_
from ..options import Option
from .base import PolicyRequest, PolicyResult, PolicyType


class ExpressionPolicy(PolicyType):
    name = "expression"
    options = {
        "expression": Option(str, help="A Jinja2 expression; the policy passes when it is true."),
        "message": Option(
            str,
            default=N_("You are not allowed to use this."),
            text=True,
            help="Shown when it fails.",
        ),
    }
    request_dependent = True  # it may read the request and the time

    def check_config(self, config: Mapping[str, Any], where: str) -> None:
        compile_expression(config["expression"], f"{where}, field 'expression'")

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        expression = compile_expression(config["expression"], "expression policy")
        values = scope(
            request.state,
            user=request.user,
            context=request.context,
            request=request.request,
            flow=request.flow,
        )
        try:
            passing = bool(expression.evaluate(values, time_limit(request.state)))
        except ExpressionError as error:
            raise ExpressionError(f"{error} (in {expression.source!r})") from None
        return PolicyResult(True) if passing else PolicyResult(False, (config["message"],))
