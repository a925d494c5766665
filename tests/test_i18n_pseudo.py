"""The pseudo-locale test: every message of the catalogue marked ‹…›, pages and mails
show no English outside the marks. It keeps a text added without ``_flows``/``N_`` (or
a configured text missing from the catalogue) from escaping translation.

Every stage template, the refusal, lockout, link and error pages, the settings page with
its notices, and every mail are rendered in the pseudo-locale ``eo``, through HTTP as a
person meets them; each test collects its pages and lists every one that leaks."""

from __future__ import annotations

import hashlib
import html as html_module
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
import webauthn
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from browsing import FlowBrowser, edit_plan_context
from factory import User, bind_policy, db, pass_time
from flask import Flask
from passkey_authenticator import SoftAuthenticator
from smtp_sink import Mailbox, bodies, link_in
from webauthn.helpers import bytes_to_base64url
from werkzeug.test import TestResponse

from flask_flows import Flow, Flows
from flask_flows.devices import TOTPDevice, WebAuthnDevice
from flask_flows.extension import resource_dir
from flask_flows.grants import create_invitation
from flask_flows.i18n import TRANSLATIONS
from flask_flows.mail import wait_for_outgoing_mail
from flask_flows.models import utcnow
from flask_flows.otp import new_totp_secret
from flask_flows.stages.base import StageForm, StageResult, StageRun, StageType
from flask_flows.testing import log_in

PASSWORD = "correct horse battery"
#: The test client's origin, which passkeys accept under TESTING.
ORIGIN = "http://localhost"
SETTINGS = "/flows/-/settings/"
#: The stage types that have a page: one template each.
STAGE_TEMPLATES = {
    path.stem for path in (resource_dir("templates") / "flows/stages").glob("*.html")
}
#: Data every page may show as it is: the brand, the test users, the settings page's
#: time zone and the TOTP algorithm's name.
KNOWN = frozenset(
    {"Test App", "alice", "alice@example.com", "bob", "bob@example.com", "UTC", "SHA1"}
)

pytestmark = pytest.mark.usefixtures("defaults")


@pytest.fixture(scope="session")
def pseudo_translations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pseudo")
    _pseudo_catalogue(directory)
    return directory


@pytest.fixture
def app_config(mailbox: Mailbox, pseudo_translations: Path) -> dict[str, Any]:
    """Mail goes to the loopback SMTP server; the pseudo-locale is available."""
    return {**mailbox.config, "FLOWS_TRANSLATION_DIRECTORIES": [str(pseudo_translations)]}


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


# -- every stage ----------------------------------------------------------------------------


