"""Identification: who is signing in, by username and/or email.

With ``pretend_user_exists`` (the default) an unknown identifier continues to the next
stage exactly like a known one, so the password stage fails in the same words and the
same time for both, and the form never reveals whether an account exists.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .. import signals
from ..options import Option
from ..plan import PENDING_USER, PENDING_USER_IDENTIFIER
from .base import WORDING, StageForm, StageResult, StageRun, StageType, invalid, ok

_FIELD_LABELS = {"username": "username", "email": "email address"}


class IdentificationForm(StageForm):
    uid_field = StringField(
        "Username or email address",
        validators=[
            DataRequired("Enter your username or email address."),
            Length(max=254, message="That is too long to be a username or email address."),
        ],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )


class IdentificationStage(StageType):
    name = "identification"
    template = "flows/stages/identification.html"
    options = {
        **WORDING,
        "user_fields": Option(
            list, default=("username", "email"), items=str, choices=("username", "email")
        ),
        "case_insensitive_matching": Option(bool, default=True),
        "pretend_user_exists": Option(bool, default=True),
        "enrollment_flow": Option(str, default=None, nullable=True),
        "recovery_flow": Option(str, default=None, nullable=True),
    }

    def form_class(self, run: StageRun) -> type[StageForm]:
        return IdentificationForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        available = run.state.user_store.available_fields
        fields = [f for f in run.config["user_fields"] if f in available]
        form.uid_field.label.text = " or ".join(_FIELD_LABELS[f] for f in fields).capitalize()  # type: ignore[attr-defined]
        if fields == ["email"]:
            form.uid_field.render_kw = {
                **form.uid_field.render_kw,
                "type": "email",
                "autocomplete": "email",
            }  # type: ignore[attr-defined]
        return {
            "enrollment_url": _flow_url(run.config["enrollment_flow"]),
            "recovery_url": _flow_url(run.config["recovery_flow"]),
        }

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        assert isinstance(form, IdentificationForm)
        identifier = (form.uid_field.data or "").strip()
        user = run.state.user_store.find_by_identifier(
            identifier, run.config["user_fields"], run.config["case_insensitive_matching"]
        )
        run.context[PENDING_USER_IDENTIFIER] = identifier
        if user is not None:
            run.context[PENDING_USER] = run.state.user_store.user_id(user)
            return ok()
        run.context.pop(PENDING_USER, None)
        signals.login_failed.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            identifier=identifier,
            stage=run.stage,
            reason="unknown_identifier",
        )
        run.state.log.info("identification: unknown identifier in flow %s", run.flow.slug)
        if run.config["pretend_user_exists"]:
            return ok()
        form.uid_field.errors = ["No account matches that username or email address."]  # type: ignore[attr-defined]
        return invalid()


def _flow_url(slug: str | None) -> str | None:
    return url_for("flows.execute", slug=slug) if slug else None
