"""A stage that ends the flow with a message; bind it behind a policy to refuse requests."""

from __future__ import annotations

from ..options import Option
from .base import StageForm, StageResult, StageRun, StageType, deny


class DenyStage(StageType):
    name = "deny"
    template = ""
    options = {"message": Option(str, default="Access denied.")}

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        return deny(run.config["message"])
