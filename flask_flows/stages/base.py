"""What every stage type implements, and the per-request handle it works with.

A stage type is self-contained: its options, its form, what it shows (``challenge``)
and what it does with a submission (``respond``). The executor owns the plan, the
session and the HTTP response; a stage only returns a :class:`StageResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import StopValidation

from .. import guesses, outcomes, signals
from ..expression_scope import scope
from ..expressions import Expression, ExpressionError, time_limit
from ..guesses import Verdict
from ..i18n import N_
from ..options import Option
from ..outcomes import Outcome
from ..plan import AUTH_METHOD, AUTH_METHODS, PENDING_USER, PENDING_USER_IDENTIFIER

#: The words on a stage's page, options of every stage type that shows one: ``None``
#: keeps the template's own, which may depend on the flow's designation (the
#: identification stage of a recovery flow is not headed "Sign in").
WORDING: dict[str, Option] = {
    "title": Option(str, default=None, nullable=True, text=True, help="The stage's heading."),
    "submit_label": Option(
        str, default=None, nullable=True, text=True, help="The primary button's label."
    ),
}

#: What a refusal says when nothing more specific is given (the deny stage's default).
MSG_DENIED = N_("Access denied.")
#: A stage's ``failed_attempts_before_cancel`` ended the flow, and no wait is running.
TOO_MANY = N_("Too many failed attempts. You can start again now.")

if TYPE_CHECKING:
    from flask import Request

    from ..executor import InjectedBinding
    from ..extension import FlowsState
    from ..models import Flow, FlowStageBinding, Stage
    from ..plan import FlowPlan
    from ..references import References


class StageForm(FlaskForm):
    """Base form of every stage: Flask-WTF CSRF plus the plan step it was rendered for."""

    flow_step = HiddenField()


class RequiredUnlessPasskey:
    """A field that must be filled in, unless the form brings a passkey's answer (its
    ``passkey`` field) instead: a page that offers both asks for one or the other."""

    field_flags = {"required": True}

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, form: Any, field: Any) -> None:
        if isinstance(field.data, str) and field.data.strip():
            return
        passkey = getattr(form, "passkey", None)
        raise StopValidation(None if passkey is not None and passkey.data else self.message)


@dataclass
class StageResult:
    """What a stage decided: continue, show errors, deny the flow, or leave it."""

    kind: Literal["ok", "invalid", "deny", "redirect"]
    message: str | None = None
    url: str | None = None
    #: Seconds until the stage can be tried again (a guess came too soon): sent as
    #: ``Retry-After`` with status 429 to browsers without htmx.
    retry_after: int | None = None
    #: A denial because too many guesses failed: the lockout page (flask_flows.lockouts),
    #: which offers password recovery when ``offer_recovery``.
    lockout: bool = False
    offer_recovery: bool = False


def ok() -> StageResult:
    return StageResult("ok")


def invalid(message: str | None = None) -> StageResult:
    """Show the stage again with field errors (already on the form) and/or ``message``."""
    return StageResult("invalid", message)


def refused(verdict: Verdict) -> StageResult:
    """Show the stage again saying when the next guess will be judged."""
    return StageResult("invalid", verdict.refusal_message(), retry_after=verdict.wait_seconds())


def deny(message: str) -> StageResult:
    """End the plan and show ``message`` on the access-denied page."""
    return StageResult("deny", message)


def locked_out(verdict: Verdict, *, offer_recovery: bool) -> StageResult:
    """End the plan because too many guesses failed: the lockout page says when the
    next guess will be judged and, with ``offer_recovery``, offers password recovery."""
    return StageResult(
        "deny",
        verdict.wait_message() or TOO_MANY,
        retry_after=verdict.wait_seconds(),
        lockout=True,
        offer_recovery=offer_recovery,
    )


def redirect(url: str) -> StageResult:
    """End the plan and send the browser to ``url``."""
    return StageResult("redirect", url=url)


@dataclass
class StageRun:
    """One request's view of the current stage: its config, the plan, the user, the app."""

    state: FlowsState
    flow: Flow
    #: A stage injected into the plan (not bound to the flow) runs with a stand-in.
    binding: FlowStageBinding | InjectedBinding
    stage: Stage
    config: dict[str, Any]
    plan: FlowPlan
    request: Request
    messages: list[str] = field(default_factory=list)
    #: What a stage works out once per run and needs in more than one method (for
    #: example ``is_interactive`` and ``respond``); gone with the request.
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def context(self) -> dict[str, Any]:
        return self.plan.context

    def record(self, outcome: Outcome) -> None:
        """Note what this stage did, for the message the app flashes when the flow
        finishes (:mod:`flask_flows.outcomes`)."""
        outcomes.record(self.context, outcome)

    def pending_user(self) -> Any | None:
        """The plan's pending user if set, else the logged-in user, else ``None``."""
        user_id = self.context.get(PENDING_USER)
        if user_id is not None:
            return self.state.user_store.get(user_id)
        return self.state.current_user()

    def option(self, name: str, fallback: Any = None) -> Any:
        """The option ``name``; one written as ``{expression: "…"}`` is evaluated now
        (see :meth:`evaluate`)."""
        value = self.config[name]
        if isinstance(value, Expression):
            return self.evaluate(value, fallback, f"option {name!r}")
        return value

    def evaluate(self, expression: Expression, fallback: Any, what: str) -> Any:
        """``expression``'s value over this run (:func:`flask_flows.expressions.scope`);
        when it fails, ``fallback``, and the log says why (an expression is part of the
        flow's definition: the visitor is not told, the flow goes on as documented)."""
        if "expression_scope" not in self.memo:  # once per run, however many expressions
            self.memo["expression_scope"] = scope(
                self.state,
                user=self.pending_user(),
                context=self.context,
                request=self.request,
                flow=self.flow,
            )
        try:
            return expression.evaluate(self.memo["expression_scope"], time_limit(self.state))
        except ExpressionError as error:
            self.state.log.error(
                "stage %r, %s: the expression %r failed (%s); using %r",
                self.stage.name,
                what,
                expression.source,
                error,
                fallback,
            )
            return fallback