def test_no_text_of_a_stage_escapes_the_catalogue(
    app: Flask,
    alice: User,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
) -> None:
    """Each stage type's page (with its variants: links, passkeys, errors, notices) shows
    nothing but marked messages and data, its own default words left unconfigured."""
    bob = make_user("bob", password=PASSWORD)
    totp = _add_totp(app, alice)
    _add_passkey(app, alice)
    _add_passkey(app, bob)
    known = set(KNOWN)
    pages: dict[str, str] = {}

    # identification (sign-up and recovery links, passkey sign-in), password, the second
    # factor (codes and passkey; a passkey alone), the interactive user_login
    make_flow(
        "login",
        (
            "identification",
            {
                "enrollment_flow": "default-enrollment-flow",
                "recovery_flow": "default-recovery-flow",
                "webauthn_stage": "login-2-authenticator_validate",
            },
        ),
        "password",
        ("authenticator_validate", {"device_classes": ["totp", "static", "webauthn"]}),
        ("user_login", {"remember_me_offset": 3600}),
    )
    browser = _browser(app)
    pages["identification"] = browser.start("login").text
    pages["identification, empty"] = browser.step(uid_field="").text
    pages["password"] = browser.step(uid_field="alice").text
    pages["password, wrong"] = browser.step(password="not it").text
    pages["authenticator_validate, code and passkey"] = browser.step(password=PASSWORD).text
    pages["authenticator_validate, wrong code"] = browser.step(code="000000").text
    pages["user_login"] = browser.step(code=totp.now()).text
    assert browser.stage_type == "user_login"
    browser.step()
    pages["identification, signed in"] = browser.start("login").text
    passkey_only = _browser(app)
    passkey_only.start("login")
    passkey_only.step(uid_field="bob")
    pages["authenticator_validate, passkey alone"] = passkey_only.step(password=PASSWORD).text
    assert passkey_only.stage_type == "authenticator_validate"
    # a user with nothing set up chooses one of several setups (refused: none chosen)
    make_user("carl", password=PASSWORD)
    choose = {
        "not_configured_action": "configure",
        "configuration_stages": [
            "default-authenticator-totp-setup-stage",
            "default-authenticator-static-setup-stage",
        ],
    }
    make_flow("must", "identification", "password", ("authenticator_validate", choose))
    nothing_yet = _browser(app)
    nothing_yet.start("must")
    nothing_yet.step(uid_field="carl")
    pages["authenticator_validate, choose a setup"] = nothing_yet.step(password=PASSWORD).text
    pages["authenticator_validate, no setup chosen"] = nothing_yet.step().text
    assert nothing_yet.stage_type == "authenticator_validate"

    # the setup stages (the shipped flows), after the password that confirms it's you;
    # refused too
    for stage_type, refused in (
        ("authenticator_totp", {"name": "Work phone", "code": "000000"}),
        ("authenticator_static", {}),
        ("authenticator_webauthn", {"name": "Blue key"}),
    ):
        slug = f"default-{stage_type.replace('_', '-')}-setup"
        pages[f"password, before {stage_type}"] = browser.start(slug).text
        pages[stage_type] = browser.step(password=PASSWORD).text
        pages[f"{stage_type}, refused"] = browser.step(**refused).text
    known.update({"Work phone", "Blue key"})

    # captcha, consent (permissions, remembered for a while; or nothing listed), dummy
    make_flow("human", ("captcha", {"public_key": "site-key", "private_key": "secret-key"}))
    pages["captcha"] = browser.start("human").text
    permissions = ["Read your photos", "Post on your behalf"]
    known.update(permissions)
    make_flow(
        "photo-app",
        ("consent", {"permissions": permissions, "mode": "expiring"}),
        designation="authorization",
    )
    make_flow("chat-app", ("consent", {"mode": "permanent"}), designation="authorization")
    known.update({"photo-app", "chat-app"})  # the target: the flow's slug
    pages["consent, permissions"] = browser.start("photo-app").text
    pages["consent"] = browser.start("chat-app").text
    make_flow("try", ("dummy", {"fail": True}))
    known.add("try-0-dummy")  # its heading is the stage's name
    pages["dummy"] = browser.start("try").text
    pages["dummy, refused"] = browser.step().text

    # the email stage, for a typed address and for an account's: sent, too soon, sent
    # again, at the limit, not opened yet, opened elsewhere
    pages["email, address shown"] = _last(_sign_up(app, "carol", "carol@example.com")).text
    known.update({"carol", "carol@example.com"})
    recovery = _browser(app)
    recovery.start("default-recovery-flow")
    pages["email"] = recovery.step(uid_field="alice").text
    pages["email, too soon"] = recovery.step().text
    _later(recovery, "default-recovery-flow")
    pages["email, sent again"] = recovery.step().text
    edit_plan_context(
        recovery.client,
        "default-recovery-flow",
        lambda context: context.update(email_sends=99, email_sent_at=0),
    )
    pages["email, at the limit"] = recovery.step().text
    pages["email, not opened"] = recovery.step(opened="1").text
    phone = _browser(app)
    phone.open_link(link_in(_mail_to(mailbox, "alice@example.com")))
    pages["email, opened elsewhere"] = recovery.start("default-recovery-flow").text

    # invitation
    make_flow("invited", "invitation", "dummy", designation="enrollment")
    with app.app_context():
        _invitation, token = create_invitation(db.session, flow_slug="invited")
        db.session.commit()
    pages["invitation"] = _browser(app).get(f"/flows/invited/?itoken={token}").text
    # a code typed into a prompt, refused: the invitation page asks for it again
    code_prompt = [{"field_key": "token", "type": "text"}]
    make_flow("paper", ("prompt", {"fields": code_prompt}), "invitation", designation="enrollment")
    paper = _browser(app)
    paper.start("paper")
    pages["invitation, code refused"] = paper.step(token="not-a-code").text
    assert paper.stage_type == "invitation"
    pages["invitation, code missing"] = paper.step(token="").text

    # prompt: every kind of field, then refused twice (left empty; filled in wrongly)
    make_flow("profile", ("prompt", {"fields": PROMPT_FIELDS}), "dummy")
    known.update(_configured_texts(PROMPT_FIELDS))
    pages["prompt"] = browser.start("profile").text
    pages["prompt, empty"] = browser.step().text
    pages["prompt, wrong"] = browser.step(**WRONG_ANSWERS).text

    # user_write: a username taken meanwhile is asked for again; an address taken is said
    make_flow(
        "join",
        ("prompt", {"fields": SIGN_UP_FIELDS}),
        "user_write",
        designation="enrollment",
    )
    taken = _browser(app)
    taken.start("join")
    pages["user_write, username taken"] = _fill_sign_up(taken, "alice", "dave@example.com").text
    assert taken.stage_type == "user_write"
    failed = _browser(app)
    failed.start("join")
    pages["user_write, not saved"] = _fill_sign_up(failed, "dave", "alice@example.com").text
    assert failed.stage_type == "user_write"
    known.update({"dave", "dave@example.com"})

    # user_logout; user_delete, which shows a page only when the deletion fails
    make_flow("logout", "user_logout", designation="invalidation")
    pages["user_logout"] = browser.start("logout").text
    make_flow("leave", "user_delete", designation="unenrollment")
    with _deletions_refused():
        pages["user_delete"] = browser.start("leave").text
    assert browser.stage_type == "user_delete"

    # Every stage template, each page the stage its name begins with.
    assert {name.split(",")[0] for name in pages} == STAGE_TEMPLATES
    assert [name for name, page in pages.items() if _stage_type(page) != name.split(",")[0]] == []
    assert _leaks(pages, known | _titles_of_test_flows(app)) == {}


