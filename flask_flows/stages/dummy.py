"""A stage that passes when submitted; for tests and for composing example flows."""

from __future__ import annotations

from ..options import Option
from .base import WORDING, StageForm, StageResult, StageRun, StageType, invalid, ok


class DummyStage(StageType):
    name = "dummy"
    revisitable = True
    template = "flows/stages/dummy.html"
    options = {
        **WORDING,
        "message": Option(str, default="Continue to the next step."),
        "fail": Option(bool, default=False, help="Always reject the submission (tests)."),
    }

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, str]:
        return {"message": run.config["message"]}

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        if run.config["fail"]:
            return invalid("This step did not accept the submission.")
        return ok()