class StageType:
    """Base class of stage types; subclasses set ``name``, ``options`` and ``template``."""

    name: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    template: ClassVar[str]
    #: Pages showing secrets set this so htmx keeps them out of its history cache.
    history: ClassVar[bool] = True
    #: Pages that need their own scripts to run (a captcha widget) set this: htmx runs
    #: no scripts it swaps in, so an htmx step that reaches the stage loads it whole.
    full_page: ClassVar[bool] = False
    #: Stages that mail links set this: an app that has one must name its host
    #: (``FLOWS_MAIL_BASE_URL``, ``SERVER_NAME`` or ``TRUSTED_HOSTS``), see link_hosts.
    mails_links: ClassVar[bool] = False
    #: Stages that Back may return to once done: doing them again is harmless, because
    #: they only ask or verify, and their next answer overwrites what they wrote in the
    #: plan context (identification, password, prompt, …). A stage that creates,
    #: changes or sends something for the person leaves this off: once it has run,
    #: nothing before it can be gone back to.
    revisitable: ClassVar[bool] = False
    #: Stages whose fields may be checked as they are typed (``POST
    #: /flows/<slug>/-/check/``, see :meth:`check`). Only where a field's answer reveals
    #: nothing the submitted form would not: never an identifier or a secret to verify.
    live_checks: ClassVar[bool] = False

    def waited_for(self, run: StageRun) -> bool:
        """For a stage that waits for something outside the page (the email stage, for its
        link): whether it has happened, so that the page, which asks every few seconds
        (``GET /flows/<slug>/-/waiting/``), loads again and shows what comes next."""
        return False

    def check(self, run: StageRun, form: StageForm, field: str) -> None:
        """For :attr:`live_checks`: put on ``form[field]`` the errors that submitting the
        form would show for it, with the same rules and messages, and act on nothing (no
        hashing, nothing written to the context or the database)."""
        form[field].validate(form)

    def forget(self, run: StageRun) -> None:
        """Back went to an earlier stage and this one is to run again: drop what it noted
        in the plan context that must not outlive that (the email stage forgets that it
        sent its mail, so that a corrected address gets one). Called for the stage Back
        left and for every stage undone with it."""

    def error_region(self, run: StageRun) -> str | None:
        """The id of the element whose content alone htmx swaps when this stage comes back
        with errors on its form; ``None`` swaps the whole stage. A stage that shows
        something above its form that must not change under the reader (recovery codes)
        wraps its form in that element."""
        return None

    def check_config(self, config: dict[str, Any], where: str) -> None:
        """Cross-field checks beyond :class:`Option`; raise ``ConfigError`` naming ``where``."""

    def check_references(self, config: dict[str, Any], where: str, references: References) -> None:
        """Check what the options name elsewhere (another stage, a flow, a policy) exists
        and fits; raise ``ConfigError`` naming ``where``. Run when a blueprint is applied
        and by ``flask flows check`` (see :mod:`flask_flows.references`)."""

    def is_interactive(self, run: StageRun) -> bool:
        """False for stages that act at once (deny, redirect, login without a choice):
        the executor runs them without showing a form, in the request that reached them."""
        return True

    def opens_another_link(
        self, state: FlowsState, request: Request, context: dict[str, Any]
    ) -> bool:
        """Whether this GET carries a link (an invitation's token) other than the one the
        plan in the session was started from: the flow then starts afresh, so a newer
        link is never ignored for an older plan."""
        return False

    def form_class(self, run: StageRun) -> type[StageForm]:
        """The form for this stage; the default has only CSRF and the step token."""
        return StageForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        """Extra template variables to show the stage (GET, and again after errors)."""
        return {}

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        """Act on a valid submission (``form`` is ``None`` for non-interactive stages)."""
        return ok()


