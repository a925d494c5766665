"""The shipped account lifecycle flows end to end, as a person would use them: sign up
and confirm by email, reset a forgotten password from another browser, change the
password, delete the account. Mail goes over real SMTP to the test's loopback server."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, without_nonces
from factory import User, db
from flask import Flask
from passkey_authenticator import SoftAuthenticator
from smtp_sink import bodies, link_in

from flask_flows import AuthenticatedSession, FlowsModel
from flask_flows.i18n import gettext, using_locale

LOGIN = "default-authentication-flow"
ENROLL = "default-enrollment-flow"
RECOVER = "default-recovery-flow"
PASSKEY_SETUP = "default-authenticator-webauthn-setup"
ORIGIN = "http://localhost"  # the test client's, which passkeys accept under TESTING
CHANGE = "default-password-change"
DELETE = "default-unenrollment-flow"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a whole new passphrase"


pytestmark = pytest.mark.usefixtures("defaults")


@pytest.fixture
def app_config(mailbox: Any) -> dict[str, Any]:
    return {**mailbox.config}


def options(page: Any) -> dict[str, Any]:
    """A passkey ceremony's options, as the page gives them to the browser."""
    found = re.search(r'data-flows-passkey-options="([^"]*)"', page.text)
    assert found, "no passkey options on the page"
    return dict(json.loads(html.unescape(found.group(1))))


def user_named(app: Flask, username: str) -> User | None:
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.username == username))


def test_the_login_page_links_to_sign_up_and_recovery(browser: FlowBrowser) -> None:
    page = browser.start(LOGIN).text
    assert f'href="/flows/{ENROLL}/"' in page
    assert f'href="/flows/{RECOVER}/"' in page


