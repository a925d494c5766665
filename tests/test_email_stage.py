"""The email stage and its links, through HTTP and a real SMTP server on loopback.

Each test reads the mail the app really sent (``mailbox``), follows its link from a
second client without cookies, and checks the page, the database and the session.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, edit_plan_context, plan_context
from factory import User, db
from flask import Flask, template_rendered
from smtp_sink import Mailbox, bodies, closed_port, link_in
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, Flows, Option, Stage, StageType, mail
from flask_flows.extension import FlowsState
from flask_flows.flow_tokens import (
    MSG_CHANGED,
    MSG_EXPIRED,
    MSG_INVALID,
    MSG_NO_ACCOUNT,
    FlowToken,
)
from flask_flows.mail import wait_for_outgoing_mail
from flask_flows.models import utcnow
from flask_flows.plan import PROMPT_DATA
from flask_flows.stages.base import StageForm, StageResult, StageRun, ok
from flask_flows.stages.email import RATE_LIMITED, SENT_AGAIN, SENT_AGAIN_IF_EXISTS

PASSWORD = "correct horse battery"
SLUG = "recover"

#: Messages handed to the FLOWS_MAIL_BACKEND hook by path.
collected: list[EmailMessage] = []


def collect_mail(message: EmailMessage) -> None:
    collected.append(message)


@pytest.fixture
def mail_settings() -> dict[str, Any]:
    """Extra app config for one test: see :func:`with_config`."""
    return {}


@pytest.fixture
def app_config(mailbox: Mailbox, mail_settings: dict[str, Any]) -> dict[str, Any]:
    """Mail goes to the loopback SMTP server."""
    return {**mailbox.config, **mail_settings}


def with_config(**settings: Any) -> pytest.MarkDecorator:
    """Run the test with these settings added to the app's config."""
    return pytest.mark.parametrize("mail_settings", [settings], ids=["config"])


@pytest.fixture
def recovery_flow(make_flow: Callable[..., Flow]) -> Flow:
    """identification → email → dummy → user_login."""
    return make_flow(SLUG, "identification", "email", "dummy", "user_login", designation="recovery")


def later(browser: FlowBrowser, slug: str = SLUG, seconds: int = 60) -> FlowBrowser:
    """Let ``seconds`` pass for "Send again" (its wait after each email, ``resend_after``)."""

    def earlier(context: dict[str, Any]) -> None:
        context["email_sent_at"] -= seconds

    edit_plan_context(browser.client, slug, earlier)
    return browser


def start(browser: FlowBrowser, slug: str) -> TestResponse:
    """Open a flow; a plain browser follows the 303 a non-interactive first stage causes."""
    response = browser.start(slug)
    if response.status_code == 303 and response.headers["Location"].startswith(f"/flows/{slug}/"):
        return browser.follow()
    return response


def ask_for_link(browser: FlowBrowser, identifier: str = "alice", slug: str = SLUG) -> TestResponse:
    browser.start(slug)
    response = browser.step(slug, uid_field=identifier)
    assert browser.stage_type == "email", response.text
    return response


def open_link(app: Flask, link: str, htmx: bool = False) -> tuple[FlowBrowser, TestResponse]:
    """Open ``link`` in a new browser with no cookies and press "Continue" there."""
    other = FlowBrowser(app.test_client(), htmx=htmx)
    response = other.open_link(link)
    return other, response


def tokens(app: Flask) -> list[FlowToken]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(FlowToken).order_by(FlowToken.id)))
        db.session.expunge_all()
        return rows


def session_data(app: Flask, browser: FlowBrowser) -> Any:
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return serializer.loads(cookie.value)


def token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[1]


# -- the link continues the flow ---------------------------------------------------------------


