"""The flow plan: the stages still to run and the context they share.

A plan is small on purpose: binding ids, the ids of bindings whose policies must be
checked again before they run, a context of ids and short values, the flow revision it
was built from, when it was made, a step counter, and the entries done since the last one
that cannot be undone (where Back may return). It is stored per flow slug in the
signed session, so two tabs running two flows never disturb each other; its context is
sealed there (:mod:`flask_flows.sealing`), because the session is readable.

Entries of ``bindings`` are normally ids of the flow's :class:`FlowStageBinding` rows
(always positive). A stage may also add stages that are not bound to the flow at all
(the MFA validation stage runs the setup stages of a user who has none):
:meth:`FlowPlan.inject_stages` puts them right after the current entry as the
*negated* :class:`Stage` id, and the executor resolves such an entry to the stage
itself. See :func:`injected_stage_id`.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import g, session

from .sealing import seal, unseal

#: Session key of the mapping slug → stored plan.
PLANS_KEY = "_flows_plans"
#: ``g`` key: contexts unsealed (or sealed) in this request, by slug and sealed value,
#: so that showing a stage opens its plan once, not again to see whether it changed.
_OPENED = "_flows_opened_plans"

#: Context keys shared across stages (authentik's names where they exist).
PENDING_USER = "pending_user"
PENDING_USER_IDENTIFIER = "pending_user_identifier"
REDIRECT = "redirect"
AUTH_METHOD = "auth_method"
#: Every method proved in this plan, in order (``auth_method`` is the latest).
AUTH_METHODS = "auth_methods"
PROMPT_DATA = "prompt_data"
#: Keys of ``prompt_data`` an invitation fixed: a prompt answer left empty keeps them.
FIXED_PROMPT_DATA = "prompt_data_fixed"
#: What passing policies said (authentik's messages of passing results), to show on the
#: next page the flow renders (or with the flow's outcome when it ends first).
NOTICES = "notices"
#: A passkey login on the identification page: ``{"user": id, "stage": name}``, the
#: account it proved and the ``authenticator_validate`` stage it stands in for (the
#: identification's ``webauthn_stage``).
PASSKEY_LOGIN = "passkey_login"
#: ``auth_method`` of a login by passkey alone (authentik's name).
PASSWORDLESS = "auth_webauthn_pwl"


def add_notices(context: dict[str, Any], messages: Iterable[str]) -> None:
    """Note what passing policies said, once each, for the next page."""
    notices = list(context.get(NOTICES) or [])
    notices.extend(m for m in messages if m not in notices)
    if notices:
        context[NOTICES] = notices


def passkey_login(context: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's passkey login, if it proved the account now pending: a proof never
    counts for another account named later in the same plan (a restart that keeps the
    context, a second identification)."""
    proof = context.get(PASSKEY_LOGIN)
    if not isinstance(proof, dict) or proof.get("user") is None:
        return None
    if proof["user"] != context.get(PENDING_USER) or context.get(AUTH_METHOD) != PASSWORDLESS:
        return None
    return proof


