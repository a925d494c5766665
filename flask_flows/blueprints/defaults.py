"""The default flows as ``flask flows init`` installs them: the shipped blueprints, shaped
to the app's user model.

A model without email addresses (its class sets ``email = None``) has nothing to confirm
at sign-up and no address to mail a recovery link to. For it the default sign-up has no
email stage, no recovery or email-change flow is installed (the first could only ever
say "check your inbox"), and the login page offers no recovery; an operator sets a
forgotten password with ``flask flows set-password``. Every other model gets the
blueprints as shipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .apply import ApplyReport, apply_documents
from .schema import BlueprintDocument, load_blueprint

if TYPE_CHECKING:
    from ..extension import FlowsState

#: The folder of blueprints that ``flask flows init`` installs.
DEFAULT_BLUEPRINTS = Path(__file__).resolve().parent / "default"
RECOVERY_FLOW = "default-recovery-flow"
EMAIL_CHANGE_FLOW = "default-email-change"
#: The policy every default flow that sets a password checks it with.
PASSWORD_POLICY = "default-password-policy"  # noqa: S105 (a policy name)


def install_default_flows(state: FlowsState, *, restore: bool = False) -> ApplyReport:
    """Apply every ``*.yaml`` in :data:`DEFAULT_BLUEPRINTS` (sorted), shaped to the user
    model, in one transaction.

    Safe to run again: it adds what is missing and leaves a default group, policy, stage
    or flow that the app changed as it is (named in the report's ``kept``), so a deploy
    never undoes the app's edits nor restarts logins in progress. ``restore`` puts the
    shipped definitions back over such changes.
    """
    documents = [load_blueprint(p, state=state) for p in sorted(DEFAULT_BLUEPRINTS.glob("*.yaml"))]
    if not state.user_store.has_field("email"):
        documents = [
            _without_recovery_links(_without_mail(d) if _designations(d) == {"enrollment"} else d)
            for d in documents
            if "recovery" not in _designations(d) and not _defines(d, EMAIL_CHANGE_FLOW)
        ]
    return apply_documents(state, documents, keep_changed=not restore)


def _defines(document: BlueprintDocument, slug: str) -> bool:
    return any(flow["slug"] == slug for flow in document.get("flows", []))


def _designations(document: BlueprintDocument) -> set[str]:
    return {flow["designation"] for flow in document.get("flows", [])}


def _without_mail(document: BlueprintDocument) -> BlueprintDocument:
    """An enrollment document without its email stages: with no address to confirm, the
    sign-up goes straight on. (Only enrollment: a recovery flow without its email stage
    would reset anyone's password, so recovery flows are left out whole.) Its prompts
    then report a taken username at once: with no link to wait for, the write that
    follows would say the same a page later."""
    stages = document.get("stages", [])
    mailing = {stage["name"] for stage in stages if stage["type"] == "email"}
    document["stages"] = [stage for stage in stages if stage["name"] not in mailing]
    for stage in document["stages"]:
        if stage["type"] == "prompt":
            stage.setdefault("config", {})["report_taken_username"] = True
    for flow in document.get("flows", []):
        flow["bindings"] = [b for b in flow["bindings"] if b["stage"] not in mailing]
    return document


def _without_recovery_links(document: BlueprintDocument) -> BlueprintDocument:
    """The document with no identification stage offering the recovery flow."""
    for stage in document.get("stages", []):
        if stage.get("config", {}).get("recovery_flow") == RECOVERY_FLOW:
            stage["config"]["recovery_flow"] = None
    return document
