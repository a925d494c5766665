"""A stage that passes when submitted; for tests and for composing example flows."""

from __future__ import annotations

from ..i18n import N_, gettext
from ..options import Option
from .base import WORDING, StageForm, StageResult, StageRun, StageType, invalid, ok

#: The page's text when none is configured (read in the page's language).
DEFAULT_MESSAGE = N_("Continue to the next step.")
MSG_REFUSED = N_("This step did not accept the submission.")


class DummyStage(StageType):
    name = "dummy"
    revisitable = True
    template = "flows/stages/dummy.html"
    options = {
        **WORDING,
        "message": Option(str, default=DEFAULT_MESSAGE, text=True),
        "fail": Option(bool, default=False, help="Always reject the submission (tests)."),
    }

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, str]:
        return {"message": gettext(run.config["message"])}

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        if run.config["fail"]:
            return invalid(MSG_REFUSED)
        return ok()
