"""docs/users.md's app-factory recipe, built file by file from the guide's code blocks:
a package whose models import it, a user store for a renamed password column and email
logins, and ``init_app`` given the model and the store. Then a login through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from factory import FAST_ARGON2
from guides import app_files, importable, write_files

from flask_flows import AuthenticatedSession, Flow, FlowStageBinding, Stage, testing

PASSWORD = "correct horse battery"


@pytest.fixture
def yourapp(tmp_path: Path) -> Iterator[Any]:
    files = app_files("users.md")
    assert set(files) == {
        "yourapp/extensions.py",
        "yourapp/models.py",
        "yourapp/users.py",
        "yourapp/__init__.py",
    }
    write_files(tmp_path, files)
    with importable(tmp_path):
        import yourapp  # type: ignore[import-not-found]

        yield yourapp


def test_the_factory_recipe_logs_an_account_in_by_email(yourapp: Any, tmp_path: Path) -> None:
    app = yourapp.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'yourapp.sqlite3'}",
            "SECRET_KEY": "test",
            "TESTING": True,
            **FAST_ARGON2,
        }
    )
    db = yourapp.extensions.db
    state = app.extensions["flows"]
    assert type(state.user_store).__name__ == "AccountStore"
    with app.app_context():
        state.create_tables()
        flow = Flow(slug="login", name="login", title="Log in", designation="authentication")
        for order, (kind, config) in enumerate(
            [("identification", {"user_fields": ["email"]}), ("password", {}), ("user_login", {})]
        ):
            stage = Stage(name=f"login-{kind}", type=kind, config=config)
            flow.bindings.append(FlowStageBinding(stage=stage, order=(order + 1) * 10))
        db.session.add(flow)
        account = state.user_store.create(
            username="ann", email="ann@example.com", password=PASSWORD
        )
        db.session.commit()
        assert account.pw_hash.startswith("$argon2id$")
        assert account.password_hash is None

    browser = testing.FlowBrowser(app.test_client())
    browser.log_in("ann@example.com", PASSWORD, slug="login")
    assert browser.redirect_target == "/"
    with app.app_context():
        sessions = db.session.scalar(sa.select(sa.func.count()).select_from(AuthenticatedSession))
        db.engine.dispose()
    assert sessions == 1
