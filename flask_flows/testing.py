"""Helpers for testing an app that uses flask-flows with Flask's test client.

Two needs, two tools:

- Tests of the app's own views behind a login want a logged-in client and nothing else.
  :class:`FlowClient` follows Flask-Login's ``FlaskLoginClient``: set it as the app's
  ``test_client_class`` and ``app.test_client(user=user)`` is logged in. Unlike
  ``FlaskLoginClient`` it records the login server-side, as the ``user_login`` stage does,
  so flask-flows' session checks accept it; no flow is walked and no password hashed.
- Tests of flows and stages want to step through them as a browser does.
  :class:`FlowBrowser` wraps any test client, reads the CSRF token and the plan step of
  the page it saw last and sends them with the next form, as a plain browser or as htmx.

::

    from flask_flows.testing import FlowBrowser, FlowClient

    app.test_client_class = FlowClient

    def test_account_page(app, alice):
        client = app.test_client(user=alice)
        assert client.get("/account").status_code == 200

    def test_login(app, alice):
        browser = FlowBrowser(app.test_client(), htmx=True)
        browser.log_in("alice", "correct horse battery")
        assert browser.redirect_target == "/"

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import sqlalchemy as sa
from flask import Flask, session, url_for
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from . import sessions
from .extension import FlowsState

__all__ = ["FlowBrowser", "FlowClient", "log_in", "log_out"]


def log_in(client: FlaskClient, user: Any, *, persistent: bool = False, duration: int = 0) -> None:
    """Log ``user`` (a user of the app's user model, or its id) in on ``client``, with the
    server-side session a login flow records.

    Works with any Flask test client (the app's own ``test_client_class`` too). The
    client's earlier login, if any, ends first. ``persistent`` and ``duration`` (seconds,
    ``0`` for no expiry) mean what they mean on the ``user_login`` stage. No flow runs, so
    no password is checked and flask-flows sends none of its signals.
    """
    _run_on_session(
        client,
        lambda state: sessions.log_in(
            state, _user_row(state, user), duration=duration, persistent=persistent
        ),
    )


def log_out(client: FlaskClient) -> None:
    """End ``client``'s login, server-side too, as the logout flow does."""
    _run_on_session(client, sessions.log_out)
    client.delete_cookie(sessions.MFA_COOKIE)


class FlowClient(FlaskClient):
    """A Flask test client that can be logged in without walking a flow.

    ``app.test_client_class = FlowClient``, then ``app.test_client(user=user)`` returns a
    client logged in as ``user`` (the convention of Flask-Login's ``FlaskLoginClient``);
    :meth:`log_in` and :meth:`log_out` change that later.
    """

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.log_in(user)

    def log_in(self, user: Any, *, persistent: bool = False, duration: int = 0) -> None:
        """See :func:`log_in`."""
        log_in(self, user, persistent=persistent, duration=duration)

    def log_out(self) -> None:
        """See :func:`log_out`."""
        log_out(self)


class FlowBrowser:
    """Steps through flows as a browser does, on top of a Flask test client.

    Every request goes through :meth:`get` or :meth:`post`, which remember the response as
    :attr:`last`; :meth:`submit` posts the stage form of that page with its hidden
    ``csrf_token`` and ``flow_step``. With ``htmx=True`` requests carry ``HX-Request`` and
    answers are stage fragments and ``HX-Redirect`` headers; without, stage posts answer
    with 303 redirects, which :meth:`step` follows back into the flow as a browser would.
    """

    def __init__(self, client: FlaskClient, htmx: bool = False) -> None:
        self.client = client
        self.htmx = htmx
        #: The response to the last request made through this browser.
        self.last: TestResponse | None = None
        self._parsed: _Page | None = None

    @property
    def app(self) -> Flask:
        return self.client.application

    @property
    def headers(self) -> dict[str, str]:
        """The headers htmx adds to its requests (none for a plain browser)."""
        return {"HX-Request": "true"} if self.htmx else {}

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        """GET ``url`` (relative to the page shown last, as in a browser); ``headers``
        are sent besides this browser's own."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self._remember(self.client.get(self._resolve(url), headers=headers, **kwargs))

    def post(self, url: str, data: dict[str, Any], **kwargs: Any) -> TestResponse:
        """POST ``data`` to ``url`` (relative to the page shown last, as in a browser);
        ``headers`` are sent besides this browser's own."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self._remember(
            self.client.post(self._resolve(url), data=data, headers=headers, **kwargs)
        )

    def url(self, endpoint: str, **values: Any) -> str:
        """``url_for(endpoint, **values)`` for this app, wherever the flows are mounted."""
        with self.app.test_request_context():
            return url_for(endpoint, **values)

    def start(self, slug: str, next: str | None = None) -> TestResponse:
        """Open flow ``slug`` (its first stage), optionally with a ``next`` URL."""
        return self.get(self.url("flows.execute", slug=slug, next=next))

    def start_default(self, designation: str, next: str | None = None) -> TestResponse:
        """Open the flow that ``designation`` (``authentication``, ``enrollment``, …) leads
        this visitor to, as the links ``flows.login`` and ``flows.default_flow`` do."""
        self.get(self.url("flows.default_flow", designation=designation, next=next))
        return self.follow()

    def submit(self, slug: str | None = None, /, **fields: Any) -> TestResponse:
        """Submit the form of the page shown last, with its CSRF token, its plan step and
        ``fields``. The form's own ``action`` is the target unless ``slug`` names a flow
        (positional only, so a field may be called ``slug``)."""
        page = self._page
        data = {**page.hidden, **fields}
        if slug is not None:
            target = self.url("flows.execute", slug=slug)
        else:
            assert page.action, "the last page has no form to submit"
            target = page.action
        response = self.post(target, data)
        if self._back_to_same_page(response, str(data.get("flow_step", ""))):
            # A refused form comes back to its own page through post/redirect/get; the
            # page the person then sees is the answer.
            return self.follow()
        return response

    def step(self, slug: str | None = None, /, **fields: Any) -> TestResponse:
        """Submit the current stage. A plain browser then follows the post/redirect/get 303
        back to the same flow (not a redirect that leaves the flow), so the response is the
        next stage either way."""
        flow_url = self._page.action
        response = self.submit(slug, **fields)
        if (
            not self.htmx
            and response.status_code == 303
            and urlsplit(response.headers["Location"]).path
            in (urlsplit(flow_url or "").path, self._flow_url(slug))
        ):
            return self.follow()
        return response

    def log_in(
        self, username: str, password: str, slug: str | None = None, next: str | None = None
    ) -> TestResponse:
        """Walk a login flow (``slug``, else the default authentication flow): the
        identifier and the password (on one page or two), and the "stay signed in" step
        when it asks. Returns the
        last response: the redirect that leaves the flow, or a stage that needs more (a
        second factor, an error)."""
        if slug is None:
            self.start_default("authentication", next=next)
        else:
            self.start(slug, next=next)
        if 'name="password"' in self._last().text:  # identification with a password_stage
            response = self.step(slug, uid_field=username, password=password)
        else:
            self.step(slug, uid_field=username)
            response = self.step(slug, password=password)
        if self.stage_type == "user_login":
            response = self.step(slug)
        return response

    def open_link(self, url: str) -> TestResponse:
        """Open a mailed link as its reader does: the page it shows, then its "Continue"
        button (a plain form post, even with htmx). Returns the post's response (a 303
        into the flow), or the page when it is not the link's own "Continue" page (a used
        or expired link)."""
        page_response = self._remember(self.client.get(url))
        action = self._page.action
        if page_response.status_code != 200 or action != urlsplit(url).path:
            return page_response
        return self._remember(self.client.post(self._resolve(action), data=self._page.hidden))

    def settle(self) -> TestResponse:
        """The page the person sees after the last response: a plain browser's POST that
        was answered with a redirect to a page of the same flow (post/redirect/get, also
        for a refused form, a stale one, or a flow started again) is followed there."""
        last = self._last()
        if last.status_code != 303 or last.request.method != "POST":
            return last
        flow_page = urlsplit(last.headers["Location"]).path
        if last.request.path in (flow_page, flow_page + "cancel/"):
            return self.follow()
        return last

    def follow(self) -> TestResponse:
        """Follow the redirect (303 or ``HX-Redirect``) of the last response."""
        target = self.redirect_target
        assert target, f"no redirect in the last response ({self._last().status})"
        return self.get(target)

    def fresh(self) -> FlowBrowser:
        """Another browser of the same kind on the same app, with no cookies: another
        device, or someone else."""
        return type(self)(self.app.test_client(), htmx=self.htmx)

    def csrf_token(self) -> str:
        """The CSRF token of the page shown last."""
        name = self.app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        token = self._page.hidden.get(name) or self._page.any_hidden.get(name)
        assert token, "no CSRF token on the last page"
        return token

    def step_token(self) -> str:
        """The plan step (``flow_step``) of the stage shown last."""
        assert "flow_step" in self._page.hidden, "no flow_step on the last page"
        return self._page.hidden["flow_step"]

    @property
    def stage_type(self) -> str | None:
        """The stage type the last response shows (``None`` if it shows no stage)."""
        return self._page.stage_type

    @property
    def redirect_target(self) -> str | None:
        """Where the last response sends the browser: ``HX-Redirect`` or ``Location``."""
        last = self._last()
        return last.headers.get("HX-Redirect") or last.headers.get("Location")

    @property
    def _page(self) -> _Page:
        """The stage form, hidden fields and stage type of the last response."""
        if self._parsed is None:
            self._parsed = _Page.parse(self._last().get_data(as_text=True))
        return self._parsed

    def _remember(self, response: TestResponse) -> TestResponse:
        self.last = response
        self._parsed = None
        return response

    def _resolve(self, url: str) -> str:
        """``url`` as a browser resolves it on the page shown last: a mailed link may be on
        another host than the test client's default (``FLOWS_MAIL_BASE_URL``), and the
        flow's relative URLs and redirects must stay there, with that host's cookies."""
        return urljoin(self.last.request.url, url) if self.last is not None else url

    def _back_to_same_page(self, response: TestResponse, step: str) -> bool:
        """Whether a plain browser's POST was answered with a redirect to the page of
        the stage whose form it sent (``step``, the form's ``flow_step``)."""
        if self.htmx or response.status_code != 303 or not step:
            return False
        location = urlsplit(response.headers["Location"])
        position = step.rsplit(".", 1)[0]
        return parse_qs(location.query).get("step") == [position]

    def _last(self) -> TestResponse:
        assert self.last is not None, "open a page first"
        return self.last

    def _flow_url(self, slug: str | None) -> str | None:
        return self.url("flows.execute", slug=slug) if slug is not None else None


