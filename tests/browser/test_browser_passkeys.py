"""Exploration (temporary)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import PASSWORD, LiveApp, Walker, serve_example_app

pytestmark = pytest.mark.browser

OPTS = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}

@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, smtp_server: Any) -> Iterator[LiveApp]:
    for live in serve_example_app(tmp_path_factory, smtp_server, FLOWS_WEBAUTHN_RP_ID="localhost"):
        port = live.url.rsplit(":", 1)[1]
        live.url = f"http://localhost:{port}"
        live.app.config["FLOWS_MAIL_BASE_URL"] = live.url
        live.app.config["FLOWS_WEBAUTHN_ORIGINS"] = [live.url]
        yield live

def va(me, **o):
    cdp = me.page.context.new_cdp_session(me.page)
    cdp.send("WebAuthn.enable")
    a = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {**OPTS, **o}})["authenticatorId"]
    me.page.on("console", lambda m: print("CONSOLE", m.type, m.text))
    return cdp, a

CREDS = []

@pytest.mark.parametrize("js", [True], ids=["js"])
def test_explore(walker: Callable[..., Walker], user: str) -> None:
    me = walker()
    cdp, auth = va(me)
    me.log_in(user)
    me.goto("/flows/-/settings/")
    me.page.get_by_role("link", name="Add a passkey").click()
    me.stage_loaded("password")
    me.submit("authenticator_webauthn", password=PASSWORD)
    me.field("name").fill("Laptop")
    me.page.get_by_role("button", name="Create passkey").click()
    me.wait_for_path("/flows/-/settings/")
    CREDS.extend(cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth})["credentials"])


RECORD = """(() => {
  const calls = window.__passkeyCalls = [];
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => {
    const call = {mediation: options.mediation || "optional", state: "pending"};
    calls.push(call);
    const promise = get(options);
    promise.then(() => { call.state = "resolved"; }, (e) => { call.state = e.name; });
    return promise;
  };
})()"""

@pytest.mark.parametrize("js", [True], ids=["js"])
def test_uv_false(walker: Callable[..., Walker]) -> None:
    third = walker()
    third.page.add_init_script(RECORD)
    cdp, a = va(third, isUserVerified=False)
    cdp.send("WebAuthn.addCredential", {"authenticatorId": a, "credential": CREDS[0]})
    third.page.goto(third.live.flow("default-authentication-flow"))
    time.sleep(1)
    print(third.page.evaluate("window.__passkeyCalls"))
    t=time.time()
    third.page.get_by_role("button", name="Sign in with a passkey").click()
    third.page.wait_for_selector("[data-flows-passkey-error]:not([hidden])", timeout=30000)
    print("error took", time.time()-t, third.stage.inner_text())
    print(third.page.evaluate("window.__passkeyCalls"))

@pytest.mark.parametrize("js", [True], ids=["js"])
def test_presence_toggle(walker: Callable[..., Walker]) -> None:
    third = walker()
    third.page.add_init_script(RECORD)
    cdp, a = va(third, automaticPresenceSimulation=False)
    cdp.send("WebAuthn.addCredential", {"authenticatorId": a, "credential": CREDS[0]})
    third.page.goto(third.live.flow("default-authentication-flow"))
    time.sleep(0.5)
    print(third.page.evaluate("window.__passkeyCalls"))
    cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": a, "enabled": True})
    t=time.time()
    third.page.get_by_role("button", name="Sign in with a passkey").click()
    third.wait_for_path("/")
    print("took", time.time()-t, third.logged_in_as())

@pytest.mark.parametrize("js", [True], ids=["js"])
def test_remove_by_passkey(walker: Callable[..., Walker]) -> None:
    third = walker()
    cdp, a = va(third)
    cdp.send("WebAuthn.addCredential", {"authenticatorId": a, "credential": CREDS[0]})
    third.page.goto(third.live.flow("default-authentication-flow"))
    third.wait_for_path("/")
    third.goto("/flows/-/settings/")
    third.page.get_by_text("Remove", exact=False).first.click()
    print(third.page.locator("details").last.inner_html())
    third.page.get_by_role("button", name="Confirm with a passkey and remove").click()
    third.page.wait_for_selector(".flows-messages .flows-message")
    print(third.text())
