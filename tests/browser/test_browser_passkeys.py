"""Passkeys (WebAuthn) in a real browser: add one from the settings page, sign in with it
alone (the button and the username field's autofill), use it as the second factor, rename
and remove it, and what a page says without JavaScript or when no passkey answers.

Chromium's virtual authenticator (DevTools' ``WebAuthn`` domain, through a CDP session)
plays the person's device: a platform authenticator that keeps discoverable credentials
and verifies its user. It lives in one tab, so another device gets a fresh authenticator
holding a copy of the credential (``WebAuthn.addCredential``). With presence simulated it
also answers the login page's quiet autofill request (conditional mediation) at once, as
a person picking the passkey from the autofill would; a device "ignoring" the autofill
starts with presence off and turns it on just before a button is pressed.

WebAuthn needs a domain, not an IP address: the app is browsed as ``http://localhost:<port>``
(a secure context, and the relying party ``localhost``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from conftest import PASSWORD, LiveApp, Walker, serve_example_app
from webauthn.helpers import bytes_to_base64url

from example_app import User, db
from flask_flows.blueprints import apply_blueprint
from flask_flows.devices import TOTPDevice, WebAuthnDevice

pytestmark = pytest.mark.browser

LOGIN = "default-authentication-flow"
SETTINGS = "/flows/-/settings/"
#: A login flow that offers passkeys only as the second factor (no webauthn_stage).
SECOND_FACTOR = "passkey-second-factor"
SECOND_FACTOR_FLOW = f"""
version: 1
stages:
  - name: {SECOND_FACTOR}-identification
    type: identification
    config:
      password_stage: {SECOND_FACTOR}-password
  - name: {SECOND_FACTOR}-password
    type: password
  - name: {SECOND_FACTOR}-validation
    type: authenticator_validate
    config:
      device_classes: [totp, static, webauthn]
  - name: {SECOND_FACTOR}-login
    type: user_login
flows:
  - slug: {SECOND_FACTOR}
    name: Passkey as a second factor
    title: Welcome
    designation: authentication
    bindings:
      - stage: {SECOND_FACTOR}-identification
        order: 10
      - stage: {SECOND_FACTOR}-validation
        order: 20
      - stage: {SECOND_FACTOR}-login
        order: 30
