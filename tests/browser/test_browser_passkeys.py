"""Exploration (temporary)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import PASSWORD, LiveApp, Walker, serve_example_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, smtp_server: Any) -> Iterator[LiveApp]:
    for live in serve_example_app(tmp_path_factory, smtp_server, FLOWS_WEBAUTHN_RP_ID="localhost"):
        port = live.url.rsplit(":", 1)[1]
        live.url = f"http://localhost:{port}"
        live.app.config["FLOWS_MAIL_BASE_URL"] = live.url
        live.app.config["FLOWS_WEBAUTHN_ORIGINS"] = [live.url]
        yield live


@pytest.mark.parametrize("js", [True], ids=["js"])
def test_explore(walker: Callable[..., Walker], user: str) -> None:
    me = walker()
    cdp = me.page.context.new_cdp_session(me.page)
    cdp.send("WebAuthn.enable")
    auth = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    print(auth)
    me.page.on("console", lambda m: print("CONSOLE", m.type, m.text))
    me.log_in(user)
    me.goto("/flows/-/settings/")
    me.page.get_by_role("link", name="Add a passkey").click()
    me.stage_loaded("password")
    me.submit("authenticator_webauthn", password=PASSWORD)
    print(me.stage.inner_html())
    me.field("name").fill("Laptop")
    me.page.get_by_role("button", name="Create passkey").click()
    me.wait_for_path("/flows/-/settings/")
    print(me.text())
    print(cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth["authenticatorId"]}))
    print(me.page.evaluate("PublicKeyCredential.isConditionalMediationAvailable()"))
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth["authenticatorId"]})["credentials"]
    import time
    other = walker()
    other.page.on("console", lambda m: print("CONSOLE2", m.type, m.text))
    cdp2 = other.page.context.new_cdp_session(other.page)
    cdp2.send("WebAuthn.enable")
    auth2 = cdp2.send("WebAuthn.addVirtualAuthenticator", {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    cdp2.send("WebAuthn.addCredential", {"authenticatorId": auth2["authenticatorId"], "credential": creds[0]})
    other.start("default-authentication-flow")
    time.sleep(2)
    print("URL after 2s", other.page.url)
    t=time.time()
    other.page.get_by_role("button", name="Sign in with a passkey").click()
    other.wait_for_path("/")
    print("took", time.time()-t, other.logged_in_as())
    third = walker()
    third.page.on("console", lambda m: print("CONSOLE3", m.type, m.text))
    cdp3 = third.page.context.new_cdp_session(third.page)
    cdp3.send("WebAuthn.enable")
    cdp3.send("WebAuthn.addVirtualAuthenticator", {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    third.start("default-authentication-flow")
    t=time.time()
    third.page.get_by_role("button", name="Sign in with a passkey").click()
    third.page.wait_for_selector("[data-flows-passkey-error]:not([hidden])", timeout=30000)
    print("error took", time.time()-t, third.stage.inner_text())
