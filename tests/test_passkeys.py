import html, json, re, traceback
from browsing import FlowBrowser
from passkey_authenticator import SoftAuthenticator

PASSWORD = "correct horse battery"

def options(page):
    m = re.search(r'data-flows-passkey-options="([^"]*)"', page)
    return json.loads(html.unescape(m.group(1)))

def test_explore(app, make_user, make_flow, login_flow, state):
    make_user("alice")
    make_flow("add", "authenticator_webauthn", designation="stage_configuration")
    b = FlowBrowser(app.test_client(), htmx=True)
    b.log_in("alice", PASSWORD, slug="login")
    page = b.start("add").text
    o = options(page)
    auth = SoftAuthenticator()
    resp = auth.create(o, "http://localhost")
    good = json.dumps(resp)
    bad = [
        {"id": resp["id"], "rawId": resp["rawId"], "type": "public-key", "response": "x"},
        {**resp, "response": {**resp["response"], "attestationObject": "AAAA"}},
        {**resp, "response": {**resp["response"], "clientDataJSON": "!!!"}},
        {**resp, "response": {**resp["response"], "transports": "internal"}},
        {**resp, "response": {**resp["response"], "transports": [1, None]}},
        {**resp, "rawId": 5},
        {**resp, "response": None},
        {**resp, "response": []},
    ]
    for item in bad:
        try:
            r = b.step("add", name="x", passkey=json.dumps(item))
            msg = re.findall(r'flows-messages[^>]*>(.*?)</div>', r.text, re.S)
            print("OK", r.status_code, msg[:1])
        except Exception as e:
            print("EXC", type(e).__name__, e)
            b.start("add")
    o = options(b.start("add").text)
    resp = auth.create(o, "http://localhost")
    r = b.step("add", name="x", passkey=json.dumps(resp))
    print(r.status_code, r.headers.get("HX-Redirect"))
    # now validate flow
    make_flow("mfa", "identification", "password", ("authenticator_validate", {"device_classes": ["webauthn"]}), "user_login")
    for item in [
        {"id": resp["id"], "response": "x"},
        {"id": resp["id"], "response": {"userHandle": 5}},
        {"id": resp["id"], "response": {}},
        {"id": resp["id"], "response": {"authenticatorData": "x", "clientDataJSON": "y", "signature": "z"}},
        {"id": [1], "response": {}},
    ]:
        c = FlowBrowser(app.test_client(), htmx=True)
        c.log_in("alice", PASSWORD, slug="mfa")
        try:
            r = c.step("mfa", passkey=json.dumps(item))
            msg = re.findall(r'flows-messages[^>]*>(.*?)</div>', r.text, re.S)
            print("OK", r.status_code, msg[:1])
        except Exception as e:
            print("EXC", type(e).__name__, e)
    assert 0