"""

ADDED = "Your passkey was added."
CANCELLED = "No passkey was used: the request was cancelled or timed out. Try again."
EXISTS = "This device or password manager already has a passkey for your account."
NEEDS_JS_SETUP = "Adding a passkey needs JavaScript and a browser that supports passkeys."
NEEDS_JS_SIGN_IN = "Your passkey needs JavaScript and a browser that supports passkeys."

#: A phone's or laptop's own passkey provider, which checks its owner (PIN, biometrics).
PLATFORM = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}
#: A browser whose autofill cannot offer passkeys: the button is the only way to use one.
NO_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"
#: Records each navigator.credentials.get() of the page: its mediation and how it ended.
RECORD_REQUESTS = """(() => {
  const requests = window.__passkeyRequests = [];
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => {
    const request = {mediation: (options && options.mediation) || "optional", end: "pending"};
    requests.push(request);
    const answer = get(options);
    answer.then(() => { request.end = "answered"; }, (error) => { request.end = error.name; });
    return answer;
  };
})()"""


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, smtp_server: Any) -> Iterator[LiveApp]:
    """The example app, browsed by name (``localhost``), the relying party of its passkeys;
    with a login flow that asks for a passkey only after the password."""
    for live in serve_example_app(tmp_path_factory, smtp_server, FLOWS_WEBAUTHN_RP_ID="localhost"):
        port = urlsplit(live.url).port
        live.url = f"http://localhost:{port}"  # the server listens on 127.0.0.1
        live.app.config["FLOWS_MAIL_BASE_URL"] = live.url  # cookies stay on one host
        live.app.config["FLOWS_WEBAUTHN_ORIGINS"] = [live.url]
        with live.app.app_context():
            apply_blueprint(live.app.extensions["flows"], SECOND_FACTOR_FLOW, name="test.yaml")
        yield live


class Device(Walker):
    """A person's browser with its passkey provider (Chromium's virtual authenticator,
    when JavaScript is on), noting the page's console errors."""

    def __init__(
        self,
        page: Any,
        live: LiveApp,
        *,
        js: bool,
        axe: Any,
        passkeys: bool = True,
        credentials: tuple[dict[str, Any], ...] = (),
        **authenticator: Any,
    ) -> None:
        super().__init__(page, live, js=js, axe=axe)
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.cdp: Any = None
        if js and passkeys:
            self.cdp = page.context.new_cdp_session(page)
            self.cdp.send("WebAuthn.enable")
            options = {**PLATFORM, **authenticator}
            self.authenticator_id = self.cdp.send(
                "WebAuthn.addVirtualAuthenticator", {"options": options}
            )["authenticatorId"]
            for credential in credentials:
                self.cdp.send(
                    "WebAuthn.addCredential",
                    {"authenticatorId": self.authenticator_id, "credential": credential},
                )

    def _console(self, message: Any) -> None:
        # The example app has no favicon: its 404 is the browser's, not a page's.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(message.text)

    # -- the authenticator

    def credentials(self) -> list[dict[str, Any]]:
        """What the authenticator holds (private keys included: copy one to another)."""
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        return list(found["credentials"])

    def presence(self, on: bool) -> None:
        """Whether the authenticator confirms a request at once, as a touch would."""
        self.cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": self.authenticator_id, "enabled": on},
        )

    # -- the page

    def passkey_button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name)

    def passkey_error(self) -> Any:
        return self.page.get_by_role("alert").filter(has_text="passkey")

    def record_requests(self) -> None:
        """Note every navigator.credentials.get() of the pages opened from now on."""
        self.page.add_init_script(RECORD_REQUESTS)

    def requests(self) -> list[dict[str, str]]:
        return list(self.page.evaluate("window.__passkeyRequests"))

    def press(self, button: Any) -> None:
        """Press a button that sends the stage's form (for :meth:`expect_stage` next)."""
        self._mark_current()
        button.click()

    def settings(self) -> Device:
        self.page.locator(".bar nav").get_by_role("link", name="Settings").click()
        self.wait_for_path(SETTINGS)
        return self

    def notice(self) -> str:
        return str(self.page.locator(".flows-messages .flows-message").inner_text())

    def add_passkey(self, name: str) -> None:
        """From the settings page: "Add a passkey", the password, a name, the button."""
        self.page.get_by_role("link", name="Add a passkey").click()
        self.stage_loaded("password")  # re-authentication first (ASVS 7.5.1)
        self.submit("authenticator_webauthn", password=PASSWORD)
        self.field("name").fill(name)
        create = self.passkey_button("Create passkey")
        create.wait_for()
        self.check_a11y()  # with the button the script revealed
        self.screenshot("passkey-setup")
        create.click()
        self.wait_for_path(SETTINGS)
        assert not self.marker_kept(), "the flow's end should load the settings page"


@pytest.fixture
def device(new_context: Callable[..., Any], live_app: LiveApp, axe: Any) -> Callable[..., Device]:
    """``device(js=…, passkeys=…, credentials=…, **authenticator options)`` opens another
    device: with ``passkeys`` False, one without a passkey provider."""

    def make(
        js: bool = True, passkeys: bool = True, credentials: Any = (), **options: Any
    ) -> Device:
        page = new_context(js=js).new_page()
        return Device(
            page,
            live_app,
            js=js,
            axe=axe,
            passkeys=passkeys,
            credentials=tuple(credentials),
            **options,
        )

    return make


def with_a_passkey(device: Callable[..., Device], username: str, name: str = "Laptop") -> Device:
    """A device on which ``username`` signed in with the password and added a passkey."""
    laptop = device()
    laptop.log_in(username)
    laptop.settings().add_passkey(name)
    assert laptop.notice() == ADDED
    return laptop


