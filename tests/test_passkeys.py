"""Passkeys (WebAuthn) through HTTP: setting one up, using it as the second factor and
signing in with it alone, the relying party the ceremonies are bound to, and what must
never leak (the browser's answer, the public key) into logs or the session cookie.

The browser's side of each ceremony is played by :class:`SoftAuthenticator`: it reads the
options a page hands to ``passkeys.js`` (``data-flows-passkey-options``) and returns what
the page would post in its hidden ``passkey`` field. In tests the relying party is the
request's host: RP ID ``localhost``, origin ``http://localhost``.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import pyotp
import pytest
import sqlalchemy as sa
import webauthn
from browsing import FlowBrowser
from click.testing import Result
from factory import MakeApp, User, close_connections, create_test_app, db
from flask import Flask
from passkey_authenticator import ExcludedCredential, SoftAuthenticator
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, FlowStageBinding, migrations, signals
from flask_flows.blueprints import install_default_flows
from flask_flows.devices import SpentChallenge, TOTPDevice, WebAuthnDevice
from flask_flows.extension import FlowsState
from flask_flows.models import InvalidResponseAction
from flask_flows.otp import new_totp_secret
from flask_flows.passkeys import (
    CLONED,
    EXPIRED,
    NO_USER_VERIFICATION,
    NOT_ADDED,
    NOT_ANSWERED,
    NOT_VERIFIED,
    UNAVAILABLE_HERE,
    UNKNOWN,
)
from flask_flows.plan import PASSWORDLESS, PENDING_USER, PLANS_KEY
from flask_flows.relying_party import RelyingParty, check_config, configured, relying_party
from flask_flows.sealing import unseal
from flask_flows.stages.authenticator_validate import PASSKEY_UNAVAILABLE
from flask_flows.stages.authenticator_webauthn import NOT_CREATED
from flask_flows.stages.identification import ENTER_IDENTIFIER
from flask_flows.testing import log_in

PASSWORD = "correct horse battery"
RP_ID = "localhost"
ORIGIN = "http://localhost"
#: A flow of the setup stage alone (the signed-in user adds a passkey).
SETUP = "add"
LOGIN = "login"
VALIDATE = "authenticator_validate"
ALL_KINDS = ["totp", "static", "webauthn"]
DEFAULT_LOGIN = "default-authentication-flow"
SETTINGS = "/flows/-/settings/"
#: Where a finished login goes (its ``next``), to tell "finished" from any other redirect.
AFTER = "/after"
#: What a deployment runs with: no TESTING, no debug.
PRODUCTION = {"TESTING": False, "DEBUG": False}
#: What FLOWS_WEBAUTHN_RP_ID / _ORIGINS default to (configured() reads them by key).
UNSET = {"FLOWS_WEBAUTHN_RP_ID": None, "FLOWS_WEBAUTHN_ORIGINS": None}
PASSKEY_TABLES = {"flows_webauthn_device", "flows_spent_challenge"}

_OPTIONS = re.compile(r'data-flows-passkey-options="([^"]*)"')
_PASSKEY_ERROR = re.compile(r"data-flows-passkey-error[^>]*>(.*?)</p>", re.DOTALL)


# -- helpers ----------------------------------------------------------------------------------


def options_on(page: TestResponse | str) -> dict[str, Any]:
    """The ceremony options a page hands to passkeys.js; the page must have some."""
    text = page if isinstance(page, str) else page.text
    match = _OPTIONS.search(text)
    assert match, "no passkey options on the page"
    return json.loads(html.unescape(match.group(1)))  # type: ignore[no-any-return]


def messages(page: TestResponse) -> list[str]:
    """Why the passkey's answer was refused: the error beside the passkey button (where
    the browser's own failures show too)."""
    return [html.unescape(text) for text in _PASSKEY_ERROR.findall(page.text) if text]


def shown(browser: FlowBrowser) -> TestResponse:
    assert browser.last is not None
    return browser.last


def answer_with(browser: FlowBrowser, authenticator: SoftAuthenticator, **kwargs: Any) -> str:
    """What the page shown last posts after ``authenticator`` answered its "get" ceremony."""
    return json.dumps(authenticator.get(options_on(shown(browser)), ORIGIN, **kwargs))


def handle_of(user: User) -> bytes:
    """A fixed WebAuthn user handle per user (what the setup stage keeps for an account)."""
    return hashlib.sha256(f"handle of user {user.id}".encode()).digest()


def add_passkey(
    app: Flask,
    user: User,
    authenticator: SoftAuthenticator,
    *,
    name: str = "Phone",
    rp_id: str = RP_ID,
) -> int:
    """A passkey of ``authenticator`` for ``user``, stored as the setup stage stores one
    but without walking it, so tests of signing in do not depend on the setup stage."""
    handle = handle_of(user)
    creation = webauthn.generate_registration_options(
        rp_id=rp_id, rp_name="Test App", user_id=handle, user_name=user.username
    )
    authenticator.create(webauthn.options_to_json(creation), f"https://{rp_id}")
    credential = authenticator.credentials[-1]
    with app.app_context():
        device = WebAuthnDevice(
            user_id=str(user.id),
            name=name,
            credential_id=bytes_to_base64url(credential.id),
            public_key=credential.cose_public_key,
            sign_count=0,
            transports="internal,hybrid",
            backup_eligible=authenticator.backup_eligible,
            backed_up=authenticator.backed_up,
            aaguid=str(uuid.UUID(bytes=authenticator.aaguid)),
            user_handle=bytes_to_base64url(handle),
        )
        db.session.add(device)
        db.session.commit()
        return device.id


def add_totp(app: Flask, user: User) -> str:
    """A confirmed TOTP device for ``user``; returns its secret."""
    secret = new_totp_secret()
    with app.app_context():
        db.session.add(TOTPDevice(user_id=str(user.id), secret=secret, confirmed=True))
        db.session.commit()
    return secret


def passkeys_in(app: Flask) -> list[WebAuthnDevice]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(WebAuthnDevice).order_by(WebAuthnDevice.id)))
        db.session.expunge_all()
        return rows


def rows_of(app: Flask, model: type[Any]) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def session_cookie(browser: FlowBrowser) -> str:
    cookie = browser.client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return cookie.value


def restore_cookie(browser: FlowBrowser, value: str) -> None:
    """Put back a copy of an earlier session cookie (what a replay does)."""
    browser.client.set_cookie("session", value)


def cookie_contents(browser: FlowBrowser) -> str:
    """All the session cookie carries, readable: its signed data and every plan's sealed
    context, opened with the app's key."""
    app = browser.app
    value = session_cookie(browser)
    data = app.session_interface.get_signing_serializer(app).loads(value)  # type: ignore[attr-defined]
    with app.app_context():
        contexts = [
            unseal(plan["c"], slug, PENDING_USER)
            for slug, plan in (data.get(PLANS_KEY) or {}).items()
        ]
    return f"{value}\n{data!r}\n{contexts!r}"


@contextmanager
def completed_contexts(app: Flask) -> Iterator[list[dict[str, Any]]]:
    """The plan context of each flow that completes meanwhile."""
    contexts: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        contexts.append(dict(kwargs["plan"].context))

    with signals.flow_completed.connected_to(receiver, sender=app):
        yield contexts


def cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["flows", *args])


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob", password=PASSWORD)


@pytest.fixture
def setup_flow(make_flow: Callable[..., Flow]) -> Flow:
    return make_flow(SETUP, "authenticator_webauthn", designation="stage_configuration")


@pytest.fixture
def adding(app: Flask, alice: User, setup_flow: Flow) -> FlowBrowser:
    """Alice, signed in (htmx), on the setup page."""
    browser = FlowBrowser(app.test_client(), htmx=True)
    log_in(browser.client, alice)
    browser.start(SETUP)
    return browser


@pytest.fixture
def mfa_flow(make_flow: Callable[..., Flow]) -> Callable[..., Flow]:
    """``mfa_flow(**validate_config)``: identification → password → authenticator_validate
    (every kind, passkeys too) → user_login."""

    def make(**config: Any) -> Flow:
        validate = {"device_classes": ALL_KINDS, **config}
        return make_flow(LOGIN, "identification", "password", (VALIDATE, validate), "user_login")

    return make


@pytest.fixture
def two_step_flow(make_flow: Callable[..., Flow]) -> Flow:
    """The login on two pages with passkey sign-in: identification (``webauthn_stage``) →
    password → authenticator_validate → user_login."""
    return make_flow(
        LOGIN,
        ("identification", {"webauthn_stage": f"{LOGIN}-2-{VALIDATE}"}),
        "password",
        (VALIDATE, {"device_classes": ALL_KINDS}),
        "user_login",
    )


@pytest.fixture
def default_flows(app: Flask, state: FlowsState) -> None:
    """The shipped flows, as `flask flows init` installs them."""
    with app.app_context():
        install_default_flows(state)
        db.session.commit()


def at_second_factor(app: Flask, username: str = "alice", htmx: bool = True) -> FlowBrowser:
    """A browser past identification and password of the ``login`` flow."""
    browser = FlowBrowser(app.test_client(), htmx=htmx)
    browser.start(LOGIN, next=AFTER)
    browser.step(LOGIN, uid_field=username)
    browser.step(LOGIN, password=PASSWORD)
    assert browser.stage_type == VALIDATE
    return browser


def on_login_page(app: Flask, slug: str = DEFAULT_LOGIN, htmx: bool = True) -> FlowBrowser:
    browser = FlowBrowser(app.test_client(), htmx=htmx)
    browser.start(slug, next=AFTER)
    assert browser.stage_type == "identification"
    return browser


# -- setting a passkey up ---------------------------------------------------------------------


def test_a_registration_stores_the_passkey_and_says_so(
    app: Flask, browser: FlowBrowser, alice: User, setup_flow: Flow
) -> None:
    """Name, credential, public key, counter, transports, backup flags, AAGUID and a user
    handle of its own are stored; the flow ends with its outcome on the settings page."""
    key = SoftAuthenticator(aaguid=bytes(range(16)), backup_eligible=False, backed_up=False)
    log_in(browser.client, alice)
    creation = options_on(browser.start(SETUP, next=SETTINGS))
    response = key.create(creation, ORIGIN)

    browser.step(SETUP, name="  Blue key  ", passkey=json.dumps(response))

    assert browser.redirect_target == SETTINGS
    assert "Your passkey was added." in browser.follow().text
    [device] = passkeys_in(app)
    credential = key.credentials[0]
    assert device.user_id == str(alice.id)
    assert device.name == "Blue key"
    assert device.credential_id == bytes_to_base64url(credential.id) == response["id"]
    assert device.public_key == credential.cose_public_key
    assert device.sign_count == 0
    assert device.transports == "internal,hybrid"
    assert (device.backup_eligible, device.backed_up) == (False, False)
    assert device.aaguid == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert device.confirmed and device.last_used is None
    # The handle is the one the options gave the authenticator: random, not the user id.
    assert (
        device.user_handle == creation["user"]["id"] == bytes_to_base64url(credential.user_handle)
    )
    assert len(base64url_to_bytes(device.user_handle)) == 32
    assert str(alice.id).encode() != base64url_to_bytes(device.user_handle)


def test_a_synced_passkey_is_stored_as_backed_up(app: Flask, adding: FlowBrowser) -> None:
    """A phone's or password manager's passkey: backup eligible, backed up, no AAGUID."""
    response = SoftAuthenticator().create(options_on(shown(adding)), ORIGIN)
    adding.step(SETUP, name="Phone", passkey=json.dumps(response))
    [device] = passkeys_in(app)
    assert (device.backup_eligible, device.backed_up) == (True, True)
    assert device.aaguid == "00000000-0000-0000-0000-000000000000"


def test_the_creation_options_ask_for_a_discoverable_verified_passkey(
    adding: FlowBrowser,
) -> None:
    """Discoverable and user-verified preferred, no attestation, this site and this user."""
    creation = options_on(shown(adding))
    assert creation["rp"] == {"id": RP_ID, "name": "Test App"}
    assert creation["user"]["name"] == creation["user"]["displayName"] == "alice"
    assert creation["authenticatorSelection"]["residentKey"] == "preferred"
    assert creation["authenticatorSelection"]["userVerification"] == "preferred"
    assert "authenticatorAttachment" not in creation["authenticatorSelection"]
    assert creation["attestation"] == "none"
    assert creation["excludeCredentials"] == []
    assert {"type": "public-key", "alg": -7} in creation["pubKeyCredParams"]  # ES256
    assert creation["timeout"] == 300_000
    assert len(base64url_to_bytes(creation["challenge"])) == 32


def test_without_javascript_the_setup_page_says_why_nothing_can_be_added(
    adding: FlowBrowser,
) -> None:
    """The note shows until passkeys.js finds WebAuthn; the button stays hidden till then."""
    page = shown(adding).text
    assert "data-flows-passkey-unavailable>Adding a passkey needs JavaScript" in page
    assert re.search(r"<button [^>]*data-flows-passkey-start[^>]* hidden>", page)
    assert 'data-flows-passkey="create"' in page
    assert '<input id="passkey" name="passkey" type="hidden" value="">' in page


def test_a_second_passkey_reuses_the_user_handle_and_excludes_the_first(
    app: Flask, adding: FlowBrowser
) -> None:
    """One account on the authenticator (one handle), and no authenticator twice."""
    phone, laptop = SoftAuthenticator(), SoftAuthenticator()
    first = options_on(shown(adding))
    adding.step(SETUP, name="Phone", passkey=json.dumps(phone.create(first, ORIGIN)))

    second = options_on(adding.start(SETUP))
    assert second["user"]["id"] == first["user"]["id"]
    assert [c["id"] for c in second["excludeCredentials"]] == [
        bytes_to_base64url(phone.credentials[0].id)
    ]
    assert second["excludeCredentials"][0]["transports"] == ["internal", "hybrid"]
    assert second["challenge"] != first["challenge"]
    with pytest.raises(ExcludedCredential):
        phone.create(second, ORIGIN)  # a browser refuses to make it again
    adding.step(SETUP, name="Laptop", passkey=json.dumps(laptop.create(second, ORIGIN)))

    devices = passkeys_in(app)
    assert [d.name for d in devices] == ["Phone", "Laptop"]
    assert len({d.user_handle for d in devices}) == 1


