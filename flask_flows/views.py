"""The blueprint's views: run a flow, pick a designation's default flow, cancel a flow."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from . import input_guards, layouts, proxies
from .background import BackgroundRequests
from .csrf import csrf_valid
from .executor import MSG_CSRF, FlowExecutor
from .extension import FlowsState, get_state
from .flow_tokens import resume
from .framing import add_framing_headers
from .i18n import N_
from .models import Designation, Flow
from .policies import PolicyRequest, evaluate_bindings
from .redirects import safe_next
from .settings import register_settings


def register_views(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/<slug>/", view_func=execute, methods=["GET", "POST"])
    blueprint.add_url_rule("/<slug>/cancel/", view_func=cancel, methods=["POST"])
    blueprint.add_url_rule("/<slug>/-/waiting/", view_func=waiting)
    blueprint.add_url_rule("/<slug>/-/check/", view_func=check, methods=["POST"])
    blueprint.add_url_rule("/-/default/<designation>/", view_func=default_flow)
    blueprint.add_url_rule(
        "/-/resume/<token>/", endpoint="resume", view_func=resume, methods=["GET", "POST"]
    )
    blueprint.add_url_rule(
        "/-/login/",
        endpoint="login",
        view_func=default_flow,
        defaults={"designation": "authentication"},
    )
    blueprint.add_url_rule(
        "/-/logout/",
        endpoint="logout",
        view_func=default_flow,
        defaults={"designation": "invalidation"},
    )
    register_settings(blueprint)
    blueprint.before_request(lambda: proxies.warn_if_unfixed(get_state()))
    blueprint.before_request(input_guards.limit_request_size)
    blueprint.before_request(input_guards.refuse_unstorable_input)
    blueprint.after_request(add_framing_headers)
    blueprint.register_error_handler(HTTPException, _http_error)  # CSRFError is one too
    blueprint.register_error_handler(Exception, _unexpected_error)


def execute(slug: str) -> Response:
    """``GET|POST /flows/<slug>/``: show or submit the flow's current stage."""
    state = get_state()
    executor = FlowExecutor(state, _flow_or_404(state, slug))
    return executor.post() if request.method == "POST" else executor.get()


def waiting(slug: str) -> Response:
    """``GET /flows/<slug>/-/waiting/``: has what the current stage waits for happened?"""
    state = get_state()
    return BackgroundRequests(state, _flow_or_404(state, slug)).waiting()


def check(slug: str) -> Response:
    """``POST /flows/<slug>/-/check/``: what submitting would say about one field."""
    state = get_state()
    return BackgroundRequests(state, _flow_or_404(state, slug)).check()


def cancel(slug: str) -> Response:
    """``POST /flows/<slug>/cancel/``: drop the plan and leave (to `next` or home)."""
    state = get_state()
    flow = _flow_or_404(state, slug)
    executor = FlowExecutor(state, flow)
    if not csrf_valid():
        executor.messages.append(MSG_CSRF)
        return executor.get()
    return executor.cancel(restart=request.form.get("restart") == "1")


def default_flow(designation: str) -> BaseResponse:
    """``GET /flows/-/default/<designation>/``: the first applicable flow of a designation."""
    state = get_state()
    if designation not in Designation.__members__:
        abort(404)
    user = state.current_user()
    for flow in state.flows_of(designation):
        policy_request = PolicyRequest(
            state=state,
            user=user,
            request=request._get_current_object(),  # type: ignore[attr-defined]
            authenticated_user=user,
            flow=flow,
        )
        if evaluate_bindings(flow.policy_bindings, flow.policy_engine_mode, policy_request):
            target = safe_next(request.args.get("next"))
            return redirect(url_for(".execute", slug=flow.slug, next=target), code=303)
    abort(404)


def _flow_or_404(state: FlowsState, slug: str) -> Flow:
    flow = state.load_flow(slug)
    if flow is None:
        abort(404)
    return flow


#: What an HTTP error page says, by status; other statuses by class (werkzeug's English
#: descriptions are never shown: they cannot be translated).
_HTTP_MESSAGES = {
    400: N_("The request could not be understood. Please go back and try again."),
    403: N_("You are not allowed to do that."),
    404: N_("There is nothing here. The link may be old or mistyped."),
    405: N_("That action is not available here."),
    413: N_("That was more than this form can take. Please go back and try again."),
    429: N_("Too many requests. Please wait a moment and try again."),
}
_CLIENT_ERROR = N_("That did not work. Please go back and try again.")
_SERVER_ERROR = N_("Something went wrong on our side. Please try again in a moment.")


def _http_error(error: HTTPException) -> Response:
    code = error.code or 500
    fallback = _CLIENT_ERROR if code < 500 else _SERVER_ERROR
    return _error_page(_HTTP_MESSAGES.get(code, fallback), code)


def _unexpected_error(error: Exception) -> Response:
    """Log a bug in a stage or policy and show a calm page instead of a stack trace;
    in testing and debug (or with ``PROPAGATE_EXCEPTIONS``) let it propagate, as Flask
    does, so it shows in the test or the debugger. (HTTP errors never get here: Flask
    picks the more specific handler above.)"""
    state = get_state()
    state.db.session.rollback()
    propagate = current_app.config["PROPAGATE_EXCEPTIONS"]
    if propagate or (propagate is None and (current_app.testing or current_app.debug)):
        raise error
    state.log.exception("unexpected error in a flow request")
    return _error_page(_SERVER_ERROR, 500)


def _error_page(message: str, code: int) -> Response:
    """The themed error page, always whole and with its real status: flows.js swaps its
    stage part in for htmx requests, which do not swap 4xx/5xx responses themselves.
    ``message`` is English, its message id: the page shows it in the request's language."""
    html = render_template(
        "flows/error.html", layout=layouts.page_layout(), flow=None, message=message, code=code
    )
    response = make_response(html, code)
    response.headers["Cache-Control"] = "no-store"
    return response