def passkeys_of(live: LiveApp, username: str) -> list[WebAuthnDevice]:
    """The user's passkeys as the server stores them."""
    with live.app.app_context():
        user_id = str(db.session.scalar(sa.select(User.id).where(User.username == username)))
        found = list(
            db.session.scalars(sa.select(WebAuthnDevice).where(WebAuthnDevice.user_id == user_id))
        )
        db.session.expunge_all()
        return found


def add_authenticator_app(live: LiveApp, username: str) -> pyotp.TOTP:
    """An authenticator app for the user, as if set up earlier; its codes."""
    secret = pyotp.random_base32()
    with live.app.app_context():
        user_id = str(db.session.scalar(sa.select(User.id).where(User.username == username)))
        db.session.add(TOTPDevice(user_id=user_id, name="Phone", secret=secret, confirmed=True))
        db.session.commit()
    return pyotp.TOTP(secret)


def base64url(standard: str) -> str:
    """DevTools writes ids in standard base64; the server keeps base64url."""
    return bytes_to_base64url(base64.b64decode(standard))


def posted(me: Walker, index: int = -1) -> dict[str, str]:
    """The fields of a form the page posted."""
    body = me.posts[index].post_data or ""
    return {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}


# -- adding a passkey -------------------------------------------------------------------------


def test_add_a_passkey_from_the_settings_page(device: Callable[..., Device], user: str) -> None:
    me = device()
    me.log_in(user)
    me.settings()
    me.add_passkey("Work laptop")

    assert me.notice() == ADDED
    item = me.page.locator(".flows-settings-item", has_text="Work laptop")
    assert item.locator("h3").inner_text() == "Work laptop"
    assert item.locator("dt:text-is('Kind') + dd").inner_text() == "Passkey"
    me.check_a11y()
    assert me.errors == []

    held = me.credentials()
    assert len(held) == 1
    assert held[0]["isResidentCredential"] is True  # it signs in without a username
    assert held[0]["rpId"] == "localhost"
    stored = passkeys_of(me.live, user)
    assert [(p.name, p.credential_id) for p in stored] == [
        ("Work laptop", base64url(held[0]["credentialId"]))
    ]
    assert stored[0].user_handle == base64url(held[0]["userHandle"])

    # Again from the same device (Enter in the name field makes it too): the device
    # already has one for this account and refuses; the page says so and adds nothing.
    me.page.get_by_role("link", name="Add another passkey").click()
    me.stage_loaded("password")
    me.submit("authenticator_webauthn", password=PASSWORD)
    me.passkey_button("Create passkey").wait_for()
    me.field("name").fill("Same laptop")
    me.field("name").press("Enter")
    error = me.passkey_error()
    error.wait_for()
    assert error.inner_text() == EXISTS
    me.check_a11y()
    assert me.passkey_button("Create passkey").is_enabled()
    assert len(me.credentials()) == 1
    assert len(passkeys_of(me.live, user)) == 1


def test_a_passkey_made_without_a_name_is_asked_for_one(
    device: Callable[..., Device], user: str
) -> None:
    me = device()
    me.log_in(user)
    me.settings()
    me.page.get_by_role("link", name="Add a passkey").click()
    me.stage_loaded("password")
    me.submit("authenticator_webauthn", password=PASSWORD)
    assert me.field("name").input_value() == "Passkey"  # the stage's default name
    me.field("name").fill("")
    me.press(me.passkey_button("Create passkey"))
    me.expect_stage("authenticator_webauthn")  # with axe, the error shown
    assert me.field("name").get_attribute("aria-invalid") == "true"
    assert "Give this passkey a name" in me.stage.inner_text()
    assert passkeys_of(me.live, user) == []

    # The device made one already; the next, for the same account, takes its place.
    me.field("name").fill("Named")
    me.passkey_button("Create passkey").click()
    me.wait_for_path(SETTINGS)
    assert me.notice() == ADDED
    held = me.credentials()
    assert len(held) == 1
    assert [(p.name, p.credential_id) for p in passkeys_of(me.live, user)] == [
        ("Named", base64url(held[0]["credentialId"]))
    ]


