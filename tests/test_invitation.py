"""The invitation stage and ``flask flows invite``: valid, expired, reused, missing, unknown,
tampered and foreign links; fixed data reaching the plan's prompt data; multi-use links."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, edit_plan_context, plan_context
from factory import db
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import Flow
from flask_flows.blueprints import apply_blueprint, install_default_flows
from flask_flows.extension import FlowsState
from flask_flows.grants import Invitation, create_invitation
from flask_flows.models import utcnow
from flask_flows.plan import PROMPT_DATA
from flask_flows.stages.invitation import (
    INVITATION,
    MSG_EXPIRED,
    MSG_INVALID,
    MSG_MISSING,
    MSG_USED,
    _spend,
)
from flask_flows.tokens import hash_token

FIXED = {"email": "bob@example.com", "username": "bob"}


@pytest.fixture
def invited_flow(make_flow: Callable[..., Flow]) -> Flow:
    """invitation → dummy: the dummy stage shows where the plan is after the invitation."""
    return make_flow("invited", "invitation", "dummy", designation="enrollment")


@pytest.fixture
def invite(app: Flask) -> Callable[..., str]:
    """Create an invitation; return its token (the only copy, as the CLI prints it)."""

    def make(flow_slug: str | None = "invited", **fields: Any) -> str:
        fields.setdefault("fixed_data", FIXED)
        with app.app_context():
            _invitation, token = create_invitation(db.session, flow_slug=flow_slug, **fields)
            db.session.commit()
        return token

    return make


def open_link(browser: FlowBrowser, url: str) -> TestResponse:
    """Open an invitation link and press "Continue" on the page it shows (a plain browser
    then follows the 303 to the next stage)."""
    response = browser.get(url)
    if browser.stage_type == "invitation":
        response = browser.step(urlsplit(url).path.strip("/").split("/")[-1])
    return response


def context_of(browser: FlowBrowser, slug: str = "invited") -> dict[str, Any]:
    return plan_context(browser.client, slug)


def invitation_row(app: Flask, token: str) -> Invitation:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with app.app_context():
        row = db.session.scalar(sa.select(Invitation).where(Invitation.token_hash == digest))
        assert row is not None
        db.session.expunge(row)
        return row


def assert_denied(response: TestResponse, browser: FlowBrowser, message: str) -> None:
    assert response.status_code == (200 if browser.htmx else 403)
    assert "Request denied" in response.text
    assert message in response.text
    assert browser.stage_type is None


def test_a_valid_link_continues_and_merges_fixed_data_into_prompt_data(
    app: Flask, browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    token = invite()

    open_link(browser, f"/flows/invited/?itoken={token}")

    assert browser.stage_type == "dummy"
    context = context_of(browser)
    assert context[PROMPT_DATA] == FIXED
    row = invitation_row(app, token)
    assert context[INVITATION] == row.id
    assert row.used_at is not None
    # Only the hash is stored, and the token never reaches the session cookie.
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    decoded = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    assert token not in repr(decoded)
    # The flow finishes normally after the invitation.
    browser.submit("invited")
    assert browser.redirect_target == "/"


def test_fixed_data_reaches_the_prompt_and_the_new_user(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], invite: Callable[..., str]
) -> None:
    """invitation → prompt → user_write: the invited address is shown, cannot be changed
    in the form, and is the new account's email."""
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "email", "type": "email_read_only", "initial_value": "prompt_data.email"},
        {"field_key": "password", "type": "password", "repeat": True},
    ]
    make_flow(
        "invited",
        "invitation",
        ("prompt", {"fields": fields}),
        "user_write",
        designation="enrollment",
    )
    token = invite(fixed_data={"email": "erin@example.com"})

    open_link(browser, f"/flows/invited/?itoken={token}")
    assert browser.stage_type == "prompt"
    assert 'value="erin@example.com"' in browser.last.text  # type: ignore[union-attr]
    browser.submit(
        "invited",
        username="erin",
        email="mallory@example.com",
        password="a long enough passphrase",
        password_repeat="a long enough passphrase",
    )

    assert browser.redirect_target == "/"
    with app.app_context():
        user = app.extensions["flows"].user_store.find_by_identifier("erin", ["username"])
        assert user is not None
        assert user.email == "erin@example.com"


