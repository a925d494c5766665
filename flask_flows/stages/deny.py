"""A stage that ends the flow with a message; bind it behind a policy to refuse requests."""

from __future__ import annotations

from ..i18n import N_
from ..options import Option
from .base import StageForm, StageResult, StageRun, StageType, deny


class DenyStage(StageType):
    name = "deny"
    template = ""
    #: The message, shown on the access-denied page (through the catalogue, so the
    #: default is read in the page's language).
    options = {"message": Option(str, default=N_("Access denied."), text=True)}

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        return deny(run.config["message"])