def test_adding_a_passkey_logs_no_console_errors(device: Callable[..., Device], user: str) -> None:
    me = device()
    me.log_in(user)
    me.settings().add_passkey("Laptop")
    assert me.notice() == ADDED
    assert me.errors == []


# -- signing in with a passkey ----------------------------------------------------------------


def test_sign_in_with_a_passkey_alone_even_with_an_authenticator_app(
    device: Callable[..., Device], user: str
) -> None:
    laptop = with_a_passkey(device, user)
    add_authenticator_app(laptop.live, user)
    before = passkeys_of(laptop.live, user)[0]

    # Another browser with the same passkey (a synced one), not picked from the autofill.
    me = device(credentials=laptop.credentials(), automaticPresenceSimulation=False)
    me.start(LOGIN)  # axe runs on the page
    button = me.passkey_button("Sign in with a passkey")
    assert button.is_visible()
    me.screenshot("passkey-login")
    me.presence(True)
    button.click()
    me.wait_for_path("/")
    assert not me.marker_kept(), "the flow's end should load the home page"

    # One post: the passkey's answer, without a name or password; no two-step page.
    assert len(me.posts) == 1
    fields = posted(me)
    assert fields["uid_field"] == "" and fields["password"] == ""
    assert fields["passkey"].startswith("{")
    assert me.posts[0].headers.get("hx-request") == "true"
    assert me.page.locator(".bar nav strong").inner_text() == user
    after = passkeys_of(me.live, user)[0]
    assert after.last_used is not None and after.sign_count > before.sign_count
    assert me.errors == []


def test_the_autofill_signs_in_with_the_passkey(device: Callable[..., Device], user: str) -> None:
    """The quiet request of the login page (conditional mediation): the virtual
    authenticator answers it at once, as a person choosing the passkey in the autofill."""
    laptop = with_a_passkey(device, user)
    me = device(credentials=laptop.credentials())
    me.page.goto(me.live.flow(LOGIN))
    me.wait_for_path("/")
    assert me.page.locator(".bar nav strong").inner_text() == user
    assert len(me.posts) == 1 and posted(me)["passkey"].startswith("{")
    assert me.errors == []


def test_the_password_still_signs_in_while_the_autofill_waits(
    device: Callable[..., Device], user: str
) -> None:
    # No passkey provider: the quiet request waits (an empty virtual one refuses at once).
    me = device(passkeys=False)
    me.record_requests()
    me.start(LOGIN)
    assert me.field("uid_field").get_attribute("autocomplete") == "username webauthn"
    me.page.wait_for_function("window.__passkeyRequests.length === 1")
    assert me.requests() == [{"mediation": "conditional", "end": "pending"}]

    me.submit("identification", uid_field=user, password="not the password")
    assert "Invalid username or password." in me.stage.inner_text()
    # The swap ended the old request and the new page asked again: one at a time.
    me.page.wait_for_function(
        "(r => r.length === 2 && r[0].end !== 'pending')(window.__passkeyRequests)"
    )
    assert me.requests() == [
        {"mediation": "conditional", "end": "AbortError"},
        {"mediation": "conditional", "end": "pending"},
    ]
    assert me.passkey_button("Sign in with a passkey").is_visible()

    me.finish("/", password=PASSWORD)
    assert me.page.locator(".bar nav strong").inner_text() == user
    assert me.errors == []


