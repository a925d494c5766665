"""A refused form carried across post/redirect/get, for browsers without JavaScript.

A plain browser that posts a stage's form is answered with a redirect, also when
the form comes back with errors: the page it then loads is a GET, so reload and Forward
never ask to send the form again. What the page must show (the values typed, the errors,
the messages, the status) rides in the plan's context, which is sealed, for exactly the
next GET of that plan at the same step, which takes it out again.

Values come back as the person typed them. No password ever rides in the session: a
form refused for another field than the password typed into it, which shows that
password again rather than lose it (:func:`keeps_a_password`), is answered with the page
itself, as is a refusal that would make the session cookie too large for browsers.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, session
from werkzeug.datastructures import MultiDict
from wtforms import PasswordField

from .plan import FlowPlan
from .stages.base import StageForm

#: Plan context key of the carried form.
REFUSED = "_flows_refused"
#: The largest signed session (bytes) a refusal may make: browsers keep cookies of up to
#: 4096 bytes with their name and attributes.
COOKIE_BUDGET = 3800


@dataclass(frozen=True)
class Refusal:
    """What the page after the redirect shows."""

    #: The plan step it was refused at: shown only while the plan is still there.
    token: str
    data: list[tuple[str, str]]
    errors: dict[str, list[str]]
    messages: list[str]
    failed: bool
    status: int
    retry_after: int | None

    def form(self, form_class: type[StageForm]) -> StageForm:
        """The stage's form with the values and errors it was refused with."""
        form = form_class(formdata=MultiDict(self.data))
        for name, messages in self.errors.items():
            if name in form:
                form[name].errors = list(messages)
        return form


def keep(
    plan: FlowPlan,
    form: StageForm,
    messages: list[str],
    *,
    failed: bool,
    status: int,
    retry_after: int | None,
) -> None:
    """Put the refusal in ``plan`` for its next GET (see :func:`fits` before sending)."""
    data: list[tuple[str, str]] = []
    errors: dict[str, list[str]] = {}
    for field in form:
        if field.name in (form.flow_step.name, form.meta.csrf_field_name):
            continue
        if field.errors:
            errors[field.name] = [str(e) for e in field.errors]
        if not isinstance(field, PasswordField):
            data.extend((field.name, str(v)) for v in field.raw_data or ())
    plan.context[REFUSED] = {
        "t": plan.token,
        "d": data,
        "e": errors,
        "m": list(messages),
        "f": failed,
        "s": status,
        "r": retry_after,
    }


def keeps_a_password(form: StageForm) -> bool:
    """Whether the refused ``form`` shows a typed password again: one was typed and not
    refused, and another field was."""
    fields = [field for field in form if field.name != form.flow_step.name]
    typed = any(isinstance(f, PasswordField) and f.data and not f.errors for f in fields)
    return typed and any(f.errors for f in fields if not isinstance(f, PasswordField))


def fits() -> bool:
    """Whether this request's session, refusal included, stays a cookie browsers keep
    (always, for a session stored on the server)."""
    interface = current_app.session_interface
    serializer = getattr(interface, "get_signing_serializer", lambda app: None)(current_app)
    return serializer is None or len(serializer.dumps(dict(session))) <= COOKIE_BUDGET


def take(plan: FlowPlan) -> Refusal | None:
    """Take the carried refusal out of ``plan``: it is shown once, and only at the step
    it was refused at (a refusal left behind by Back or another tab is dropped)."""
    carried = plan.context.pop(REFUSED, None)
    if not isinstance(carried, dict) or carried.get("t") != plan.token:
        return None
    return Refusal(
        token=str(carried["t"]),
        data=[(str(k), str(v)) for k, v in carried["d"]],
        errors={str(k): list(v) for k, v in carried["e"].items()},
        messages=list(carried["m"]),
        failed=bool(carried["f"]),
        status=int(carried["s"]),
        retry_after=carried["r"],
    )