# -- refusals, lockouts, mailed links, errors -----------------------------------------------


def test_no_text_of_a_refusal_link_or_error_page_escapes_the_catalogue(
    app: Flask,
    flows: Flows,
    alice: User,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    mailbox: Mailbox,
) -> None:
    """The denied page (a deny stage; a flow's policy; a flow for others), the lockout
    page (a wait running; none), a mailed link's pages (continue; signed in as someone
    else; a form expired; used up; expired) and the error pages (404, 400, 500)."""
    make_user("bob", password=PASSWORD)
    shown: dict[str, TestResponse] = {}
    anonymous = _browser(app)

    make_flow("closed", "deny")
    shown["denied, deny stage"] = anonymous.start("closed")
    make_flow("members", "dummy")
    bind_policy(app, "members", "group_membership", {"group": "members"})
    shown["denied, group policy"] = anonymous.start("members")

    @flows.policy("never")
    def never(request: Any) -> bool:
        return False

    make_flow("nobody", "dummy")
    bind_policy(app, "nobody", "python", {"function": "never"})
    shown["denied, policy without a message"] = anonymous.start("nobody")
    make_flow("admins", "dummy", authentication="require_superuser")
    make_flow(
        "strangers",
        "dummy",
        authentication="require_unauthenticated",
        denied_action="message",
    )
    signed_in = _browser(app)
    log_in(signed_in.client, alice)
    shown["denied, superusers only"] = signed_in.start("admins")
    shown["denied, signed in already"] = signed_in.start("strangers")

    locked = _browser(app)
    locked.start("default-authentication-flow")
    for n in range(5):
        locked.step(uid_field="alice", password=f"guess {n}")
    shown["lockout, waiting"] = _last(locked)
    make_flow("strict", "identification", ("password", {"failed_attempts_before_cancel": 2}))
    strict = _browser(app)
    strict.start("strict")
    strict.step(uid_field="bob")
    strict.step(password="nope")
    shown["lockout, start again"] = strict.step(password="nope again")

    anonymous.start("default-recovery-flow")
    anonymous.step(uid_field="bob")
    link = link_in(_mail_to(mailbox, "bob@example.com"))
    shown["link, continue"] = _browser(app).get(link)
    shown["link, signed in as another"] = signed_in.get(link)
    shown["link, form expired"] = signed_in.post(link, data={"csrf_token": "stale"})
    assert _browser(app).open_link(link).status_code == 303
    shown["link, used"] = _browser(app).get(link)
    other = _browser(app)
    other.start("default-recovery-flow")
    other.step(uid_field="alice")
    expiring = link_in(_mail_to(mailbox, "alice@example.com"))
    with app.app_context():
        db.session.execute(sa.text("UPDATE flows_flow_token SET expires = :now"), {"now": utcnow()})
        db.session.commit()
    shown["link, expired"] = _browser(app).get(expiring)

    shown["404"] = anonymous.get("/flows/no-such-flow/")
    shown["400"] = anonymous.get("/flows/login/?next=%00")
    _broken_stage(flows)
    make_flow("buggy", "broken")
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    anonymous.start("buggy")
    shown["500"] = anonymous.submit("buggy")

    # Each page is the one its name says.
    assert {name: response.status_code for name, response in shown.items()} == {
        **dict.fromkeys([name for name in shown if name.startswith("denied")], 403),
        "lockout, waiting": 429,
        "lockout, start again": 429,
        "link, continue": 200,
        "link, signed in as another": 200,
        "link, form expired": 400,
        "link, used": 404,
        "link, expired": 410,
        "404": 404,
        "400": 400,
        "500": 500,
    }
    pages = {name: response.text for name, response in shown.items()}
    assert _leaks(pages, KNOWN | _titles_of_test_flows(app)) == {}


