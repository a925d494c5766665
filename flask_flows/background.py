"""What a flow page asks in the background, besides showing and submitting its stage:
whether what it waits for has happened (the email stage's link), and what a submit would
say about a field being typed (live checks). These requests read the plan and change
nothing: a missing, expired or outdated plan is not dropped or restarted here, the page's
next real request does that.
"""

from __future__ import annotations

from flask import Response, current_app, render_template, request
from htmx_flask import make_response as htmx_response

from .csrf import csrf_valid
from .executor import FlowExecutor, PlanBinding
from .plan import FlowPlan, stored_plan, stored_plans


class BackgroundRequests(FlowExecutor):
    """The background requests of one flow's pages (see the module's docstring)."""

    def waiting(self) -> Response:
        """``GET /flows/<slug>/-/waiting/?flow_step=…``, asked every few seconds by a page that
        waits for something outside it (StageType.waited_for): 204 while the plan is still
        at that page's step and it waits, else a redirect (``HX-Redirect``) to the flow,
        which then shows what comes next. Reads the plan, changes nothing."""
        plan = self._readable_plan()
        binding = self._current_of(plan, request.args.get("flow_step"))
        if plan is not None and binding is not None:
            stage_type = self.state.stage_type(binding.stage.type)
            if not stage_type.waited_for(self._run_for(plan, binding)):
                return self._nothing()
        return htmx_response("", 200, redirect=self._stage_url(plan))

    def check(self) -> Response:
        """``POST /flows/<slug>/-/check/``, sent by a field of a stage with live checks
        as it is left or typed in: that field's feedback (``flows/live_check.html``,
        out-of-band swaps of its error and of the live region), from the same rules a
        submit applies (:meth:`StageType.check`). Reads the plan, changes nothing; 204
        (nothing to swap) for a form that is not the current one."""
        plan = self._readable_plan()
        binding = self._current_of(plan, request.form.get("flow_step"))
        if plan is None or binding is None:
            return self._nothing()
        stage_type = self.state.stage_type(binding.stage.type)
        if not stage_type.live_checks or not csrf_valid():
            return self._nothing()
        run = self._run_for(plan, binding)
        form = stage_type.form_class(run)(formdata=request.form)
        name = request.headers.get("HX-Trigger-Name", "")
        if name not in form or name in (form.flow_step.name, form.meta.csrf_field_name):
            return self._nothing()
        stage_type.check(run, form, name)
        html = render_template("flows/live_check.html", field=form[name])
        response = current_app.make_response(html)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _readable_plan(self) -> FlowPlan | None:
        """The stored plan, for requests that only read it (asked in the background by a
        page): ``None`` when it is missing, expired or of another revision. Unlike a
        page's request, nothing is dropped or restarted."""
        plan = stored_plan(self.flow.slug) if self.flow.slug in stored_plans() else None
        if plan is None or plan.revision != self.flow.revision:
            return None
        return None if plan.is_expired(self.state.config["FLOWS_PLAN_MAX_AGE"]) else plan

    def _current_of(self, plan: FlowPlan | None, step: str | None) -> PlanBinding | None:
        """The binding ``plan`` is at, when ``step`` is the page of it that asks."""
        if plan is None or plan.current is None or step != plan.token:
            return None
        return self._binding_for(plan.current)

    @staticmethod
    def _nothing() -> Response:
        response = current_app.make_response(("", 204))
        response.headers["Cache-Control"] = "no-store"
        return response
