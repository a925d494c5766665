"""A refused form carried across post/redirect/get, for browsers without JavaScript.

A plain browser that posts a stage's form is always answered with a redirect, also when
the form comes back with errors: the page it then loads is a GET, so reload and Forward
never ask to send the form again. What the page must show (the values typed, the errors,
the messages, the status) rides in the plan's context, which is sealed, for exactly the
next GET of that plan at the same step, which takes it out again.

A password is carried only when the form was refused for another field (it is then
shown again, masked); other values come back as the person typed them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict
from wtforms import PasswordField

from .plan import FlowPlan
from .stages.base import StageForm

#: Plan context key of the carried form.
REFUSED = "_flows_refused"
#: Beyond this many bytes of JSON a refusal is answered directly, not redirected: the
#: session cookie must stay well under the 4 kB browsers keep.
MAX_BYTES = 1200


@dataclass(frozen=True)
class Refusal:
    """What the page after the redirect shows."""

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
    form: StageForm | None,
    messages: list[str],
    *,
    failed: bool,
    status: int,
    retry_after: int | None,
) -> bool:
    """Put the refusal in ``plan`` for its next GET; ``False`` when it is too large to
    carry in the session (the caller then answers with the page at once)."""
    data: list[tuple[str, str]] = []
    errors: dict[str, list[str]] = {}
    if form is not None:
        skipped = {form.flow_step.name, *_csrf_names(form)}
        fields = [field for field in form if field.name not in skipped]
        # A password is shown again only when the error was elsewhere on the form.
        error_elsewhere = any(f.errors for f in fields if not isinstance(f, PasswordField))
        for field in fields:
            if field.errors:
                errors[field.name] = [str(e) for e in field.errors]
            if isinstance(field, PasswordField) and (field.errors or not error_elsewhere):
                continue
            data.extend((field.name, str(v)) for v in field.raw_data or ())
    carried = {
        "t": plan.token,
        "d": data,
        "e": errors,
        "m": list(messages),
        "f": failed,
        "s": status,
        "r": retry_after,
    }
    if len(json.dumps(carried)) > MAX_BYTES:
        return False
    plan.context[REFUSED] = carried
    return True


def take(plan: FlowPlan) -> Refusal | None:
    """Take the carried refusal out of ``plan``: it is shown once, and only at the step
    it was refused at (a refusal left behind by Back or another tab is dropped)."""
    carried = plan.context.pop(REFUSED, None)
    if not isinstance(carried, dict) or carried.get("t") != plan.token:
        return None
    return Refusal(
        data=[(str(k), str(v)) for k, v in carried["d"]],
        errors={str(k): list(v) for k, v in carried["e"].items()},
        messages=list(carried["m"]),
        failed=bool(carried["f"]),
        status=int(carried["s"]),
        retry_after=carried["r"],
    )


def _csrf_names(form: StageForm) -> set[str]:
    return {name for name, field in form._fields.items() if field.type == "CSRFTokenField"}