def take_back_method(run: StageRun, methods: tuple[str, ...]) -> None:
    """Back undid a stage that proved one of ``methods``: the last such entry leaves
    ``auth_methods`` (and ``auth_method``), so that a proof made for one account in this
    plan never counts for the next one named."""
    proved = list(run.context.get(AUTH_METHODS) or [])
    for index in range(len(proved) - 1, -1, -1):
        if proved[index] in methods:
            del proved[index]
            break
    if proved:
        run.context[AUTH_METHODS] = proved
    else:
        run.context.pop(AUTH_METHODS, None)
    if run.context.get(AUTH_METHOD) in methods:
        latest = [method for method in proved if method != "remembered"]
        if latest:
            run.context[AUTH_METHOD] = latest[-1]
        else:
            run.context.pop(AUTH_METHOD, None)


def judge_guess(run: StageRun, user: Any | None, correct: bool) -> Verdict:
    """Judge a guess at ``user``'s secret on the server (:mod:`flask_flows.guesses`);
    with no user (identification pretended), at the identifier that was typed."""
    key = guesses.account(run.state, user, run.context.get(PENDING_USER_IDENTIFIER))
    return guesses.judge(run.state, key, correct)


def count_failure(run: StageRun, counter: str, reason: str, limit: int | None = None) -> bool:
    """One more failed check in this plan, already counted on the server by
    :func:`judge_guess`: counted under ``counter`` in the plan context (the cookie, so
    only to end this flow after ``failed_attempts_before_cancel``, as authentik does),
    sent as ``login_failed`` and logged. True once that number (``limit``, else the
    stage's own option) is reached."""
    attempts = int(run.context.get(counter, 0)) + 1
    run.context[counter] = attempts
    signals.login_failed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        identifier=run.context.get(PENDING_USER_IDENTIFIER),
        stage=run.stage,
        reason=reason,
    )
    run.state.log.info("%s: failed attempt %d in flow %s", run.stage.type, attempts, run.flow.slug)
    return attempts >= int(limit or run.config["failed_attempts_before_cancel"])