@pytest.mark.parametrize("other_kind", [False, True], ids=["passkey-only", "with-app"])
def test_a_passkey_as_the_second_factor(
    device: Callable[..., Device], user: str, other_kind: bool
) -> None:
    laptop = with_a_passkey(device, user)
    totp = add_authenticator_app(laptop.live, user) if other_kind else None
    # Not picked from the autofill (where the default login offers it): the password first.
    me = device(credentials=laptop.credentials(), automaticPresenceSimulation=False)
    me.start(LOGIN if other_kind else SECOND_FACTOR)
    if not other_kind:
        assert me.passkey_button("Sign in with a passkey").count() == 0
    me.submit("authenticator_validate", uid_field=user, password=PASSWORD)
    button = me.passkey_button("Use your passkey")
    button.wait_for()
    assert not me.stage.get_by_text(NEEDS_JS_SIGN_IN).is_visible()  # the script can
    if other_kind:
        assert me.field("code").is_visible()
        assert me.stage.get_by_text("Or enter a code").is_visible()
        me.screenshot("passkey-second-factor")
        # A wrong code first: the page comes back, and its passkey still works.
        assert totp is not None
        me.submit("authenticator_validate", code="000000" if totp.now() != "000000" else "111111")
        assert me.field("code").get_attribute("aria-invalid") == "true"
        button.wait_for()
    else:
        assert me.field("code").count() == 0
        # The page's only action has the focus (never Cancel: Enter would end the login).
        assert me.page.evaluate("document.activeElement.dataset.flowsPasskeyStart") == ""
    me.check_a11y()

    me.presence(True)
    button.click()
    me.wait_for_path("/")
    assert me.page.locator(".bar nav strong").inner_text() == user
    assert "passkey" in posted(me) and posted(me)["passkey"].startswith("{")
    assert passkeys_of(me.live, user)[0].last_used is not None
    assert me.errors == []


@pytest.mark.parametrize("case", ["no-passkey", "not-verified"])
def test_a_passkey_that_does_not_answer_leaves_the_page_usable(
    device: Callable[..., Device], user: str, case: str
) -> None:
    if case == "no-passkey":
        me = device()  # a device without a passkey for this site
    else:  # a device that cannot check its owner: a passkey alone must not sign in
        me = device(
            credentials=with_a_passkey(device, user).credentials(),
            isUserVerified=False,
        )
    me.start(LOGIN)
    me.passkey_button("Sign in with a passkey").click()
    error = me.passkey_error()
    error.wait_for()
    assert error.inner_text() == CANCELLED
    assert me.passkey_button("Sign in with a passkey").is_enabled()
    # The button, disabled while the browser asked, has the focus back.
    assert me.page.evaluate("document.activeElement.dataset.flowsPasskeyStart") == ""
    assert me.posts == []  # nothing was sent
    me.check_a11y()

    # The form still works: the password signs in (and then asks for the passkey).
    if case == "no-passkey":
        me.finish("/", uid_field=user, password=PASSWORD)
        assert me.page.locator(".bar nav strong").inner_text() == user
    else:
        me.submit("authenticator_validate", uid_field=user, password=PASSWORD)
        me.passkey_button("Use your passkey").wait_for()
    assert me.errors == []


@pytest.mark.parametrize("case", ["removed", "cloned"])
def test_a_passkey_the_server_refuses_says_why(
    device: Callable[..., Device], user: str, case: str
) -> None:
    laptop = with_a_passkey(device, user)
    copy = laptop.credentials()
    if case == "removed":
        laptop.page.locator("summary", has_text="Remove").click()
        laptop.page.get_by_label("Your password").fill(PASSWORD)
        laptop.page.get_by_role("button", name="Remove Laptop", exact=True).click()
        laptop.page.wait_for_selector(".flows-messages .flows-message:text('was removed')")
        expected = "This passkey is not registered here (it may have been removed)."
    else:  # a second copy of the same key answers with a count already seen
        first = device(credentials=copy)
        first.page.add_init_script(NO_AUTOFILL)
        first.start(LOGIN)
        first.passkey_button("Sign in with a passkey").click()
        first.wait_for_path("/")
        expected = "This passkey was refused. Use another way to sign in."
    stored = [(p.sign_count, p.last_used) for p in passkeys_of(laptop.live, user)]

    me = device(credentials=copy)
    me.page.add_init_script(NO_AUTOFILL)
    me.start(LOGIN)
    me.press(me.passkey_button("Sign in with a passkey"))
    me.expect_stage("identification")  # swapped in again, with axe
    assert expected in me.stage.inner_text()
    assert me.passkey_button("Sign in with a passkey").is_visible()
    assert me.logged_in_as() is None
    assert [(p.sign_count, p.last_used) for p in passkeys_of(me.live, user)] == stored
    assert me.errors == []


