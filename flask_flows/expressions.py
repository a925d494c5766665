"""Expressions: dynamic values written in a flow's definition, evaluated safely.

authentik drives a policy's answer, a deny stage's message, a redirect's target, an
email's recipient, a prompt's initial values and choices and the groups of a new user
from Python expressions stored in its database. flask-flows never evaluates Python from
the database: an expression here is a Jinja2 *expression*
(``user.email.endswith("@example.com")``, ``"/welcome/" ~ prompt_data.plan``), run in
Jinja's immutable sandbox, so the definition can change with ``flask flows apply`` and
no code deployment, and can still do no more than read the values it is given.

What an expression sees is :mod:`flask_flows.expression_scope` (the plan's user, the
request, the plan context, prompt data, the flow and the time), with the functions
``ip_in(address, *networks)`` and ``range``: no app objects, no database session, no
configuration, no attributes starting with ``_``, no mutation.

Its work is bounded before it is done: every value it makes is estimated first and
refused above :data:`MAX_SIZE` characters or items (operators, text methods, filters),
text methods and filters are allowlists, and every attribute, item, call, filter and
operator checks a time limit (``FLOWS_EXPRESSION_TIME_LIMIT``, seconds). Any failure is
an :class:`ExpressionError`: a policy then gives its binding's ``failure_result``, an
option its documented fallback, each with a log line.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import operator
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateError, Undefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .options import ConfigError

if TYPE_CHECKING:
    from .extension import FlowsState

#: The key of an expression-valued option: ``{expression: "…"}``.
KEY = "expression"
#: The longest expression source accepted.
MAX_SOURCE = 2000
#: The most characters (or items, nested ones counted) a value made inside an
#: expression may have; ``range()`` goes as far.
MAX_SIZE = 10_000
#: The largest whole number an expression may make, in bits.
MAX_BITS = 4096
#: The names an expression sees (:func:`flask_flows.expression_scope.scope` gives them);
#: any other is refused when the expression is compiled.
SCOPE_NAMES = frozenset({"user", "request", "context", "prompt_data", "flow", "now"})

#: Methods of text an expression may call (they read, or make text of a size known first).
_TEXT_METHODS = frozenset(
    "capitalize casefold center count endswith expandtabs find index isalnum isalpha"  # noqa: SIM905
    " isascii isdecimal isdigit islower isnumeric isspace istitle isupper join ljust"
    " lower lstrip partition removeprefix removesuffix replace rfind rindex rjust"
    " rpartition rsplit rstrip split splitlines startswith strip swapcase title upper"
    " zfill".split()
)
#: The filters an expression may use (Jinja's others can make text of any width).
_FILTERS = frozenset(
    "abs capitalize count d default dictsort first float int items join last length"  # noqa: SIM905
    " list lower map max min reject rejectattr replace reverse round select selectattr"
    " sort string sum title trim truncate unique upper urlencode wordcount".split()
)


class ExpressionError(Exception):
    """An expression failed: a mistake in it, a value it may not touch, or a limit."""


@dataclass(frozen=True)
class Expression:
    """A compiled expression and the source it was written as."""

    source: str
    _compiled: Any = field(repr=False, compare=False)
    #: The names it reads (besides its functions).
    names: frozenset[str] = frozenset()

    def evaluate(self, values: Mapping[str, Any], time_limit: float) -> Any:
        """The expression's value over ``values`` (see :func:`scope`): a lazy result (a
        filter's) is made into a list, within the limits."""
        _deadline.at = time.monotonic() + time_limit
        try:
            value = self._compiled(**values)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            if isinstance(value, Iterator):
                value = list(itertools.islice(value, MAX_SIZE + 1))
            return _sized(value)
        except ExpressionError:
            raise
        except Exception as error:  # whatever the sandbox or a filter raised: a failure
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
        compiled = _compiled(source)
    except TemplateError as error:
        hint = " (write it without {{ }})" if source.lstrip().startswith("{{") else ""
        raise ConfigError(f"{where}: the expression cannot be read{hint}: {error}") from error
    unknown = sorted(compiled.names - SCOPE_NAMES)
    if unknown:
        seen = ", ".join(sorted(SCOPE_NAMES | set(_ENVIRONMENT.globals)))
        raise ConfigError(
            f"{where}: the expression names {unknown[0]!r}, which it cannot see (it sees {seen})"
        )
    return compiled


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> Expression:
    """Compiled once per source (Jinja compiles to Python code: not free)."""
    compiled = _ENVIRONMENT.compile_expression(source, undefined_to_none=False)
    names = meta.find_undeclared_variables(_ENVIRONMENT.parse(f"{{{{ {source} }}}}"))
    return Expression(source, compiled, frozenset(names))


def time_limit(state: FlowsState) -> float:
    return float(state.config["FLOWS_EXPRESSION_TIME_LIMIT"])


def check_config(config: Mapping[str, Any]) -> None:
    """``FLOWS_EXPRESSION_TIME_LIMIT`` is a number of seconds above 0 (checked at start,
    not when the first expression runs)."""
    limit = config["FLOWS_EXPRESSION_TIME_LIMIT"]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
        raise ConfigError(f"FLOWS_EXPRESSION_TIME_LIMIT: seconds above 0 (a number), got {limit!r}")


# -- the functions it may call ------------------------------------------------------------------


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


