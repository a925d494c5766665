"""Expressions: dynamic values written in a flow's definition, evaluated safely.

authentik drives a policy's answer, a deny stage's message, a redirect's target, a
prompt's initial values and choices and the groups of a new user from Python expressions
stored in its database. flask-flows never evaluates Python from the database: an
expression here is a Jinja2 *expression* (``user.email.endswith("@example.com")``,
``"/welcome/" ~ prompt_data.plan``), run in Jinja's immutable sandbox, so the definition
can be changed with ``flask flows apply`` and no code deployment, and can still do no
more than read the values it is given.

What an expression sees (:func:`scope`): ``user`` (the plan's user: their columns but
the password hash, ``id`` and ``groups``; ``None`` without one), ``request`` (method,
path, host, args, headers, remote_addr, user_agent, is_secure; ``None`` outside a
request), ``context`` (the plan context, passwords' hashes left out), ``prompt_data``,
``flow`` (slug, designation) and ``now`` (UTC), with the functions ``ip_in(address,
*networks)`` and ``range``. Nothing else: no app objects, no database session, no
configuration, no attributes starting with ``_``, no mutation of what it reads.

Its work is bounded: a result of more than :data:`MAX_SIZE` characters or items and huge
powers are refused before they are made, the filters are a safe subset, and every
attribute, item, call and operator checks a time limit (``FLOWS_EXPRESSION_TIME_LIMIT``,
seconds). Any failure is an :class:`ExpressionError`: a policy then gives its binding's
``failure_result``, an option its documented fallback, each with a log line.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .options import ConfigError

if TYPE_CHECKING:
    from flask import Request

    from .extension import FlowsState
    from .models import Flow

#: The key of an expression-valued option: ``{expression: "…"}``.
KEY = "expression"
#: The longest expression source accepted.
MAX_SOURCE = 2000
#: The most characters (or items) a value made inside an expression may have.
MAX_SIZE = 100_000
#: Functions whose arguments say how much to make: refused above MAX_SIZE.
_SIZED_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_UNSAFE_METHODS = frozenset({"format", "format_map"})
#: Request headers an expression never sees: they carry credentials.
_SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
#: The filters an expression may use (Jinja's others can make text of any width).
_FILTERS = [
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "sort",
    "string",
    "sum",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "wordcount",
]


class ExpressionError(Exception):
    """An expression failed: a mistake in it, a value it may not touch, or the limit."""


@dataclass(frozen=True)
class Expression:
    """A compiled expression and the source it was written as."""

    source: str
    _compiled: Any = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, Any], time_limit: float) -> Any:
        """The expression's value over ``values`` (see :func:`scope`)."""
        _deadline.at = time.monotonic() + time_limit
        try:
            value = self._compiled(**values)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            return value
        except ExpressionError:
            raise
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as error:
            raise ExpressionError(f"{type(error).__name__}: {error}") from error
        finally:
            _deadline.at = None


def is_expression(value: Any) -> bool:
    """Whether an option's raw value is written as ``{expression: "…"}``."""
    return isinstance(value, Mapping) and set(value) == {KEY}


def compile_expression(raw: Any, where: str) -> Expression:
    """Compile ``{expression: "…"}`` (or the source itself); a ``ConfigError`` naming
    ``where`` for one that cannot be compiled."""
    source = raw[KEY] if isinstance(raw, Mapping) else raw
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: an expression is a non-empty string")
    if len(source) > MAX_SOURCE:
        raise ConfigError(f"{where}: the expression is longer than {MAX_SOURCE} characters")
    try:
        return _compiled(source)
    except TemplateError as error:
        raise ConfigError(f"{where}: the expression cannot be read: {error}") from error


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> Expression:
    """Compiled once per source (Jinja compiles to Python code: not free)."""
    return Expression(source, _ENVIRONMENT.compile_expression(source, undefined_to_none=False))


