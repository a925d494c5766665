"""A stage that ends the flow with a message; bind it behind a policy to refuse requests."""

from __future__ import annotations

from ..options import Option
from .base import MSG_DENIED, StageForm, StageResult, StageRun, StageType, deny


class DenyStage(StageType):
    name = "deny"
    template = ""
    #: The message, shown on the access-denied page (through the catalogue, so the
    #: default is read in the page's language).
    #: It may be an expression (``{expression: "…"}``), as authentik's deny stage takes
    #: its message from the plan context; one that fails says the default.
    options = {
        "message": Option(str, default=MSG_DENIED, text=True, expression=True),
    }

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        message = run.option("message", fallback=MSG_DENIED)
        return deny(str(message) if message not in (None, "") else MSG_DENIED)