# -- the settings page --------------------------------------------------------------------------


def test_no_text_of_the_settings_page_escapes_the_catalogue(
    app: Flask, alice: User, make_flow: Callable[..., Flow]
) -> None:
    """The settings page with an authenticator app, recovery codes and a passkey (each
    added through its setup stage in the pseudo-locale), two sessions, and the notices
    and errors of its actions, up to the lockout after too many wrong passwords."""
    make_flow("add-totp", "authenticator_totp", designation="stage_configuration")
    make_flow("add-codes", "authenticator_static", designation="stage_configuration")
    make_flow("add-passkey", "authenticator_webauthn", designation="stage_configuration")
    known = KNOWN | {"Work phone", "Blue key", "Old phone"}
    me = _browser(app)
    log_in(me.client, alice)
    log_in(_browser(app).client, alice)  # another session
    secret = re.search(r'id="flows-totp-secret"[^>]*>([^<]*)<', me.start("add-totp").text)
    assert secret is not None
    me.step(name="Work phone", code=pyotp.TOTP(secret.group(1).replace(" ", "")).now())
    me.start("add-codes")
    me.step(saved="y")
    creation = _passkey_options(me.start("add-passkey").text)
    me.step(name="Blue key", passkey=json.dumps(SoftAuthenticator().create(creation, ORIGIN)))

    pages: dict[str, str] = {"settings": me.get(SETTINGS).text}
    rename, remove = _device_actions(pages["settings"], "totp")
    _, remove_codes = _device_actions(pages["settings"], "static")
    pages["renamed"] = _settings_action(me, rename, name="Old phone").text
    pages["rename, no name"] = _settings_action(me, rename, name="").text
    pages["remove, no password"] = _settings_action(me, remove, password="").text
    pages["remove, wrong password"] = _settings_action(me, remove, password="not it").text
    pages["removed"] = _settings_action(me, remove, password=PASSWORD).text
    pages["form expired"] = _settings_action(me, remove_codes, csrf_token="stale").text
    pages["sessions ended"] = _settings_action(me, "/flows/-/settings/sessions/end-others/").text
    pages["no other sessions"] = _settings_action(me, "/flows/-/settings/sessions/end-others/").text
    for n in range(4):
        _settings_action(me, remove_codes, password=f"guess {n}")
    pages["remove, guessing too fast"] = _settings_action(me, remove_codes, password="guess").text
    pass_time(app, 3600)
    pages["logged out"] = _settings_action(me, remove_codes, password="one guess more").text
    assert me.whoami() == "home: anonymous"

    assert _leaks(pages, known | _titles_of_test_flows(app)) == {}


