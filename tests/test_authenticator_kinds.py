"""The authenticator kind registry: the built-in kinds come from it, an app adds its own
(docs/stages.md "Authenticator kinds", run as written), and an unknown kind is refused."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import User, db
from flask import Flask

from flask_flows import AuthenticatorKind, Flow
from flask_flows.authenticators import INVALID_CODE, RecoveryCodesKind, TOTPKind
from flask_flows.blueprints import apply_blueprint
from flask_flows.devices import TOTPDevice
from flask_flows.extension import FlowsState
from flask_flows.options import ConfigError

PASSWORD = "correct horse battery"
GUIDE = (Path(__file__).parent.parent / "docs" / "stages.md").read_text()
EXAMPLE = GUIDE.split("### Authenticator kinds", 1)[1].split("```python\n", 1)[1].split("```")[0]


class _Collect:
    """Stands in for ``flows`` while the example is defined once per process (its model
    can be declared only once); each test registers the kind on its own app."""

    @staticmethod
    def authenticator_kind(cls: type[AuthenticatorKind]) -> type[AuthenticatorKind]:
        return cls


@functools.cache
def guide_example() -> dict[str, Any]:
    namespace: dict[str, Any] = {"db": db, "flows": _Collect()}
    exec(compile(EXAMPLE, "docs/stages.md", "exec"), namespace)  # noqa: S102 - the guide's code
    return namespace


def test_the_built_in_kinds_are_the_first_entries(state: FlowsState) -> None:
    assert list(state.flows.authenticator_kinds.values())[:2] == [TOTPKind, RecoveryCodesKind]


@pytest.fixture
def alice_with_a_pin(app: Flask, state: FlowsState, make_user: Callable[..., User]) -> User:
    """The guide's kind registered on this app, and alice with a PIN letter (P-4711)."""
    example = guide_example()
    state.flows.authenticator_kind(example["PinLetter"])
    pin_device = example["PinDevice"]
    alice = make_user("alice", password=PASSWORD)
    with app.app_context():
        pin_device.__table__.create(db.engine, checkfirst=True)
        db.session.add(pin_device(user_id=str(alice.id), pin="P-4711"))
        db.session.commit()
    return alice


def test_an_app_kind_from_the_guide_signs_in_and_shows_on_the_settings_page(
    app: Flask, make_flow: Callable[..., Flow], alice_with_a_pin: User
) -> None:
    alice = alice_with_a_pin
    validate = {"device_classes": ["totp", "static", "pin"]}
    make_flow(
        "login", "identification", "password", ("authenticator_validate", validate), "user_login"
    )
    browser = FlowBrowser(app.test_client())
    browser.start("login")
    browser.step("login", uid_field="alice")
    page = browser.step("login", password=PASSWORD)
    assert browser.stage_type == "authenticator_validate"
    assert "Enter the PIN from the letter we sent you." in page.text
    assert INVALID_CODE in browser.step("login", code="P-0000").text
    browser.step("login", code="P-4711")
    assert browser.redirect_target == "/"
    assert browser.whoami() == "home: alice"

    # Beside another kind, the field names both.
    with app.app_context():
        db.session.add(TOTPDevice(user_id=str(alice.id), secret="S" * 32, confirmed=True))
        db.session.commit()
    both = FlowBrowser(app.test_client())
    both.start("login")
    both.step("login", uid_field="alice")
    page = both.step("login", password=PASSWORD)
    assert "Enter a code from one of these: Authenticator app, PIN letter." in page.text

    settings = browser.get("/flows/-/settings/").text
    assert "PIN letter" in settings
    assert "/flows/-/settings/authenticators/pin/" in settings  # its Remove form


def test_an_unknown_kind_is_refused_when_the_flow_is_applied(app: Flask, state: FlowsState) -> None:
    blueprint = """
version: 1
stages:
  - name: strict-mfa
    type: authenticator_validate
    config:
      device_classes: [totp, smoke-signals]
"""
    with app.app_context(), pytest.raises(ConfigError, match="smoke-signals"):
        apply_blueprint(state, blueprint)


def test_the_support_commands_list_and_reset_an_app_kind_too(
    app: Flask, alice_with_a_pin: User
) -> None:
    alice = alice_with_a_pin
    pin_device = guide_example()["PinDevice"]
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["flows", "users", "list"]).output.splitlines()
    assert listing[1].split()[:4] == [str(alice.id), "alice", "yes", "pin"]
    reset = runner.invoke(args=["flows", "mfa", "reset", "alice", "--yes"])
    assert "Removed 1 second factor of 'alice'." in reset.output, reset.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(pin_device)) == 0
