"""A stage that leaves the flow: to a fixed URL or into another flow.

Into another flow only if the visitor may run it: the target is planned first (its
authentication requirement and policies, for the pending user), and a refusal denies
here with the target's reason, as authentik's redirect stage does, instead of sending
the visitor on to a page that turns them away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import url_for

from ..i18n import N_
from ..options import ConfigError, Option
from ..plan import REDIRECT
from ..planner import EmptyFlow, FlowNonApplicable, FlowPlanner
from ..references import require_flow
from .base import StageForm, StageResult, StageRun, StageType, deny, redirect

if TYPE_CHECKING:
    from ..references import References

MSG_NO_TARGET = N_("The next step of this flow is not available.")


class RedirectStage(StageType):
    name = "redirect"
    template = ""
    options = {
        "target_url": Option(str, default=None, nullable=True),
        "target_flow": Option(str, default=None, nullable=True),
        "keep_context": Option(
            bool, default=True, help="Pass the plan's `next` on to the target flow."
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        if bool(config["target_url"]) == bool(config["target_flow"]):
            raise ConfigError(f"{where}: set exactly one of target_url and target_flow")

    def check_references(self, config: dict[str, Any], where: str, references: References) -> None:
        if config["target_flow"]:
            require_flow(references, config["target_flow"], where, "target_flow")

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        config = run.config
        if not config["target_flow"]:
            return redirect(config["target_url"])
        refusal = _refusal(run, config["target_flow"])
        if refusal is not None:
            return deny(refusal)
        args = {}
        if config["keep_context"] and run.context.get(REDIRECT):
            args["next"] = run.context[REDIRECT]
        return redirect(url_for("flows.execute", slug=config["target_flow"], **args))


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
