"""Authenticator setup stages through HTTP: an authenticator app (TOTP) and recovery codes,
with their default flows, as a plain browser and as htmx."""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pyotp
import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, edit_plan_context, plan_context
from factory import User, db
from flask import Flask
from werkzeug.test import TestResponse

from flask_flows import ConfigError, Flow, Stage, signals
from flask_flows.blueprints import DEFAULT_BLUEPRINTS, apply_files, install_default_flows
from flask_flows.devices import StaticDevice, StaticToken, TOTPDevice
from flask_flows.extension import FlowsState
from flask_flows.models import utcnow
from flask_flows.otp import match_recovery_code
from flask_flows.stages.authenticator_static import (
    NEW_SET,
    NOT_SAVED,
    SETUP_EXPIRED,
    SETUP_SEED,
    delete_static_devices,
)
from flask_flows.stages.authenticator_totp import NO_USER, SETUP_DEVICE, WRONG_CODE

PASSWORD = "correct horse battery"
TOTP_FLOW = "default-authenticator-totp-setup"
STATIC_FLOW = "default-authenticator-static-setup"

_SECRET = re.compile(r'<code id="flows-totp-secret"[^>]*>([A-Z2-7 ]+)</code>')
_CODES = re.compile(r"<li><code>([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})</code></li>")
_DOWNLOAD = re.compile(r'<a [^>]*download="recovery-codes.txt" href="([^"]+)"')


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def setup_flows(app: Flask, state: FlowsState) -> None:
    """Only the two shipped setup flows, so these tests do not depend on the others."""
    with app.app_context():
        apply_files(
            state,
            [DEFAULT_BLUEPRINTS / f"{TOTP_FLOW}.yaml", DEFAULT_BLUEPRINTS / f"{STATIC_FLOW}.yaml"],
        )


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", password=PASSWORD)


def open_setup(browser: FlowBrowser, slug: str) -> TestResponse:
    """Start a shipped setup flow and pass its re-authentication (the password first)."""
    browser.start(slug)
    assert browser.stage_type == "password"
    return browser.step(slug, password=PASSWORD)


def secret_on(page: TestResponse) -> str:
    match = _SECRET.search(page.text)
    assert match, "no TOTP secret on the page"
    return match.group(1).replace(" ", "")


def codes_on(page: TestResponse) -> list[str]:
    """The recovery codes shown on ``page``; there must be some, or a test comparing or
    looping over them would pass without checking anything."""
    codes = _CODES.findall(page.text)
    assert codes, "no recovery codes on the page"
    return codes


def not_a_valid_code(secret: str) -> str:
    """A 6-digit code that none of the steps around now accepts."""
    generator = pyotp.TOTP(secret)
    now = time.time()
    window = {generator.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


def totp_devices(app: Flask) -> list[TOTPDevice]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(TOTPDevice).order_by(TOTPDevice.id)))
        db.session.expunge_all()
        return rows


def static_devices(app: Flask, confirmed: bool | None = None) -> list[StaticDevice]:
    with app.app_context():
        query = sa.select(StaticDevice).order_by(StaticDevice.id)
        if confirmed is not None:
            query = query.where(StaticDevice.confirmed.is_(confirmed))
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


def recovery_code_works(app: Flask, state: FlowsState, user: User, code: str) -> bool:
    """Whether ``code`` matches one of the user's confirmed recovery code sets."""
    with app.app_context():
        devices = list(
            db.session.scalars(
                sa.select(StaticDevice).where(
                    StaticDevice.user_id == str(user.id), StaticDevice.confirmed.is_(True)
                )
            )
        )
        return match_recovery_code(devices, code, state.hashing) is not None


def session_contents(app: Flask, browser: FlowBrowser) -> Any:
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]


@contextmanager
def added_authenticators(app: Flask) -> Iterator[list[tuple[int, int, str]]]:
    """Record (user id, device id, device kind) of each authenticator_added signal."""
    sent: list[tuple[int, int, str]] = []

    def receiver(sender: Any, user: Any, device: Any, **kwargs: Any) -> None:
        assert sender is app
        sent.append((user.id, device.id, device.kind))

    signals.authenticator_added.connect(receiver, sender=app)
    try:
        yield sent
    finally:
        signals.authenticator_added.disconnect(receiver, sender=app)


