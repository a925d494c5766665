"""authenticator_validate through HTTP: TOTP and recovery codes at login, replays,
not_configured_action (skip, deny, configure with injected stages) and the "passed MFA"
cookie. The OTP clock is frozen so codes of neighbouring steps are exact."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from flask_flows import Flow, FlowStageBinding, Stage, signals
from flask_flows.devices import StaticDevice, StaticToken, TOTPDevice
from flask_flows.executor import MSG_CHANGED
from flask_flows.extension import FlowsState
from flask_flows.models import RememberedMfa, utcnow
from flask_flows.options import ConfigError
from flask_flows.otp import new_recovery_codes, new_totp_secret, store_recovery_codes
from flask_flows.remembered_mfa import COOKIE_SALT, MFA_COOKIE
from flask_flows.stages.authenticator_validate import (
    INVALID_CODE,
    NOT_CONFIGURED,
    REPLAYED_CODE,
    code_kind,
)
from flask_flows.stages.base import TOO_MANY
from flask_flows.tokens import hash_token, new_token

PASSWORD = "correct horse battery"
#: A fixed instant in the middle of a 30-second step, so neighbouring steps are exact.
NOW = 1_750_000_005.0
STEP = int(NOW // 30)
VALIDATE = "authenticator_validate"


@pytest.fixture(autouse=True)
def frozen_otp_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """TOTP checks see ``NOW``; everything else (cookies, plans) keeps real time."""
    monkeypatch.setattr("flask_flows.otp.time", SimpleNamespace(time=lambda: NOW))


# -- helpers ----------------------------------------------------------------------------------


def mfa_flow(make_flow: Callable[..., Flow], slug: str = "login", **config: Any) -> Flow:
    return make_flow(slug, "identification", "password", (VALIDATE, config), "user_login")


def add_totp(app: Flask, user: User, confirmed: bool = True) -> str:
    """A TOTP device for ``user``; returns its secret."""
    secret = new_totp_secret()
    with app.app_context():
        db.session.add(TOTPDevice(user_id=str(user.id), secret=secret, confirmed=confirmed))
        db.session.commit()
    return secret


def add_recovery_codes(app: Flask, state: FlowsState, user: User, count: int = 3) -> list[str]:
    codes = new_recovery_codes(count)
    with app.app_context():
        device = StaticDevice(user_id=str(user.id), confirmed=True)
        store_recovery_codes(device, codes, state.hashing)
        db.session.add(device)
        db.session.commit()
    return codes


def code_for(secret: str, step: int = STEP) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def to_second_factor(browser: FlowBrowser, username: str = "alice", slug: str = "login") -> None:
    """Identification and password; the browser then shows whatever comes next."""
    browser.start(slug, next="/after")
    browser.step(slug, uid_field=username)
    browser.step(slug, password=PASSWORD)


def finished(browser: FlowBrowser) -> bool:
    """The flow ended with the redirect to ``next``."""
    return browser.redirect_target == "/after"


def code_error(browser: FlowBrowser) -> str | None:
    assert browser.last is not None
    marker = 'class="flows-error" id="code-error">'
    text = browser.last.text
    if marker not in text:
        return None
    error = text.split(marker, 1)[1].split("</p>", 1)[0]
    return re.sub(
        r" \d+ tr(y|ies) left\.$", "", error
    )  # see test_a_wrong_code_says_how_many_tries_are_left


def session_data(app: Flask, browser: FlowBrowser) -> str:
    cookie = browser.client.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return repr(serializer.loads(cookie.value))


@contextmanager
def recording(app: Flask, signal: Any) -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        events.append(kwargs)

    signal.connect(receiver, sender=app)
    try:
        yield events
    finally:
        signal.disconnect(receiver, sender=app)


def totp_device(app: Flask) -> TOTPDevice:
    with app.app_context():
        device = db.session.scalars(sa.select(TOTPDevice)).one()
        db.session.expunge(device)
        return device


def token_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(StaticToken)) or 0)


# -- TOTP ------------------------------------------------------------------------------------


def test_totp_code_logs_in_and_spends_its_step(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow)

    to_second_factor(browser)
    assert browser.stage_type == VALIDATE
    page = browser.last.text  # type: ignore[union-attr]
    assert 'autocomplete="one-time-code"' in page
    assert 'inputmode="numeric"' in page
    assert 'name="device_class"' not in page  # one kind of device: nothing to choose
    assert browser.whoami() == "home: anonymous"

    with recording(app, signals.flow_completed) as completed:
        browser.step("login", code=code_for(secret))

    assert finished(browser)
    assert browser.whoami() == "home: alice"
    context = completed[0]["plan"].context
    assert context["auth_method"] == "totp"
    assert context["auth_methods"] == ["password", "totp"]
    device = totp_device(app)
    assert device.last_step == STEP
    assert isinstance(device.last_used, datetime)


def test_wrong_code_is_refused_and_reported(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow)
    to_second_factor(browser)
    wrong = f"{(int(code_for(secret)) + 1) % 1_000_000:06d}"

    with recording(app, signals.login_failed) as failures:
        browser.step("login", code=wrong)

    assert browser.stage_type == VALIDATE
    assert code_error(browser) == INVALID_CODE
    assert f'value="{wrong}"' not in browser.last.text  # type: ignore[union-attr]
    assert [(f["identifier"], f["reason"]) for f in failures] == [("alice", "invalid_mfa_code")]
    assert browser.whoami() == "home: anonymous"
    assert totp_device(app).last_step == 0


def test_a_code_from_two_steps_ago_fails(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow)
    to_second_factor(browser)

    browser.step("login", code=code_for(secret, STEP - 2))

    assert code_error(browser) == INVALID_CODE
    assert browser.whoami() == "home: anonymous"


def test_a_code_is_accepted_once_per_step(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow)
    code = code_for(secret)
    to_second_factor(browser)
    browser.step("login", code=code)
    assert browser.whoami() == "home: alice"

    caplog.set_level(logging.INFO, logger="flask_flows")
    other = browser.fresh()
    to_second_factor(other)
    with recording(app, signals.login_failed) as failures:
        other.step("login", code=code)

    assert code_error(other) == REPLAYED_CODE
    assert other.whoami() == "home: anonymous"
    assert failures and failures[0]["reason"] == "invalid_mfa_code"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("replayed TOTP code" in r.getMessage() for r in warnings)
    assert code not in caplog.text
    assert secret not in caplog.text


def test_a_code_from_the_previous_step_passes_once(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow)
    previous = code_for(secret, STEP - 1)

    to_second_factor(browser)
    browser.step("login", code=previous)
    assert browser.whoami() == "home: alice"
    assert totp_device(app).last_step == STEP - 1

    other = browser.fresh()
    to_second_factor(other)
    other.step("login", code=previous)
    assert code_error(other) == REPLAYED_CODE
    # The current step is still unspent.
    other.step("login", code=code_for(secret))
    assert other.whoami() == "home: alice"


def test_too_many_wrong_codes_end_the_login(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    add_totp(app, make_user("alice"))
    mfa_flow(make_flow, failed_attempts_before_cancel=2)
    to_second_factor(browser)

    browser.step("login", code="000000")
    assert code_error(browser) == INVALID_CODE
    response = browser.step("login", code="000001")

    assert TOO_MANY in response.text
    assert response.status_code == (200 if browser.htmx else 429)
    # A wrong second factor is not a forgotten password: no recovery is offered.
    assert "Reset your password" not in response.text
    assert browser.stage_type is None
    assert browser.whoami() == "home: anonymous"


def test_unconfirmed_devices_do_not_count(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    add_totp(app, make_user("alice"), confirmed=False)
    mfa_flow(make_flow, not_configured_action="deny")

    to_second_factor(browser)

    assert NOT_CONFIGURED in browser.last.text  # type: ignore[union-attr]


# -- recovery codes ------------------------------------------------------------------------------


def test_a_recovery_code_works_once(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
) -> None:
    codes = add_recovery_codes(app, state, make_user("alice"))
    mfa_flow(make_flow)

    to_second_factor(browser)
    assert browser.stage_type == VALIDATE
    page = browser.last.text  # type: ignore[union-attr]
    assert 'name="device_class"' not in page
    assert 'inputmode="numeric"' not in page  # recovery codes have letters
    with recording(app, signals.flow_completed) as completed:
        browser.step("login", code=codes[0].lower())
    assert browser.whoami() == "home: alice"
    assert completed[0]["plan"].context["auth_method"] == "static"
    assert token_count(app) == len(codes) - 1
    with app.app_context():
        assert db.session.scalars(sa.select(StaticDevice)).one().last_used is not None

    other = browser.fresh()
    to_second_factor(other)
    other.step("login", code=codes[0])
    assert code_error(other) == INVALID_CODE
    assert other.whoami() == "home: anonymous"
    assert token_count(app) == len(codes) - 1


def test_a_user_with_both_kinds_types_either_and_its_shape_decides(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
) -> None:
    user = make_user("alice")
    secret = add_totp(app, user)
    codes = add_recovery_codes(app, state, user)
    mfa_flow(make_flow)

    to_second_factor(browser)
    page = browser.last.text  # type: ignore[union-attr]
    assert 'name="device_class"' not in page  # nothing to pick: the code's shape says
    assert "authenticator app, or one of your recovery codes" in page
    assert 'inputmode="numeric"' not in page  # recovery codes have letters
    browser.step("login", code="000000" if code_for(secret) != "000000" else "111111")
    assert code_error(browser) == INVALID_CODE
    browser.step("login", code="ZZZZ-ZZZZ-ZZZZ")
    assert code_error(browser) == INVALID_CODE
    assert token_count(app) == len(codes)

    browser.step("login", code=codes[1].lower().replace("-", " "))
    assert browser.whoami() == "home: alice"
    assert token_count(app) == len(codes) - 1
    assert totp_device(app).last_step == 0


def test_device_classes_limit_what_counts(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
) -> None:
    add_recovery_codes(app, state, make_user("alice"))
    mfa_flow(make_flow, device_classes=["totp"], not_configured_action="deny")

    to_second_factor(browser)

    assert NOT_CONFIGURED in browser.last.text  # type: ignore[union-attr]


# -- not_configured_action ---------------------------------------------------------------------


def test_skip_logs_in_without_showing_the_stage(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    mfa_flow(make_flow, not_configured_action="skip")

    to_second_factor(browser)

    assert finished(browser)
    assert browser.whoami() == "home: alice"


def test_deny_refuses_a_user_without_devices(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    mfa_flow(make_flow, not_configured_action="deny")

    to_second_factor(browser)

    assert NOT_CONFIGURED in browser.last.text  # type: ignore[union-attr]
    assert browser.last.status_code == (200 if browser.htmx else 403)  # type: ignore[union-attr]
    assert browser.whoami() == "home: anonymous"


def binding_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(FlowStageBinding)) or 0)


def add_stage(app: Flask, name: str, type_: str, config: dict[str, Any] | None = None) -> None:
    with app.app_context():
        db.session.add(Stage(name=name, type=type_, config=config or {}))
        db.session.commit()


def test_configure_runs_the_setup_stages_inside_the_plan(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    add_stage(app, "setup-one", "dummy", {"message": "First setup step."})
    add_stage(app, "setup-two", "dummy", {"message": "Second setup step."})
    mfa_flow(
        make_flow,
        not_configured_action="configure",
        configuration_stages=["setup-one", "setup-two"],
    )
    bindings = binding_count(app)

    to_second_factor(browser)
    # Two setups to choose from (authentik's choice): the one chosen runs.
    assert browser.stage_type == VALIDATE
    browser.step("login", setup="setup-two")
    assert browser.stage_type == "dummy"
    assert "Second setup step." in browser.last.text  # type: ignore[union-attr]
    # Reloading keeps the injected stage: the stale-plan check accepts it.
    browser.get("/flows/login/")
    assert "Second setup step." in browser.last.text  # type: ignore[union-attr]
    assert MSG_CHANGED not in browser.last.text  # type: ignore[union-attr]
    assert browser.whoami() == "home: anonymous"  # setup runs before the login
    browser.step("login")

    assert finished(browser)
    assert browser.whoami() == "home: alice"
    assert binding_count(app) == bindings  # nothing was bound to the flow


def test_an_injected_stage_deleted_mid_run_restarts_the_flow(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    add_stage(app, "setup-one", "dummy")
    mfa_flow(make_flow, not_configured_action="configure", configuration_stages=["setup-one"])
    to_second_factor(browser)
    assert browser.stage_type == "dummy"
    with app.app_context():
        db.session.execute(sa.delete(Stage).where(Stage.name == "setup-one"))
        db.session.commit()

    browser.get("/flows/login/")

    assert MSG_CHANGED in browser.last.text  # type: ignore[union-attr]
    assert browser.stage_type == "identification"


def test_configure_sets_up_totp_before_login(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    make_user("alice")
    add_stage(app, "setup-totp", "authenticator_totp")
    mfa_flow(make_flow, not_configured_action="configure", configuration_stages=["setup-totp"])

    to_second_factor(browser)
    assert browser.stage_type == "authenticator_totp"
    device = totp_device(app)
    assert not device.confirmed
    assert device.secret not in session_data(app, browser)
    browser.step("login", code=code_for(device.secret), name="Phone")

    assert finished(browser)
    assert browser.whoami() == "home: alice"
    assert totp_device(app).confirmed

    # Next time the new device is asked for.
    other = browser.fresh()
    to_second_factor(other)
    assert other.stage_type == VALIDATE


def test_configure_needs_configuration_stages(app: Flask, state: FlowsState) -> None:
    with pytest.raises(ConfigError, match=r"'mfa'.*field 'configuration_stages'"):
        state.stage_config(
            Stage(name="mfa", type=VALIDATE, config={"not_configured_action": "configure"})
        )
    with pytest.raises(ConfigError, match="'device_classes'"):
        state.stage_config(Stage(name="mfa", type=VALIDATE, config={"device_classes": []}))


# -- the "passed MFA" cookie ------------------------------------------------------------------


def mfa_cookie(app: Flask, user: User, age: int = 0, method: str = "totp") -> str:
    """A cookie value as the stage signs it, issued ``age`` seconds ago, naming a grant
    recorded for ``user`` by the flow's validation stage with ``method``."""

    class Issued(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    key = new_token()
    with app.app_context():
        expires = utcnow() + timedelta(hours=1)
        db.session.add(
            RememberedMfa(key_hash=hash_token(key), user_id=str(user.id), expires=expires)
        )
        db.session.commit()
        stage_id = db.session.scalar(sa.select(Stage.id).where(Stage.type == VALIDATE))
    serializer = URLSafeTimedSerializer(str(app.secret_key), salt=COOKIE_SALT, signer=Issued)
    fingerprint = app.extensions["flows"].user_store.password_fingerprint(user)
    return serializer.dumps(
        {"u": str(user.id), "p": fingerprint, "k": key, "s": stage_id, "m": method}
    )


def with_cookie(app: Flask, browser: FlowBrowser, value: str) -> FlowBrowser:
    other = browser.fresh()
    other.client.set_cookie(MFA_COOKIE, value)
    return other


def test_passed_mfa_cookie_skips_the_stage_within_the_threshold(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow, last_auth_threshold=3600)
    to_second_factor(browser)
    browser.step("login", code=code_for(secret))
    assert browser.whoami() == "home: alice"

    set_cookie = next(
        h
        for h in browser.last.headers.getlist("Set-Cookie")
        if h.startswith(f"{MFA_COOKIE}=")  # type: ignore[union-attr]
    )
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert "Max-Age=3600" in set_cookie
    assert "Secure" not in set_cookie  # plain http here
    cookie = browser.client.get_cookie(MFA_COOKIE)
    assert cookie is not None
    assert secret not in cookie.value and code_for(secret) not in cookie.value

    # The same browser, later: a new session, only the MFA cookie carried over.
    later = with_cookie(app, browser, cookie.value)
    with recording(app, signals.flow_completed) as completed:
        to_second_factor(later)
    assert finished(later)
    assert later.whoami() == "home: alice"
    assert completed[0]["plan"].context["auth_methods"] == ["password", "remembered"]


def test_passed_mfa_cookie_is_secure_over_https(
    app: Flask, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow, last_auth_threshold=60)
    browser = FlowBrowser(app.test_client())
    to_second_factor(browser)
    data = {"csrf_token": browser.csrf_token(), "flow_step": browser.step_token()}
    browser.post("/flows/login/", {**data, "code": code_for(secret)}, base_url="https://localhost")

    set_cookie = next(
        h
        for h in browser.last.headers.getlist("Set-Cookie")
        if h.startswith(f"{MFA_COOKIE}=")  # type: ignore[union-attr]
    )
    assert "Secure" in set_cookie


def test_no_cookie_without_a_threshold(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    user = make_user("alice")
    secret = add_totp(app, user)
    mfa_flow(make_flow)
    to_second_factor(browser)
    browser.step("login", code=code_for(secret))
    assert browser.client.get_cookie(MFA_COOKIE) is None

    # A cookie that would be valid elsewhere does not skip a stage with the threshold off.
    later = with_cookie(app, browser, mfa_cookie(app, user))
    to_second_factor(later)
    assert later.stage_type == VALIDATE


@pytest.mark.parametrize(
    ("case", "skips"),
    [("fresh", True), ("expired", False), ("other_user", False), ("tampered", False)],
)
def test_passed_mfa_cookie_is_checked(
    app: Flask,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    case: str,
    skips: bool,
) -> None:
    alice = make_user("alice")
    bob = make_user("bob")
    add_totp(app, alice)
    mfa_flow(make_flow, last_auth_threshold=600)
    value = {
        "fresh": lambda: mfa_cookie(app, alice, age=590),
        "expired": lambda: mfa_cookie(app, alice, age=700),
        "other_user": lambda: mfa_cookie(app, bob),
        "tampered": lambda: mfa_cookie(app, alice).replace('"', "").swapcase(),
    }[case]()

    later = with_cookie(app, browser, value)
    to_second_factor(later)

    assert finished(later) is skips
    assert (later.stage_type == VALIDATE) is not skips


def test_a_password_change_voids_the_passed_mfa_cookie(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
) -> None:
    alice = make_user("alice")
    add_totp(app, alice)
    mfa_flow(make_flow, last_auth_threshold=600)
    value = mfa_cookie(app, alice)
    before = with_cookie(app, browser, value)
    to_second_factor(before)
    assert finished(before)

    with app.app_context():
        user = db.session.get(User, alice.id)
        state.user_store.set_password(user, "correct horse battery")  # same text, new salt
        db.session.commit()
    later = with_cookie(app, browser, value)
    to_second_factor(later)
    assert later.stage_type == VALIDATE


def test_logging_out_deletes_the_passed_mfa_cookie(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow, last_auth_threshold=600)
    make_flow("logout", "user_logout", designation="invalidation")
    to_second_factor(browser)
    browser.step("login", code=code_for(secret))
    assert browser.whoami() == "home: alice"
    assert browser.client.get_cookie(MFA_COOKIE) is not None

    browser.start("logout")
    browser.step("logout")  # "Log out?" — yes
    assert browser.whoami() == "home: anonymous"
    assert browser.client.get_cookie(MFA_COOKIE) is None
    # The same browser, the password alone: the code is asked for again.
    to_second_factor(browser)
    assert browser.stage_type == VALIDATE


def remembered_by(browser: FlowBrowser, app: Flask, secret: str) -> str:
    """Log in with the code; returns the value of the ``flows_mfa`` cookie it left."""
    to_second_factor(browser)
    browser.step("login", code=code_for(secret))
    assert browser.whoami() == "home: alice"
    cookie = browser.client.get_cookie(MFA_COOKIE)
    assert cookie is not None
    return cookie.value


def test_a_copy_of_the_cookie_is_dead_after_logout(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    """The attack: copy the cookie, let the owner log out, replay it with the password."""
    secret = add_totp(app, make_user("alice"))
    mfa_flow(make_flow, last_auth_threshold=600)
    make_flow("logout", "user_logout", designation="invalidation")
    copied = remembered_by(browser, app, secret)
    browser.start("logout")
    browser.step("logout")

    replay = with_cookie(app, browser, copied)
    to_second_factor(replay)
    assert replay.stage_type == VALIDATE


@pytest.mark.parametrize("change", ["removed", "added"])
def test_a_changed_authenticator_revokes_every_remembered_browser(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    change: str,
) -> None:
    alice = make_user("alice")
    secret = add_totp(app, alice)
    add_totp(app, alice)  # a second phone, which the settings page removes
    mfa_flow(make_flow, last_auth_threshold=600)
    copied = remembered_by(browser, app, secret)
    still = with_cookie(app, browser, copied)
    to_second_factor(still)
    assert finished(still)  # the grant works until the change

    if change == "removed":
        with app.app_context():
            second = db.session.scalars(sa.select(TOTPDevice.id).order_by(TOTPDevice.id)).all()[-1]
        browser.get("/flows/-/settings/")
        action = f"/flows/-/settings/authenticators/totp/{second}/remove/"
        browser.post(action, {"csrf_token": browser.csrf_token(), "password": PASSWORD})
        assert "was removed" in browser.get("/flows/-/settings/").text
    else:
        with app.app_context():
            signals.authenticator_added.send(app, user=db.session.get(User, alice.id), device=None)

    replay = with_cookie(app, browser, copied)
    to_second_factor(replay)
    assert replay.stage_type == VALIDATE


def test_tampered_payload_with_a_kept_signature_is_ignored(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    alice = make_user("alice")
    bob = make_user("bob")
    add_totp(app, alice)
    mfa_flow(make_flow, last_auth_threshold=600)
    payload, rest = mfa_cookie(app, bob).split(".", 1)
    forged_payload = mfa_cookie(app, alice).split(".", 1)[0]
    assert forged_payload != payload

    later = with_cookie(app, browser, f"{forged_payload}.{rest}")
    to_second_factor(later)

    assert later.stage_type == VALIDATE


# -- secrets ---------------------------------------------------------------------------------------


def test_no_code_or_secret_in_the_session_cookie_or_logs(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_user: Callable[..., User],
    make_flow: Callable[..., Flow],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user = make_user("alice")
    secret = add_totp(app, user)
    codes = add_recovery_codes(app, state, user)
    mfa_flow(make_flow)
    to_second_factor(browser)

    browser.step("login", code="123456")
    browser.step("login", code="ABCD-EFGH-JKMN")
    mid_flow = session_data(app, browser)
    browser.step("login", code=codes[0])
    assert browser.whoami() == "home: alice"

    secrets = [secret, code_for(secret), "123456", "ABCD-EFGH-JKMN", *codes]
    for value in secrets:
        assert value not in mid_flow
        assert value not in session_data(app, browser)
        assert value not in caplog.text
        assert value.replace("-", "") not in caplog.text
    assert "flask_flows" in {record.name.split(".")[0] for record in caplog.records}


def test_a_wrong_code_says_how_many_tries_are_left(
    app: Flask, browser: FlowBrowser, make_user: Callable[..., User], make_flow: Callable[..., Flow]
) -> None:
    add_totp(app, make_user("alice"))
    mfa_flow(make_flow, failed_attempts_before_cancel=3)
    to_second_factor(browser)
    browser.step("login", code="000000")
    assert f"{INVALID_CODE} 2 tries left." in browser.last.text  # type: ignore[union-attr]
    browser.step("login", code="000001")
    assert f"{INVALID_CODE} 1 try left." in browser.last.text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "classes", "kind"),
    [
        ("123456", ["totp", "static"], "totp"),
        ("123 456", ["totp", "static"], "totp"),
        ("12345678", ["totp", "static"], "totp"),
        ("7K3Q-9XW2-HF4D", ["totp", "static"], "static"),
        ("7k3q 9xw2 hf4d", ["totp", "static"], "static"),
        ("123456789012", ["totp", "static"], "static"),
        ("123456", ["static"], "static"),
        ("7K3Q-9XW2-HF4D", ["totp"], "totp"),
    ],
)
def test_the_kind_of_a_code_is_read_from_its_shape(
    code: str, classes: list[str], kind: str
) -> None:
    assert code_kind(code, classes) == kind