# -- every mail ---------------------------------------------------------------------------------


def test_no_text_of_a_mail_escapes_the_catalogue(app: Flask, alice: User, mailbox: Mailbox) -> None:
    """Subject, text and HTML of every mail: the sign-up's link, the recovery's, the one
    to the owner of an address entered for another account, and the one that tells the
    old address of a change."""
    known = KNOWN | {"erin", "erin@example.com", "alice@new.example"}
    mails: dict[str, EmailMessage] = {}

    _sign_up(app, "erin", "erin@example.com")
    mails["verification"] = _mail_to(mailbox, "erin@example.com")
    _sign_up(app, "frank", "alice@example.com")
    mails["account exists"] = _mail_to(mailbox, "alice@example.com")
    recovery = _browser(app)
    recovery.start("default-recovery-flow")
    recovery.step(uid_field="alice")
    mails["recovery"] = _mail_to(mailbox, "alice@example.com", count=2)

    me = _browser(app)
    log_in(me.client, alice)
    me.start("default-email-change")
    me.step(password=PASSWORD)
    me.step(email="alice@new.example")
    me.open_link(link_in(_mail_to(mailbox, "alice@new.example")))
    me.follow()
    mails["email changed"] = _mail_to(mailbox, "alice@example.com", count=3)

    leaks = {}
    for name, message in mails.items():
        text, html = bodies(message)
        parts = {"subject": str(message["Subject"]), "text": text, "html": html}
        for part, content in parts.items():
            if words := _untranslated(content, known):
                leaks[f"{name}, {part}"] = words
    assert leaks == {}


# -- the pseudo-locale --------------------------------------------------------------------------

#: Marks around every message of the pseudo-locale: text outside them was not translated.
_OPEN, _CLOSE = "\u2039", "\u203a"
#: Markup, and elements whose content is data, not words: scripts, styles, the QR code,
#: codes (a TOTP secret, recovery codes).
_TAGS = re.compile(
    r"<script.*?</script>|<style.*?</style>|<svg.*?</svg>|<code.*?</code>|<[^>]+>", re.DOTALL
)
_MARKED = re.compile(f"{_OPEN}[^{_OPEN}{_CLOSE}]*{_CLOSE}")
#: Attributes a person reads or hears (the words flows.js and passkeys.js say are
#: attributes of the page too), and the value a text field shows filled in.
_READ_ATTRIBUTES = re.compile(
    r"\b(?:aria-label|title|placeholder|alt"
    r"|data-flows-(?:msg-[a-z-]+|show|hide|show-name|hide-name"
    r'|passkey-(?:cancelled|exists|failed)))="([^"]*)"'
    r'|<input\b[^>]*\btype="(?:text|email|number|date)"[^>]*\bvalue="([^"]*)"'
)
#: Addresses in a mail or a page: data, whatever words their paths hold.
_URL = re.compile(r"https?://[^\s\"'<>]+")


def _catalogue(path: Path) -> Any:
    with path.open("rb") as po:
        return read_po(po)


def _pseudo_catalogue(directory: Path) -> None:
    """Every message of the template as ‹message› (placeholders kept), as locale eo."""
    template = _catalogue(TRANSLATIONS / "flask_flows.pot")
    for message in template:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            message.string = tuple(f"{_OPEN}{form}{_CLOSE}" for form in message.id)
        else:
            message.string = f"{_OPEN}{message.id}{_CLOSE}"
    target = directory / "eo" / "LC_MESSAGES"
    target.mkdir(parents=True)
    template.locale = "eo"
    with (target / "flask_flows.mo").open("wb") as mo:
        write_mo(mo, template)


def _untranslated(page: str, known: set[str] | frozenset[str]) -> list[str]:
    """Words a person reads on ``page`` (or in a mail) outside the pseudo-locale's marks,
    leaving out ``known`` texts (data: names, addresses) and URLs."""
    attributes = [value for pair in _READ_ATTRIBUTES.findall(page) for value in pair if value]
    readable = " ".join([_TAGS.sub(" ", page), *attributes])
    readable = _URL.sub(" ", html_module.unescape(readable))
    while _MARKED.search(readable):  # innermost first: a message may hold another
        readable = _MARKED.sub(" ", readable)
    for text in sorted(known, key=len, reverse=True):
        readable = readable.replace(text, " ")
    return re.findall(r"[A-Za-z][A-Za-z'’]+", readable)


