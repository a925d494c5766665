"""A stage that leaves the flow: to a fixed URL or into another flow.

Either may be an expression (``{expression: "…"}``), as authentik's target comes from
the plan context; a URL made by an expression must be a path of this site (it may hold
the visitor's input), and one that fails, or names nothing, denies.

Into another flow only if the visitor may run it: the target is planned first (its
authentication requirement and policies, for the pending user), and a refusal denies
here with the target's reason, as authentik's redirect stage does, instead of sending
the visitor on to a page that turns them away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import url_for

from ..expressions import Expression
from ..i18n import N_
from ..options import ConfigError, Option
from ..plan import REDIRECT
from ..planner import EmptyFlow, FlowNonApplicable, FlowPlanner
from ..redirects import safe_next
from ..references import require_flow
from .base import StageForm, StageResult, StageRun, StageType, deny, redirect

if TYPE_CHECKING:
    from ..references import References

MSG_NO_TARGET = N_("The next step of this flow is not available.")


class RedirectStage(StageType):
    name = "redirect"
    template = ""
    options = {
        "target_url": Option(str, default=None, nullable=True, expression=True),
        "target_flow": Option(str, default=None, nullable=True, expression=True),
        "keep_context": Option(
            bool, default=True, help="Pass the plan's `next` on to the target flow."
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        if bool(config["target_url"]) == bool(config["target_flow"]):
            raise ConfigError(f"{where}: set exactly one of target_url and target_flow")

    def check_references(self, config: dict[str, Any], where: str, references: References) -> None:
        if isinstance(config["target_flow"], str):  # an expression's is known when it runs
            require_flow(references, config["target_flow"], where, "target_flow")

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        config = run.config
        if not config["target_flow"]:
            url = run.option("target_url")
            if isinstance(config["target_url"], Expression):
                # It may be made of the visitor's input: a path of this site only.
                url = safe_next(url) if isinstance(url, str) else None
            return redirect(url) if url else self._no_target(run, url)
        slug = run.option("target_flow")
        if not isinstance(slug, str) or not slug:
            return self._no_target(run, slug)
        refusal = _refusal(run, slug)
        if refusal is not None:
            return deny(refusal)
        args = {}
        if config["keep_context"] and run.context.get(REDIRECT):
            args["next"] = run.context[REDIRECT]
        return redirect(url_for("flows.execute", slug=slug, **args))

    @staticmethod
    def _no_target(run: StageRun, value: Any) -> StageResult:
        run.state.log.warning("redirect stage %s: no target (%r)", run.stage.name, value)
        return deny(MSG_NO_TARGET)


def _refusal(run: StageRun, slug: str) -> str | None:
    """Why the visitor may not run flow ``slug`` (a message id), or ``None`` if they may."""
    target = run.state.load_flow(slug)
    if target is None:
        run.state.log.warning("redirect stage %s: no flow %r", run.stage.name, slug)
        return MSG_NO_TARGET
    try:
        FlowPlanner(run.state, target).plan(
            user=run.pending_user(),
            authenticated_user=run.state.current_user(),
            request=run.request,
        )
    except FlowNonApplicable as refused:
        return refused.messages[0] if refused.messages else MSG_NO_TARGET
    except EmptyFlow:
        return MSG_NO_TARGET
    return None
