"""Sign-up tells no one which accounts exist (ASVS 6.3.8): a taken username and a used
email address get the page a free one gets. The owner of a used address is mailed that
they have an account; a taken username is asked for again only after the email link,
by the person who proved the address."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, without_nonces
from factory import User, db
from flask import Flask
from smtp_sink import Mailbox, bodies, link_in
from test_request_cost import statements

from flask_flows.extension import FlowsState
from flask_flows.mail import wait_for_outgoing_mail
from flask_flows.models import Stage
from flask_flows.stages.email import NOT_OPENED_YET
from flask_flows.stages.user_write import MSG_CHOOSE_USERNAME

PASSWORD = "correct horse battery staple"
ENROLL = "default-enrollment-flow"
_TOKENS = re.compile(r'(name="(?:csrf_token|flow_step)"[^>]*value=")[^"]*')


pytestmark = pytest.mark.usefixtures("defaults")


@pytest.fixture
def app_config(mailbox: Mailbox) -> dict[str, Any]:
    return {**mailbox.config}


@pytest.fixture(autouse=True)
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", email="alice@example.com", password=PASSWORD)


def sign_up(browser: FlowBrowser, username: str, email: str) -> tuple[int, str]:
    """The status and page after the sign-up form, without its per-request tokens and
    the address it shows."""
    browser.start(ENROLL)
    page = browser.step(
        ENROLL, username=username, email=email, password=PASSWORD, password_repeat=PASSWORD
    )
    assert browser.stage_type == "email"
    return page.status_code, without_nonces(_TOKENS.sub(r"\1", page.text)).replace(email, "ADDRESS")


def user_named(app: Flask, username: str) -> User | None:
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.username == username))


def test_a_taken_username_gets_the_page_a_free_one_gets(
    app: Flask, browser: FlowBrowser, mailbox: Mailbox
) -> None:
    free = sign_up(browser, "carol", "carol@example.com")
    taken = sign_up(browser.fresh(), "ALICE", "dave1@example.com")
    assert taken == free
    assert "taken" not in taken[1]
    # Both addresses get the same kind of mail: a link to confirm them.
    assert "Confirm your email address" in mailbox.wait_for_message(1)["Subject"]
    assert "Confirm your email address" in mailbox.wait_for_message(2)["Subject"]


def test_a_used_email_address_gets_the_page_a_free_one_gets_and_its_owner_a_mail(
    app: Flask, browser: FlowBrowser, mailbox: Mailbox
) -> None:
    free = sign_up(browser, "carol", "carol@example.com")
    used = sign_up(browser.fresh(), "erin1", "alice@example.com")
    assert used == free

    mailbox.wait_for_message(2)  # the mails go out in the background, in either order
    [told] = [m for m in mailbox.messages if m["To"] == "alice@example.com"]
    assert told["Subject"] == "You already have an account at Test App"
    text, html = bodies(told)
    for body in (text, html):
        assert "Hello alice," in body
        assert "http://localhost/flows/-/login/" in body
        assert "http://localhost/flows/-/default/recovery/" in body
        assert "/flows/-/resume/" not in body  # nothing that would continue the sign-up
    assert user_named(app, "erin1") is None


def test_the_person_with_a_taken_username_picks_another_after_the_link(
    app: Flask, browser: FlowBrowser, mailbox: Mailbox
) -> None:
    sign_up(browser, "Alice", "carol@example.com")
    browser.open_link(link_in(mailbox.wait_for_message()))
    page = browser.follow()
    assert browser.stage_type == "user_write"
    assert "Choose another username" in page.text
    assert MSG_CHOOSE_USERNAME in page.text
    assert re.search(r'name="username"[^>]*value="Alice"', page.text)

    page = browser.step(ENROLL, username="alice")  # taken in another case, still
    assert browser.stage_type == "user_write"
    assert "That username is already taken." in page.text
    browser.step(ENROLL, username="carol")
    assert browser.get("/").text == "home: carol"
    carol = user_named(app, "carol")
    assert carol is not None and carol.email == "carol@example.com"


def test_a_designer_may_report_taken_usernames_at_the_prompt(
    app: Flask, state: FlowsState, browser: FlowBrowser
) -> None:
    with app.app_context():
        prompt = db.session.scalar(sa.select(Stage).filter_by(name="default-enrollment-prompt"))
        assert prompt is not None
        prompt.config = {**prompt.config, "report_taken_username": True}
        db.session.commit()
    browser.start(ENROLL)
    page = browser.step(
        ENROLL, username="ALICE", email="x@example.com", password=PASSWORD, password_repeat=PASSWORD
    )
    assert browser.stage_type == "prompt"
    assert "That username is already taken." in page.text


# -- "Check your inbox" --------------------------------------------------------------------


def test_a_wrong_address_is_changed_on_the_form_filled_in_again(
    app: Flask, browser: FlowBrowser, mailbox: Mailbox
) -> None:
    sign_up(browser, "carol", "carol@exmaple.com")  # a typo
    page = browser.last
    assert page is not None and "Wrong address? Change it" in page.text
    form = browser.step(ENROLL, change_address="1")
    assert browser.stage_type == "prompt"
    assert re.search(r'<input[^>]*name="username"[^>]*value="carol"', form.text)
    assert re.search(r'<input[^>]*name="email"[^>]*value="carol@exmaple.com"', form.text)
    page = browser.step(
        ENROLL,
        username="carol",
        email="carol@example.com",
        password=PASSWORD,
        password_repeat=PASSWORD,
    )
    assert browser.stage_type == "email"
    assert "carol@example.com" in page.text
    mailbox.wait_for_message(2)
    fixed = [m for m in mailbox.messages if m["To"] == "carol@example.com"]
    assert len(fixed) == 1
    phone = browser.fresh()
    phone.open_link(link_in(fixed[0]))
    phone.follow()
    carol = user_named(app, "carol")
    assert carol is not None and carol.email == "carol@example.com"


def test_send_again_waits_a_moment_after_each_email(browser: FlowBrowser, mailbox: Mailbox) -> None:
    sign_up(browser, "carol", "carol@example.com")
    page = browser.step(ENROLL)  # "Send again" at once
    assert re.search(
        r"We just sent an email\. You can ask for another one in \d+ seconds\.", page.text
    )
    assert wait_for_outgoing_mail(5)
    assert len(mailbox.messages) == 1


def test_a_recovery_link_offers_no_address_change(
    app: Flask, browser: FlowBrowser, mailbox: Mailbox
) -> None:
    browser.start("default-recovery-flow")
    page = browser.step("default-recovery-flow", uid_field="alice")
    assert browser.stage_type == "email"
    assert "Change it" not in page.text  # the account's own address: nothing was typed


# -- what a prober could measure -----------------------------------------------------------


def test_a_used_address_meets_the_same_rate_limit_as_a_free_one(
    app: Flask, mailbox: Mailbox
) -> None:
    app.config["FLOWS_MAIL_RATE_LIMIT"] = "1/3600"
    pages = {}
    for address in ("carol@example.com", "alice@example.com"):
        answers = []
        for n in range(2):
            page = sign_up(FlowBrowser(app.test_client()), f"user{n}x", address)
            answers.append("already sent several emails" in page[1])
            assert wait_for_outgoing_mail(5)  # the first one's mail job stored its token
        pages[address] = answers
    assert pages["carol@example.com"] == pages["alice@example.com"] == [False, True]
    assert wait_for_outgoing_mail(5)
    assert len([m for m in mailbox.messages if m["To"] == "alice@example.com"]) == 1


def test_a_used_address_costs_the_same_statements_as_a_free_one(
    app: Flask, mailbox: Mailbox
) -> None:
    counts = []
    sign_up(FlowBrowser(app.test_client()), "warm", "warm@example.com")  # caches filled
    for address in ("carol@example.com", "alice@example.com"):
        assert wait_for_outgoing_mail(5)  # the mail job of the one before is done
        browser = FlowBrowser(app.test_client(), htmx=True)
        browser.start(ENROLL)
        with statements(app) as seen:
            browser.step(
                ENROLL, username="erin2", email=address, password=PASSWORD, password_repeat=PASSWORD
            )
        # The request's own statements: the mail job (the token's INSERT) runs in a thread
        # of its own once the response is out, and may land in this window or not.
        counts.append([s for s in seen if not s.startswith("INSERT INTO flows_flow_token")])
        assert wait_for_outgoing_mail(5)
    assert len(counts[0]) == len(counts[1]), "\n---\n".join("\n".join(c) for c in counts)


def test_a_taken_name_is_asked_for_again_under_the_prompts_own_key_and_rules(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Any]
) -> None:
    fields = [
        {"field_key": "login", "label": "Login", "type": "username", "max_length": 8},
        {"field_key": "password", "label": "Password", "type": "password"},
    ]
    make_flow(
        "join",
        ("prompt", {"fields": fields}),
        ("user_write", {"attribute_mapping": {"login": "username"}}),
        "user_login",
        designation="enrollment",
    )
    browser.start("join")
    page = browser.step("join", login="alice", password=PASSWORD)
    assert browser.stage_type == "user_write"
    assert 'name="login"' in page.text and MSG_CHOOSE_USERNAME in page.text
    page = browser.step("join", login="a-name-far-too-long")
    assert browser.stage_type == "user_write"  # the prompt's max_length holds here too
    assert user_named(app, "a-name-far-too-long") is None
    browser.step("join", login="alicia")
    assert browser.get("/").text == "home: alicia"


def test_the_waiting_tab_learns_when_the_link_is_opened_elsewhere(
    app: Flask, browser: FlowBrowser, mailbox: Mailbox
) -> None:
    sign_up(browser, "carol", "carol@example.com")
    waiting = f"/flows/{ENROLL}/-/waiting/?flow_step={browser.step_token()}"
    assert browser.client.get(waiting).status_code == 204  # asked every few seconds
    page = browser.step(ENROLL, opened="1")  # the same question, without JavaScript
    assert NOT_OPENED_YET in page.text

    phone = browser.fresh()
    phone.open_link(link_in(mailbox.wait_for_message()))
    phone.follow()
    assert user_named(app, "carol") is not None

    answer = browser.client.get(waiting)
    assert answer.status_code == 200
    assert answer.headers["HX-Redirect"].startswith(f"/flows/{ENROLL}/?step=")  # the page's URL
    page = browser.get(answer.headers["HX-Redirect"])
    assert browser.stage_type == "email"
    assert "The link was opened in another browser or on another device." in page.text
    assert "Send again" not in page.text


def test_a_link_opened_in_the_same_browser_moves_the_waiting_tab_on(
    browser: FlowBrowser, mailbox: Mailbox
) -> None:
    sign_up(browser, "dana", "dana@example.com")
    waiting = f"/flows/{ENROLL}/-/waiting/?flow_step={browser.step_token()}"
    link = link_in(mailbox.wait_for_message())
    other_tab = FlowBrowser(browser.client)  # the same cookies
    other_tab.open_link(link)
    answer = browser.client.get(waiting)
    assert answer.headers["HX-Redirect"].startswith(f"/flows/{ENROLL}/?step=")


def test_nobody_waits_on_a_pretended_account(app: Flask, browser: FlowBrowser) -> None:
    browser.start("default-recovery-flow")
    browser.step("default-recovery-flow", uid_field="nobody-here")
    assert browser.stage_type == "email"
    waiting = f"/flows/default-recovery-flow/-/waiting/?flow_step={browser.step_token()}"
    assert browser.client.get(waiting).status_code == 204
