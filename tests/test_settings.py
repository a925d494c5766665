"""The self-service settings page: authenticators, sessions and account links."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from passkey_authenticator import SoftAuthenticator
from webauthn.helpers import bytes_to_base64url

from flask_flows import AuthenticatedSession, Flow, signals
from flask_flows.blueprints import install_default_flows
from flask_flows.csrf import MSG_CSRF
from flask_flows.devices import StaticDevice, StaticToken, TOTPDevice
from flask_flows.extension import FlowsState
from flask_flows.otp import new_totp_secret
from flask_flows.settings import MAX_PASSWORD_FAILURES
from flask_flows.user_agents import describe_user_agent

PASSWORD = "correct horse battery"
SETTINGS = "/flows/-/settings/"
ORIGIN = "http://localhost"  # the test client's, which passkeys accept under TESTING
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_END_SESSION = re.compile(r'action="(/flows/-/settings/sessions/(\d+)/end/)"')


def another(app: Flask, user_agent: str | None = None) -> FlowBrowser:
    """A second, separate browser (own cookies), optionally with its own User-Agent."""
    client = app.test_client()
    if user_agent:
        client.environ_base["HTTP_USER_AGENT"] = user_agent
    return FlowBrowser(client)


def open_settings(browser: FlowBrowser) -> str:
    page = browser.get(SETTINGS)
    assert page.status_code == 200
    return page.text


def post_action(browser: FlowBrowser, url: str, **fields: str) -> int:
    """POST an action of the settings page shown last, with its CSRF token."""
    response = browser.client.post(url, data={"csrf_token": browser.csrf_token(), **fields})
    browser.last = response
    return response.status_code


def session_rows(app: Flask) -> list[AuthenticatedSession]:
    with app.app_context():
        rows = list(
            db.session.scalars(sa.select(AuthenticatedSession).order_by(AuthenticatedSession.id))
        )
        db.session.expunge_all()
        return rows


def add_totp(app: Flask, user: User, name: str = "Phone", confirmed: bool = True) -> int:
    with app.app_context():
        device = TOTPDevice(
            user_id=str(user.id), name=name, secret=new_totp_secret(), confirmed=confirmed
        )
        db.session.add(device)
        db.session.commit()
        return device.id


def add_static(app: Flask, state: FlowsState, user: User, codes: int = 3) -> int:
    with app.app_context():
        device = StaticDevice(user_id=str(user.id), name="Recovery codes", confirmed=True)
        for index in range(codes):
            device.tokens.append(
                StaticToken(lookup=f"AB{index:02d}", secret_hash=state.hashing.hash("X" * 8))
            )
        db.session.add(device)
        db.session.commit()
        return device.id


def device_exists(app: Flask, model: type[TOTPDevice] | type[StaticDevice], device_id: int) -> bool:
    with app.app_context():
        return db.session.get(model, device_id) is not None


def token_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(StaticToken)) or 0)


# -- access -----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_login_and_back(
    app: Flask, make_user: Callable[..., User], login_flow: Flow
) -> None:
    client = app.test_client()
    response = client.get(SETTINGS)
    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/flows/-/login/"
    assert parse_qs(target.query)["next"] == [SETTINGS]

    # Actions are refused the same way, and change nothing.
    response = client.post("/flows/-/settings/sessions/end-others/")
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/flows/-/login/"

    # The login flow really does come back to the page.
    make_user("alice")
    browser = FlowBrowser(client)
    browser.get(response.headers["Location"])
    browser.follow()
    browser.submit("login", uid_field="alice")
    browser.follow()
    browser.submit("login", password=PASSWORD)
    assert browser.redirect_target == SETTINGS
    assert "Account settings" in browser.follow().text


# -- the page ---------------------------------------------------------------------------------


def test_the_page_lists_devices_and_sessions(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    alice = make_user("alice")
    bob = make_user("bob")
    add_totp(app, alice, "Work phone")
    add_totp(app, alice, "Half-done setup", confirmed=False)
    add_totp(app, bob, "Bob's phone")
    add_static(app, state, alice, codes=3)
    browser.log_in("alice", PASSWORD, slug="login")
    another(app, FIREFOX_UA).log_in("alice", PASSWORD, slug="login")

    page = open_settings(browser)
    assert '<h1 class="flows-stage-heading flows-stage-heading--page"' in page
    assert "<title>Account settings · Test App</title>" in page
    assert "Work phone" in page
    assert "Authenticator app" in page
    assert "<dt>Codes left</dt><dd>3</dd>" in page
    assert "Half-done setup" not in page  # unconfirmed devices are not authenticators yet
    assert "Bob&#39;s phone" not in page and "Bob's phone" not in page
    # Sessions: this one marked, the Firefox one summarised, each with its own button.
    assert page.count("This device") == 1
    assert "Firefox on Linux" in page
    assert len(_END_SESSION.findall(page)) == 2
    assert 'End this session<span class="flows-sr-only"> (Firefox on Linux' in page
    assert "End all other sessions" in page
    # Each remove form has its own field ids (names stay "password") and accessible name.
    assert page.count('name="password"') == 2
    assert len(set(re.findall(r'id="(remove-[a-z]+-\d+-password)"', page))) == 2
    assert 'Remove<span class="flows-sr-only"> Work phone</span>' in page


def test_the_page_has_no_other_sessions_button_alone(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_settings(browser)
    assert "End all other sessions" not in page
    assert "You have no authenticators yet." in page


def test_setup_and_account_links_appear_only_when_their_flows_exist(
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    labels = (
        "Add an authenticator app",
        "Create recovery codes",
        "Change your password",
        "Delete your account",
    )
    page = open_settings(browser)
    for label in labels:
        assert label not in page

    for slug in ("default-authenticator-totp-setup", "default-authenticator-static-setup"):
        make_flow(slug, "dummy", designation="stage_configuration")
    make_flow("default-password-change", "dummy", designation="stage_configuration")
    make_flow("default-unenrollment-flow", "dummy", designation="unenrollment")
    page = open_settings(browser)
    for label in labels:
        assert label in page
    assert 'href="/flows/default-authenticator-totp-setup/?next=/flows/-/settings/"' in page


# -- sessions ---------------------------------------------------------------------------------


def test_ending_another_session_logs_that_client_out(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    laptop = another(app, FIREFOX_UA)
    laptop.log_in("alice", PASSWORD, slug="login")
    laptop_session = session_rows(app)[-1]

    open_settings(browser)
    url = f"/flows/-/settings/sessions/{laptop_session.id}/end/"
    assert post_action(browser, url) == 303
    assert browser.last is not None and browser.last.headers["Location"] == SETTINGS
    assert "Session ended: Firefox on Linux." in open_settings(browser)
    assert "Session ended" not in open_settings(browser)  # the notice shows once

    assert laptop.client.get("/").text == "home: anonymous"
    assert browser.client.get("/").text == "home: alice"
    assert [row.id for row in session_rows(app)] != [laptop_session.id]
    assert len(session_rows(app)) == 1


def test_end_all_other_sessions(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    make_user("bob")
    browser.log_in("alice", PASSWORD, slug="login")
    others = [another(app), another(app)]
    for other in others:
        other.log_in("alice", PASSWORD, slug="login")
    bob = another(app)
    bob.log_in("bob", PASSWORD, slug="login")

    open_settings(browser)
    assert post_action(browser, "/flows/-/settings/sessions/end-others/") == 303
    assert "Your 2 other sessions were ended." in open_settings(browser)
    for other in others:
        assert other.client.get("/").text == "home: anonymous"
    assert browser.client.get("/").text == "home: alice"
    assert bob.client.get("/").text == "home: bob"  # another user's sessions are untouched


def test_a_session_of_another_user_cannot_be_ended(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    make_user("bob")
    bob = another(app)
    bob.log_in("bob", PASSWORD, slug="login")
    (bob_session,) = session_rows(app)
    browser.log_in("alice", PASSWORD, slug="login")

    open_settings(browser)
    assert post_action(browser, f"/flows/-/settings/sessions/{bob_session.id}/end/") == 404
    assert bob_session.id in [row.id for row in session_rows(app)]
    assert bob.client.get("/").text == "home: bob"


def test_ending_this_session_from_the_list_logs_out(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    (mine,) = session_rows(app)
    open_settings(browser)
    assert post_action(browser, f"/flows/-/settings/sessions/{mine.id}/end/") == 303
    assert browser.last is not None and browser.last.headers["Location"] == "/"
    assert session_rows(app) == []
    assert browser.client.get("/").text == "home: anonymous"


# -- authenticators ---------------------------------------------------------------------------


def test_removing_a_device_needs_the_right_password(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice")
    device_id = add_totp(app, alice, "Work phone")
    browser.log_in("alice", PASSWORD, slug="login")
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"

    open_settings(browser)
    assert post_action(browser, url, password="not my password") == 200
    page = browser.last.text if browser.last else ""
    assert "That password is not correct, so nothing was removed." in page
    field_id = f"remove-totp-{device_id}-password"
    assert f'aria-describedby="{field_id}-error {field_id}-hint"' in page
    assert 'aria-invalid="true"' in page
    assert '<details class="flows-settings-confirm" open>' in page
    assert device_exists(app, TOTPDevice, device_id)

    assert post_action(browser, url, password="") == 200
    assert "Enter your password to confirm." in (browser.last.text if browser.last else "")
    assert device_exists(app, TOTPDevice, device_id)

    removed: list[tuple[object, ...]] = []

    def record(sender: Flask, **kwargs: Any) -> None:
        removed.append((kwargs["user"].username, kwargs["kind"], kwargs["device_id"]))

    with signals.authenticator_removed.connected_to(record, sender=app):
        assert post_action(browser, url, password=PASSWORD) == 303
    assert not device_exists(app, TOTPDevice, device_id)
    assert "Work phone was removed." in open_settings(browser)
    assert removed == [("alice", "totp", device_id)]


def test_removing_recovery_codes_deletes_their_tokens(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    alice = make_user("alice")
    device_id = add_static(app, state, alice, codes=4)
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    url = f"/flows/-/settings/authenticators/static/{device_id}/remove/"
    assert post_action(browser, url, password=PASSWORD) == 303
    assert not device_exists(app, StaticDevice, device_id)
    assert token_count(app) == 0


def passkey_options(page: str) -> dict[str, Any]:
    found = re.search(r'data-flows-passkey-options="([^"]*)"', page)
    assert found, "no passkey options on the page"
    return dict(json.loads(html.unescape(found.group(1))))


def add_passkey(browser: FlowBrowser, make_flow: Callable[..., Flow]) -> SoftAuthenticator:
    """A passkey for the signed-in user, made through a setup flow as a browser would."""
    make_flow("add-passkey", "authenticator_webauthn", designation="stage_configuration")
    authenticator = SoftAuthenticator()
    page = browser.start("add-passkey").text
    answer = authenticator.create(passkey_options(page), ORIGIN)
    browser.step("add-passkey", name="Laptop", passkey=json.dumps(answer))
    return authenticator


def test_a_passkey_confirms_a_removal_instead_of_the_password(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    login_flow: Flow,
) -> None:
    alice = make_user("alice")
    device_id = add_totp(app, alice, "Work phone")
    browser.log_in("alice", PASSWORD, slug="login")
    authenticator = add_passkey(browser, make_flow)
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"

    page = open_settings(browser)
    options = passkey_options(page)
    assert options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [
        bytes_to_base64url(authenticator.credentials[0].id)
    ]
    assert "Confirm with a passkey and remove" in page
    # A passkey that did not verify its user is not enough, and removes nothing.
    careless = SoftAuthenticator(user_verification=False)
    careless.credentials = authenticator.credentials
    answer = careless.get(options, ORIGIN)
    assert post_action(browser, url, passkey=json.dumps(answer)) == 200
    assert "did not check that it is you" in (browser.last.text if browser.last else "")
    assert device_exists(app, TOTPDevice, device_id)

    answer = authenticator.get(passkey_options(open_settings(browser)), ORIGIN)
    assert post_action(browser, url, passkey=json.dumps(answer)) == 303
    assert not device_exists(app, TOTPDevice, device_id)
    assert "Work phone was removed." in open_settings(browser)


def test_a_device_can_be_renamed(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice")
    make_user("bob")
    device_id = add_totp(app, alice, "Phone")
    browser.log_in("alice", PASSWORD, slug="login")
    url = f"/flows/-/settings/authenticators/totp/{device_id}/rename/"
    page = open_settings(browser)
    assert f'action="{url}"' in page
    assert f'id="rename-totp-{device_id}-name"' in page

    assert post_action(browser, url, name="  ") == 200
    page = browser.last.text if browser.last else ""
    assert "Enter a name." in page
    assert '<details class="flows-settings-confirm" open>' in page
    assert post_action(browser, url, name="x" * 129) == 200
    assert "Use at most 128 characters." in (browser.last.text if browser.last else "")

    assert post_action(browser, url, name=" Work phone ") == 303
    assert "Phone is now called Work phone." in open_settings(browser)
    with app.app_context():
        assert db.session.get(TOTPDevice, device_id).name == "Work phone"  # type: ignore[union-attr]

    assert browser.client.post(url, data={"name": "No token"}).status_code == 303
    assert MSG_CSRF in open_settings(browser)
    with app.app_context():
        assert db.session.get(TOTPDevice, device_id).name == "Work phone"  # type: ignore[union-attr]

    other = FlowBrowser(app.test_client())
    other.log_in("bob", PASSWORD, slug="login")
    open_settings(other)
    assert post_action(other, url, name="Mine now") == 404


def test_a_device_of_another_user_cannot_be_removed(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    bob = make_user("bob")
    device_id = add_totp(app, bob)
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"
    assert post_action(browser, url, password=PASSWORD) == 404
    assert device_exists(app, TOTPDevice, device_id)
    open_settings(browser)
    assert post_action(browser, "/flows/-/settings/authenticators/sms/1/remove/") == 404


def test_too_many_wrong_passwords_end_the_session(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice")
    device_id = add_totp(app, alice)
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    stolen = browser.client.get_cookie("session")
    assert stolen is not None
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"
    for _ in range(MAX_PASSWORD_FAILURES - 1):
        assert post_action(browser, url, password="guess") == 200
    assert post_action(browser, url, password="guess") == 429
    page = browser.last.text if browser.last else ""
    assert "Too many wrong passwords" in page
    assert "You can try again in 1 minute." in page
    # Logging in again cannot work for a minute: not offered (nor is recovery, which this
    # app has no flow for); the home page is.
    assert "Log in again" not in page and "Reset your password" not in page
    assert '<a class="flows-link" href="/">Go to the home page</a>' in page
    assert device_exists(app, TOTPDevice, device_id)
    # The session is gone on the server: a copy of the cookie from before is dead too.
    assert session_rows(app) == []
    replayed = app.test_client()
    replayed.set_cookie("session", stolen.value)
    assert replayed.get("/").text == "home: anonymous"


def test_replaying_an_older_cookie_does_not_reset_the_wrong_password_count(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """Someone with a stolen cookie sends the copy from before each guess: the count is
    kept on the server, so the fifth wrong password still ends the session."""
    alice = make_user("alice")
    device_id = add_totp(app, alice)
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    stolen = browser.client.get_cookie("session")
    assert stolen is not None
    token = browser.csrf_token()
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"
    statuses = []
    for _ in range(MAX_PASSWORD_FAILURES):
        browser.client.set_cookie("session", stolen.value)
        response = browser.client.post(url, data={"csrf_token": token, "password": "guess"})
        statuses.append(response.status_code)
    assert statuses == [200] * (MAX_PASSWORD_FAILURES - 1) + [429]
    assert session_rows(app) == []
    assert device_exists(app, TOTPDevice, device_id)


# -- CSRF and secrets --------------------------------------------------------------------------


def test_posts_without_csrf_change_nothing(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice")
    device_id = add_totp(app, alice)
    browser.log_in("alice", PASSWORD, slug="login")
    laptop = another(app)
    laptop.log_in("alice", PASSWORD, slug="login")
    rows = session_rows(app)
    client = browser.client

    for url, data in (
        (f"/flows/-/settings/authenticators/totp/{device_id}/remove/", {"password": PASSWORD}),
        (f"/flows/-/settings/sessions/{rows[1].id}/end/", {}),
        (f"/flows/-/settings/sessions/{rows[0].id}/end/", {}),
        ("/flows/-/settings/sessions/end-others/", {}),
    ):
        response = client.post(url, data={**data, "csrf_token": "forged"})
        assert response.status_code == 303
        assert response.headers["Location"] == SETTINGS
        assert "The form expired. Please try again." in client.get(SETTINGS).text

    assert device_exists(app, TOTPDevice, device_id)
    assert len(session_rows(app)) == 2
    assert laptop.client.get("/").text == "home: alice"
    assert client.get("/").text == "home: alice"


def test_the_password_never_reaches_the_session_cookie(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    alice = make_user("alice")
    device_id = add_totp(app, alice)
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"
    post_action(browser, url, password="wrong but secret")
    post_action(browser, url, password=PASSWORD)
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    decoded = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    assert "wrong but secret" not in repr(decoded)
    assert PASSWORD not in repr(decoded)


# -- user agents ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "summary"),
    [
        (FIREFOX_UA, "Firefox on Linux"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
            "Chrome on macOS",
        ),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        ("Werkzeug/3.1", "Unknown browser"),
    ],
)
def test_user_agent_summaries(user_agent: str, summary: str) -> None:
    assert describe_user_agent(user_agent) == summary


def test_the_shipped_setup_flows_start_from_the_page(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    with app.app_context():
        install_default_flows(state)
        db.session.commit()
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_settings(browser)
    links = dict(
        re.findall(r'href="(/flows/default-authenticator-[a-z]+-setup/[^"]*)">([^<]+)<', page)
    )
    assert set(links.values()) == {
        "Add an authenticator app",
        "Create recovery codes",
        "Add a passkey",
    }
    for url in links:
        browser.get(url)
        assert browser.stage_type == "password"  # re-authentication first (ASVS 7.5.1)
        browser.step(url.split("/")[2], password=PASSWORD)
        assert browser.stage_type in {
            "authenticator_totp",
            "authenticator_static",
            "authenticator_webauthn",
        }


def test_the_settings_page_waits_like_any_other_guess(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """Its wrong passwords are the account's failures from this IP: the session they
    ended leaves the wait behind, so a second session from there must wait too, and is
    told for how long; the right password then removes nothing."""
    alice = make_user("alice")
    device_id = add_totp(app, alice)
    second = another(app)
    second.log_in("alice", PASSWORD, slug="login")
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"
    for _ in range(MAX_PASSWORD_FAILURES):
        post_action(browser, url, password="guess")
    assert "Too many wrong passwords" in (browser.last.text if browser.last else "")

    open_settings(second)
    assert post_action(second, url, password=PASSWORD) == 429
    assert second.last is not None
    assert "You can try again in 1 minute." in second.last.text
    assert int(second.last.headers["Retry-After"]) > 0
    assert device_exists(app, TOTPDevice, device_id)


def test_a_stolen_cookie_used_from_many_addresses_dies_after_five_guesses(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    """The account's waits are per address; the login's own count is not, so changing
    address for each guess does not keep a stolen session alive."""
    alice = make_user("alice")
    device_id = add_totp(app, alice)
    browser.log_in("alice", PASSWORD, slug="login")
    open_settings(browser)
    stolen = browser.client.get_cookie("session")
    assert stolen is not None
    url = f"/flows/-/settings/authenticators/totp/{device_id}/remove/"
    statuses = []
    for n in range(MAX_PASSWORD_FAILURES):
        thief = app.test_client()
        thief.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        thief.set_cookie("session", stolen.value)
        thief_browser = FlowBrowser(thief)
        open_settings(thief_browser)
        statuses.append(post_action(thief_browser, url, password=f"guess {n}"))
    assert statuses == [200] * (MAX_PASSWORD_FAILURES - 1) + [429]
    assert session_rows(app) == []
    assert device_exists(app, TOTPDevice, device_id)


def test_two_sessions_of_one_browser_are_told_apart(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    another(app, FIREFOX_UA).log_in("alice", PASSWORD, slug="login")
    another(app, FIREFOX_UA).log_in("alice", PASSWORD, slug="login")
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_settings(browser)
    notes = re.findall(r'<span class="flows-settings-item-note">([^<]*)</span>', page)
    assert len(notes) == 2  # the two Firefox sessions; this device's name is its own
    assert all(
        re.fullmatch(r"signed in \d{4}-\d\d-\d\d \d\d:\d\d UTC from [\d.]+", n) for n in notes
    )
    assert (
        page.count('End this session<span class="flows-sr-only"> (Firefox on Linux, signed in') == 2
    )


def test_times_are_shown_in_the_visitors_zone_by_a_script_of_its_own(
    browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow
) -> None:
    make_user("alice")
    browser.log_in("alice", PASSWORD, slug="login")
    page = open_settings(browser)
    # UTC in the markup (the server cannot know the zone), marked for local-time.js.
    assert re.search(r'<time datetime="[^"]+Z" data-flows-local-time>[^<]+ UTC</time>', page)
    assert "flows/local-time.js" in page and "flows/flows.js" not in page
    script = browser.client.get("/flows/static/flows/local-time.js")
    assert script.status_code == 200 and b"Intl.DateTimeFormat" in script.data
