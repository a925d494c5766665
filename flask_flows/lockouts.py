"""The page a person sees when too many wrong secrets ended what they were doing.

One page for every place that checks a secret (a flow's password or code stage, the
settings page's password): it says in minutes when they can try again, offers password
recovery where that can help, and offers nothing that cannot work yet. "Start again"
appears only once no wait is running; while one is, the way on is recovery or home.
The response is 429 with ``Retry-After`` for browsers without htmx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, current_app, render_template, url_for

from . import layouts
from .i18n import N_
from .models import Flow
from .redirects import app_home

if TYPE_CHECKING:
    from .extension import FlowsState

HEADING = N_("Try again later")


def page(
    state: FlowsState,
    message: str,
    wait_seconds: int,
    *,
    flow: Flow | None,
    htmx: bool = False,
    recovery: bool = True,
    retry_url: str | None = None,
    retry_label: str = N_("Start again"),
) -> Response:
    """Render the lockout page. ``recovery`` offers the password recovery flow (when one
    exists and the visitor is not logged in: a recovery flow is for those who cannot log
    in); ``retry_url`` is offered only when ``wait_seconds`` is 0. ``message`` and
    ``retry_label`` are message ids (or text already in the request's language): the
    page shows them translated."""
    html = render_template(
        "flows/denied.html",
        layout=layouts.page_layout(htmx),
        flow=flow,
        heading=HEADING,
        messages=[message],
        continue_url=None,
        retry_url=retry_url if wait_seconds <= 0 else None,
        retry_label=retry_label,
        recovery_url=recovery_url(state, flow) if recovery else None,
        home_url=app_home(),
    )
    response = current_app.make_response((html, 200 if htmx else 429))
    if wait_seconds > 0:
        response.headers["Retry-After"] = str(wait_seconds)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


def recovery_url(state: FlowsState, flow: Flow | None, *, search: bool = True) -> str | None:
    """Where a person who cannot sign in recovers their password: the ``recovery_flow``
    an identification stage of ``flow`` names, else (with ``search``, one query) the
    app's default recovery flow; ``None`` without one, or for a logged-in visitor."""
    if state.current_user() is not None:
        return None
    for binding in flow.bindings if flow is not None else ():
        if binding.stage.type == "identification":
            named: Any = state.stage_config(binding.stage)["recovery_flow"]
            if named:
                return url_for("flows.execute", slug=named)
    if not search or next(state.flows_of("recovery"), None) is None:
        return None
    return url_for("flows.default_flow", designation="recovery")
