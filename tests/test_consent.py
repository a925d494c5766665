"""The consent stage: what is asked, and always / permanent / expiring consent remembered
per user and per target."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask

from flask_flows import Flow
from flask_flows.grants import UserConsent
from flask_flows.models import utcnow
from flask_flows.stages.consent import MSG_NO_USER

PASSWORD = "correct horse battery"
PERMISSIONS = ["Read your profile", "See your email address"]


def consent_flow(make_flow: Callable[..., Flow], slug: str = "authorize", **config: Any) -> Flow:
    config.setdefault("permissions", PERMISSIONS)
    return make_flow(slug, ("consent", config), designation="authorization")


def asked(browser: FlowBrowser, slug: str = "authorize") -> bool:
    """Start the flow; True if the consent page shows, False if it finished at once."""
    response = browser.start(slug)
    if browser.stage_type == "consent":
        return True
    assert browser.redirect_target == "/", response.text
    return False


def allow(browser: FlowBrowser, slug: str = "authorize") -> None:
    browser.submit(slug)
    assert browser.redirect_target == "/"


def consents(app: Flask) -> list[tuple[str, str, str, Any]]:
    with app.app_context():
        return [
            (row.user_id, row.target, row.permissions, row.expires)
            for row in db.session.scalars(sa.select(UserConsent).order_by(UserConsent.id))
        ]


@pytest.fixture
def alice(make_user: Callable[..., User], login_flow: Flow) -> User:
    return make_user("alice", password=PASSWORD)


def test_the_page_shows_the_target_and_each_permission(
    browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, target="Photo Printer", mode="permanent")
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)
    page = browser.last.text  # type: ignore[union-attr]
    assert "Allow Photo Printer?" in page
    for permission in PERMISSIONS:
        assert f"<li>{permission}</li>" in page
    assert "Your answer will be remembered." in page
    assert ">Allow<" in page
    assert ">Cancel<" in page


def test_the_target_defaults_to_the_flow_slug(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, mode="permanent", permissions=[])
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)
    assert "<strong>authorize</strong> asks for your consent" in browser.last.text  # type: ignore[union-attr]
    allow(browser)
    assert consents(app) == [(str(alice.id), "authorize", "", None)]


def test_permanent_consent_is_asked_once(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, target="Photo Printer", mode="permanent")
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)
    allow(browser)
    assert consents(app) == [(str(alice.id), "Photo Printer", "\n".join(PERMISSIONS), None)]

    assert not asked(browser)
    assert not asked(browser)


def test_expiring_consent_is_asked_again_once_expired(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, target="Photo Printer", mode="expiring", consent_expire_in=3600)
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)
    assert "remembered for 1 hour." in browser.last.text  # type: ignore[union-attr]
    allow(browser)
    [(_user, _target, _permissions, expires)] = consents(app)
    assert abs(expires - (utcnow() + timedelta(hours=1))) < timedelta(minutes=1)
    assert not asked(browser)

    with app.app_context():
        db.session.execute(sa.update(UserConsent).values(expires=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert asked(browser)
    allow(browser)
    # Accepting again refreshes the one row rather than adding another.
    [(_user, _target, _permissions, refreshed)] = consents(app)
    assert refreshed > utcnow()
    assert not asked(browser)


def test_always_require_asks_every_time_and_stores_nothing(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, target="Photo Printer")
    browser.log_in("alice", PASSWORD, slug="login")
    for _ in range(2):
        assert asked(browser)
        allow(browser)
    assert consents(app) == []


def test_a_stored_consent_does_not_skip_always_require(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, target="Photo Printer")
    with app.app_context():
        db.session.add(
            UserConsent(
                user_id=str(alice.id), target="Photo Printer", permissions="\n".join(PERMISSIONS)
            )
        )
        db.session.commit()
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)


def test_consent_is_per_user(
    app: Flask,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    alice: User,
) -> None:
    make_user("bob", password=PASSWORD)
    consent_flow(make_flow, target="Photo Printer", mode="permanent")
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)
    allow(browser)

    bob = browser.fresh()
    bob.log_in("bob", PASSWORD, slug="login")
    assert asked(bob)
    assert not asked(browser)


def test_consent_is_per_target(
    browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, "printer", target="Photo Printer", mode="permanent")
    consent_flow(make_flow, "calendar", target="Calendar", mode="permanent")
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser, "printer")
    allow(browser, "printer")

    assert asked(browser, "calendar")
    assert not asked(browser, "printer")


def test_asking_for_more_permissions_asks_again(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, "narrow", target="Photo Printer", mode="permanent", permissions=["A"])
    consent_flow(
        make_flow, "wide", target="Photo Printer", mode="permanent", permissions=["A", "B"]
    )
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser, "narrow")
    allow(browser, "narrow")
    assert asked(browser, "wide")
    allow(browser, "wide")
    # The wider consent covers the narrower request, and there is still one row.
    assert not asked(browser, "narrow")
    assert [row[2] for row in consents(app)] == ["A\nB"]


def test_cancel_declines_and_stores_nothing(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    consent_flow(make_flow, target="Photo Printer", mode="permanent")
    browser.log_in("alice", PASSWORD, slug="login")
    assert asked(browser)
    browser.post("/flows/authorize/cancel/", {"csrf_token": browser.csrf_token()})
    assert browser.redirect_target == "/"
    assert consents(app) == []
    assert asked(browser)


def test_a_pending_user_can_consent(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], alice: User
) -> None:
    make_flow(
        "signin",
        ("identification", {"pretend_user_exists": False}),
        "password",
        ("consent", {"target": "Photo Printer", "mode": "permanent"}),
        "user_login",
    )
    browser.start("signin")
    browser.step("signin", uid_field="alice")
    browser.step("signin", password=PASSWORD)
    assert browser.stage_type == "consent"
    allow(browser, "signin")
    assert consents(app)[0][:2] == (str(alice.id), "Photo Printer")
    assert browser.client.get("/").text == "home: alice"


def test_without_a_user_consent_is_denied(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    consent_flow(make_flow, target="Photo Printer", mode="permanent")
    response = browser.start("authorize")
    assert response.status_code == (200 if browser.htmx else 403)
    assert MSG_NO_USER in response.text
    assert browser.stage_type is None
