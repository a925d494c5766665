"""The flow executor: runs one request of one flow against the plan in the session.

GET shows the current stage; POST validates it and, on success, moves on: htmx gets the
next stage's fragment in the same response (and ``HX-Push-Url``), a plain browser a 303 to
the stage's URL (post/redirect/get), also when the form was refused
(:mod:`flask_flows.refused_forms`). Each stage's page has its own URL,
``/flows/<slug>/?step=<plan nonce>.<entry>``, so it is a history entry: Back to the URL of a
stage done earlier goes back to it where the plan allows (:meth:`FlowPlan.rewind_to`);
the flow's URL without a step shows the current stage.
The end of a flow is ``HX-Redirect`` for htmx and a 303 otherwise.
Anything wrong with the stored plan (missing, tampered, expired, from an older revision
of the flow) restarts the flow with a message rather than failing; a POST for a stage
that is no longer current (a double submit, Back, another tab) is not used: the current
stage is shown with a message.

Plan entries may also be stages injected by another stage (see :mod:`flask_flows.plan`);
they run through an :class:`InjectedBinding`, a read-only stand-in for a binding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, render_template, request, session, url_for
from htmx_flask import make_response as htmx_response
from htmx_flask.requests import HtmxHeaders
from werkzeug.urls import iri_to_uri

from . import guesses, layouts, lockouts, outcomes, refused_forms, signals
from .csrf import MSG_CSRF, csrf_valid
from .extension import FlowsState
from .i18n import N_, SOURCE_LOCALE, using_locale
from .models import (
    DeniedAction,
    Designation,
    Flow,
    FlowStageBinding,
    InvalidResponseAction,
    PolicyBinding,
    Stage,
)
from .options import shown
from .passwords import MSG_BUSY, HashingBusy
from .plan import (
    NOTICES,
    PENDING_USER,
    PLANS_KEY,
    REDIRECT,
    FlowPlan,
    add_notices,
    injected_stage_id,
    same_plan,
    store_plan,
    stored_plan,
    stored_plans,
)
from .planner import EmptyFlow, FlowNonApplicable, FlowPlanner
from .policies import PolicyRequest
from .redirects import app_home, safe_next
from .stages.base import MSG_DENIED, TOO_MANY, StageForm, StageResult, StageRun, StageType, invalid

MSG_EXPIRED = N_("Your session for this form expired, so it started again.")
MSG_CHANGED = N_("This form was changed while you were using it, so it started again.")
MSG_STALE = N_("That page was out of date. This is where you are now.")
MSG_OTHER_TAB = N_("This went on in another tab or window. This is where it is now.")
MSG_RESTARTED = N_("Please start again.")
MSG_NOTHING_TO_DO = N_("This flow has nothing to do.")


@dataclass(frozen=True)
class InjectedBinding:
    """Runs a stage that a plan entry names by id rather than through a flow binding.

    Not a :class:`FlowStageBinding`: one of those linked to a persistent ``Stage`` would be
    cascaded into the database session and inserted. It has the attributes the executor
    and :class:`~flask_flows.stages.base.StageRun` read, and no policies.
    """

    id: int
    stage: Stage
    invalid_response_action: InvalidResponseAction = InvalidResponseAction.retry
    policy_bindings: tuple[PolicyBinding, ...] = ()


#: What a plan entry resolves to.
PlanBinding = FlowStageBinding | InjectedBinding


class FlowExecutor:
    """Handles one request for one flow."""

    def __init__(self, state: FlowsState, flow: Flow) -> None:
        self.state = state
        self.flow = flow
        headers = HtmxHeaders(request.headers)
        # htmx restoring a page it did not keep asks for it whole (its history element).
        self.htmx = bool(headers) and not headers.history_restore_request
        self.bindings: dict[int, PlanBinding] = {b.id: b for b in flow.bindings}
        self.messages: list[str] = []
        #: Context a discarded (stale, expired) plan hands on to its restart: its `next`.
        self.carried: dict[str, Any] = {}
        #: A form refused by the POST before this GET (post/redirect/get), to show again.
        self.refusal: refused_forms.Refusal | None = None
        #: This GET went back to an earlier stage (Back).
        self.went_back = False

    # -- entry points ---------------------------------------------------------------

    def get(self) -> Response:
        plan = self._stored_plan()
        if plan is not None and self._opens_another_link(plan):
            self._drop_plan()  # its `next` is carried over to the new plan
            plan = None
        if plan is None:
            return self._start()
        # A link with its own `next` (sent to log in from another page than the plan's
        # first one) takes the person there afterwards, not to the older target.
        target = safe_next(request.args.get("next"))
        if target:
            plan.context[REDIRECT] = target
        self.refusal = refused_forms.take(plan)
        if request.method == "GET":
            self._go_back(plan, request.args.get("step"))
        return self._proceed(plan, submitted=False)

    def post(self) -> Response:
        plan = self._stored_plan()
        if plan is None:
            if not self.messages:
                self.messages.append(MSG_EXPIRED)
            return self._start()
        if not csrf_valid():
            # Before the step check: a forged POST must not even restart the flow.
            self.messages.append(MSG_CSRF)
            return self._proceed(plan, submitted=False)
        step = request.form.get("flow_step")
        if step != plan.token:
            # Nothing of a stale form is used (another tab may have moved the plan on to
            # another account): the stage the plan is at now is shown, and the other
            # tab's progress is kept.
            self.messages.append(MSG_STALE if same_plan(plan, step) else MSG_OTHER_TAB)
            return self._proceed(plan, submitted=False)
        return self._proceed(plan, submitted=True)

    def cancel(self, *, restart: bool = False) -> Response:
        """Drop the plan; leave to `next` (or home), or with ``restart`` begin the flow anew.

        A login cancelled by someone not signed in goes to the app's home page: its
        `next` is often a page that asked for the login, which would only ask again."""
        plan = self._stored_plan()
        self._drop_plan()
        target = plan.context.get(REDIRECT) if plan else None
        if restart:
            return self._redirect(url_for("flows.execute", slug=self.flow.slug, next=target))
        if self.flow.designation is Designation.authentication and not self.state.current_user():
            return self._redirect(app_home())
        return self._redirect(target or self._default_target())

    # -- planning -------------------------------------------------------------------

    def _start(self, context: dict[str, Any] | None = None, *, use_cache: bool = True) -> Response:
        context = {**self.carried, **(context or {})}
        if REDIRECT not in context:
            target = safe_next(request.args.get("next"))
            if target:
                context[REDIRECT] = target
        planner = FlowPlanner(self.state, self.flow)
        try:
            plan = planner.plan(
                user=self._plan_user(context),
                authenticated_user=self.state.current_user(),
                request=request._get_current_object(),  # type: ignore[attr-defined]
                context=context,
                use_cache=use_cache,
            )
        except FlowNonApplicable as refusal:
            return self._not_applicable(refusal, context)
        except EmptyFlow:
            return self._denied([MSG_NOTHING_TO_DO], context.get(REDIRECT))
        signals.flow_started.send(self._app(), flow=self.flow, plan=plan)
        return self._proceed(plan, submitted=False)

    def _restart(self, plan: FlowPlan, *, keep_context: bool) -> Response:
        context = dict(plan.context) if keep_context else {}
        if REDIRECT in plan.context:
            context[REDIRECT] = plan.context[REDIRECT]
        self._drop_plan()
        # Like authentik's restart: plan afresh, so policies see the current request.
        return self._start(context, use_cache=False)

    def _stored_plan(self) -> FlowPlan | None:
        if self.flow.slug not in stored_plans():
            return None
        plan = stored_plan(self.flow.slug)
        if plan is not None and plan.context.get(REDIRECT):
            self.carried = {REDIRECT: plan.context[REDIRECT]}
        if plan is not None and plan.revision != self.flow.revision:
            # Another process may have planned on a newer revision than this process's
            # cached copy: read the revision now rather than call its plan stale.
            current = self.state.load_flow(self.flow.slug, recheck=True)
            if current is not None:
                self.flow = current
                self.bindings = {b.id: b for b in current.bindings}
        if plan is None:
            self.messages.append(MSG_EXPIRED)
        elif plan.revision != self.flow.revision or any(
            self._binding_for(entry) is None for entry in plan.bindings
        ):
            self.messages.append(MSG_CHANGED)
            plan = None
        elif plan.is_expired(self.state.config["FLOWS_PLAN_MAX_AGE"]):
            self.messages.append(MSG_EXPIRED)
            plan = None
        if plan is None:
            self._drop_plan()
        return plan

    def _opens_another_link(self, plan: FlowPlan) -> bool:
        """Whether a stage of the flow finds a link in this GET other than the plan's."""
        if not request.args:
            return False
        current = request._get_current_object()  # type: ignore[attr-defined]
        for binding in self.flow.bindings:
            cls = self.state.flows.stage_types.get(binding.stage.type)
            # Only types that read links; an unknown one fails when (if) it is reached.
            if cls is None or cls.opens_another_link is StageType.opens_another_link:
                continue
            if self.state.stage_type(binding.stage.type).opens_another_link(
                self.state, current, plan.context
            ):
                return True
        return False

    def _go_back(self, plan: FlowPlan, step: str | None) -> None:
        """Back (or the in-card Back link) to the page of an earlier stage, which ``step``
        names (its :meth:`FlowPlan.position_of`). The stages undone forget what must not
        outlive that. A page that cannot be gone back to (past a point of no return, of
        another plan, still ahead) changes nothing: the current stage is shown, as it is
        at the flow's own URL."""
        nonce, _, number = (step or "").partition(".")
        valid = nonce == plan.nonce and number.lstrip("-").isdigit()
        entry = int(number) if valid else None
        if entry is None or entry == plan.current:
            return
        undone = plan.rewind_to(entry)
        self.went_back = bool(undone)
        for undone_entry in undone:
            binding = self._binding_for(undone_entry)
            if binding is not None:
                run = self._run_for(plan, binding)
                self.state.stage_type(binding.stage.type).forget(run)

    def _drop_plan(self) -> None:
        plans = stored_plans()
        if self.flow.slug in plans:
            plans = dict(plans)
            del plans[self.flow.slug]
            session[PLANS_KEY] = plans

    # -- running stages ---------------------------------------------------------------

    def _proceed(self, plan: FlowPlan, *, submitted: bool) -> Response:
        """Run stages from the plan's current one until one needs the user or the plan ends.

        A submitted form belongs to the entry it was rendered for (the step token checked
        that): if that entry was skipped or now acts without a form, no later stage may
        read the body as its own.
        """
        advanced = False
        form_entry = plan.current if submitted else None
        while True:
            entry = plan.current
            binding = self._current_binding(plan)
            if binding is None:
                return self._finish(plan)
            run = self._run_for(plan, binding)
            stage_type = self.state.stage_type(binding.stage.type)
            form: StageForm | None = None
            submitted = form_entry is not None and entry == form_entry == plan.current
            form_entry = None
            if self.refusal is not None and self.refusal.token == plan.token:
                # The page after a refused POST (post/redirect/get): the form as refused,
                # of a stage that acted without one too (it does not act again).
                refusal, self.refusal = self.refusal, None
                run.messages[:0] = refusal.messages
                return self._render_stage(
                    run,
                    refusal.form(stage_type.form_class(run)),
                    refusal.status,
                    failed=refusal.failed,
                    retry_after=refusal.retry_after,
                )
            if not stage_type.is_interactive(run):
                result = stage_type.respond(run, None)
            elif submitted:
                form = stage_type.form_class(run)(formdata=request.form)
                try:
                    result = self._validate_and_respond(run, form)
                except HashingBusy:
                    return self._busy(run, form)
            elif (advanced and not self.htmx and request.method == "POST") or (
                (advanced or self.went_back) and self.htmx and stage_type.full_page
            ):
                # Post/redirect/get: after a POST a plain browser loads the stage's URL to
                # see the next stage (a GET that passed non-interactive stages just renders
                # it). htmx is sent there too when the stage must load as a whole page.
                store_plan(plan)
                return self._redirect(self._stage_url(plan))
            else:
                form = stage_type.form_class(run)(formdata=None)
                return self._render_stage(run, form)

            if result.kind == "ok":
                signals.stage_completed.send(
                    self._app(), flow=self.flow, stage=binding.stage, plan=plan
                )
                plan.advance(revisitable=stage_type.revisitable, answered=submitted)
                advanced = True
                continue
            return self._handle_failure(plan, run, form, result)

    def _validate_and_respond(self, run: StageRun, form: StageForm) -> StageResult:
        if form.validate():  # CSRF was checked before (csrf_valid), so not again here
            return self.state.stage_type(run.stage.type).respond(run, form)
        return invalid()

    def _busy(self, run: StageRun, form: StageForm) -> Response:
        """Every hashing slot stayed taken (an overload, or a burst of guesses): nothing
        was checked, so nothing counts; the same stage again, asking for a moment."""
        self.state.db.session.rollback()
        self.state.log.warning("flow %s: all hashing slots busy; asked to retry", self.flow.slug)
        run.messages.append(MSG_BUSY)
        return self._render_stage(run, form, status=200)

    def _handle_failure(
        self, plan: FlowPlan, run: StageRun, form: StageForm | None, result: StageResult
    ) -> Response:
        if result.kind == "redirect":
            self._drop_plan()
            return self._redirect(result.url or self._default_target())
        if result.kind == "deny" and result.lockout:
            self._drop_plan()
            # Receivers get English (the page has the visitor's language).
            with using_locale(SOURCE_LOCALE):
                reason = (
                    guesses.wait_sentence(result.retry_after) if result.retry_after else TOO_MANY
                )
            signals.flow_denied.send(self._app(), flow=self.flow, messages=[reason])
            self.state.log.info("flow %s ended after too many failed attempts", self.flow.slug)
            return lockouts.page(
                self.state,
                result.message or TOO_MANY,
                result.retry_after or 0,
                flow=self.flow,
                htmx=self.htmx,
                recovery=result.offer_recovery,
                retry_url=url_for("flows.execute", slug=self.flow.slug),
            )
        if result.kind == "deny":
            self._drop_plan()
            # A stage's refusal always says why; denied_action is for flows that do not apply.
            return self._denied([result.message or MSG_DENIED], None, action=DeniedAction.message)
        if result.message:
            run.messages.append(result.message)
        action = run.binding.invalid_response_action
        if action is InvalidResponseAction.retry or form is None:
            stage_type = self.state.stage_type(run.stage.type)
            form = form or stage_type.form_class(run)(formdata=None)
            response = self._render_stage(
                run,
                form,
                status=429 if result.retry_after else 200,
                failed=True,
                retry_after=result.retry_after,
            )
            # Messages sit above the form, outside any region: with one, all is swapped.
            region = stage_type.error_region(run) if self.htmx and not run.messages else None
            if region:
                response.headers["HX-Retarget"] = f"#{region}"
                response.headers["HX-Reswap"] = "innerHTML"
                response.headers["HX-Reselect"] = f"#{region} > *"
            return response
        self.messages.extend(run.messages or [MSG_RESTARTED])
        return self._restart(
            plan, keep_context=action is InvalidResponseAction.restart_with_context
        )

    def _current_binding(self, plan: FlowPlan) -> PlanBinding | None:
        """The binding to run now, skipping those whose re-evaluated policies fail."""
        while plan.current is not None:
            binding = self._binding_for(plan.current)
            if binding is None:
                # Fail closed: _stored_plan checked every entry and injected stages are
                # resolved in the request that injects them, so this is a deleted stage.
                raise LookupError(
                    f"flow {self.flow.slug!r}: plan entry {plan.current} names no binding or stage"
                )
            if isinstance(binding, FlowStageBinding) and plan.needs_reevaluation(binding.id):
                policy_request = PolicyRequest(
                    state=self.state,
                    user=self._plan_user(plan.context),
                    context=plan.context,
                    request=request._get_current_object(),  # type: ignore[attr-defined]
                    authenticated_user=self.state.current_user(),
                    flow=self.flow,
                )
                result = FlowPlanner(self.state, self.flow).binding_result(binding, policy_request)
                if not result.passing:
                    plan.advance(revisitable=True)  # skipped: nothing done to undo
                    continue
                add_notices(plan.context, result.messages)
            return binding
        return None

    def _binding_for(self, entry: int) -> PlanBinding | None:
        """The flow's binding for a plan entry, or the stand-in for an injected stage;
        ``None`` when the binding left the flow or the injected stage was deleted."""
        stage_id = injected_stage_id(entry)
        if stage_id is not None and entry not in self.bindings:
            stage = self.state.db.session.get(Stage, stage_id)
            if stage is None:
                return None
            self.bindings[entry] = InjectedBinding(id=entry, stage=stage)
        return self.bindings.get(entry)

    def _plan_user(self, context: dict[str, Any]) -> Any | None:
        """The plan's pending user if set, else the logged-in user (DESIGN §1)."""
        if context.get(PENDING_USER) is not None:
            return self.state.user_store.get(context[PENDING_USER])
        return self.state.current_user()

    def _run_for(self, plan: FlowPlan, binding: PlanBinding) -> StageRun:
        return StageRun(
            state=self.state,
            flow=self.flow,
            binding=binding,
            stage=binding.stage,
            config=self.state.stage_config(binding.stage),
            plan=plan,
            request=request._get_current_object(),  # type: ignore[attr-defined]
            messages=list(self.messages),
        )

    # -- responses ------------------------------------------------------------------------

    def _render_stage(
        self,
        run: StageRun,
        form: StageForm,
        status: int = 200,
        *,
        failed: bool = False,
        retry_after: int | None = None,
    ) -> Response:
        """Show the stage; ``failed`` when its form came back refused (the page title
        then begins "Error:"). A plain browser's POST gets a redirect to the stage's URL
        instead, the page carried there (:mod:`flask_flows.refused_forms`), unless it
        shows a typed password again or is too large to carry."""
        plan = run.plan
        url = self._stage_url(plan)
        run.messages.extend(m for m in plan.context.pop(NOTICES, ()) if m not in run.messages)
        if request.method == "POST" and not self.htmx and not refused_forms.keeps_a_password(form):
            refused_forms.keep(
                plan, form, run.messages, failed=failed, status=status, retry_after=retry_after
            )
            store_plan(plan)
            if refused_forms.fits():
                return self._redirect(url)
            plan.context.pop(refused_forms.REFUSED)  # too large to carry: the page itself
        form.flow_step.data = plan.token
        stage_type = self.state.stage_type(run.stage.type)
        extra = stage_type.challenge(run, form)
        store_plan(plan)  # after challenge(), which may note things in the context
        back = plan.answered[-1] if plan.answered else None
        html = render_template(
            stage_type.template,
            **self._page_context(),
            stage=run.stage,
            stage_type=stage_type,
            stage_config=shown(stage_type.options, run.config),
            form=form,
            messages=run.messages,
            history=stage_type.history,
            failed=failed,
            action_url=self._flow_url,
            stage_url=url,
            check_url=(
                url_for("flows.check", slug=self.flow.slug) if stage_type.live_checks else None
            ),
            back_url=self._stage_url(plan, back) if back is not None else None,
            **extra,
        )
        response = self._html(html, status)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        if self.htmx:
            # The stage's own URL, a history entry of its own, unless the page is there.
            here = urlsplit(request.headers.get("HX-Current-URL", ""))
            if f"{here.path}?{here.query}" != url:
                response.headers["HX-Push-Url"] = url
        return response

    @functools.cached_property
    def _flow_url(self) -> str:
        """``/flows/<slug>/``: built once a request (url_for is not free on a hot path)."""
        return url_for("flows.execute", slug=self.flow.slug)

    def _stage_url(self, plan: FlowPlan | None, entry: int | None = None) -> str:
        """The URL of the page of ``entry`` (default: the current stage) in ``plan``."""
        if plan is None or plan.current is None:
            return self._flow_url
        # The position is URL-safe (a urlsafe nonce, a dot, an integer): no url_for needed.
        return f"{self._flow_url}?step={plan.position_of(entry)}"

    def _finish(self, plan: FlowPlan) -> Response:
        self._drop_plan()
        target = plan.context.get(REDIRECT) or self._default_target()
        outcomes.flash_outcome(self._app(), plan.context, target)
        signals.flow_completed.send(self._app(), flow=self.flow, plan=plan, redirect_to=target)
        return self._redirect(target)

    def _not_applicable(self, refusal: FlowNonApplicable, context: dict[str, Any]) -> Response:
        if refusal.logged_in_already and self.flow.denied_action is not DeniedAction.message:
            # Sign-up or recovery opened by someone logged in (often a `next` that led
            # there through the login): nothing to do here, so on to where they were
            # going, unless the flow's designer asked for the message alone.
            return self._redirect(context.get(REDIRECT) or self._default_target())
        if refusal.login_required:
            here = url_for("flows.execute", slug=self.flow.slug, next=context.get(REDIRECT))
            return self._redirect(url_for("flows.login", next=here))
        return self._denied(list(refusal.messages), context.get(REDIRECT))

    def _denied(
        self, messages: list[str], target: str | None, action: DeniedAction | None = None
    ) -> Response:
        signals.flow_denied.send(self._app(), flow=self.flow, messages=messages)
        self.state.log.info("flow %s denied: %s", self.flow.slug, "; ".join(messages))
        action = action or self.flow.denied_action
        continue_url = target or self._default_target()
        if action is DeniedAction.continue_:
            return self._redirect(continue_url)
        html = render_template(
            "flows/denied.html",
            **self._page_context(),
            messages=self.messages + messages,
            continue_url=continue_url if action is DeniedAction.message_continue else None,
        )
        return self._html(html, 403)

    def _page_context(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "layout": layouts.page_layout(self.htmx),
            "cancel_url": self._flow_url + "cancel/",  # the blueprint's /<slug>/cancel/
        }

    def _html(self, html: str, status: int) -> Response:
        # htmx 2 does not swap 4xx responses; it gets 200 so the message replaces the stage.
        response = current_app.make_response((html, 200 if self.htmx else status))
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("HX-Request")
        return response

    def _redirect(self, target: str) -> Response:
        # Header values are Latin-1 on the wire: a `next` in another script must arrive
        # percent-encoded, or servers fail the response (dev server) or drop it (gunicorn).
        target = iri_to_uri(target)
        if self.htmx:
            response = htmx_response("", 200, redirect=target)
        else:
            response = current_app.make_response(("", 303, {"Location": target}))
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("HX-Request")
        return response

    def _default_target(self) -> str:
        return str(self.state.config["FLOWS_DEFAULT_REDIRECT"])

    @staticmethod
    def _app() -> Any:
        return current_app._get_current_object()  # type: ignore[attr-defined]
