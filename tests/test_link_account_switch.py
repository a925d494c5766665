"""A mailed link never swaps the account a browser is signed in to without asking.

The attack (login CSRF): mallory signs up with her own address and sends the link from
her mail to dave, who is signed in; dave presses Continue and ends up signed in to
mallory's new account, where whatever he types next is hers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask
from smtp_sink import Mailbox, link_in

from flask_flows import Flow
from flask_flows.flow_tokens import MSG_SWITCH

PASSWORD = "correct horse battery"
SIGN_UP_FIELDS = [
    {"field_key": "username", "label": "Username", "type": "username", "required": True},
    {"field_key": "email", "label": "Email", "type": "email", "required": True},
    {"field_key": "password", "label": "Password", "type": "password", "required": True},
]


@pytest.fixture
def app_config(mailbox: Mailbox) -> dict[str, Any]:
    return {**mailbox.config}


@pytest.fixture
def mallorys_link(browser: FlowBrowser, make_flow: Callable[..., Flow], mailbox: Mailbox) -> str:
    make_flow(
        "join",
        ("prompt", {"fields": SIGN_UP_FIELDS}),
        "email",
        "user_write",
        "user_login",
        designation="enrollment",
        authentication="none",
    )
    mallory = browser.fresh()
    mallory.start("join")
    mallory.step("join", username="mallory", email="mallory@example.com", password=PASSWORD)
    assert mallory.stage_type == "email"
    return link_in(mailbox.wait_for_message())


@pytest.fixture
def dave(browser: FlowBrowser, make_user: Callable[..., User], login_flow: Flow) -> FlowBrowser:
    make_user("dave")
    browser.log_in("dave", PASSWORD, slug="login")
    assert browser.whoami() == "home: dave"
    return browser


def test_the_continue_page_says_who_is_signed_in_and_asks(
    dave: FlowBrowser, mallorys_link: str
) -> None:
    page = dave.get(mallorys_link)
    assert page.status_code == 200
    assert "You are signed in as <strong>dave</strong>" in page.text
    assert "Sign out and continue" in page.text
    assert "Stay signed in as dave" in page.text


def test_an_account_without_a_name_is_not_called_by_one(
    app: Flask, dave: FlowBrowser, mallorys_link: str
) -> None:
    """Signed in to an account with neither username nor email (an app's own model may
    allow it): the page says so in whole sentences, in every language."""
    with app.app_context():
        db.session.execute(sa.update(User).values(username="", email=None))
        db.session.commit()
    page = dave.get(mallorys_link).text
    assert "You are signed in to an account this link is not for." in page
    assert ">Stay signed in</a>" in page
    dave.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    page = dave.get(mallorys_link).text
    assert "Sie sind mit einem Konto angemeldet, für das dieser Link nicht gilt." in page
    assert ">Angemeldet bleiben</a>" in page


def test_continue_without_the_switch_changes_nothing(dave: FlowBrowser, mallorys_link: str) -> None:
    """A Continue form from before dave signed in (or a forged one) does not switch."""
    dave.get(mallorys_link)
    response = dave.client.post(mallorys_link, data={"csrf_token": dave.csrf_token()})
    assert response.status_code == 409
    assert MSG_SWITCH in response.text
    assert dave.whoami() == "home: dave"
    assert "Sign out and continue" in dave.get(mallorys_link).text  # the link is not spent


def test_signing_out_and_continuing_is_dave_s_choice(dave: FlowBrowser, mallorys_link: str) -> None:
    assert dave.open_link(mallorys_link).status_code == 303
    dave.follow()
    assert dave.whoami() == "home: mallory"  # he chose it, on a page that said so


def test_the_signed_in_users_own_link_is_not_questioned(
    app: Flask, dave: FlowBrowser, make_flow: Callable[..., Flow], mailbox: Mailbox
) -> None:
    make_flow("verify", "email", "dummy", designation="stage_configuration")
    dave.start("verify")
    page = dave.get(link_in(mailbox.wait_for_message()))
    assert "Continue" in page.text and "You are signed in as" not in page.text
