"""The policy engine: evaluates an object's policy bindings under `any` or `all`.

Semantics follow authentik: an object without enabled bindings passes; a binding of a
policy runs it (an exception yields the binding's ``failure_result``), a user binding
matches that user, a group binding matches members; ``negate`` flips the outcome but
keeps the messages. A failing result carries the messages of every result (why not); a
passing one, as in authentik, the messages of the policies that passed (notices the
executor shows on the next page), except those of negated bindings: those are their
policy's reasons to fail.

A policy that takes longer than its binding's ``timeout`` (seconds) counts as if it had
raised: its answer is discarded for ``failure_result`` and the overrun is logged.
authentik kills a policy process at the timeout; flask-flows evaluates in-process, where
Python code cannot be interrupted safely, so the evaluation finishes first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from time import monotonic

from ..expressions import ExpressionError
from ..models import PolicyBinding, PolicyEngineMode
from .base import PolicyRequest, PolicyResult

logger = logging.getLogger("flask_flows.policies")


def evaluate_bindings(
    bindings: Iterable[PolicyBinding], mode: PolicyEngineMode, request: PolicyRequest
) -> PolicyResult:
    """Combine the results of every enabled binding in ``bindings`` according to ``mode``."""
    evaluated = [(b, evaluate_binding(b, request)) for b in bindings if b.enabled]
    results = [result for _binding, result in evaluated]
    if not results:
        return PolicyResult(True)
    if mode is PolicyEngineMode.all:
        passing = all(r.passing for r in results)
    else:
        passing = any(r.passing for r in results)
    if passing:
        notices = (r for b, r in evaluated if r.passing and not b.negate)
        return PolicyResult(True, _unique(m for r in notices for m in r.messages))
    return PolicyResult(
        False, _unique(m for r in results for m in r.messages), _common_field(results)
    )


def _unique(messages: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(messages))


def _common_field(results: list[PolicyResult]) -> str | None:
    """The field every failing result is about, or ``None`` when they differ or name none."""
    fields = {r.field for r in results if not r.passing}
    return fields.pop() if len(fields) == 1 else None


def evaluate_binding(binding: PolicyBinding, request: PolicyRequest) -> PolicyResult:
    result = _raw_result(binding, request)
    if binding.negate:
        return PolicyResult(not result.passing, result.messages, result.field)
    return result


def _raw_result(binding: PolicyBinding, request: PolicyRequest) -> PolicyResult:
    store = request.state.user_store
    if binding.user_id is not None:
        user = request.user
        return PolicyResult(user is not None and store.user_id(user) == binding.user_id)
    if binding.group is not None:
        user = request.user
        return PolicyResult(user is not None and binding.group.name in store.group_names(user))
    policy = binding.policy
    if policy is None:
        return PolicyResult(bool(binding.failure_result))
    started = monotonic()
    try:
        policy_type = request.state.policy_type(policy.type)
        config = request.state.policy_config(policy)
        result = policy_type.evaluate(config, request)
    except ExpressionError as error:  # the expression's own mistake: no traceback to read
        logger.error(
            "policy %r failed: %s; using failure_result=%s",
            policy.name,
            error,
            binding.failure_result,
        )
        request.fallbacks.append(policy.name)
        return PolicyResult(bool(binding.failure_result))
    except Exception:
        logger.exception(
            "policy %r raised; using failure_result=%s", policy.name, binding.failure_result
        )
        request.fallbacks.append(policy.name)
        return PolicyResult(bool(binding.failure_result))
    spent = monotonic() - started
    if binding.timeout and spent > binding.timeout:
        logger.error(
            "policy %r took %.1f s, more than its timeout of %s s; using failure_result=%s",
            policy.name,
            spent,
            binding.timeout,
            binding.failure_result,
        )
        request.fallbacks.append(policy.name)
        return PolicyResult(bool(binding.failure_result))
    if policy.execution_logging:
        logger.info("policy %r -> %s %s", policy.name, result.passing, list(result.messages))
    return result