def test_fixed_data_is_merged_over_existing_prompt_data_only_for_its_keys(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], invite: Callable[..., str]
) -> None:
    make_flow("second", "dummy", "invitation", "dummy", designation="enrollment")
    token = invite(flow_slug=None, fixed_data={"email": "carol@example.com"})
    # The invitation stage only reads the link in the request that reaches it, so a
    # stage before it means the link is opened on the step that runs it: the dummy's POST.
    browser.start("second")
    edit_plan_context(
        browser.client,
        "second",
        lambda context: context.update(
            {PROMPT_DATA: {"username": "carol", "email": "old@example.com"}}
        ),
    )
    browser.post(
        f"/flows/second/?itoken={token}",
        {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()},
    )
    if not browser.htmx:
        browser.follow()
    assert browser.stage_type == "invitation"
    browser.step("second")  # "Continue"

    assert browser.stage_type == "dummy"
    assert context_of(browser, "second")[PROMPT_DATA] == {
        "username": "carol",
        "email": "carol@example.com",
    }


def test_opening_a_link_spends_nothing_until_continue(
    app: Flask, browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    """Mail scanners fetch every URL in a message, GET and HEAD: the invitation stays."""
    token = invite()
    url = f"/flows/invited/?itoken={token}"
    scanner = browser.fresh()
    for _ in range(3):
        page = scanner.get(url)
        assert scanner.stage_type == "invitation"
        assert "You are invited" in page.text
        assert scanner.client.head(url).status_code == 200
    assert invitation_row(app, token).used_at is None
    assert INVITATION not in context_of(scanner)

    open_link(browser, url)
    assert browser.stage_type == "dummy"
    assert invitation_row(app, token).used_at is not None
    # The scanner's own "Continue" now finds the invitation spent.
    assert_denied(scanner.step("invited"), scanner, MSG_USED)


def test_a_new_link_starts_afresh_over_an_older_plan(
    app: Flask, browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    first = invite(fixed_data={"email": "first@example.com"})
    second = invite(fixed_data={"email": "second@example.com"})
    open_link(browser, f"/flows/invited/?itoken={first}")
    assert context_of(browser)[PROMPT_DATA] == {"email": "first@example.com"}

    open_link(browser, f"/flows/invited/?itoken={second}")
    assert browser.stage_type == "dummy"
    assert context_of(browser)[PROMPT_DATA] == {"email": "second@example.com"}
    assert context_of(browser)[INVITATION] == invitation_row(app, second).id


def test_the_same_link_opened_again_resumes_the_plan(
    app: Flask, make_flow: Callable[..., Flow], invite: Callable[..., str]
) -> None:
    """Someone who accepted, went on, then clicked the link in the mail again keeps their
    progress (a single-use link would otherwise now be refused as used)."""
    make_flow("invited", "invitation", "dummy", "dummy", designation="enrollment")
    token = invite()
    browser = FlowBrowser(app.test_client())
    open_link(browser, f"/flows/invited/?itoken={token}")
    browser.step("invited")  # past the first dummy
    step = browser.step_token()

    browser.get(f"/flows/invited/?itoken={token}")
    assert browser.stage_type == "dummy"
    assert browser.step_token() == step
    assert "already been used" not in browser.last.text  # type: ignore[union-attr]


def test_a_forged_link_does_not_discard_a_running_plan(
    app: Flask, make_flow: Callable[..., Flow], invite: Callable[..., str]
) -> None:
    make_flow("invited", "invitation", "dummy", "dummy", designation="enrollment")
    browser = FlowBrowser(app.test_client())
    open_link(browser, f"/flows/invited/?itoken={invite()}")
    browser.step("invited")
    step = browser.step_token()
    for forged in ("x" * 43, "x" * 1000):
        browser.get(f"/flows/invited/?itoken={forged}")
        assert browser.stage_type == "dummy"
        assert browser.step_token() == step


def test_continue_without_a_csrf_token_accepts_nothing(
    app: Flask, browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    token = invite()
    browser.get(f"/flows/invited/?itoken={token}")
    browser.post("/flows/invited/", {"flow_step": browser.step_token()})
    browser.settle()
    assert browser.stage_type == "invitation"
    assert invitation_row(app, token).used_at is None


def test_an_expired_link_is_refused(
    browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    token = invite(expires_in=timedelta(seconds=-1))
    assert_denied(browser.get(f"/flows/invited/?itoken={token}"), browser, MSG_EXPIRED)


def test_a_single_use_link_works_once(
    app: Flask, browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    token = invite()
    open_link(browser, f"/flows/invited/?itoken={token}")
    assert browser.stage_type == "dummy"

    other = browser.fresh()
    assert_denied(other.get(f"/flows/invited/?itoken={token}"), other, MSG_USED)
    # The same browser starting over cannot use it again either.
    browser.client.post("/flows/invited/cancel/", data={"csrf_token": browser.csrf_token()})
    again = browser.fresh()
    assert_denied(again.get(f"/flows/invited/?itoken={token}"), again, MSG_USED)


def test_the_single_use_check_holds_against_a_stale_read(
    app: Flask, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    """Two requests that both read ``used_at IS NULL`` before either wrote: one wins."""
    token = invite()
    stale = invitation_row(app, token)
    assert stale.used_at is None
    with app.app_context():
        first = _spend(db.session, stale, utcnow())
        db.session.commit()
        second = _spend(db.session, stale, utcnow())
        db.session.commit()
    assert (first, second) == (True, False)


def test_a_multi_use_link_works_more_than_once(
    app: Flask, browser: FlowBrowser, invited_flow: Flow, invite: Callable[..., str]
) -> None:
    token = invite(single_use=False)
    for client in (browser, browser.fresh(), browser.fresh()):
        open_link(client, f"/flows/invited/?itoken={token}")
        assert client.stage_type == "dummy"
        assert context_of(client)[PROMPT_DATA] == FIXED


def test_a_missing_token_is_refused(browser: FlowBrowser, invited_flow: Flow) -> None:
    assert_denied(browser.get("/flows/invited/"), browser, MSG_MISSING)
    assert_denied(browser.get("/flows/invited/?itoken="), browser, MSG_MISSING)


@pytest.mark.parametrize("kind", ["unknown", "tampered", "truncated", "oversized", "foreign"])
def test_an_invalid_token_is_refused(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    invited_flow: Flow,
    invite: Callable[..., str],
    kind: str,
) -> None:
    make_flow("elsewhere", "invitation", "dummy", designation="enrollment")
    token = invite()
    bad = {
        "unknown": "x" * 43,
        "tampered": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "truncated": token[:-2],
        "oversized": token * 10,
        "foreign": token,  # an invitation for another flow
    }[kind]
    slug = "elsewhere" if kind == "foreign" else "invited"

    assert_denied(browser.get(f"/flows/{slug}/?itoken={bad}"), browser, MSG_INVALID)


def test_a_refused_link_does_not_spend_the_invitation(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], invite: Callable[..., str]
) -> None:
    make_flow("elsewhere", "invitation", "dummy", designation="enrollment")
    make_flow("invited", "invitation", "dummy", designation="enrollment")
    token = invite()
    browser.get(f"/flows/elsewhere/?itoken={token}")
    assert invitation_row(app, token).used_at is None
    open_link(browser.fresh(), f"/flows/invited/?itoken={token}")
    assert invitation_row(app, token).used_at is not None


@pytest.mark.parametrize("query", ["", "?itoken=nonsense", "expired"])
def test_continue_flow_without_invitation(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    invite: Callable[..., str],
    query: str,
) -> None:
    make_flow(
        "optional",
        ("invitation", {"continue_flow_without_invitation": True}),
        "dummy",
        designation="enrollment",
    )
    if query == "expired":
        query = f"?itoken={invite(flow_slug=None, expires_in=timedelta(seconds=-1))}"

    open_link(browser, f"/flows/optional/{query}")

    assert browser.stage_type == "dummy"
    context = context_of(browser, "optional")
    assert PROMPT_DATA not in context
    assert INVITATION not in context


def test_continue_flow_without_invitation_still_uses_a_valid_one(
    browser: FlowBrowser, make_flow: Callable[..., Flow], invite: Callable[..., str]
) -> None:
    make_flow(
        "optional",
        ("invitation", {"continue_flow_without_invitation": True}),
        "dummy",
        designation="enrollment",
    )
    token = invite(flow_slug="optional")
    open_link(browser, f"/flows/optional/?itoken={token}")
    assert context_of(browser, "optional")[PROMPT_DATA] == FIXED


def test_the_token_stays_out_of_the_logs(
    app: Flask,
    browser: FlowBrowser,
    invited_flow: Flow,
    invite: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = invite()
    open_link(browser, f"/flows/invited/?itoken={token}")
    browser.fresh().get(f"/flows/invited/?itoken={token}")
    assert "invitation: refused" in caplog.text
    assert token not in caplog.text


# -- flask flows invite --------------------------------------------------------------------


def run_invite(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["flows", "invite", *args])


def test_cli_prints_a_working_link(app: Flask, browser: FlowBrowser, invited_flow: Flow) -> None:
    result = run_invite(app, "--flow", "invited", "--data", "email=dan@example.com", "--data", "x=")

    assert result.exit_code == 0, result.output
    link = result.output.strip()
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "localhost:5000", "/flows/invited/")
    token = parts.query.removeprefix("itoken=")
    row = invitation_row(app, token)
    assert row.single_use is True
    assert row.flow_slug == "invited"
    assert row.expires is not None
    assert abs((row.expires - utcnow()) - timedelta(hours=72)) < timedelta(minutes=1)
    assert row.token_hash != token

    open_link(browser, f"{parts.path}?{parts.query}")
    assert browser.stage_type == "dummy"
    assert context_of(browser)[PROMPT_DATA] == {"email": "dan@example.com", "x": ""}
    other = browser.fresh()
    assert_denied(other.get(f"{parts.path}?{parts.query}"), other, MSG_USED)


def test_cli_multi_use_and_expiry(app: Flask, invited_flow: Flow) -> None:
    result = run_invite(app, "--flow", "invited", "--multi-use", "--expires-in", "1.5")
    assert result.exit_code == 0, result.output
    row = invitation_row(app, urlsplit(result.output.strip()).query.removeprefix("itoken="))
    assert row.single_use is False
    assert row.fixed_data == {}
    assert row.expires is not None
    assert abs((row.expires - utcnow()) - timedelta(minutes=90)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "app_config",
    [
        {"FLOWS_EXTERNAL_URL": "https://auth.example.org/app"},
        {"SERVER_NAME": "auth.example.org", "PREFERRED_URL_SCHEME": "https"},
    ],
)
def test_cli_link_uses_the_configured_external_url(
    app: Flask, invited_flow: Flow, app_config: dict[str, Any]
) -> None:
    result = run_invite(app, "--flow", "invited")
    assert result.exit_code == 0, result.output
    prefix = "/app" if "FLOWS_EXTERNAL_URL" in app_config else ""
    assert result.output.startswith(f"https://auth.example.org{prefix}/flows/invited/?itoken=")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--flow", "nope"], "there is no flow with the slug 'nope'"),
        (["--flow", "invited", "--data", "novalue"], "expected KEY=VALUE"),
        (["--flow", "invited", "--data", "=x"], "expected KEY=VALUE"),
        (["--flow", "invited", "--expires-in", "0"], "--expires-in"),
    ],
)
def test_cli_refuses_mistakes_and_creates_nothing(
    app: Flask, invited_flow: Flow, args: list[str], error: str
) -> None:
    result = run_invite(app, *args)
    assert result.exit_code != 0
    assert error in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Invitation)) == 0


def test_the_quickstart_invite_only_sign_up_shows_the_invited_address(
    app: Flask, state: FlowsState, browser: FlowBrowser, invite: Callable[..., str]
) -> None:
    """docs/quickstart.md's invite-only copy of the sign-up, applied as written: the
    default enrollment prompt starts from the invitation's `--data email=…` (the
    person may still change it)."""
    docs = (Path(__file__).parent.parent / "docs" / "quickstart.md").read_text()
    section = docs.split("invite-only copy of it:", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    with app.app_context():
        install_default_flows(state)
        apply_blueprint(state, example)
        db.session.commit()
    token = invite(flow_slug="my-invite-only-signup", fixed_data={"email": "dan@example.com"})

    open_link(browser, f"/flows/my-invite-only-signup/?itoken={token}")

    assert browser.stage_type == "prompt"
    assert 'value="dan@example.com"' in browser.last.text  # type: ignore[union-attr]


def test_cli_prints_a_code_to_type(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """`invite --code` prints a code made to be read and typed (20 letters and digits in
    groups of four, no look-alikes), which a prompt field `token` takes however it is
    typed: any case, spaces for dashes, O for 0. A link with it works too."""
    code_prompt = [{"field_key": "token", "type": "text", "label": "Invitation code"}]
    make_flow(
        "paper",
        ("prompt", {"fields": code_prompt}),
        "invitation",
        "dummy",
        designation="enrollment",
    )
    result = run_invite(app, "--flow", "paper", "--code")
    assert result.exit_code == 0, result.output
    code = result.output.strip()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}", code), code
    typed = code.replace("-", " ").lower().replace("0", "o").replace("1", "l")
    browser.start("paper")
    browser.step("paper", token=typed)
    assert browser.stage_type == "dummy"
    with app.app_context():
        used = db.session.scalar(sa.select(Invitation).where(Invitation.used_at.is_not(None)))
        assert used is not None and used.token_hash == hash_token(code.replace("-", ""))

    make_flow("linked", "invitation", "dummy", designation="enrollment")
    second = run_invite(app, "--flow", "linked", "--code").output.strip()
    linked = browser.fresh()
    open_link(linked, f"/flows/linked/?itoken={second}")
    assert linked.stage_type == "dummy"
