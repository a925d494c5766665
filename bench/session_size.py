"""Benchmark 4: bytes of the session cookie after every step of every default flow.

The default flows are installed with ``install_default_flows`` and walked as
``tests/test_account_flows.py`` and ``tests/test_authenticator_setup.py`` do, once as a
plain browser and once as htmx; each step keeps the larger of the two. Mail goes to a
``FLOWS_MAIL_BACKEND`` function that keeps the messages, and links are opened in a
second browser (its "Continue" pressed).
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
from common import CHEAP, PASSWORD, FlowBrowser, db, flows_app, flows_state
from flask import Flask

from flask_flows.blueprints import install_default_flows

LOGIN = "default-authentication-flow"
LOGOUT = "default-invalidation-flow"
ENROLL = "default-enrollment-flow"
RECOVER = "default-recovery-flow"
CHANGE = "default-password-change"
DELETE = "default-unenrollment-flow"
TOTP = "default-authenticator-totp-setup"
CODES = "default-authenticator-static-setup"
NEW_PASSWORD = "a whole new passphrase"  # noqa: S105

_LINK = re.compile(r"https?://[^\s\"'<>]+(/flows/-/resume/[A-Za-z0-9_-]+/)")
_SECRET = re.compile(r'<code id="flows-totp-secret"[^>]*>([A-Z2-7 ]+)</code>')

OUTBOX: list[EmailMessage] = []


def collect(message: EmailMessage) -> None:
    OUTBOX.append(message)


class Walk:
    """Records the cookie size after each request under ``flow: step`` labels."""

    def __init__(self, app: Flask, htmx: bool) -> None:
        self.app = app
        self.htmx = htmx
        self.sizes: dict[str, int] = {}

    def browser(self) -> FlowBrowser:
        return FlowBrowser(self.app.test_client(), htmx=self.htmx)

    def record(self, browser: FlowBrowser, label: str) -> None:
        cookie = browser.client.get_cookie("session")
        size = len(cookie.value) if cookie is not None else 0
        self.sizes[label] = max(self.sizes.get(label, 0), size)

    def log_in(self, browser: FlowBrowser, username: str, password: str = PASSWORD) -> None:
        browser.start(LOGIN)
        self.record(browser, "login: identification shown")
        # The default login asks for the password on the same page (password_stage).
        browser.step(LOGIN, uid_field=username, password=password)
        self.record(browser, "login: logged in")
        assert browser.get("/").text == f"home: {username}"

    def link_in_last_mail(self, to: str) -> str:
        message = OUTBOX.pop()
        assert message["To"] == to
        body = message.get_body(("plain",))
        assert body is not None
        match = _LINK.search(body.get_content())
        assert match, "no resume link in the mail"
        return match.group(1)

    def run(self, tag: str) -> dict[str, int]:
        carol = f"carol{tag}"
        browser = self.browser()
        browser.start(ENROLL)
        self.record(browser, "enrollment: prompt shown")
        browser.step(
            ENROLL,
            username=carol,
            email=f"{carol}@example.com",
            password=PASSWORD,
            password_repeat=PASSWORD,
        )
        assert browser.stage_type == "email"
        self.record(browser, "enrollment: email sent")
        phone = self.browser()
        phone.open_link(self.link_in_last_mail(f"{carol}@example.com"))
        assert phone.last is not None and phone.last.status_code == 303
        self.record(phone, "enrollment: link opened")
        phone.get(f"/flows/{ENROLL}/")
        self.record(phone, "enrollment: account written, logged in")
        assert phone.get("/").text == f"home: {carol}"

        alice = self.browser()
        self.log_in(alice, f"alice{tag}")
        alice.start(CHANGE)
        self.record(alice, "password change: password shown")
        alice.step(CHANGE, password=PASSWORD)
        assert alice.stage_type == "prompt"
        self.record(alice, "password change: new password shown")
        alice.step(CHANGE, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
        assert alice.redirect_target == "/"
        self.record(alice, "password change: done")

        alice.start(TOTP)
        assert alice.stage_type == "password"
        self.record(alice, "TOTP setup: password shown")
        page = alice.step(TOTP, password=NEW_PASSWORD)
        assert alice.stage_type == "authenticator_totp"
        self.record(alice, "TOTP setup: QR code shown")
        match = _SECRET.search(page.text)
        assert match, "no TOTP secret on the page"
        alice.step(TOTP, name="Phone", code=pyotp.TOTP(match.group(1).replace(" ", "")).now())
        assert alice.redirect_target == "/"
        self.record(alice, "TOTP setup: done")

        alice.start(CODES)
        assert alice.stage_type == "password"
        self.record(alice, "recovery codes: password shown")
        alice.step(CODES, password=NEW_PASSWORD)
        assert alice.stage_type == "authenticator_static"
        self.record(alice, "recovery codes: codes shown")
        alice.step(CODES, saved="y")
        assert alice.redirect_target == "/"
        self.record(alice, "recovery codes: done")

        alice.start(LOGOUT)
        self.record(alice, "logout: confirmation shown")
        alice.step(LOGOUT)
        self.record(alice, "logout: logged out")
        assert alice.get("/").text == "home: anonymous"

        erin = f"erin{tag}"
        stranger = self.browser()
        stranger.start(RECOVER)
        self.record(stranger, "recovery: identification shown")
        stranger.step(RECOVER, uid_field=f"{erin}@example.com")
        assert stranger.stage_type == "email"
        self.record(stranger, "recovery: email sent")
        phone = self.browser()
        phone.open_link(self.link_in_last_mail(f"{erin}@example.com"))
        assert phone.last is not None and phone.last.status_code == 303
        self.record(phone, "recovery: link opened")
        phone.get(f"/flows/{RECOVER}/")
        assert phone.stage_type == "prompt"
        self.record(phone, "recovery: new password shown")
        phone.step(RECOVER, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
        self.record(phone, "recovery: logged in")
        assert phone.get("/").text == f"home: {erin}"

        hank = self.browser()
        self.log_in(hank, f"hank{tag}")
        hank.start(DELETE)
        self.record(hank, "unenrollment: password shown")
        hank.step(DELETE, password=PASSWORD)
        assert hank.stage_type == "prompt"
        self.record(hank, "unenrollment: confirmation shown")
        hank.step(DELETE, confirm="y")
        self.record(hank, "unenrollment: account deleted")
        assert hank.get("/").text == "home: anonymous"
        return self.sizes


def session_sizes(workdir: Path) -> dict[str, Any]:
    app = flows_app(
        f"sqlite:///{workdir / 'sessions.sqlite3'}",
        CHEAP,
        FLOWS_MAIL_BACKEND=collect,
        FLOWS_MAIL_SEND_IN_BACKGROUND=False,
        FLOWS_MAIL_RATE_LIMIT="1000/3600",
    )
    state = flows_state(app)
    with app.app_context():
        install_default_flows(state)
        for tag in ("p", "h"):
            for name in ("alice", "erin", "hank"):
                state.user_store.create(
                    username=f"{name}{tag}", email=f"{name}{tag}@example.com", password=PASSWORD
                )
        db.session.commit()
    plain = Walk(app, htmx=False).run("p")
    htmx = Walk(app, htmx=True).run("h")
    steps = {label: max(plain[label], htmx[label]) for label in plain}
    return {"steps": steps, "largest": max(steps.values())}