def _leaks(pages: dict[str, str], known: set[str] | frozenset[str]) -> dict[str, list[str]]:
    return {name: words for name, page in pages.items() if (words := _untranslated(page, known))}


def _titles_of_test_flows(app: Flask) -> set[str]:
    """The titles ``make_flow`` gave the test's own flows (the shipped flows' titles are
    in the catalogue)."""
    with app.app_context():
        return set(
            db.session.scalars(sa.select(Flow.title).where(~Flow.slug.startswith("default-")))
        )


def _stage_type(page: str) -> str | None:
    found = re.search(r'data-stage-type="([^"]*)"', page)
    return found.group(1) if found else None


def _browser(app: Flask) -> FlowBrowser:
    """A plain browser that asks for the pseudo-locale."""
    browser = FlowBrowser(app.test_client())
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "eo"
    return browser


# -- what the tests fill in -------------------------------------------------------------------

#: A prompt of every field type. Its labels, hints and choices are configured texts the
#: catalogue does not have: shown as written, like data.
PROMPT_FIELDS: list[dict[str, Any]] = [
    {
        "field_key": "nickname",
        "label": "Zorbly nickname",
        "type": "text",
        "placeholder": "Ziggy Zorbly",
        "help_text": "Zorbly shows it to others.",
    },
    {"field_key": "handle", "label": "Zorbly handle", "type": "username"},
    {"field_key": "contact", "label": "Zorbly contact", "type": "email"},
    {"field_key": "about", "label": "About you at Zorbly", "type": "textarea", "required": False},
    {
        "field_key": "size",
        "label": "Zorbly shirt size",
        "type": "radio",
        "choices": ["S", {"value": "L", "label": "Large Zorbly"}],
    },
    {
        "field_key": "colour",
        "label": "Zorbly colour",
        "type": "dropdown",
        "choices": ["Zorbly red"],
    },
    {"field_key": "terms", "label": "Zorbly terms accepted", "type": "checkbox"},
    {"field_key": "age", "label": "Zorbly age", "type": "number", "min": 18, "max": 120},
    {"field_key": "birthday", "label": "Zorbly birthday", "type": "date"},
    {"field_key": "meeting", "label": "Zorbly meeting", "type": "date_time"},
    {
        "field_key": "note",
        "label": "Zorbly note",
        "type": "static",
        "initial_value": "Zorbly rules.",
    },
    {"field_key": "source", "type": "hidden", "initial_value": "web"},
    {"field_key": "secret", "label": "Zorbly passphrase", "type": "password", "repeat": True},
]
#: A wrong answer for each field that can be wrong, with no words of its own (the page
#: shows a refused answer again).
WRONG_ANSWERS = {
    "nickname": "\x07\x07",
    "handle": "bob\u200b",  # an invisible character
    "contact": "\u0430lice@example.com",  # a Cyrillic а among Latin letters
    "size": "XL",
    "colour": "green",
    "age": "7",
    "birthday": "2024-13-45",
    "meeting": "2024-99-99T99:99",
    "secret": "one passphrase",
    "secret_repeat": "another passphrase",
}
#: A sign-up's prompt, with labels the catalogue has (the shipped sign-up's).
SIGN_UP_FIELDS = [
    {"field_key": "username", "label": "Username", "type": "username"},
    {"field_key": "email", "label": "Email address", "type": "email"},
    {"field_key": "password", "label": "Password", "type": "password", "repeat": True},
]


def _configured_texts(fields: list[dict[str, Any]]) -> set[str]:
    texts = {
        str(field[key])
        for field in fields
        for key in ("label", "placeholder", "help_text", "initial_value")
        if key in field
    }
    for field in fields:
        for choice in field.get("choices", ()):
            texts.add(choice["label"] if isinstance(choice, dict) else choice)
    return texts | {"\u0430lice@example.com"}  # an answer the page shows again


# -- helpers ----------------------------------------------------------------------------------


def _last(browser: FlowBrowser) -> TestResponse:
    assert browser.last is not None
    return browser.last