def scope(
    state: FlowsState,
    *,
    user: Any | None,
    context: Mapping[str, Any],
    request: Request | None,
    flow: Flow | None = None,
) -> dict[str, Any]:
    """What an expression sees (read the module's docstring before adding to it)."""
    prompt_data = {
        key: value
        for key, value in (context.get("prompt_data") or {}).items()
        if not isinstance(value, Mapping)  # a password's hash
    }
    return {
        "user": _UserView(state, user) if user is not None else None,
        "request": _request_view(request) if request is not None else None,
        "context": {**context, "prompt_data": prompt_data},
        "prompt_data": prompt_data,
        "flow": {"slug": flow.slug, "designation": str(flow.designation)} if flow else None,
        "now": datetime.now(UTC),
    }


def time_limit(state: FlowsState) -> float:
    return float(state.config["FLOWS_EXPRESSION_TIME_LIMIT"])


# -- what an expression sees ----------------------------------------------------------------


class _UserView(Mapping[str, Any]):
    """A user's columns (never the password hash), ``id`` and, when asked, ``groups``."""

    def __init__(self, state: FlowsState, user: Any) -> None:
        self._state = state
        self._user = user
        store = state.user_store
        hidden = {store.password_field}
        columns = [c.key for c in store.model.__mapper__.column_attrs if c.key not in hidden]
        self._values: dict[str, Any] = {name: getattr(user, name) for name in columns}
        self._values["id"] = store.user_id(user)

    def __getitem__(self, key: str) -> Any:
        if key == "groups" and key not in self._values:
            self._values[key] = sorted(self._state.user_store.group_names(self._user))
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _request_view(request: Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "host": request.host,
        "args": dict(request.args.items()),
        "headers": {
            key.lower(): value
            for key, value in request.headers.items()
            if key.lower() not in _SECRET_HEADERS
        },
        "remote_addr": request.remote_addr,
        "user_agent": request.user_agent.string,
        "is_secure": request.is_secure,
    }


def ip_in(address: str | None, *networks: str) -> bool:
    """Whether ``address`` is in one of ``networks`` (``"10.0.0.0/8"``, ``"::1"``)."""
    _tick()
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)
    except ValueError as error:
        raise ExpressionError(f"ip_in: {error}") from error


# -- the sandbox --------------------------------------------------------------------------------


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


def _tick() -> None:
    if _deadline.at is not None and time.monotonic() > _deadline.at:
        raise ExpressionError("the expression ran past its time limit")


def _sized(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_SIZE:
        raise ExpressionError(f"the expression made a value of more than {MAX_SIZE} items")
    return value


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with its work bounded in size and time."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        _tick()
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise ExpressionError("the expression raises to too high a power")
            return _sized(operator.pow(left, right))
        if operator_name == "*":
            for count, other in ((left, right), (right, left)):
                sequence = isinstance(count, int) and isinstance(other, str | list | tuple)
                if sequence and count * len(other) > MAX_SIZE:
                    raise ExpressionError(f"the expression made more than {MAX_SIZE} items")
            return operator.mul(left, right)
        return _sized(operator.add(left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        if isinstance(obj, str | bytes) and attribute in _UNSAFE_METHODS:
            raise ExpressionError(f"{attribute}() is not available in expressions; use ~")
        return super().getattr(obj, attribute)

    def call_filter(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return _sized(super().call_filter(name, value, *args, **kwargs))

    def call_test(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return super().call_test(name, value, *args, **kwargs)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807
        _tick()
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str | bytes):
            numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
            if name in _SIZED_METHODS and any(n > MAX_SIZE for n in numbers):
                raise ExpressionError(f"{name}() would make more than {MAX_SIZE} characters")
        return _sized(super().call(__context, __obj, *args, **kwargs))


def _environment() -> _Sandbox:
    environment = _Sandbox(undefined=StrictUndefined, autoescape=False)
    environment.filters = {name: environment.filters[name] for name in _FILTERS}
    environment.tests = dict(environment.tests)
    environment.globals = {"range": environment.globals["range"], "ip_in": ip_in}
    return environment


_ENVIRONMENT = _environment()