def test_an_app_served_at_an_ip_address_offers_no_passkeys(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: Any, new_context: Callable[..., Any]
) -> None:
    server = serve_example_app(tmp_path_factory, smtp_server)  # as conftest's live_app
    live = next(server)
    try:
        assert urlsplit(live.url).hostname == "127.0.0.1"
        page = new_context().new_page()
        response = page.goto(live.flow(LOGIN))
        assert response is not None and response.status == 200
        assert page.locator("#flow-stage [data-stage-type='identification']").is_visible()
        assert page.get_by_role("button", name="Sign in with a passkey").count() == 0
    finally:
        next(server, None)  # stops it


# -- the settings page ------------------------------------------------------------------------


def test_rename_and_remove_a_passkey_with_the_password(
    device: Callable[..., Device], user: str
) -> None:
    me = with_a_passkey(device, user)
    page = me.page

    page.locator("summary", has_text="Rename").click()
    page.get_by_label("New name").fill("Old laptop")
    page.get_by_role("button", name="Save name of Laptop").click()
    page.wait_for_selector(".flows-settings-item h3:text-is('Old laptop')")
    assert me.notice() == "Laptop is now called Old laptop."
    assert [p.name for p in passkeys_of(me.live, user)] == ["Old laptop"]

    page.locator("summary", has_text="Remove").click()
    confirm = page.get_by_role("button", name="Confirm with a passkey and remove")
    assert confirm.is_visible()  # a passkey of the user's may confirm instead
    me.check_a11y()
    page.get_by_label("Your password").fill("not the password")
    page.get_by_role("button", name="Remove Old laptop", exact=True).click()
    page.wait_for_selector("[name='password'][aria-invalid='true']")
    assert "That password is not correct, so nothing was removed." in me.text()
    assert len(passkeys_of(me.live, user)) == 1

    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Remove Old laptop", exact=True).click()
    page.wait_for_selector(".flows-messages .flows-message:text('was removed')")
    assert me.notice() == "Old laptop was removed."
    assert page.locator(".flows-settings-item h3", has_text="Old laptop").count() == 0
    assert passkeys_of(me.live, user) == []
    me.check_a11y()


def test_remove_a_passkey_confirmed_with_a_passkey(
    device: Callable[..., Device], user: str
) -> None:
    me = with_a_passkey(device, user)
    me.page.locator("summary", has_text="Remove").click()
    me.passkey_button("Confirm with a passkey and remove").click()
    me.page.wait_for_selector(".flows-messages .flows-message:text('was removed')")
    assert me.notice() == "Laptop was removed."
    assert passkeys_of(me.live, user) == []
    assert me.errors == []


# -- without JavaScript -----------------------------------------------------------------------


def test_without_javascript_passkeys_say_what_they_need(
    device: Callable[..., Device], user: str
) -> None:
    me = device(js=False)
    me.start(LOGIN)
    assert me.passkey_button("Sign in with a passkey").count() == 0
    assert me.stage.locator(".flows-passkey :visible").count() == 0  # nor its "or"
    me.finish("/", uid_field=user, password=PASSWORD)
    assert me.page.locator(".bar nav strong").inner_text() == user

    me.settings()
    me.page.get_by_role("link", name="Add a passkey").click()
    me.stage_loaded("password")
    me.submit("authenticator_webauthn", password=PASSWORD)
    assert me.stage.get_by_text(NEEDS_JS_SETUP).is_visible()
    assert me.passkey_button("Create passkey").count() == 0
    assert passkeys_of(me.live, user) == []


def test_without_javascript_the_two_step_page_says_the_passkey_needs_it(
    device: Callable[..., Device], user: str
) -> None:
    with_a_passkey(device, user)  # on a device with JavaScript
    me = device(js=False)
    me.start(LOGIN)
    me.submit("authenticator_validate", uid_field=user, password=PASSWORD)
    assert me.stage.get_by_text(NEEDS_JS_SIGN_IN).is_visible()
    assert me.passkey_button("Use your passkey").count() == 0
    assert me.field("code").count() == 0
    assert me.logged_in_as() is None