def test_an_empty_answer_asks_for_the_button(app: Flask, adding: FlowBrowser) -> None:
    """Submitted without the ceremony (JavaScript off, or the button not used)."""
    page = adding.step(SETUP, name="Phone", passkey="")
    assert adding.stage_type == "authenticator_webauthn"
    assert messages(page) == [NOT_CREATED]
    assert passkeys_in(app) == []


def test_a_refused_attempt_keeps_the_account_the_authenticator_was_given(
    app: Flask, adding: FlowBrowser
) -> None:
    """An authenticator may keep a credential the server refused: the next attempt names
    the same account (user handle), so the phone does not list it twice."""
    first = options_on(shown(adding))
    answer = SoftAuthenticator().create(first, "http://evil.example")
    adding.step(SETUP, name="Phone", passkey=json.dumps(answer))
    again = options_on(shown(adding))
    assert again["challenge"] != first["challenge"]
    assert again["user"]["id"] == first["user"]["id"]
    assert passkeys_in(app) == []


def _another_origin(creation: dict[str, Any]) -> dict[str, Any]:
    return SoftAuthenticator().create(creation, "https://evil.example")


def _another_rp_id(creation: dict[str, Any]) -> dict[str, Any]:
    return SoftAuthenticator().create({**creation, "rp": {"id": "evil.example"}}, ORIGIN)


def _another_challenge(creation: dict[str, Any]) -> dict[str, Any]:
    return SoftAuthenticator().create({**creation, "challenge": "A" * 43}, ORIGIN)


def _tampered(creation: dict[str, Any]) -> dict[str, Any]:
    """The client data rewritten after the authenticator answered (a "get", not a
    "create")."""
    response = SoftAuthenticator().create(creation, ORIGIN)
    client_data = json.loads(base64url_to_bytes(response["response"]["clientDataJSON"]))
    forged = json.dumps({**client_data, "type": "webauthn.get"}, separators=(",", ":"))
    response["response"]["clientDataJSON"] = bytes_to_base64url(forged.encode())
    return response