class _Page(HTMLParser):
    """What a test needs from a flow page: the stage form (``form.flows-form``), its
    hidden fields, and the ``data-stage-type`` of the stage shown."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.stage_type: str | None = None
        #: The first value of each hidden field in any form (the settings page has several
        #: forms, each with a CSRF token, and no stage form).
        self.any_hidden: dict[str, str] = {}
        self._in_stage_form = False
        self._stage_form_seen = False

    @classmethod
    def parse(cls, html: str) -> _Page:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if self.stage_type is None and "data-stage-type" in attributes:
            self.stage_type = attributes["data-stage-type"]
        if tag == "form" and not self._stage_form_seen:
            if "flows-form" in attributes.get("class", "").split():
                self._in_stage_form = self._stage_form_seen = True
                self.action = attributes.get("action")
        elif tag == "input" and attributes.get("type") == "hidden" and "name" in attributes:
            name, value = attributes["name"], attributes.get("value", "")
            self.any_hidden.setdefault(name, value)
            if self._in_stage_form:
                self.hidden.setdefault(name, value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_stage_form = False


def _user_row(state: FlowsState, user: Any) -> Any:
    """``user`` loaded in this request's database session. Tests usually hold a user from
    an app context that has ended (detached, its attributes expired by the commit), or
    only its id; both name the row."""
    user_id = user
    if isinstance(user, state.user_store.model):
        identity = sa.inspect(user).identity
        if identity is None:
            raise ValueError(f"{user!r} has no id yet: add and commit it before logging it in")
        user_id = identity[0]
    row = state.user_store.get(user_id)
    if row is None:
        raise ValueError(f"there is no user with id {user_id!r}")
    if not row.is_active:
        # Flask-Login would refuse it, and the client would stay anonymous without a word.
        raise ValueError(f"{row!r} is inactive: Flask-Login does not log inactive users in")
    return row


def _run_on_session(client: FlaskClient, change: Callable[[FlowsState], object]) -> None:
    """Run ``change(state)`` in a request with ``client``'s session, as a request the
    client sent would see it, and store the changed session back in its cookie."""
    app = client.application
    state: FlowsState = app.extensions["flows"]
    # The client's own address and user agent: Flask-Login's session protection compares
    # them on the client's next request.
    with (
        client.session_transaction() as cookie_session,
        app.test_request_context(environ_base=client.environ_base),
    ):
        session.update(cookie_session)
        change(state)
        cookie_session.clear()
        cookie_session.update(session)
