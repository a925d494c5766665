"""A stage that leaves the flow: to a fixed URL or into another flow."""

from __future__ import annotations

from typing import Any

from flask import url_for

from ..options import ConfigError, Option
from ..plan import REDIRECT
from .base import StageForm, StageResult, StageRun, StageType, redirect


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

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        config = run.config
        if config["target_flow"]:
            args = {}
            if config["keep_context"] and run.context.get(REDIRECT):
                args["next"] = run.context[REDIRECT]
            return redirect(url_for("flows.execute", slug=config["target_flow"], **args))
        return redirect(config["target_url"])