@pytest.mark.parametrize(
    "forge",
    [_another_origin, _another_rp_id, _another_challenge, _tampered],
    ids=["another origin", "another rp id", "another challenge", "tampered"],
)
def test_a_registration_that_does_not_verify_stores_nothing(
    app: Flask,
    adding: FlowBrowser,
    forge: Callable[[dict[str, Any]], dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Made for another site or challenge, or changed on the way: refused and logged;
    nothing stored, no challenge spent."""
    response = forge(options_on(shown(adding)))
    with caplog.at_level(logging.INFO, logger="flask_flows"):
        page = adding.step(SETUP, name="Phone", passkey=json.dumps(response))
    assert adding.stage_type == "authenticator_webauthn"
    assert messages(page) == [NOT_ADDED]
    refused = "passkeys: registration refused"
    if forge is _another_origin:  # said as a warning, naming the setting to fix
        refused = "passkeys: an answer came from 'https://evil.example'"
    assert refused in caplog.text
    assert passkeys_in(app) == []
    assert rows_of(app, SpentChallenge) == 0


@pytest.mark.parametrize(
    ("forge", "refusal"),
    [
        (lambda response: "not json", NOT_ANSWERED),
        (lambda response: [response], NOT_ANSWERED),
        (lambda response: {**response, "rawId": response["id"][::-1]}, NOT_ADDED),
        pytest.param(
            lambda response: {k: v for k, v in response.items() if k != "response"},
            NOT_ADDED,
        ),
        pytest.param(
            lambda response: {**response, "rawId": 5},
            NOT_ADDED,
        ),
    ],
    ids=["not json", "a list", "another raw id", "no response", "a number as raw id"],
)
def test_a_malformed_registration_answer_is_refused(
    app: Flask, adding: FlowBrowser, forge: Callable[[dict[str, Any]], Any], refusal: str
) -> None:
    """Whatever a client posts as the answer, the page says no; nothing is stored."""
    response = SoftAuthenticator().create(options_on(shown(adding)), ORIGIN)
    forged = forge(response)
    posted = forged if isinstance(forged, str) else json.dumps(forged)
    page = adding.step(SETUP, name="Phone", passkey=posted)
    assert page.status_code == 200
    assert messages(page) == [refusal]
    assert passkeys_in(app) == []


@pytest.mark.parametrize("second", ["the same answer", "another authenticator"])
def test_a_creation_challenge_is_answered_once(
    app: Flask, adding: FlowBrowser, second: str
) -> None:
    """A copy of the cookie from before the answer brings the challenge back, but the
    server remembers it was spent (flows_spent_challenge)."""
    creation = options_on(shown(adding))
    first = json.dumps(SoftAuthenticator().create(creation, ORIGIN))
    before = session_cookie(adding)
    adding.step(SETUP, name="Phone", passkey=first)
    assert adding.redirect_target == "/"
    assert rows_of(app, SpentChallenge) == 1

    restore_cookie(adding, before)
    assert options_on(adding.start(SETUP))["challenge"] == creation["challenge"]
    again = (
        first
        if second == "the same answer"
        else json.dumps(SoftAuthenticator().create(creation, ORIGIN))
    )
    page = adding.step(SETUP, name="Laptop", passkey=again)

    assert messages(page) == [EXPIRED]
    assert [d.name for d in passkeys_in(app)] == ["Phone"]


# -- the second factor ------------------------------------------------------------------------


def test_a_user_with_only_passkeys_is_asked_for_one_of_theirs(
    app: Flask, alice: User, bob: User, mfa_flow: Callable[..., Flow]
) -> None:
    """Her passkeys (not Bob's) are allowed; no code field, and without JavaScript the
    page says why it cannot go on."""
    phone, key = SoftAuthenticator(), SoftAuthenticator()
    add_passkey(app, alice, phone, name="Phone")
    add_passkey(app, alice, key, name="Key")
    add_passkey(app, bob, SoftAuthenticator())
    mfa_flow()

    page = shown(at_second_factor(app)).text

    request = options_on(page)
    assert sorted(c["id"] for c in request["allowCredentials"]) == sorted(
        bytes_to_base64url(a.credentials[0].id) for a in (phone, key)
    )
    assert request["rpId"] == RP_ID
    assert request["userVerification"] == "preferred"
    assert "Use your passkey" in page
    assert 'name="code"' not in page
    assert f"data-flows-passkey-unavailable>{PASSKEY_UNAVAILABLE}" in page


def test_a_passkey_answer_logs_in_and_updates_the_passkey(
    app: Flask, browser: FlowBrowser, alice: User, mfa_flow: Callable[..., Flow]
) -> None:
    """The passkey is the second factor after the password; its counter and last use
    are stored."""
    key = SoftAuthenticator(counts=True)
    add_passkey(app, alice, key)
    mfa_flow()
    browser.start(LOGIN, next=AFTER)
    browser.step(LOGIN, uid_field="alice")
    browser.step(LOGIN, password=PASSWORD)
    assert browser.stage_type == VALIDATE
    assert browser.whoami() == "home: anonymous"

    with completed_contexts(app) as completed:
        browser.step(LOGIN, passkey=answer_with(browser, key))

    assert browser.redirect_target == AFTER
    assert browser.whoami() == "home: alice"
    assert completed[0]["auth_methods"] == ["password", "webauthn"]
    [device] = passkeys_in(app)
    assert device.sign_count == 1
    assert device.last_used is not None


def test_another_users_passkey_is_not_registered_for_this_one(
    app: Flask, alice: User, bob: User, mfa_flow: Callable[..., Flow]
) -> None:
    """Bob's genuine passkey is no second factor for Alice."""
    add_passkey(app, alice, SoftAuthenticator())
    bobs = SoftAuthenticator()
    add_passkey(app, bob, bobs)
    mfa_flow()
    browser = at_second_factor(app)

    page = browser.step(
        LOGIN, passkey=answer_with(browser, bobs, credential_id=bobs.credentials[0].id)
    )

    assert messages(page) == [UNKNOWN]
    assert browser.stage_type == VALIDATE
    assert browser.whoami() == "home: anonymous"


def test_totp_and_a_passkey_are_both_offered_and_the_code_still_works(
    app: Flask, alice: User, mfa_flow: Callable[..., Flow]
) -> None:
    """The passkey above the code field; a TOTP code alone still passes."""
    secret = add_totp(app, alice)
    add_passkey(app, alice, SoftAuthenticator())
    mfa_flow()
    browser = at_second_factor(app, htmx=False)

    page = shown(browser).text
    assert len(options_on(page)["allowCredentials"]) == 1
    assert "Use your passkey" in page and "Or enter a code" in page
    assert 'name="code"' in page
    assert "data-flows-passkey-unavailable" not in page  # the code field works without JS

    browser.step(LOGIN, code=pyotp.TOTP(secret).now())
    assert browser.redirect_target == AFTER
    assert browser.whoami() == "home: alice"


@pytest.mark.parametrize("setting", ["required", "preferred"])
def test_required_user_verification_refuses_a_passkey_without_it(
    app: Flask, alice: User, mfa_flow: Callable[..., Flow], setting: str
) -> None:
    """``webauthn_user_verification: required`` needs the UV flag; ``preferred`` not."""
    key = SoftAuthenticator(user_verification=False)
    add_passkey(app, alice, key)
    mfa_flow(webauthn_user_verification=setting)
    browser = at_second_factor(app)
    assert options_on(shown(browser))["userVerification"] == setting

    page = browser.step(LOGIN, passkey=answer_with(browser, key))

    if setting == "required":
        assert messages(page) == [NO_USER_VERIFICATION]
        assert browser.whoami() == "home: anonymous"
    else:
        assert browser.redirect_target == AFTER
        assert browser.whoami() == "home: alice"


@pytest.mark.parametrize("cloned_by", ["a replayed counter", "a clone"])
def test_a_sign_count_that_goes_back_is_refused_and_logged(
    app: Flask,
    alice: User,
    mfa_flow: Callable[..., Flow],
    caplog: pytest.LogCaptureFixture,
    cloned_by: str,
) -> None:
    """A counter at or below the stored one means a copied key: refused with a warning,
    the stored counter kept; the genuine key goes on working."""
    key = SoftAuthenticator(counts=True)
    add_passkey(app, alice, key)
    clone = key.clone()
    mfa_flow()
    first = at_second_factor(app)
    first.step(LOGIN, passkey=answer_with(first, key))
    assert first.whoami() == "home: alice"
    assert passkeys_in(app)[0].sign_count == 1

    browser = at_second_factor(app)
    if cloned_by == "a clone":
        posted = answer_with(browser, clone)  # its own counter: 1 again
    else:
        posted = answer_with(browser, key, sign_count=0)
    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        page = browser.step(LOGIN, passkey=posted)

    assert messages(page) == [CLONED]
    assert browser.whoami() == "home: anonymous"
    [warning] = [r for r in caplog.records if r.name == "flask_flows"]
    assert warning.levelno == logging.WARNING
    assert "sign count" in warning.getMessage() and str(alice.id) in warning.getMessage()
    assert passkeys_in(app)[0].sign_count == 1
    # The genuine authenticator goes on counting, and signing in.
    browser.step(LOGIN, passkey=answer_with(browser, key))
    assert browser.whoami() == "home: alice"
    assert passkeys_in(app)[0].sign_count == 2


#: JSON nested deeper than Python's parser recurses (a RecursionError, once a 500).
_DEEP_CLIENT_DATA = bytes_to_base64url(b"[" * 5000)


@pytest.mark.parametrize(
    ("forge", "refusal"),
    [
        (lambda answer: {**answer, "rawId": answer["id"][::-1]}, UNKNOWN),
        (
            lambda answer: {**answer, "response": {**answer["response"], "signature": ""}},
            NOT_VERIFIED,
        ),
        (lambda answer: {**answer, "response": "x"}, NOT_VERIFIED),
        (lambda answer: {"id": answer["id"], "response": {}}, NOT_VERIFIED),
        (lambda answer: "[" * 5000, NOT_ANSWERED),
        (
            lambda answer: {
                **answer,
                "response": {**answer["response"], "clientDataJSON": _DEEP_CLIENT_DATA},
            },
            NOT_VERIFIED,
        ),
    ],
    ids=[
        "an unknown raw id",
        "no signature",
        "response not an object",
        "no raw id",
        "nested too deep",
        "client data nested too deep",
    ],
)
@pytest.mark.parametrize("page", ["second factor", "passkey sign-in"])
def test_a_malformed_assertion_is_refused(
    app: Flask,
    alice: User,
    two_step_flow: Flow,
    page: str,
    forge: Callable[[dict[str, Any]], Any],
    refusal: str,
) -> None:
    """A known credential id (the second factor page lists them) with a malformed rest."""
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    browser = at_second_factor(app) if page == "second factor" else on_login_page(app, LOGIN)
    answer = key.get(options_on(shown(browser)), ORIGIN)
    forged = forge(answer)

    response = browser.step(
        LOGIN, passkey=forged if isinstance(forged, str) else json.dumps(forged)
    )

    assert response.status_code == 200
    assert messages(response) == [refusal]
    assert browser.whoami() == "home: anonymous"


def test_a_passkey_sign_in_must_say_whose_it_is(
    app: Flask, alice: User, default_flows: None
) -> None:
    """A discoverable credential always names its account (its user handle); an answer
    without one is refused, whatever its signature."""
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    browser = on_login_page(app)
    answer = key.get(options_on(shown(browser)), ORIGIN)
    del answer["response"]["userHandle"]
    page = browser.step(DEFAULT_LOGIN, passkey=json.dumps(answer))
    assert messages(page) == [NOT_VERIFIED]
    assert browser.whoami() == "home: anonymous"


def test_forged_hosts_are_logged_once_not_once_each(
    app: Flask, default_flows: None, state: FlowsState, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages on a host outside the RP ID offer no passkey; a client choosing many Host
    headers grows neither the log nor the app's memory."""
    app.config["FLOWS_WEBAUTHN_RP_ID"] = "localhost"
    app.config["FLOWS_WEBAUTHN_ORIGINS"] = ["http://localhost"]
    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        for n in range(5):
            browser = FlowBrowser(app.test_client(), htmx=True)
            page = browser.get(f"http://attacker{n}.example/flows/{DEFAULT_LOGIN}/")
            assert "data-flows-passkey-options" not in page.text
    assert caplog.text.count("passkeys: not offered on") == 1
    assert len(state.passkeys_warned) == 1


# -- signing in with a passkey alone ----------------------------------------------------------


def test_the_shipped_login_page_offers_passkeys_in_the_username_autofill(
    app: Flask, default_flows: None
) -> None:
    """Conditional mediation: any passkey of this site, user verification required."""
    page = shown(on_login_page(app)).text
    request = options_on(page)
    assert request["allowCredentials"] == []
    assert request["userVerification"] == "required"
    assert request["rpId"] == RP_ID
    assert re.search(r'<input [^>]*autocomplete="username webauthn"[^>]*name="uid_field"', page)
    assert "data-flows-passkey-conditional" in page
    assert "Sign in with a passkey" in page


def test_a_passkey_alone_signs_in_past_the_password_and_the_second_factor(
    app: Flask, browser: FlowBrowser, alice: User, default_flows: None
) -> None:
    """No username, no password; and the TOTP Alice also has is not asked for."""
    add_totp(app, alice)
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    browser.start(DEFAULT_LOGIN, next=AFTER)

    with completed_contexts(app) as completed:
        browser.step(DEFAULT_LOGIN, passkey=answer_with(browser, key))

    assert browser.redirect_target == AFTER
    assert browser.whoami() == "home: alice"
    assert completed[0]["auth_methods"] == [PASSWORDLESS]
    assert passkeys_in(app)[0].last_used is not None


def test_a_passkey_sign_in_needs_user_verification(
    app: Flask, alice: User, default_flows: None
) -> None:
    """Possession alone is one factor: without a PIN or biometric it does not sign in."""
    key = SoftAuthenticator(user_verification=False)
    add_passkey(app, alice, key)
    browser = on_login_page(app)

    page = browser.step(DEFAULT_LOGIN, passkey=answer_with(browser, key))

    assert messages(page) == [NO_USER_VERIFICATION]
    assert browser.stage_type == "identification"
    assert browser.whoami() == "home: anonymous"


def test_an_unknown_passkey_is_refused(app: Flask, alice: User, default_flows: None) -> None:
    """A passkey made for this site but not stored (or since removed)."""
    stranger = SoftAuthenticator()
    stranger.create(
        webauthn.options_to_json(
            webauthn.generate_registration_options(
                rp_id=RP_ID, rp_name="Test App", user_id=b"x" * 32, user_name="alice"
            )
        ),
        ORIGIN,
    )
    browser = on_login_page(app)

    page = browser.step(DEFAULT_LOGIN, passkey=answer_with(browser, stranger))

    assert messages(page) == [UNKNOWN]
    assert browser.whoami() == "home: anonymous"


def test_a_user_handle_of_another_account_is_refused(
    app: Flask, alice: User, bob: User, default_flows: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Alice's passkey answering as Bob's account (its user handle) is refused, logged."""
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    add_passkey(app, bob, SoftAuthenticator())
    browser = on_login_page(app)

    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        page = browser.step(
            DEFAULT_LOGIN, passkey=answer_with(browser, key, user_handle=handle_of(bob))
        )

    assert messages(page) == [NOT_VERIFIED]
    assert "answered for another account" in caplog.text
    assert browser.whoami() == "home: anonymous"


@pytest.mark.parametrize("password_on_page", [False, True], ids=["two steps", "one page"])
def test_a_passkey_login_never_counts_for_an_account_named_later(
    app: Flask,
    alice: User,
    bob: User,
    make_flow: Callable[..., Flow],
    password_on_page: bool,
) -> None:
    """A restart that keeps the plan's context (``restart_with_context``) brings the
    identification page back after bob's passkey login: alice's name typed there must
    still need her password and her second factor."""
    add_totp(app, alice)
    key = SoftAuthenticator()
    add_passkey(app, bob, key)
    prompt = ("prompt", {"fields": [{"field_key": "terms", "type": "text", "required": True}]})
    if password_on_page:
        identification = {"webauthn_stage": "login-1-authenticator_validate"}
        identification["password_stage"] = "login-3-password"
        stages: tuple[Any, ...] = (
            ("identification", identification),
            (VALIDATE, {"device_classes": ALL_KINDS}),
            prompt,
            "password",
        )
    else:
        identification = {"webauthn_stage": "login-2-authenticator_validate"}
        stages = (
            ("identification", identification),
            "password",
            (VALIDATE, {"device_classes": ALL_KINDS}),
            prompt,
        )
    flow = make_flow(LOGIN, *stages, "user_login")
    with app.app_context():
        bindings = db.session.scalars(
            sa.select(FlowStageBinding).where(FlowStageBinding.flow_id == flow.id)
        ).all()
        for binding in bindings:
            binding.invalid_response_action = InvalidResponseAction.restart_with_context
            if binding.stage.type == "password" and password_on_page:
                db.session.delete(binding)  # named by the identification stage only
        db.session.commit()
    browser = on_login_page(app, LOGIN)
    browser.step(LOGIN, passkey=json.dumps(key.get(options_on(shown(browser)), ORIGIN)))
    assert browser.stage_type == "prompt"  # bob, past both factors
    browser.step(LOGIN, terms="")  # refused: the flow restarts, keeping its context
    browser.settle()
    assert browser.stage_type == "identification"

    if password_on_page:
        browser.step(LOGIN, uid_field="alice", password=PASSWORD)
    else:
        browser.step(LOGIN, uid_field="alice")
        assert browser.stage_type == "password"
        browser.step(LOGIN, password=PASSWORD)
    assert browser.stage_type == VALIDATE  # her authenticator app, not skipped
    assert browser.whoami() == "home: anonymous"


def test_a_passkey_sign_in_is_not_replayed(app: Flask, alice: User, default_flows: None) -> None:
    """The same assertion, posted again with the cookie from before it, signs no one in."""
    key = SoftAuthenticator()  # a synced passkey: its counter stays 0, so only the
    add_passkey(app, alice, key)  # spent challenge can tell the replay apart
    browser = on_login_page(app)
    posted = answer_with(browser, key)
    before = session_cookie(browser)
    browser.step(DEFAULT_LOGIN, passkey=posted)
    assert browser.whoami() == "home: alice"
    used = passkeys_in(app)[0].last_used
    assert used is not None

    restore_cookie(browser, before)
    assert browser.whoami() == "home: anonymous"
    browser.start(DEFAULT_LOGIN)
    page = browser.step(DEFAULT_LOGIN, passkey=posted)

    assert messages(page) == [EXPIRED]
    assert browser.whoami() == "home: anonymous"
    assert passkeys_in(app)[0].last_used == used  # the replay's use was not kept


def test_the_two_step_login_skips_its_password_stage_too(
    app: Flask, browser: FlowBrowser, alice: User, two_step_flow: Flow
) -> None:
    """With the password on a page of its own, that page is skipped as well."""
    add_totp(app, alice)
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    browser.start(LOGIN, next=AFTER)
    assert 'autocomplete="username webauthn"' in shown(browser).text
    assert 'name="password"' not in shown(browser).text

    browser.step(LOGIN, passkey=answer_with(browser, key))

    assert browser.redirect_target == AFTER
    assert browser.whoami() == "home: alice"


def test_typing_the_username_still_asks_for_password_and_second_factor(
    app: Flask, alice: User, two_step_flow: Flow
) -> None:
    """The passkey skip is for a passkey sign-in only."""
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    browser = on_login_page(app, LOGIN)
    browser.step(LOGIN, uid_field="alice")
    assert browser.stage_type == "password"
    browser.step(LOGIN, password=PASSWORD)
    assert browser.stage_type == VALIDATE
    browser.step(LOGIN, passkey=answer_with(browser, key))
    assert browser.whoami() == "home: alice"


def test_without_webauthn_stage_a_posted_passkey_is_ignored(
    app: Flask, alice: User, login_flow: Flow
) -> None:
    """A login page that offers no passkey takes none: no sign-in, no skipped password."""
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    browser = on_login_page(app, LOGIN)
    page = shown(browser).text
    assert "data-flows-passkey-options" not in page
    assert 'autocomplete="username"' in page
    request = webauthn.options_to_json(webauthn.generate_authentication_options(rp_id=RP_ID))

    page_after = browser.step(LOGIN, passkey=json.dumps(key.get(request, ORIGIN)))

    assert browser.stage_type == "identification"
    assert ENTER_IDENTIFIER in page_after.text
    assert browser.whoami() == "home: anonymous"
    browser.step(LOGIN, uid_field="alice", passkey=json.dumps(key.get(request, ORIGIN)))
    assert browser.stage_type == "password"


@pytest.mark.parametrize(
    ("webauthn_stage", "validate_config"),
    [
        (f"{LOGIN}-1-password", {"device_classes": ALL_KINDS}),
        (f"{LOGIN}-2-{VALIDATE}", {"device_classes": ["totp", "static"]}),
        ("no-such-stage", {"device_classes": ALL_KINDS}),
    ],
    ids=["a password stage", "validation without passkeys", "no stage"],
)
def test_webauthn_stage_must_name_a_validation_stage_that_takes_passkeys(
    app: Flask,
    make_flow: Callable[..., Flow],
    webauthn_stage: str,
    validate_config: dict[str, Any],
) -> None:
    """A misnamed stage fails loudly (a ConfigError), not as a login without passkeys."""
    make_flow(
        LOGIN,
        ("identification", {"webauthn_stage": webauthn_stage}),
        "password",
        (VALIDATE, validate_config),
        "user_login",
    )
    with pytest.raises(ConfigError, match=r"field 'webauthn_stage'.*accepts passkeys"):
        FlowBrowser(app.test_client()).start(LOGIN)


# -- the relying party ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {
                "FLOWS_WEBAUTHN_RP_ID": "example.com",
                "FLOWS_WEBAUTHN_ORIGINS": ["https://example.com/", "https://login.example.com"],
                "SERVER_NAME": "ignored.example.org",
            },
            ("example.com", ("https://example.com", "https://login.example.com")),
        ),
        (
            {
                "FLOWS_WEBAUTHN_RP_ID": "example.com",
                "FLOWS_WEBAUTHN_ORIGINS": "https://example.com",
            },
            ("example.com", ("https://example.com",)),
        ),
        ({"FLOWS_WEBAUTHN_RP_ID": "example.com"}, ("example.com", ("https://example.com",))),
        (
            {"FLOWS_WEBAUTHN_RP_ID": "example.com", "SERVER_NAME": "login.example.com"},
            ("example.com", ("https://login.example.com",)),
        ),
        ({"SERVER_NAME": "localhost:5000"}, ("localhost", ("http://localhost:5000",))),
        (
            {"SERVER_NAME": "accounts.example.org:8443", "PREFERRED_URL_SCHEME": "https"},
            ("accounts.example.org", ("https://accounts.example.org:8443",)),
        ),
        (
            {"FLOWS_MAIL_BASE_URL": "https://accounts.example.org/app/"},
            ("accounts.example.org", ("https://accounts.example.org",)),
        ),
        ({"SERVER_NAME": "127.0.0.1:5000"}, ("127.0.0.1", ("https://127.0.0.1:5000",))),
        ({}, (None, ())),
    ],
    ids=[
        "rp id and origins",
        "one origin as a string",
        "rp id alone",
        "rp id and server name",
        "server name on localhost",
        "server name",
        "mail base url",
        "server name an ip address",
        "nothing",
    ],
)
def test_the_configured_relying_party(
    settings: dict[str, Any], expected: tuple[str | None, tuple[str, ...]]
) -> None:
    """FLOWS_WEBAUTHN_RP_ID and _ORIGINS first, else the site's address (SERVER_NAME,
    then FLOWS_MAIL_BASE_URL); an IP address there is kept (pages then offer no
    passkeys, and the app starts)."""
    assert configured({**UNSET, **settings}) == expected


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (
            {"FLOWS_WEBAUTHN_RP_ID": "example.com", "FLOWS_WEBAUTHN_ORIGINS": ["https://evil.org"]},
            "is not on the RP ID 'example.com'",
        ),
        (
            {
                "FLOWS_WEBAUTHN_RP_ID": "example.com",
                "FLOWS_WEBAUTHN_ORIGINS": ["https://xexample.com"],
            },
            "is not on the RP ID",
        ),
        ({"FLOWS_WEBAUTHN_RP_ID": "https://example.com"}, "is a domain such as"),
        ({"FLOWS_WEBAUTHN_RP_ID": "example.com/login"}, "is a domain such as"),
        ({"FLOWS_WEBAUTHN_RP_ID": "192.0.2.1"}, "not a URL or an IP address"),
        ({"FLOWS_WEBAUTHN_ORIGINS": ["example.com"]}, "is not an origin"),
        ({"FLOWS_WEBAUTHN_ORIGINS": ["https://example.com/login"]}, "is not an origin"),
    ],
    ids=[
        "another domain",
        "a look-alike suffix",
        "rp id as a url",
        "rp id with a path",
        "rp id an ip address",
        "origin without scheme",
        "origin with a path",
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, Any], error: str) -> None:
    """Browsers would refuse every ceremony with these: check_config says so at once."""
    with pytest.raises(ConfigError, match=re.escape(error)):
        check_config({**UNSET, **settings})


def test_settings_that_work_are_accepted() -> None:
    """Origins on the RP ID or a subdomain of it, with a port."""
    check_config(
        {
            "FLOWS_WEBAUTHN_RP_ID": "example.com",
            "FLOWS_WEBAUTHN_ORIGINS": ["https://example.com", "https://login.example.com:8443"],
        }
    )


def test_origins_off_the_rp_id_that_server_name_gives_are_refused() -> None:
    """The RP ID SERVER_NAME gives binds the origins as FLOWS_WEBAUTHN_RP_ID would."""
    settings = {"SERVER_NAME": "example.com", "FLOWS_WEBAUTHN_ORIGINS": ["https://evil.org"]}
    assert configured({**UNSET, **settings}) == ("example.com", ("https://evil.org",))
    with pytest.raises(ConfigError):
        check_config({**UNSET, **settings})


def test_an_app_with_settings_that_cannot_work_does_not_start(make_app: MakeApp) -> None:
    """Flows.init_app runs check_config."""
    with pytest.raises(ConfigError, match="FLOWS_WEBAUTHN_RP_ID"):
        make_app(FLOWS_WEBAUTHN_RP_ID="https://example.com")


def test_the_configured_relying_party_is_what_ceremonies_check(
    make_app: MakeApp, alice: User, two_step_flow: Flow
) -> None:
    """Options name the configured RP ID, on a page of a host within it only (elsewhere
    no passkey could work), and only an answer from a configured origin counts."""
    app, _ = make_app(
        FLOWS_WEBAUTHN_RP_ID="example.com", FLOWS_WEBAUTHN_ORIGINS=["https://login.example.com"]
    )
    with app.test_request_context("http://evil.example/"):
        assert relying_party(app.extensions["flows"]) == RelyingParty(
            "example.com", "Test App", ("https://login.example.com",)
        )
    key = SoftAuthenticator()
    add_passkey(app, alice, key, rp_id="example.com")
    browser = FlowBrowser(app.test_client(), htmx=True)
    assert "data-flows-passkey-options" not in browser.start(LOGIN).text  # on localhost
    request = options_on(browser.get(f"https://login.example.com/flows/{LOGIN}/"))
    assert request["rpId"] == "example.com"

    page = browser.step(LOGIN, passkey=json.dumps(key.get(request, ORIGIN)))
    assert messages(page) == [NOT_VERIFIED]
    assert browser.client.get("/", base_url="https://login.example.com").text == "home: anonymous"

    request = options_on(page)
    browser.step(LOGIN, passkey=json.dumps(key.get(request, "https://login.example.com")))
    home = browser.client.get("/", base_url="https://login.example.com")
    assert home.text == "home: alice"


#: Flows (their stages) and whether their pages offer passkeys.
_FLOWS_OFFERING: dict[str, tuple[tuple[Any, ...], bool]] = {
    "passkey setup": (("authenticator_webauthn",), True),
    "passkey sign-in": (
        (
            ("identification", {"webauthn_stage": "x-1-authenticator_validate"}),
            (VALIDATE, {"device_classes": ALL_KINDS}),
        ),
        True,
    ),
    "passkey second factor": (
        ("identification", "password", (VALIDATE, {"device_classes": ["totp", "webauthn"]})),
        True,
    ),
    "password login": (("identification", "password", "user_login"), False),
    "codes only": (("identification", "password", VALIDATE), False),
}


@pytest.mark.parametrize("flow", list(_FLOWS_OFFERING))
def test_an_app_that_offers_passkeys_without_its_domain_refuses_to_start(
    make_app: MakeApp, make_flow: Callable[..., Flow], flow: str
) -> None:
    """Its pages could not run a ceremony (the Host header cannot be trusted to name the
    site): the app stops at start-up, not on every login page."""
    stages, offering = _FLOWS_OFFERING[flow]
    make_flow("x", *stages)
    if not offering:
        app, _ = make_app(**PRODUCTION)
        assert "flows" in app.extensions
        return
    with pytest.raises(ConfigError, match=r"stage 'x-\d-[a-z_]+' uses passkeys.*FLOWS_WEBAUTHN"):
        make_app(**PRODUCTION)


def test_under_the_flask_command_the_missing_domain_is_logged(
    make_app: MakeApp, setup_flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    """``flask flows db upgrade`` must not die with the app."""
    with click.Context(click.Command("flask")), caplog.at_level(logging.ERROR):
        make_app(**PRODUCTION)
    assert "uses passkeys" in caplog.text


def test_an_app_started_by_the_flask_command_offers_no_passkeys_but_logs_in(
    make_app: MakeApp,
    alice: User,
    two_step_flow: Flow,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``flask run`` only logs the missing domain: its login page then offers no passkey
    (and says why in the log) rather than failing for everyone."""
    with click.Context(click.Command("flask")), caplog.at_level(logging.ERROR):
        app, _ = make_app(**PRODUCTION)
    browser = FlowBrowser(app.test_client(), htmx=True)
    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        page = browser.start(LOGIN)
    assert page.status_code == 200
    assert "data-flows-passkey-options" not in page.text
    assert "passkeys: not offered: passkeys need this site's domain" in caplog.text
    browser.step(LOGIN, uid_field="alice")
    browser.step(LOGIN, password=PASSWORD)
    assert browser.whoami() == "home: alice"


@pytest.mark.parametrize(
    "setting",
    [
        {"FLOWS_WEBAUTHN_RP_ID": "example.com"},
        {"SERVER_NAME": "example.com"},
        {"FLOWS_MAIL_BASE_URL": "https://example.com"},
        {"TRUSTED_HOSTS": ["example.com"]},
    ],
    ids=["rp id", "server name", "mail base url", "trusted hosts"],
)
def test_an_app_that_names_its_domain_starts(
    make_app: MakeApp, setup_flow: Flow, setting: dict[str, Any]
) -> None:
    """Any one of the settings (or hosts Flask checks) is enough."""
    app, _ = make_app(**PRODUCTION, **setting)
    assert "flows" in app.extensions


def test_on_an_ip_address_no_page_offers_passkeys(
    app: Flask, alice: User, default_flows: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Browsers refuse an IP address as RP ID (``flask run``'s 127.0.0.1): the login page
    offers no passkey there rather than a button that fails, and the password works."""
    add_passkey(app, alice, SoftAuthenticator())
    browser = FlowBrowser(app.test_client(), htmx=True)
    with caplog.at_level(logging.WARNING, logger="flask_flows"):
        page = browser.get(f"http://127.0.0.1/flows/{DEFAULT_LOGIN}/")
    assert browser.stage_type == "identification"
    assert "data-flows-passkey-options" not in page.text
    assert "passkeys: not offered on 127.0.0.1" in caplog.text
    assert 'name="password"' in page.text
    browser.step(uid_field="alice", password=PASSWORD)
    assert browser.stage_type == VALIDATE  # her passkey is her second factor, not shown here
    assert 'data-flows-passkey-options="' not in shown(browser).text
    # She is told why (this address), not to get another browser.
    assert f"data-flows-passkey-unavailable>{UNAVAILABLE_HERE}" in shown(browser).text


# -- nothing secret leaks ---------------------------------------------------------------------


def test_no_log_record_holds_an_answer_or_a_public_key(
    app: Flask,
    alice: User,
    setup_flow: Flow,
    mfa_flow: Callable[..., Flow],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused and accepted answers, registration and login, every logger and level."""
    key = SoftAuthenticator()
    posted: list[str] = []
    with caplog.at_level(logging.DEBUG):
        adding = FlowBrowser(app.test_client(), htmx=True)
        log_in(adding.client, alice)
        posted.append(json.dumps(_tampered(options_on(adding.start(SETUP)))))
        adding.step(SETUP, name="Phone", passkey=posted[-1])
        posted.append(json.dumps(key.create(options_on(shown(adding)), ORIGIN)))
        adding.step(SETUP, name="Phone", passkey=posted[-1])
        mfa_flow()
        browser = at_second_factor(app)
        for kwargs in ({"user_handle": b"someone else"}, {}):
            posted.append(answer_with(browser, key, **kwargs))
            browser.step(LOGIN, passkey=posted[-1])
        assert browser.whoami() == "home: alice"

    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert "passkeys:" in logged  # the refusals were logged, and are read here
    public_key = passkeys_in(app)[0].public_key
    for secret in [
        bytes_to_base64url(public_key),
        public_key.hex(),
        repr(public_key),
        *(p for answer in posted for p in _parts(json.loads(answer))),
    ]:
        assert secret not in logged


def _parts(answer: dict[str, Any]) -> list[str]:
    """The posted answer as a whole and each of its binary parts."""
    return [json.dumps(answer), *(v for v in answer["response"].values() if isinstance(v, str))]


def test_the_session_cookie_never_holds_the_public_key(
    app: Flask, alice: User, setup_flow: Flow, mfa_flow: Callable[..., Flow]
) -> None:
    """Nor the attestation: at every step of setup and login, the plans opened."""
    key = SoftAuthenticator()
    browser = FlowBrowser(app.test_client(), htmx=True)
    log_in(browser.client, alice)
    seen = [cookie_contents(browser)]
    answer = key.create(options_on(browser.start(SETUP)), ORIGIN)
    seen.append(cookie_contents(browser))
    browser.step(SETUP, name="Phone", passkey=json.dumps(answer))
    seen.append(cookie_contents(browser))
    mfa_flow()
    login = at_second_factor(app)
    seen.append(cookie_contents(login))
    login.step(LOGIN, passkey=answer_with(login, key))
    assert login.whoami() == "home: alice"
    seen.append(cookie_contents(login))

    public_key = passkeys_in(app)[0].public_key
    assert any(PLANS_KEY in contents for contents in seen)  # plans were opened and read
    for contents in seen:
        for encoded in (bytes_to_base64url(public_key), public_key.hex(), repr(public_key)):
            assert encoded not in contents
        assert answer["response"]["attestationObject"] not in contents


# -- support and settings ---------------------------------------------------------------------


def test_mfa_reset_removes_passkeys_too(
    app: Flask, alice: User, bob: User, default_flows: None
) -> None:
    """Every second factor of Alice's goes, her passkey with it (Bob's stays)."""
    add_totp(app, alice)
    key = SoftAuthenticator()
    add_passkey(app, alice, key)
    add_passkey(app, bob, SoftAuthenticator())

    result = cli(app, "mfa", "reset", "alice", "--yes")

    assert result.exit_code == 0, result.output
    assert "Removed 2 second factors of 'alice'." in result.output
    assert [d.user_id for d in passkeys_in(app)] == [str(bob.id)]
    browser = on_login_page(app)
    page = browser.step(DEFAULT_LOGIN, passkey=answer_with(browser, key))
    assert messages(page) == [UNKNOWN]
    assert browser.whoami() == "home: anonymous"


def test_the_settings_page_lists_a_passkey_and_removes_it_with_the_password(
    app: Flask, alice: User, login_flow: Flow
) -> None:
    """Name, kind and whether it is synced; a wrong password removes nothing."""
    synced = add_passkey(app, alice, SoftAuthenticator(), name="Phone passkey")
    add_passkey(
        app, alice, SoftAuthenticator(backup_eligible=False, backed_up=False), name="Blue key"
    )
    browser = FlowBrowser(app.test_client())
    log_in(browser.client, alice)

    page = browser.get(SETTINGS).text
    assert "Phone passkey" in page and "Blue key" in page
    assert page.count("<dt>Kind</dt><dd>Passkey</dd>") == 2
    assert "<dt>Synced</dt><dd>Yes, it is backed up" in page
    assert "<dt>Synced</dt><dd>No, it stays on the device" in page

    url = f"{SETTINGS}authenticators/webauthn/{synced}/remove/"
    token = browser.csrf_token()
    assert (
        browser.client.post(url, data={"csrf_token": token, "password": "wrong"}).status_code == 200
    )
    assert len(passkeys_in(app)) == 2
    response = browser.client.post(url, data={"csrf_token": token, "password": PASSWORD})
    assert response.status_code == 303
    assert [d.name for d in passkeys_in(app)] == ["Blue key"]
    assert "Phone passkey was removed." in browser.get(SETTINGS).text


# -- the shipped flows, end to end ------------------------------------------------------------


def test_the_shipped_flows_add_a_passkey_and_sign_in_with_it(
    app: Flask, alice: User, default_flows: None
) -> None:
    """Settings → "Add a passkey" → password → create; then the passkey signs in alone on
    the login page, and is asked for after a password."""
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.log_in("alice", PASSWORD)
    assert browser.whoami() == "home: alice"
    link = re.search(r'href="([^"]+)">Add a passkey<', browser.get(SETTINGS).text)
    assert link
    browser.get(html.unescape(link.group(1)))
    assert browser.stage_type == "password"  # re-authentication first
    browser.step(password=PASSWORD)
    assert browser.stage_type == "authenticator_webauthn"
    phone = SoftAuthenticator()
    browser.step(
        name="My phone", passkey=json.dumps(phone.create(options_on(shown(browser)), ORIGIN))
    )
    settings = browser.follow().text
    assert "Your passkey was added." in settings
    assert "My phone" in settings and "<dt>Synced</dt><dd>Yes" in settings

    alone = on_login_page(app)
    alone.step(DEFAULT_LOGIN, passkey=answer_with(alone, phone))
    assert alone.redirect_target == AFTER
    assert alone.whoami() == "home: alice"

    with_password = FlowBrowser(app.test_client(), htmx=True)
    with_password.log_in("alice", PASSWORD)
    assert with_password.stage_type == VALIDATE
    assert with_password.whoami() == "home: anonymous"
    with_password.step(DEFAULT_LOGIN, passkey=answer_with(with_password, phone))
    assert with_password.whoami() == "home: alice"


# -- the schema -------------------------------------------------------------------------------


def test_downgrading_to_0002_drops_the_passkey_tables_and_upgrading_brings_them_back(
    empty_database_url: str,
) -> None:
    """Migration 0003 goes down and up again, and leaves the older tables alone."""
    app, _ = create_test_app(empty_database_url)
    head = migrations.head()
    try:
        assert cli(app, "db", "upgrade").exit_code == 0
        assert table_names(empty_database_url) >= PASSKEY_TABLES

        result = cli(app, "db", "downgrade", "0002", "--yes")
        assert result.exit_code == 0, result.output
        assert f"flask-flows tables: {head} -> 0002" in result.output
        tables = table_names(empty_database_url)
        assert not PASSKEY_TABLES & tables
        assert {"flows_flow", "flows_stage", "flows_totp_device"} <= tables

        result = cli(app, "db", "upgrade")
        assert result.exit_code == 0, result.output
        assert f"flask-flows tables: 0002 -> {head} (head)" in result.output
        assert table_names(empty_database_url) >= PASSKEY_TABLES
    finally:
        close_connections([app])