# -- authenticator app (TOTP) -----------------------------------------------------------------


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_totp_setup_end_to_end(app: Flask, browser: FlowBrowser, alice: User) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_setup(browser, TOTP_FLOW)
    assert browser.stage_type == "authenticator_totp"
    assert 'value="Authenticator app"' in page.text  # the name field is prefilled
    secret = secret_on(page)
    [pending] = totp_devices(app)
    assert pending.user_id == str(alice.id)
    assert pending.secret == secret
    assert not pending.confirmed  # not usable until a code proves the app works

    code = pyotp.TOTP(secret).now()
    with added_authenticators(app) as sent:
        browser.step(TOTP_FLOW, name="  Work phone ", code=code)

    assert browser.redirect_target == "/"
    [device] = totp_devices(app)
    assert device.id == pending.id
    assert device.confirmed
    assert device.name == "Work phone"
    assert device.last_step >= int(time.time() // 30) - 1
    assert sent == [(alice.id, device.id, "totp")]
    assert SETUP_DEVICE not in repr(session_contents(app, browser))


@pytest.mark.usefixtures("setup_flows", "login_flow")
@pytest.mark.parametrize("slug", [TOTP_FLOW, STATIC_FLOW])
def test_the_shipped_setup_flows_ask_for_the_password_first(
    app: Flask, browser: FlowBrowser, alice: User, slug: str
) -> None:
    """Changing a second factor needs full re-authentication (ASVS 7.5.1)."""
    browser.log_in("alice", PASSWORD, slug="login")
    browser.start(slug)
    assert browser.stage_type == "password"
    browser.step(slug, password="not my password")
    assert browser.stage_type == "password"
    assert "Incorrect password." in browser.last.text
    assert totp_devices(app) == []
    browser.step(slug, password=PASSWORD)
    assert browser.stage_type in ("authenticator_totp", "authenticator_static")


@pytest.mark.usefixtures("setup_flows")
def test_anonymous_users_are_sent_to_the_login_flow(app: Flask, browser: FlowBrowser) -> None:
    browser.start(TOTP_FLOW)  # anonymous: no password step
    assert browser.redirect_target is not None
    assert browser.redirect_target.startswith("/flows/-/login/?next=")
    assert unquote(browser.redirect_target).endswith(f"/flows/{TOTP_FLOW}/")
    assert totp_devices(app) == []


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_wrong_and_old_codes_are_refused_until_the_current_one(
    app: Flask, browser: FlowBrowser
) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    secret = secret_on(open_setup(browser, TOTP_FLOW))
    generator = pyotp.TOTP(secret)

    for code in (not_a_valid_code(secret), generator.at(time.time() - 60), "12ab56", "1234567"):
        page = browser.step(TOTP_FLOW, name="Phone", code=code)
        assert browser.stage_type == "authenticator_totp", code
        assert WRONG_CODE in page.text
        assert 'aria-invalid="true"' in page.text
        [device] = totp_devices(app)
        assert not device.confirmed
        assert secret_on(page) == secret  # the same device is kept for the retry

    browser.step(TOTP_FLOW, name="Phone", code=generator.now())
    assert browser.redirect_target == "/"
    assert totp_devices(app)[0].confirmed


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_reloading_keeps_the_secret_of_the_pending_device(app: Flask, browser: FlowBrowser) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    first = secret_on(open_setup(browser, TOTP_FLOW))
    again = secret_on(browser.get(f"/flows/{TOTP_FLOW}/"))
    assert again == first
    assert len(totp_devices(app)) == 1


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_a_device_id_of_another_user_is_not_used(
    app: Flask, browser: FlowBrowser, alice: User, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob")
    with app.app_context():
        theirs = TOTPDevice(user_id=str(bob.id), secret=pyotp.random_base32(32))
        db.session.add(theirs)
        db.session.commit()
        theirs_id, theirs_secret = theirs.id, theirs.secret
    browser.log_in("alice", PASSWORD, slug="login")
    open_setup(browser, TOTP_FLOW)
    edit_plan_context(
        browser.client, TOTP_FLOW, lambda context: context.update({SETUP_DEVICE: theirs_id})
    )

    page = browser.get(f"/flows/{TOTP_FLOW}/")

    assert secret_on(page) != theirs_secret
    browser.step(TOTP_FLOW, name="Phone", code=pyotp.TOTP(theirs_secret).now())
    assert browser.stage_type == "authenticator_totp"
    assert WRONG_CODE in browser.last.text  # type: ignore[union-attr]
    by_id = {d.id: d for d in totp_devices(app)}
    assert not by_id[theirs_id].confirmed
    assert by_id[theirs_id].user_id == str(bob.id)


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_abandoned_setups_older_than_an_hour_are_removed(
    app: Flask, browser: FlowBrowser, alice: User
) -> None:
    with app.app_context():
        for minutes, confirmed in ((120, False), (30, False), (120, True)):
            db.session.add(
                TOTPDevice(
                    user_id=str(alice.id),
                    secret=pyotp.random_base32(32),
                    confirmed=confirmed,
                    created=utcnow() - timedelta(minutes=minutes),
                )
            )
        db.session.commit()
    browser.log_in("alice", PASSWORD, slug="login")
    open_setup(browser, TOTP_FLOW)

    left = totp_devices(app)
    assert len(left) == 3  # the 2-hour-old unconfirmed one went; a new one came
    assert sum(not d.confirmed for d in left) == 2
    assert all(d.confirmed or d.created > utcnow() - timedelta(hours=1) for d in left)


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_the_qr_code_is_inline_svg_and_nothing_loads_from_elsewhere(
    browser: FlowBrowser,
) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_setup(browser, TOTP_FLOW).text

    svg = re.search(r"<svg [^>]*>.*?</svg>", page, re.S)
    assert svg, "no inline SVG"
    assert 'role="img"' in svg.group(0)
    assert 'aria-label="QR code to add alice at Test App' in svg.group(0)
    assert "<title>QR code to add alice at Test App" in svg.group(0)
    # Black modules on a white background and quiet zone, whatever the page's theme.
    assert re.search(r'<path fill="#fff" d="M0 0h(\d+)v\1h-\1z"/>', svg.group(0))
    assert 'stroke="#000"' in svg.group(0)
    assert "<img" not in page
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert url.startswith(("/", "#", "otpauth://totp/")), url
    uri = html.unescape(re.search(r'href="(otpauth://[^"]+)"', page).group(1))  # type: ignore[union-attr]
    assert "Open in authenticator app" in page
    assert uri.startswith("otpauth://totp/Test%20App:alice?")
    assert "issuer=Test%20App" in uri


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_the_account_name_is_escaped_everywhere_on_the_page(
    browser: FlowBrowser, make_user: Callable[..., User]
) -> None:
    make_user('eve"<i>', email="eve@example.com", password=PASSWORD)
    browser.log_in('eve"<i>', PASSWORD, slug="login")
    page = open_setup(browser, TOTP_FLOW).text
    assert "<i>" not in page
    assert 'aria-label="QR code to add eve&#34;&lt;i&gt; at Test App' in page
    assert '<title>QR code to add eve"&lt;i&gt; at Test App' in page


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_the_totp_page_stays_out_of_htmx_history(browser: FlowBrowser) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_setup(browser, TOTP_FLOW)
    assert 'hx-history="false"' in page.text
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_the_totp_secret_is_neither_in_the_cookie_nor_in_the_logs(
    app: Flask, browser: FlowBrowser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser.log_in("alice", PASSWORD, slug="login")
    secret = secret_on(open_setup(browser, TOTP_FLOW))
    # Not even sealed: the plan holds the device's id, the secret stays in the database.
    stored = repr(session_contents(app, browser)) + repr(plan_context(browser.client, TOTP_FLOW))
    assert SETUP_DEVICE in stored  # the id is there: this is the plan we looked for
    assert secret not in stored

    browser.step(TOTP_FLOW, name="Phone", code=not_a_valid_code(secret))
    browser.step(TOTP_FLOW, name="Phone", code=pyotp.TOTP(secret).now())

    assert "authenticator_totp: user" in caplog.text
    assert secret not in caplog.text
    assert secret not in repr(session_contents(app, browser))


def test_digits_algorithm_and_issuer_are_configurable(
    app: Flask,
    browser: FlowBrowser,
    alice: User,
    login_flow: Flow,
    make_flow: Callable[..., Flow],
) -> None:
    config = {"digits": 8, "algorithm": "sha256", "issuer": "Acme", "device_name": "Token"}
    make_flow("totp8", ("authenticator_totp", config), designation="stage_configuration")
    browser.log_in("alice", PASSWORD, slug="login")
    page = browser.start("totp8")
    secret = secret_on(page)
    uri = html.unescape(re.search(r'href="(otpauth://[^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    assert "digits=8" in uri
    assert "algorithm=SHA256" in uri
    assert "issuer=Acme" in uri
    assert "SHA256" in page.text
    assert 'value="Token"' in page.text

    code = pyotp.TOTP(secret, digits=8, digest="sha256").now()
    browser.step("totp8", name="Token", code=code)

    assert browser.redirect_target == "/"
    [device] = totp_devices(app)
    assert (device.confirmed, device.digits, device.algorithm) == (True, 8, "sha256")


def test_without_a_user_the_stage_denies(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow("open-totp", "authenticator_totp", designation="stage_configuration")
    page = browser.start("open-totp")
    assert page.status_code == (200 if browser.htmx else 403)
    assert NO_USER in page.text


@pytest.mark.parametrize(
    ("stage_type", "config"),
    [
        ("authenticator_totp", {"digits": 7}),
        ("authenticator_totp", {"algorithm": "md5"}),
        ("authenticator_totp", {"device_name": ""}),
        ("authenticator_static", {"token_count": 0}),
    ],
)
def test_bad_configuration_names_the_stage_and_field(
    app: Flask, state: FlowsState, stage_type: str, config: dict[str, Any]
) -> None:
    with app.app_context(), pytest.raises(ConfigError, match=rf"stage 'bad' \({stage_type}\)"):
        state.stage_config(Stage(name="bad", type=stage_type, config=config))


# -- recovery codes ----------------------------------------------------------------------------


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_recovery_codes_are_shown_once_and_stored_hashed(
    app: Flask, state: FlowsState, browser: FlowBrowser, alice: User
) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_setup(browser, STATIC_FLOW)
    assert browser.stage_type == "authenticator_static"
    codes = codes_on(page)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert 'hx-history="false"' in page.text

    with app.app_context():
        rows = [
            " ".join(str(value) for value in row)
            for table in (StaticDevice.__table__, StaticToken.__table__)
            for row in db.session.execute(sa.select(table))
        ]
    stored = "\n".join(rows)
    assert len(rows) == 11
    for code in codes:
        assert code not in stored
        assert code.replace("-", "") not in stored
        assert code.replace("-", "")[4:] not in stored  # only the public lookup prefix is kept
    [device] = static_devices(app)
    assert not device.confirmed
    assert not recovery_code_works(app, state, alice, codes[0])  # not until confirmed


@pytest.mark.usefixtures("login_flow", "alice")
def test_token_count_sets_how_many_codes(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    make_flow(
        "codes", ("authenticator_static", {"token_count": 3}), designation="stage_configuration"
    )
    browser.log_in("alice", PASSWORD, slug="login")
    assert len(codes_on(browser.start("codes"))) == 3


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_the_download_link_holds_the_codes(browser: FlowBrowser) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_setup(browser, STATIC_FLOW)
    link = _DOWNLOAD.search(page.text)
    assert link, "no download link"
    href = html.unescape(link.group(1))
    assert href.startswith("data:text/plain;charset=utf-8,")
    text = unquote(href.split(",", 1)[1])
    assert text.splitlines()[0] == "Recovery codes for Test App"
    for code in codes_on(page):
        assert f"\n{code}\n" in text
    # The copy button waits for flows.js: hidden without it.
    assert re.search(r'<button [^>]*data-flows-copy="flows-recovery-codes" hidden>', page.text)


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_reloading_shows_the_same_set(
    app: Flask, state: FlowsState, browser: FlowBrowser, alice: User
) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    first = codes_on(open_setup(browser, STATIC_FLOW))
    page = browser.get(f"/flows/{STATIC_FLOW}/")

    assert codes_on(page) == first
    assert NEW_SET not in page.text
    [device] = static_devices(app)
    assert not device.confirmed
    browser.step(STATIC_FLOW, saved="y")
    assert recovery_code_works(app, state, alice, first[0])


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_a_form_error_keeps_the_codes_already_seen(
    app: Flask, state: FlowsState, browser: FlowBrowser, alice: User
) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    first = codes_on(open_setup(browser, STATIC_FLOW))
    page = browser.step(STATIC_FLOW)  # "I have saved these codes" left unticked
    assert browser.stage_type == "authenticator_static"
    assert NOT_SAVED in page.text
    assert NEW_SET not in page.text
    assert codes_on(page) == first
    assert [d.confirmed for d in static_devices(app)] == [False]
    # htmx swaps only the confirmation form; the codes on screen are not touched.
    swapped_alone = {
        "HX-Retarget": "#flows-recovery-confirm",
        "HX-Reswap": "innerHTML",
        "HX-Reselect": "#flows-recovery-confirm > *",
    }
    assert {k: page.headers.get(k) for k in swapped_alone} == (
        swapped_alone if browser.htmx else dict.fromkeys(swapped_alone)
    )

    browser.step(STATIC_FLOW, saved="y")
    assert recovery_code_works(app, state, alice, first[9])


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_a_set_removed_meanwhile_is_replaced_and_said_so(app: Flask, browser: FlowBrowser) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    first = codes_on(open_setup(browser, STATIC_FLOW))
    with app.app_context():  # another tab's setup removed this one's set
        [device] = db.session.scalars(sa.select(StaticDevice)).all()
        delete_static_devices(db.session, [device.id])
        db.session.commit()

    page = browser.step(STATIC_FLOW, saved="y")
    second = codes_on(page)
    assert SETUP_EXPIRED in page.text
    assert "HX-Retarget" not in page.headers  # a new set replaces the whole stage
    assert len(second) == 10
    assert not set(first) & set(second)
    [now] = static_devices(app)
    with app.app_context():
        token_devices = list(db.session.scalars(sa.select(StaticToken.device_id)))
    assert token_devices == [now.id] * 10


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_a_new_setup_removes_an_abandoned_set(app: Flask, browser: FlowBrowser) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    first = codes_on(open_setup(browser, STATIC_FLOW))
    browser.post(f"/flows/{STATIC_FLOW}/cancel/", data={"csrf_token": browser.csrf_token()})
    second = codes_on(open_setup(browser, STATIC_FLOW))

    assert not set(first) & set(second)
    assert [d.confirmed for d in static_devices(app)] == [False]


@pytest.mark.usefixtures("setup_flows", "login_flow")
def test_a_new_set_replaces_the_old_one(
    app: Flask, state: FlowsState, browser: FlowBrowser, alice: User
) -> None:
    browser.log_in("alice", PASSWORD, slug="login")
    first = codes_on(open_setup(browser, STATIC_FLOW))
    with added_authenticators(app) as sent:
        browser.step(STATIC_FLOW, saved="y")
    assert browser.redirect_target == "/"
    [old] = static_devices(app)
    assert old.confirmed
    assert sent == [(alice.id, old.id, "static")]
    assert recovery_code_works(app, state, alice, first[0])

    second = codes_on(open_setup(browser, STATIC_FLOW))
    assert recovery_code_works(app, state, alice, first[1])  # still, until confirmed
    browser.step(STATIC_FLOW, saved="y")

    [new] = static_devices(app)
    assert new.confirmed
    assert new.id != old.id or new.created > old.created
    assert not recovery_code_works(app, state, alice, first[1])
    assert recovery_code_works(app, state, alice, second[0])
    with app.app_context():
        token_devices = set(db.session.scalars(sa.select(StaticToken.device_id)))
    assert token_devices == {new.id}


@pytest.mark.usefixtures("setup_flows", "login_flow", "alice")
def test_recovery_codes_are_neither_in_the_cookie_nor_in_the_logs(
    app: Flask, browser: FlowBrowser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser.log_in("alice", PASSWORD, slug="login")
    codes = codes_on(open_setup(browser, STATIC_FLOW))
    stored = repr(session_contents(app, browser))
    assert plan_context(browser.client, STATIC_FLOW)[SETUP_SEED]
    browser.step(STATIC_FLOW, saved="y")
    assert STATIC_FLOW not in repr(session_contents(app, browser))  # plan and seed gone

    assert "authenticator_static: user" in caplog.text
    for code in codes:
        for text in (stored, caplog.text, repr(session_contents(app, browser))):
            assert code not in text
            assert code.replace("-", "")[4:] not in text


# -- default flows -------------------------------------------------------------------------------


def test_install_default_flows_adds_both_setup_flows(app: Flask, state: FlowsState) -> None:
    with app.app_context():
        install_default_flows(state)
        flows = {
            flow.slug: flow
            for flow in db.session.scalars(
                sa.select(Flow).where(Flow.slug.in_([TOTP_FLOW, STATIC_FLOW]))
            )
        }
        summary = {
            slug: (
                flow.designation.value,
                flow.authentication.value,
                flow.title,
                [(b.stage.name, b.stage.type) for b in flow.bindings],
            )
            for slug, flow in flows.items()
        }
    assert summary == {
        TOTP_FLOW: (
            "stage_configuration",
            "require_authenticated",
            "Authenticator app",
            [
                ("default-authenticator-totp-setup-password", "password"),
                ("default-authenticator-totp-setup-stage", "authenticator_totp"),
            ],
        ),
        STATIC_FLOW: (
            "stage_configuration",
            "require_authenticated",
            "Recovery codes",
            [
                ("default-authenticator-static-setup-password", "password"),
                ("default-authenticator-static-setup-stage", "authenticator_static"),
            ],
        ),
    }
