"""The login and the sign-up in German, as a browser set to German sees them, with
JavaScript on (htmx swaps, and the words flows.js says) and off; axe checks each page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import PASSWORD, Walker
from smtp_sink import link_in

pytestmark = pytest.mark.browser

#: A browser whose language is German: Accept-Language and navigator.language.
GERMAN = {"locale": "de-DE"}
BAD_LOGIN = "Benutzername oder Passwort ist ungültig."


def test_log_in_in_german(walker: Callable[..., Walker], user: str, js: bool) -> None:
    me = walker(**GERMAN)
    me.start("default-authentication-flow")
    assert me.page.locator("html").get_attribute("lang") == "de"
    assert me.page.locator("h1").inner_text() == "Willkommen"
    assert me.stage.get_by_label("Benutzername oder E-Mail-Adresse").count() == 1
    if js:  # the Show button is flows.js's, named from the page's words
        assert me.stage.get_by_role("button", name="Passwort anzeigen").count() == 1
    me.submit("identification", uid_field=user, password="not the password")
    assert BAD_LOGIN in me.stage.inner_text()
    summary = me.page.locator("#flows-error-summary")
    assert BAD_LOGIN in summary.inner_text()
    assert me.page.title().startswith("Fehler: ")
    me.finish("/", password=PASSWORD)
    assert me.page.locator(".bar nav strong").inner_text() == user


def test_sign_up_in_german(walker: Callable[..., Walker], mailbox: Any, js: bool) -> None:
    username = f"neuling{'js' if js else 'nojs'}"
    me = walker(**GERMAN)
    me.start("default-enrollment-flow")
    assert me.page.locator("h1").inner_text() == "Konto erstellen"
    assert "Mindestens 8 Zeichen." in me.stage.inner_text()
    me.submit(
        "prompt",
        username=username,
        email=f"{username}@example.com",
        password="password",
        password_repeat="password",
    )
    assert "Dieses Passwort ist zu verbreitet." in me.stage.inner_text()
    assert me.field("password").get_attribute("aria-invalid") == "true"
    me.fill(password=PASSWORD, password_repeat=PASSWORD)
    me.submit("email")
    assert "Sehen Sie in Ihrem Posteingang nach" in me.stage.inner_text()

    mail = mailbox.wait_for_message()
    assert mail["Subject"] == "Bestätigen Sie Ihre E-Mail-Adresse"
    phone = walker(**GERMAN)
    phone.open_link(link_in(mail), continue_label="Weiter")
    phone.wait_for_path("/")
    assert phone.logged_in_as() == username

    if not js:
        with me.page.expect_navigation():
            me.page.get_by_role("button", name="Ich habe den Link geöffnet").click()
    me.page.get_by_text("Link geöffnet").wait_for(timeout=15_000)
    if js:
        me.check_a11y()