def _range(*args: int) -> range:
    made = range(*args)
    if len(made) > MAX_SIZE:
        raise ExpressionError(f"range() goes to {MAX_SIZE} items at most")
    return made


# -- bounds -------------------------------------------------------------------------------------


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


def _tick() -> None:
    if _deadline.at is not None and time.monotonic() > _deadline.at:
        raise ExpressionError("the expression ran past its time limit")


def _size(value: Any) -> int:
    """How much ``value`` holds: characters, items (each at least one, a text as its
    characters, nested ones counted), a whole number's 64-bit words; stops counting
    past MAX_SIZE."""
    if isinstance(value, str | bytes | range):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 64 + 1
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple | set | frozenset):
        total = 0
        for item in value:
            total += max(_size(item), 1)
            if total > MAX_SIZE:
                break
        return total
    return 1


def _refuse_above(size: int) -> None:
    if size > MAX_SIZE:
        raise ExpressionError(f"the expression would make more than {MAX_SIZE} items")


def _sized(value: Any) -> Any:
    _refuse_above(_size(value))
    return value


def _repeat_size(left: Any, right: Any) -> int:
    """The size of ``left * right`` for a sequence and a count, either way round."""
    for count, other in ((left, right), (right, left)):
        if isinstance(count, int) and not isinstance(other, int | float):
            return max(count, 0) * _size(other)
    return 0


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        found = min(found, count)
    return len(text) + found * len(new)


def _join_size(items: list[Any] | tuple[Any, ...], separator: str = "") -> int:
    return _size(items) + len(separator) * len(items)


def _listed(items: Any) -> list[Any] | tuple[Any, ...]:
    """``items`` as a list (a lazy one made, never past the limit), to size it first."""
    if isinstance(items, list | tuple):
        return items
    return list(itertools.islice(items, MAX_SIZE + 1))


def _text_call_size(text: str, name: str, args: tuple[Any, ...]) -> int:
    """The most a text method with ``args`` can make, known before it runs."""
    if name == "replace" and len(args) >= 2:
        return _replace_size(text, *args[:3])
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        return max(args[0], len(text))
    if name == "expandtabs":
        return len(text) * (args[0] if args and isinstance(args[0], int) else 8)
    if name == "join" and args:
        return _join_size(args[0], text)
    return len(text)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a filter) checking the time, refusing to make too much, and sizing
    what it returns (a filter's ``pass_…`` marker is kept by ``wraps``)."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        values = [a for a in args if not hasattr(a, "environment")]  # the value, then its args
        if name == "join" and values:
            items = _listed(values[0])
            _refuse_above(_join_size(items, str(values[1]) if len(values) > 1 else ""))
            args = tuple(items if a is values[0] else a for a in args)
        elif name == "replace" and len(values) >= 3:
            _refuse_above(_replace_size(str(values[0]), str(values[1]), str(values[2])))
        elif name == "string" and values:
            _refuse_above(_size(values[0]) * 4)
        elif name == "sum" and values:
            if "attribute" in kwargs or len(values) > 1:
                raise ExpressionError("sum adds numbers only: write map(attribute=…)|sum")
            items = _listed(values[0])
            if not all(isinstance(i, int | float) for i in items):
                raise ExpressionError("sum adds numbers only")
            args = tuple(items if a is values[0] else a for a in args)
        result = function(*args, **kwargs)
        return result if isinstance(result, Iterator) else _sized(result)

    return bounded


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with its work bounded in size and time."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//", "/", "-"})
    intercepted_unops = frozenset({"-"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        _tick()
        if operator_name == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                _refuse_bits(max(left.bit_length(), 1) * right)
            return operator.pow(left, right)
        if operator_name == "*":
            _refuse_above(_repeat_size(left, right))
            if isinstance(left, int) and isinstance(right, int):
                _refuse_bits(left.bit_length() + right.bit_length())
            return operator.mul(left, right)
        if operator_name == "%" and isinstance(left, str | bytes):
            raise ExpressionError("% formatting is not available in expressions; use ~")
        if operator_name == "+":
            _refuse_above(_size(left) + _size(right))
        return super().call_binop(context, operator_name, left, right)

    def call_unop(self, context: Any, operator_name: str, arg: Any) -> Any:
        _tick()
        return super().call_unop(context, operator_name, arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        if isinstance(obj, str | bytes) and attribute not in _TEXT_METHODS:
            raise ExpressionError(f"{attribute}() of text is not available in expressions")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807
        _tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name == "join" and args:
                args = (_listed(args[0]), *args[1:])
            _refuse_above(_text_call_size(owner, name, args))
        result = super().call(__context, __obj, *args, **kwargs)
        return result if isinstance(result, Iterator) else _sized(result)

    def call_test(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return super().call_test(name, value, *args, **kwargs)


def _refuse_bits(bits: int) -> None:
    if bits > MAX_BITS:
        raise ExpressionError(f"the expression would make a number of more than {MAX_BITS} bits")


def _environment() -> _Sandbox:
    environment = _Sandbox(undefined=StrictUndefined, autoescape=False)
    environment.filters = {
        name: _bounded_filter(name, environment.filters[name]) for name in _FILTERS
    }
    environment.tests = dict(environment.tests)
    environment.globals = {"range": _range, "ip_in": ip_in}
    return environment


_ENVIRONMENT = _environment()