@dataclass
class FlowPlan:
    """Bindings still to run, the markers to re-check, and the shared context."""

    flow_slug: str
    revision: int
    bindings: list[int]
    markers: list[int] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    step: int = 0
    #: Random per plan: a form of an earlier plan (another tab, a restart) never matches
    #: a step of this one, even at the same stage and step number.
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(4))
    #: Entries completed since the last one that cannot be undone, oldest first: the
    #: stretch Back may return through (see :meth:`rewind_to`). ``answered`` are those
    #: of them whose form the person submitted, the pages Back may return to.
    done: list[int] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    @property
    def current(self) -> int | None:
        return self.bindings[0] if self.bindings else None

    @property
    def token(self) -> str:
        """Identifies the plan and stage a form was rendered for; a POST with another
        token is stale (:func:`same_plan` tells whether it came from this plan at all)."""
        return f"{self.nonce}.{self.current or 0}.{self.step}"

    def position_of(self, entry: int | None = None) -> str:
        """Names an entry (by default the current one) in a URL (``?step=``): the page of
        that stage in this plan, which Back and Forward come back to (:meth:`rewind_to`)."""
        return f"{self.nonce}.{self.current if entry is None else entry}"

    def advance(self, *, revisitable: bool = False, answered: bool = False) -> None:
        """Drop the current binding: it succeeded or its policies said to skip it.

        ``revisitable`` when doing it again later is harmless (it changed nothing outside
        the plan's context; a skipped binding too): it joins :attr:`done`. Otherwise it
        is a point of no return and nothing before it can be gone back to.
        ``answered`` when the person submitted its form."""
        if self.bindings:
            entry = self.bindings.pop(0)
            if revisitable:
                self.done.append(entry)
                if answered:
                    self.answered.append(entry)
            else:
                self.done.clear()
                self.answered.clear()
            kept = set(self.bindings) | set(self.done)
            self.markers = [m for m in self.markers if m in kept]
        self.step += 1

    def rewind_to(self, entry: int) -> list[int]:
        """Go back to ``entry``, an answered stage of :attr:`done`: it and everything
        done after it run again. Returns the entries undone (the current one first), or
        ``[]`` when ``entry`` cannot be gone back to. The step moves on, so forms of the
        pages undone are stale. Stages injected by an entry that runs again are dropped:
        it injects what it decides then (another setup chosen, none at all)."""
        if entry not in self.answered:
            return []
        at = self.done.index(entry)
        undone = self.bindings[:1] + self.done[at:]
        self.bindings[0:0] = self.done[at:]
        del self.done[at:]
        self.bindings = _without_reinjected(self.bindings)
        self.answered = [a for a in self.answered if a in self.done]
        self.step += 1
        return undone

    def inject_stages(self, stage_ids: list[int]) -> None:
        """Run these stages (by ``Stage`` id, bound to the flow or not) right after the
        current entry, in the given order. They have no policies of their own."""
        self.bindings[1:1] = [-stage_id for stage_id in stage_ids]

    def needs_reevaluation(self, binding_id: int) -> bool:
        return binding_id in self.markers

    def is_expired(self, max_age: int, now: float | None = None) -> bool:
        return (now or time.time()) - self.created > max_age

    def to_session(self) -> dict[str, Any]:
        data = {
            "r": self.revision,
            "b": self.bindings,
            "m": self.markers,
            "c": self.context,
            "t": int(self.created),
            "s": self.step,
            "n": self.nonce,
        }
        if self.done:  # most plans have nothing to go back to: no bytes for it
            data["d"] = self.done
            data["a"] = self.answered
        return data

    @classmethod
    def from_session(cls, slug: str, data: Any) -> FlowPlan | None:
        """Rebuild a plan, or ``None`` when the stored value is not a plan we wrote."""
        try:
            plan = cls(
                flow_slug=slug,
                revision=int(data["r"]),
                bindings=[int(b) for b in data["b"]],
                markers=[int(m) for m in data["m"]],
                context=dict(data["c"]),
                created=float(data["t"]),
                step=int(data["s"]),
                # A plan stored before plans had a nonce (a link mailed then) gets one.
                nonce=str(data.get("n") or secrets.token_urlsafe(4)),
                done=[int(d) for d in data.get("d", ())],
                answered=[int(a) for a in data.get("a", ())],
            )
        except (KeyError, TypeError, ValueError):
            return None
        return plan


def same_plan(plan: FlowPlan, token: str | None) -> bool:
    """Whether a form's step ``token`` was rendered for ``plan`` (at any of its steps); a
    token of the older form ``<entry>.<step>`` (no nonce) is taken as this plan's."""
    parts = str(token or "").split(".")
    return len(parts) == 2 or (len(parts) == 3 and parts[0] == plan.nonce)


def _without_reinjected(entries: list[int]) -> list[int]:
    """``entries`` without the injected ones that follow a bound entry: injected stages
    sit right after the entry that injected them, and that entry, running again, injects
    them again. Injected entries before any bound one (Back to an injected stage's own
    page) stay."""
    kept: list[int] = []
    for entry in entries:
        if injected_stage_id(entry) is None or all(injected_stage_id(e) for e in kept):
            kept.append(entry)
    return kept


def injected_stage_id(entry: int) -> int | None:
    """The ``Stage`` id of a plan entry added by :meth:`FlowPlan.inject_stages`, else ``None``."""
    return -entry if entry < 0 else None


def stored_plans() -> dict[str, Any]:
    """The session's plans by slug; anything else stored there (an old format) counts as none."""
    plans = session.get(PLANS_KEY)
    return plans if isinstance(plans, dict) else {}


def stored_plan(slug: str) -> FlowPlan | None:
    """This browser's plan for ``slug``, its context unsealed (:mod:`flask_flows.sealing`);
    ``None`` when there is none or it is not one we wrote."""
    data = stored_plans().get(slug)
    context = _opened_context(slug, data)
    if context is None or not isinstance(data, dict):
        return None
    # A copy: stages change the plan's context in place.
    return FlowPlan.from_session(slug, {**data, "c": copy.deepcopy(context)})


def store_plan(plan: FlowPlan) -> bool:
    """Write ``plan`` into this browser's session, its context sealed; ``False`` when it
    was there unchanged (a stage shown again), so that no new cookie is signed and sent."""
    stored = stored_plans()
    data = plan.to_session()
    before = stored.get(plan.flow_slug)
    if (
        isinstance(before, dict)
        and {**before, "c": None} == {**data, "c": None}
        and _opened_context(plan.flow_slug, before) == plan.context
    ):
        return False
    data["c"] = seal(plan.context, plan.flow_slug, PENDING_USER)
    g.setdefault(_OPENED, {})[(plan.flow_slug, data["c"])] = copy.deepcopy(plan.context)
    session[PLANS_KEY] = {**stored, plan.flow_slug: data}
    return True


def _opened_context(slug: str, data: Any) -> dict[str, Any] | None:
    """The unsealed context of the stored plan ``data``, opened at most once a request."""
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        return None
    opened: dict[tuple[str, str], dict[str, Any]] = g.setdefault(_OPENED, {})
    key = (slug, data["c"])
    if key not in opened:
        context = unseal(data["c"], slug, PENDING_USER)
        if context is None:
            return None
        opened[key] = context
    return opened[key]