def test_the_link_continues_the_flow_in_another_browser(
    app: Flask, browser: FlowBrowser, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    response = ask_for_link(browser)
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    assert "The link works once and expires in 30 minutes." in response.text
    assert "Send again" in response.text

    message = mailbox.wait_for_message()
    assert message["To"] == "alice@example.com"
    assert message["X-Envelope-To"] == "alice@example.com"
    assert message["From"] == "no-reply@localhost"
    assert message["Subject"] == "Confirm your email address"
    assert message["Message-ID"] and message["Date"]
    text, html = bodies(message)
    assert "Hello alice," in text
    assert "Hello alice," in html
    assert "expires in 30 minutes" in text
    link = link_in(message)
    assert link.startswith("http://localhost/flows/-/resume/")

    # Reloading the page in the first browser sends nothing more.
    browser.get(f"/flows/{SLUG}/")
    assert browser.stage_type == "email"
    assert wait_for_outgoing_mail(5)
    assert len(mailbox.messages) == 1

    other, response = open_link(app, link, htmx=browser.htmx)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/flows/{SLUG}/"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    other.get(f"/flows/{SLUG}/")
    assert other.stage_type == "dummy"
    other.step(SLUG)
    assert other.redirect_target == "/"
    assert other.whoami() == "home: alice"
    assert browser.whoami() == "home: anonymous"
    [token] = tokens(app)
    assert token.used_at is not None
    assert token.flow_slug == SLUG


def test_the_restored_plan_is_marked_and_holds_no_secret(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_user("alice")
    browser = FlowBrowser(app.test_client())
    ask_for_link(browser)
    link = link_in(mailbox.wait_for_message())
    token = token_of(link)
    assert token not in repr(session_data(app, browser))

    other, _ = open_link(app, link)
    restored = session_data(app, other)
    assert token not in repr(restored)
    context = plan_context(other.client, SLUG)
    assert context["is_restored"] is True
    assert "email_sent" not in context
    assert wait_for_outgoing_mail(5)
    assert "flask_flows" in {record.name.split(".")[0] for record in caplog.records}
    assert token not in caplog.text
    with app.app_context():
        stored = db.session.scalars(sa.select(FlowToken.token_hash)).one()
    assert token not in stored


# -- links that do not work -------------------------------------------------------------------


def test_a_link_works_only_once(app: Flask, make_user, recovery_flow, mailbox: Mailbox) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    assert open_link(app, link)[1].status_code == 303
    other, response = open_link(app, link)
    assert response.status_code == 404
    assert MSG_INVALID in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert other.client.get_cookie("session") is None or "_flows_plans" not in session_data(
        app, other
    )


def test_opening_a_link_spends_nothing_until_continue(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    """Mail scanners and link previews fetch every URL in a message: their GETs (and
    HEADs) must leave the link for its reader."""
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    scanner = app.test_client()
    for _ in range(3):
        page = scanner.get(link)
        assert page.status_code == 200
        assert "Continue from your email" in page.text
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert scanner.head(link).status_code == 200
    assert tokens(app)[0].used_at is None

    reader, response = open_link(app, link)
    assert response.status_code == 303
    reader.follow()
    assert reader.stage_type == "dummy"  # recovery_flow's stage after the email
    assert tokens(app)[0].used_at is not None


def test_the_continue_page_posts_back_under_the_app_s_mount_point(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    """Behind a proxy that mounts the app at /app (SCRIPT_NAME), the button must post to
    /app/flows/-/resume/…, not to /flows/-/resume/…."""
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    path = urlsplit(link_in(mailbox.wait_for_message())).path
    client = app.test_client()
    page = client.get(path, base_url="http://localhost/app")
    assert f'action="/app{path}"' in page.text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert token is not None
    done = client.post(path, data={"csrf_token": token.group(1)}, base_url="http://localhost/app")
    assert done.status_code == 303
    assert done.headers["Location"].startswith("/app/flows/")


def test_continue_without_a_csrf_token_spends_nothing(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    forged = app.test_client().post(link, data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert "The form expired. Please try again." in forged.text
    assert "Continue from your email" in forged.text
    assert tokens(app)[0].used_at is None
    assert open_link(app, link)[1].status_code == 303


def test_two_browsers_racing_for_one_link_get_one_plan(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def race() -> None:
        browser = FlowBrowser(app.test_client())
        browser.get(link)
        token = browser.csrf_token()
        barrier.wait()
        statuses.append(browser.client.post(link, data={"csrf_token": token}).status_code)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [303, 404, 404, 404]


def test_an_expired_link_says_so_and_offers_a_restart(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    with app.app_context():
        db.session.execute(sa.update(FlowToken).values(expires=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    _, response = open_link(app, link)
    assert response.status_code == 410
    assert MSG_EXPIRED in response.text
    assert f'href="/flows/{SLUG}/"' in response.text
    assert tokens(app)[0].used_at is None


def test_the_expiry_is_the_configured_one(
    app: Flask, browser: FlowBrowser, make_user, make_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    make_flow(SLUG, "identification", ("email", {"token_expiry": 120}), "dummy")
    response = ask_for_link(browser)
    assert "expires in 2 hours" in response.text
    assert "expires in 2 hours" in bodies(mailbox.wait_for_message())[0]
    [token] = tokens(app)
    assert timedelta(minutes=119) < token.expires - token.created <= timedelta(minutes=120)


def test_a_tampered_link_is_invalid(app: Flask, make_user, recovery_flow, mailbox: Mailbox) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    token = token_of(link)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (
        link.replace(token, tampered),
        link.replace(token, token[:10]),
        "/flows/-/resume/x/",
    ):
        response = open_link(app, bad)[1]
        assert response.status_code == 404
        assert MSG_INVALID in response.text
    assert open_link(app, link)[1].status_code == 303


def test_a_link_for_a_user_deleted_by_the_app_says_the_account_is_gone(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    user = make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    with app.app_context():
        db.session.execute(sa.delete(User).where(User.id == user.id))
        db.session.commit()
    response = open_link(app, link)[1]
    assert response.status_code == 410
    assert MSG_NO_ACCOUNT in response.text


def test_deleting_a_user_through_the_store_deletes_their_links(
    app: Flask, state: FlowsState, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    user = make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    with app.app_context():
        state.user_store.delete(db.session.get(User, user.id))
        db.session.commit()
    assert tokens(app) == []
    response = open_link(app, link)[1]
    assert response.status_code == 404
    assert MSG_INVALID in response.text


def test_a_link_to_a_changed_flow_asks_to_start_again(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    with app.app_context():
        stage = db.session.scalars(sa.select(Stage).where(Stage.type == "dummy")).one()
        stage.config = {"message": "Changed."}
        db.session.commit()
    response = open_link(app, link)[1]
    assert response.status_code == 409
    assert MSG_CHANGED in response.text
    assert f'href="/flows/{SLUG}/"' in response.text


def test_a_link_to_a_deleted_flow_is_a_clear_page(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    link = link_in(mailbox.wait_for_message())
    with app.app_context():
        db.session.delete(db.session.scalars(sa.select(Flow)).one())
        db.session.commit()
    response = open_link(app, link)[1]
    assert response.status_code == 404
    assert "no longer exists" in response.text


# -- activation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("activate", [True, False])
def test_the_link_can_activate_the_user(
    app: Flask, make_user, make_flow, mailbox: Mailbox, activate: bool
) -> None:
    user = make_user("alice", active=False)
    make_flow(
        SLUG,
        "identification",
        ("email", {"activate_user_on_success": activate}),
        "user_login",
        designation="enrollment",
    )
    ask_for_link(FlowBrowser(app.test_client()))
    other, _ = open_link(app, link_in(mailbox.wait_for_message()))
    response = other.get(f"/flows/{SLUG}/")
    with app.app_context():
        assert db.session.get(User, user.id).active is activate
    if activate:
        assert other.redirect_target == "/"
        assert other.whoami() == "home: alice"
    else:
        assert response.status_code == 403
        assert "This account is disabled." in response.text


# -- rate limits --------------------------------------------------------------------------------


@with_config(FLOWS_MAIL_RATE_LIMIT="2/3600")
def test_send_again_is_rate_limited(
    app: Flask, browser: FlowBrowser, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    ask_for_link(browser)
    first = link_in(mailbox.wait_for_message(1))

    response = later(browser).submit(SLUG)
    assert response.status_code == 200
    assert browser.stage_type == "email"
    assert SENT_AGAIN_IF_EXISTS in response.text
    second = link_in(mailbox.wait_for_message(2))
    assert second != first

    response = later(browser).submit(SLUG)
    assert RATE_LIMITED in response.text
    assert wait_for_outgoing_mail(5)
    assert len(mailbox.messages) == 2
    assert len(tokens(app)) == 2

    # A new plan for the same account: nothing is sent, and nothing says so (that would
    # tell a stranger the account exists).
    other = FlowBrowser(app.test_client(), htmx=browser.htmx)
    response = ask_for_link(other)
    assert RATE_LIMITED not in response.text
    assert wait_for_outgoing_mail(5)
    assert len(mailbox.messages) == 2
    # Both links sent before still work.
    assert open_link(app, first)[1].status_code == 303
    assert open_link(app, second)[1].status_code == 303


# -- an address typed into a prompt (enrollment) ------------------------------------------------


class SetPromptEmail(StageType):
    """Stands in for the prompt stage: puts an address into ``prompt_data``."""

    name = "test_prompt_email"
    template = "flows/stages/dummy.html"
    options = {"email": Option(str)}

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        run.context[PROMPT_DATA] = {"email": run.config["email"]}
        return ok()


@pytest.fixture
def enrollment_flow(flows: Flows, make_flow: Callable[..., Flow]) -> Flow:
    flows.stage_type(SetPromptEmail)
    return make_flow(
        "enroll",
        ("test_prompt_email", {"email": "New.Person@example.com"}),
        "email",
        "dummy",
        designation="enrollment",
    )


@with_config(FLOWS_MAIL_RATE_LIMIT="1/3600")
def test_a_typed_address_is_shown_and_its_rate_limit_is_told(
    app: Flask, browser: FlowBrowser, enrollment_flow, mailbox: Mailbox
) -> None:
    response = start(browser, "enroll")
    assert browser.stage_type == "email"
    assert "We sent an email to <strong>New.Person@example.com</strong>" in response.text
    message = mailbox.wait_for_message()
    assert message["To"] == "New.Person@example.com"
    [token] = tokens(app)
    assert token.user_id is None

    other = FlowBrowser(app.test_client(), htmx=browser.htmx)
    response = start(other, "enroll")
    assert RATE_LIMITED in response.text
    assert wait_for_outgoing_mail(5)
    assert len(mailbox.messages) == 1

    linked, _ = open_link(app, link_in(message))
    linked.get("/flows/enroll/")
    assert linked.stage_type == "dummy"


@with_config(FLOWS_MAIL_RATE_LIMIT="2/3600")
def test_plus_tags_and_case_share_one_mailbox_limit(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], mailbox: Mailbox
) -> None:
    """The attack sent 8 sign-up mails to one mailbox as user+1@, user+2@, …"""
    field = {"field_key": "email", "label": "Email", "type": "email", "required": True}
    make_flow("join", ("prompt", {"fields": [field]}), "email", "dummy", designation="enrollment")
    answers = []
    for spelling in ("person+1@example.com", "Person+2@Example.com", "person+3@example.com"):
        visitor = browser.fresh()
        visitor.start("join")
        answers.append(visitor.step("join", email=spelling).text)
        assert wait_for_outgoing_mail(5)  # its link is recorded once it is sent
    assert RATE_LIMITED not in answers[0] and RATE_LIMITED not in answers[1]
    assert RATE_LIMITED in answers[2]
    assert len(mailbox.messages) == 2


def test_send_again_for_a_typed_address_names_it(
    browser: FlowBrowser, enrollment_flow, mailbox: Mailbox
) -> None:
    start(browser, "enroll")
    response = later(browser, "enroll").submit("enroll")
    assert SENT_AGAIN in response.text
    assert mailbox.wait_for_message(2)["To"] == "New.Person@example.com"


def test_a_logged_in_user_sees_a_masked_address(
    app: Flask, make_user, make_flow, login_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    make_flow("verify", "email", "dummy", designation="stage_configuration")
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    assert browser.whoami() == "home: alice"
    response = browser.start("verify")
    assert "We sent an email to <strong>a***@example.com</strong>" in response.text
    assert mailbox.wait_for_message()["To"] == "alice@example.com"
    assert tokens(app)[0].user_id is not None


# -- enumeration --------------------------------------------------------------------------------

_VOLATILE = re.compile(r'(name="(?:csrf_token|flow_step)"(?: type="hidden")? value=")[^"]*"')


#: The plan's random nonce in a stage's URL (``?step=<nonce>.<entry>``).
_NONCE = re.compile(r"(step=)[\w-]+\.")


def _masked(response: TestResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, _NONCE.sub(r"\1….", v)) for k, v in response.headers.items()]
    headers = [(k, v) for k, v in headers if k.lower() != "set-cookie"]
    body = _NONCE.sub(r"\1….", _VOLATILE.sub(r'\1…"', response.text))
    return response.status_code, headers, body.encode()


def _recovery_responses(app: Flask, identifier: str, htmx: bool) -> tuple[list[Any], list[str]]:
    browser = FlowBrowser(app.test_client(), htmx=htmx)
    rendered: list[str] = []

    def record(sender: Any, template: Any, context: Any, **extra: Any) -> None:
        rendered.append(template.name)

    responses = [_masked(browser.start(SLUG))]
    with template_rendered.connected_to(record, app):
        responses.append(_masked(browser.submit(SLUG, uid_field=identifier)))
        if not htmx:
            responses.append(_masked(browser.follow()))
    assert browser.stage_type == "email"
    return responses, rendered


def test_recovery_for_an_unknown_account_looks_the_same(
    app: Flask, browser: FlowBrowser, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    known, known_templates = _recovery_responses(app, "alice@example.com", browser.htmx)
    unknown, unknown_templates = _recovery_responses(app, "nobody@example.com", browser.htmx)
    assert unknown == known
    # The same foreground work: the mail templates are rendered either way.
    assert unknown_templates == known_templates
    assert "flows/email/verification.txt" in known_templates
    assert "If an account exists for what you entered" in known[-1][2].decode()

    assert wait_for_outgoing_mail(5)
    assert [m["To"] for m in mailbox.messages] == ["alice@example.com"]
    assert len(tokens(app)) == 1


def test_recovery_runs_the_same_queries_in_the_request_for_an_unknown_account(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    """Timing: the token is written by the mail thread, so the request itself runs the
    same SQL whether or not the account exists, but for reading the user's row (an
    indexed lookup by primary key, for the address)."""
    make_user("alice")
    request_thread = threading.get_ident()

    def statements_for(identifier: str) -> list[str]:
        browser = FlowBrowser(app.test_client(), htmx=True)
        browser.start(SLUG)
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if threading.get_ident() == request_thread:
                seen.append(statement)

        with app.app_context():
            engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            browser.submit(SLUG, uid_field=identifier)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        assert browser.stage_type == "email"
        return seen

    def flows_tables(statements: list[str]) -> list[str]:
        return [s for s in statements if "FROM app_user" not in s]

    known = statements_for("alice@example.com")
    unknown = statements_for("nobody@example.com")
    assert flows_tables(known) == flows_tables(unknown)
    assert len(known) - len(unknown) <= 1
    assert not any(
        "flows_flow_token" in s and s.lstrip().upper().startswith("INSERT") for s in known
    )
    assert any("flows_flow_token" in s for s in known)  # the rate-limit count
    assert wait_for_outgoing_mail(5)
    assert len(tokens(app)) == 1


def test_the_mail_job_is_the_same_for_an_unknown_account_and_starts_after_the_request(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    """Timing, the rest of it: a real account's job (storing the token, a commit) used to
    run beside the response, and a pretended one had none, so the response told them
    apart by milliseconds. Now both jobs start when the request has ended and do the same
    database work; the pretended one's is rolled back and sends nothing."""
    make_user("alice")
    request_thread = threading.get_ident()

    def job_for(identifier: str) -> tuple[list[str], list[str]]:
        browser = FlowBrowser(app.test_client(), htmx=True)
        browser.start(SLUG)
        order: list[tuple[str, str]] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            where = "request" if threading.get_ident() == request_thread else "job"
            order.append((where, statement.split()[0].upper()))

        with app.app_context():
            engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            browser.submit(SLUG, uid_field=identifier)
            assert wait_for_outgoing_mail(5)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        places = [where for where, _ in order]
        assert "job" in places
        # Every statement of the request came before the first of the job.
        assert places == sorted(places, key=lambda where: where == "job"), order
        return [s for w, s in order if w == "request"], [s for w, s in order if w == "job"]

    known_request, known_job = job_for("alice@example.com")
    unknown_request, unknown_job = job_for("nobody@example.com")
    assert known_job == unknown_job == ["INSERT"]
    assert len(known_request) - len(unknown_request) <= 1  # the user's row, as above
    assert len(tokens(app)) == 1
    assert [m["To"] for m in mailbox.messages] == ["alice@example.com"]


def test_send_again_for_an_unknown_account_looks_the_same(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    pages = []
    for identifier in ("alice", "nobody"):
        browser = FlowBrowser(app.test_client())
        ask_for_link(browser, identifier)
        pages.append(_masked(later(browser).submit(SLUG)))
    assert pages[0] == pages[1]
    assert SENT_AGAIN_IF_EXISTS in pages[0][2].decode()
    assert wait_for_outgoing_mail(5)
    assert len(mailbox.messages) == 2
    assert {m["To"] for m in mailbox.messages} == {"alice@example.com"}


# -- delivery ------------------------------------------------------------------------------------


@with_config(FLOWS_MAIL_BACKEND="test_email_stage:collect_mail")
def test_the_backend_hook_gets_the_message_instead_of_smtp(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    collected.clear()
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    assert wait_for_outgoing_mail(5)
    [message] = collected
    assert message["To"] == "alice@example.com"
    assert mailbox.messages == []
    assert open_link(app, link_in(message))[1].status_code == 303


@with_config(FLOWS_MAIL_SEND_IN_BACKGROUND=False)
def test_a_callable_backend_runs_in_the_request_when_asked(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    sent: list[tuple[EmailMessage, str]] = []
    app.config["FLOWS_MAIL_BACKEND"] = lambda m: sent.append((m, threading.current_thread().name))
    make_user("alice")
    ask_for_link(FlowBrowser(app.test_client()))
    [(message, thread)] = sent  # already there: no waiting
    assert thread == threading.current_thread().name
    assert message["Subject"] == "Confirm your email address"


@with_config(FLOWS_MAIL_BASE_URL="https://accounts.example.org/")
def test_links_use_the_configured_base_url_not_the_host_header(
    app: Flask, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    forged = {"base_url": "http://evil.example"}
    browser = FlowBrowser(app.test_client())
    browser.get(f"/flows/{SLUG}/", **forged)
    fields = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    browser.post(f"/flows/{SLUG}/", {**fields, "uid_field": "alice"}, **forged)
    assert browser.last is not None and browser.last.status_code == 303
    browser.get(f"/flows/{SLUG}/", **forged)
    assert browser.stage_type == "email"
    text, html = bodies(mailbox.wait_for_message())
    assert "https://accounts.example.org/flows/-/resume/" in text
    assert "evil.example" not in text + html


def test_the_recovery_templates_and_subject_are_used(
    app: Flask, make_user, make_flow, mailbox: Mailbox
) -> None:
    make_user("alice")
    email = ("email", {"subject": "Recover your account", "template": "flows/email/recovery"})
    make_flow(SLUG, "identification", email, "dummy", designation="recovery")
    ask_for_link(FlowBrowser(app.test_client()))
    message = mailbox.wait_for_message()
    assert message["Subject"] == "Recover your account"
    text, html = bodies(message)
    assert "To choose a new password, open this link" in text
    assert "Choose a new password</a>" in html


@pytest.mark.parametrize("background", [True, False])
def test_a_mail_server_that_is_down_is_logged_not_shown(
    app: Flask,
    browser: FlowBrowser,
    make_user,
    recovery_flow,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    background: bool,
) -> None:
    app.config.update(FLOWS_MAIL_PORT=closed_port(), FLOWS_MAIL_SEND_IN_BACKGROUND=background)
    make_user("alice")
    response = ask_for_link(browser)
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    assert wait_for_outgoing_mail(15)
    failures = [r for r in caplog.records if r.name == "flask_flows.mail"]
    assert [r.levelno for r in failures] == [logging.ERROR]
    assert "could not send" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert mailbox.messages == []


def test_per_stage_mail_servers_are_refused_clearly(app: Flask, state: FlowsState) -> None:
    stage = Stage(name="smtp", type="email", config={"use_global_settings": False})
    with app.app_context(), pytest.raises(ConfigError, match="use_global_settings"):
        state.stage_config(stage)


def test_waiting_for_mail_a_request_still_holds_does_not_fail(app: Flask) -> None:
    """A mail handed over in a request waits for the request's end; waiting for outgoing
    mail meanwhile (a test, a worker) must neither raise nor lose it."""
    message = EmailMessage()
    message["Subject"], message["To"] = "Held", "someone@example.com"
    message.set_content("body")
    sent: list[str] = []
    with app.test_request_context():
        app.config["FLOWS_MAIL_BACKEND"] = lambda m: sent.append(m["Subject"])
        mail.send(message)
        assert not wait_for_outgoing_mail(0.1)  # still held: the request has not ended
        assert sent == []
    assert wait_for_outgoing_mail(5)
    assert sent == ["Held"]


def test_back_to_the_identifier_mails_the_account_then_named(
    browser: FlowBrowser, make_user, recovery_flow, mailbox: Mailbox
) -> None:
    """Back from "Check your inbox" to the first page: the next account named gets its own
    link (the page forgot that it had sent one), and the plan's send limit still counts."""
    make_user("alice")
    make_user("bob")
    ask_for_link(browser, "alice")
    assert browser.stage_type == "email"
    assert wait_for_outgoing_mail(5)
    back = re.search(r'class="flows-back flows-link" href="([^"]+)"', browser.last.text)  # type: ignore[union-attr]
    assert back is not None, "no Back link on the inbox page"
    browser.get(back[1])
    assert browser.stage_type == "identification"
    browser.step(SLUG, uid_field="bob")
    assert browser.stage_type == "email"
    assert wait_for_outgoing_mail(5)
    assert [m["To"] for m in mailbox.messages] == ["alice@example.com", "bob@example.com"]
    assert plan_context(browser.client, SLUG)["email_sends"] == 2