def test_sign_up_confirm_by_email_in_another_browser_and_log_in(
    app: Flask, browser: FlowBrowser, mailbox: Any
) -> None:
    browser.start(ENROLL)
    assert browser.stage_type == "prompt"
    browser.step(
        ENROLL,
        username="carol",
        email="carol@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    assert browser.stage_type == "email"
    assert "carol@example.com" in browser.last.text
    assert user_named(app, "carol") is None  # nothing is written before the address is confirmed

    message = mailbox.wait_for_message()
    assert message["To"] == "carol@example.com"
    phone = browser.fresh()
    phone.open_link(link_in(message))
    landing = phone.client.get(f"/flows/{ENROLL}/")
    assert landing.status_code in (200, 303)
    assert phone.get("/").text == "home: carol"
    carol = user_named(app, "carol")
    assert carol is not None and carol.email == "carol@example.com" and carol.active
    assert PASSWORD not in (carol.password_hash or "")

    fresh = browser.fresh()
    fresh.log_in("carol", PASSWORD, slug=LOGIN)
    assert fresh.get("/").text == "home: carol"


def test_sign_up_refuses_a_weak_password_next_to_the_field(browser: FlowBrowser) -> None:
    browser.start(ENROLL)
    response = browser.step(
        ENROLL,
        username="dave",
        email="dave@example.com",
        password="password",
        password_repeat="password",
    )
    assert browser.stage_type == "prompt"
    assert re.search(
        r'aria-invalid="true"[^>]*name="password"|name="password"[^>]*aria-invalid="true"',
        response.text,
    )
    assert "common" in response.text


def test_recovery_from_another_browser_sets_the_password_and_ends_other_sessions(
    app: Flask, browser: FlowBrowser, make_user: Any, mailbox: Any
) -> None:
    make_user("erin", password=PASSWORD)
    laptop = browser.fresh()
    laptop.log_in("erin", PASSWORD, slug=LOGIN)
    assert laptop.get("/").text == "home: erin"

    browser.start(RECOVER)
    browser.step(RECOVER, uid_field="erin@example.com")
    assert browser.stage_type == "email"
    message = mailbox.wait_for_message()
    assert message["To"] == "erin@example.com"

    phone = browser.fresh()
    phone.open_link(link_in(message))
    phone.get(f"/flows/{RECOVER}/")
    assert phone.stage_type == "prompt"
    phone.step(RECOVER, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert phone.get("/").text == "home: erin"

    assert laptop.get("/").text == "home: anonymous"
    old = browser.fresh()
    old.log_in("erin", PASSWORD, slug=LOGIN)
    assert "Invalid username or password." in old.last.text
    new = browser.fresh()
    new.log_in("erin", NEW_PASSWORD, slug=LOGIN)
    assert new.get("/").text == "home: erin"


def _masked(text: str) -> str:
    """The page with its per-request tokens (CSRF, plan step) blanked out."""
    text = re.sub(r'value="[A-Za-z0-9_.-]{40,}"', 'value="TOKEN"', text)
    return without_nonces(re.sub(r'name="flow_step" type="hidden" value="[^"]*"', "STEP", text))


def test_recovery_answers_the_same_for_known_and_unknown_accounts(
    app: Flask, browser: FlowBrowser, make_user: Any, mailbox: Any
) -> None:
    make_user("frank", password=PASSWORD)
    known, unknown = browser.fresh(), browser.fresh()
    for client, address in ((known, "frank@example.com"), (unknown, "nobody@example.com")):
        client.start(RECOVER)
        client.step(RECOVER, uid_field=address)
    known_page = _masked(known.last.text.replace("frank@example.com", "ADDRESS"))
    unknown_page = _masked(unknown.last.text.replace("nobody@example.com", "ADDRESS"))
    assert known.last.status_code == unknown.last.status_code == 200
    assert known_page == unknown_page
    assert mailbox.wait_for_message()["To"] == "frank@example.com"


def test_change_password_needs_the_current_one_and_ends_other_sessions(
    app: Flask, browser: FlowBrowser, make_user: Any
) -> None:
    make_user("gina", password=PASSWORD)
    laptop = browser.fresh()
    laptop.log_in("gina", PASSWORD, slug=LOGIN)
    browser.log_in("gina", PASSWORD, slug=LOGIN)

    browser.start(CHANGE)
    assert browser.stage_type == "password"
    browser.step(CHANGE, password="not my password")
    assert "Incorrect password." in browser.last.text
    browser.step(CHANGE, password=PASSWORD)
    assert browser.stage_type == "prompt"
    browser.step(CHANGE, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert browser.redirect_target == "/"

    assert browser.get("/").text == "home: gina"
    assert laptop.get("/").text == "home: anonymous"
    again = browser.fresh()
    again.log_in("gina", NEW_PASSWORD, slug=LOGIN)
    assert again.get("/").text == "home: gina"


def test_change_password_requires_a_login(browser: FlowBrowser) -> None:
    response = browser.start(CHANGE)
    target = response.headers.get("HX-Redirect") or response.headers.get("Location")
    assert target and target.startswith("/flows/-/login/")


def test_delete_account_removes_every_row_of_the_user(
    app: Flask, browser: FlowBrowser, make_user: Any
) -> None:
    user = make_user("hank", password=PASSWORD)
    make_user("ivy", password=PASSWORD)
    browser.log_in("hank", PASSWORD, slug=LOGIN)
    browser.start(DELETE)
    browser.step(DELETE, password=PASSWORD)
    assert browser.stage_type == "prompt"
    browser.step(DELETE)  # the confirmation box left unticked
    assert browser.stage_type == "prompt"
    browser.step(DELETE, confirm="y")
    assert browser.get("/").text == "home: anonymous"

    assert user_named(app, "hank") is None
    assert user_named(app, "ivy") is not None
    with app.app_context():
        for table in FlowsModel.metadata.sorted_tables:
            if "user_id" in table.c:
                rows = db.session.execute(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(table.c.user_id == str(user.id))
                ).scalar()
                assert rows == 0, table.name
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthenticatedSession)) == 0


def test_recovery_asks_for_the_second_factor_before_the_new_password(
    app: Flask, browser: FlowBrowser, make_user: Any, mailbox: Any
) -> None:
    """Owning the mailbox alone must not reset the password of a user with TOTP."""
    from flask_flows.devices import TOTPDevice
    from flask_flows.otp import new_totp_secret, totp

    user = make_user("jack", password=PASSWORD)
    with app.app_context():
        device = TOTPDevice(user_id=str(user.id), secret=new_totp_secret(), confirmed=True)
        db.session.add(device)
        db.session.commit()
        secret = device.secret

    browser.start(RECOVER)
    browser.step(RECOVER, uid_field="jack")
    phone = browser.fresh()
    phone.open_link(link_in(mailbox.wait_for_message()))
    phone.get(f"/flows/{RECOVER}/")
    assert phone.stage_type == "authenticator_validate"
    phone.step(
        RECOVER,
        code="000000"
        if totp(TOTPDevice(secret=secret, digits=6, algorithm="sha1", period=30)).now() != "000000"
        else "111111",
    )
    assert phone.stage_type == "authenticator_validate"
    assert "That code is not valid." in phone.last.text

    code = totp(TOTPDevice(secret=secret, digits=6, algorithm="sha1", period=30)).now()
    phone.step(RECOVER, code=code)
    assert phone.stage_type == "prompt"
    phone.step(RECOVER, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert phone.get("/").text == "home: jack"


def test_recovery_asks_a_passkey_only_user_for_the_passkey_first(
    app: Flask, browser: FlowBrowser, make_user: Any, mailbox: Any
) -> None:
    """A passkey is a second factor too: the mailbox alone resets nothing (ASVS 6.4.3)."""
    make_user("jill", password=PASSWORD)
    phone = SoftAuthenticator()
    browser.log_in("jill", PASSWORD)
    browser.start(PASSKEY_SETUP)
    page = browser.step(PASSKEY_SETUP, password=PASSWORD)
    browser.step(
        PASSKEY_SETUP, name="Phone", passkey=json.dumps(phone.create(options(page), ORIGIN))
    )

    other = browser.fresh()
    other.start(RECOVER)
    other.step(RECOVER, uid_field="jill")
    other.open_link(link_in(mailbox.wait_for_message()))
    page = other.get(f"/flows/{RECOVER}/")
    assert other.stage_type == "authenticator_validate"
    assert 'name="password"' not in page.text
    other.step(RECOVER, passkey=json.dumps(phone.get(options(page), ORIGIN)))
    assert other.stage_type == "prompt"
    other.step(RECOVER, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert other.get("/").text == "home: jill"


def test_a_sign_up_in_german_is_mailed_in_german(
    app: Flask, browser: FlowBrowser, mailbox: Any
) -> None:
    """The mail is in the language of the request that sent it: subject, text and HTML
    (rendered in that request; only delivery runs in the background)."""
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    browser.start(ENROLL)
    browser.step(
        ENROLL,
        username="dora",
        email="dora@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    message = mailbox.wait_for_message()
    text, html_body = bodies(message)
    with app.test_request_context(), using_locale("de"):
        hello = gettext("Hello,")  # no account yet, so no name
        ignore = gettext("If you did not ask for this, you can ignore this email.")
        subject = gettext("Confirm your email address")  # the shipped sign-up's subject
    assert hello != "Hello," and subject != "Confirm your email address"
    assert hello in text and ignore in text
    assert html.escape(ignore, quote=False) in html_body
    assert '<html lang="de"' in html_body
    assert message["Subject"] == subject


def test_an_app_whose_flask_babel_says_spanish_mails_in_spanish(
    app: Flask, browser: FlowBrowser, mailbox: Any
) -> None:
    """The app's Flask-Babel locale decides the mail's language, whatever the browser asks."""
    from flask_babel import Babel

    Babel(app, locale_selector=lambda: "es")
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    page = browser.start(ENROLL)
    assert "Crear una cuenta" in page.text
    browser.step(
        ENROLL,
        username="elena",
        email="elena@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    message = mailbox.wait_for_message()
    text, html_body = bodies(message)
    assert message["Subject"] == "Confirme su correo electrónico"
    assert "Si no lo ha solicitado, puede ignorar este correo." in text
    assert '<html lang="es"' in html_body


def test_the_default_login_slows_down_password_guessing(
    app: Flask, browser: FlowBrowser, make_user: Any
) -> None:
    """Five wrong passwords from one IP make the next guess at that account from there
    wait, with the time said; its owner elsewhere and other accounts there are unaffected."""
    make_user("kate", password=PASSWORD)
    make_user("liam", password=PASSWORD)
    for _ in range(5):
        guesser = browser.fresh()
        guesser.log_in("kate", "a wrong guess", slug=LOGIN)
        assert "Invalid username or password." in guesser.last.text

    held = browser.fresh()
    held.log_in("kate", PASSWORD, slug=LOGIN)
    assert "Too many failed attempts. You can try again in 1 minute." in held.last.text
    assert held.get("/").text == "home: anonymous"

    same_office = browser.fresh()
    same_office.log_in("liam", PASSWORD, slug=LOGIN)
    assert same_office.get("/").text == "home: liam"

    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    owner = FlowBrowser(elsewhere, htmx=browser.htmx)
    owner.log_in("kate", PASSWORD, slug=LOGIN)
    assert owner.get("/").text == "home: kate"