def _sign_up(app: Flask, username: str, email: str) -> FlowBrowser:
    """A browser on the shipped sign-up's email page, for ``username`` and ``email``."""
    browser = _browser(app)
    browser.start("default-enrollment-flow")
    _fill_sign_up(browser, username, email, "default-enrollment-flow")
    assert browser.stage_type == "email", _last(browser).text
    return browser


def _fill_sign_up(
    browser: FlowBrowser, username: str, email: str, slug: str = "join"
) -> TestResponse:
    return browser.step(
        slug,
        username=username,
        email=email,
        password="a new passphrase of mine",
        password_repeat="a new passphrase of mine",
    )


def _later(browser: FlowBrowser, slug: str, seconds: int = 60) -> None:
    """Let ``seconds`` pass for the email stage's "Send again"."""

    def earlier(context: dict[str, Any]) -> None:
        context["email_sent_at"] -= seconds

    edit_plan_context(browser.client, slug, earlier)


def _mail_to(mailbox: Mailbox, address: str, count: int = 1) -> EmailMessage:
    """The ``count``-th mail to ``address``, waiting for it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        wait_for_outgoing_mail(timeout=5)
        mails = [m for m in mailbox.messages if m["To"] == address]
        if len(mails) >= count:
            return mails[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no mail number {count} to {address}")


def _add_totp(app: Flask, user: User) -> pyotp.TOTP:
    """A confirmed authenticator app for ``user``; returns its code generator."""
    secret = new_totp_secret()
    with app.app_context():
        db.session.add(TOTPDevice(user_id=str(user.id), secret=secret, confirmed=True))
        db.session.commit()
    return pyotp.TOTP(secret)


def _add_passkey(app: Flask, user: User) -> None:
    """A passkey for ``user``, stored as the setup stage stores one."""
    handle = hashlib.sha256(f"handle of user {user.id}".encode()).digest()
    creation = webauthn.generate_registration_options(
        rp_id="localhost", rp_name="Test App", user_id=handle, user_name=user.username
    )
    authenticator = SoftAuthenticator()
    authenticator.create(webauthn.options_to_json(creation), ORIGIN)
    credential = authenticator.credentials[-1]
    with app.app_context():
        db.session.add(
            WebAuthnDevice(
                user_id=str(user.id),
                name="",
                credential_id=bytes_to_base64url(credential.id),
                public_key=credential.cose_public_key,
                user_handle=bytes_to_base64url(handle),
            )
        )
        db.session.commit()


def _passkey_options(page: str) -> dict[str, Any]:
    found = re.search(r'data-flows-passkey-options="([^"]*)"', page)
    assert found, "no passkey options on the page"
    return dict(json.loads(html_module.unescape(found.group(1))))


@contextmanager
def _deletions_refused() -> Iterator[None]:
    """Deleting a user fails, as the app's own foreign keys to its users would make it."""

    def refuse(mapper: Any, connection: Any, target: Any) -> None:
        raise sa.exc.IntegrityError("DELETE FROM app_user", {}, Exception("still referenced"))

    sa.event.listen(User, "before_delete", refuse)
    try:
        yield
    finally:
        sa.event.remove(User, "before_delete", refuse)


def _broken_stage(flows: Flows) -> None:
    """A stage type ``broken`` whose submission raises: a bug, a 500 page in production."""

    @flows.stage_type
    class BrokenStage(StageType):
        name = "broken"
        template = "flows/stages/dummy.html"

        def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
            raise RuntimeError("a bug")


def _device_actions(page: str, kind: str) -> tuple[str, str]:
    """The rename and remove URLs of the settings page's (first) device of ``kind``."""
    found = re.search(f'action="(/flows/-/settings/authenticators/{kind}/\\d+/)rename/"', page)
    assert found, f"no {kind} device on the settings page"
    return found.group(1) + "rename/", found.group(1) + "remove/"


def _settings_action(browser: FlowBrowser, url: str, **fields: str) -> TestResponse:
    """Post an action of the settings page shown last; the page it then shows."""
    response = browser.post(url, {"csrf_token": browser.csrf_token(), **fields})
    if response.status_code == 303:
        return browser.follow()
    return response
