"""The extension object: app-factory safety, config defaults, Flask-Login and htmx wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factory import FAST_ARGON2, MakeApp, User, db
from flask import Flask, Request
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy

from flask_flows import ConfigError, Flows, get_state
from flask_flows.config import DEFAULTS


def bare_app(tmp_path: Path, name: str = "bare", **config: object) -> Flask:
    app = Flask(name)
    app.config.update(
        SECRET_KEY="k",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / (name + '.db')}",
        **FAST_ARGON2,
        **config,
    )
    db.init_app(app)
    return app


def test_one_flows_object_serves_several_apps(tmp_path: Path) -> None:
    flows = Flows(db=db, user_model=User)
    first, second = bare_app(tmp_path, "first"), bare_app(tmp_path, "second")
    flows.init_app(first)
    flows.init_app(second)
    assert first.extensions["flows"] is not second.extensions["flows"]
    assert first.extensions["flows"].flows is flows is second.extensions["flows"].flows
    assert not hasattr(flows, "app")
    with first.app_context():
        assert get_state() is first.extensions["flows"]


def test_config_defaults_do_not_override_the_app(tmp_path: Path) -> None:
    app = bare_app(tmp_path, FLOWS_URL_PREFIX="/auth", FLOWS_PLAN_MAX_AGE=60)
    Flows(app, db=db, user_model=User)
    assert app.config["FLOWS_URL_PREFIX"] == "/auth"
    assert app.config["FLOWS_PLAN_MAX_AGE"] == 60
    assert app.config["FLOWS_PLAN_CACHE_TTL"] == DEFAULTS["FLOWS_PLAN_CACHE_TTL"]
    assert app.config["FLOWS_BRAND_NAME"] == "Bare"  # the import name, made readable
    assert any(rule.rule == "/auth/<slug>/" for rule in app.url_map.iter_rules())


def test_login_manager_is_created_when_missing(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    Flows(app, db=db, user_model=User)
    manager = app.login_manager  # type: ignore[attr-defined]
    assert isinstance(manager, LoginManager)
    assert manager.login_view == "flows.login"
    assert manager._user_callback is not None


def test_an_existing_login_manager_and_loader_are_kept(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    manager = LoginManager(app)
    manager.login_view = "my_login"

    @manager.user_loader
    def load(user_id: str) -> None:
        return None

    Flows(app, db=db, user_model=User)
    assert app.login_manager is manager  # type: ignore[attr-defined]
    assert manager.login_view == "my_login"
    assert manager._user_callback is load


def test_the_host_apps_request_class_is_left_alone(tmp_path: Path) -> None:
    class AppRequest(Request):
        pass

    app = bare_app(tmp_path)
    app.request_class = AppRequest
    Flows(app, db=db, user_model=User)
    assert app.request_class is AppRequest
    assert "htmx" not in app.extensions


def test_missing_db_or_user_model_is_a_clear_error(tmp_path: Path) -> None:
    app = Flask("nodb")
    with pytest.raises(ConfigError, match="Flask-SQLAlchemy"):
        Flows(app, user_model=User)
    other = bare_app(tmp_path)
    with pytest.raises(ConfigError, match="user model"):
        Flows(other, db=db)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("FLOWS_MAIL_RATE_LIMIT", "five per hour", "expected 'count/seconds'"),
        ("FLOWS_MAIL_RATE_LIMIT", "0/3600", "must be positive"),
        ("FLOWS_MAIL_BACKEND", "no_such_module:send", "nor importable"),
        ("FLOWS_MAIL_BACKEND", 42, "must be callable"),
    ],
)
def test_a_bad_mail_setting_fails_at_start_up(
    tmp_path: Path, setting: str, value: object, message: str
) -> None:
    """Not later, as an error page on the email stage or a log line from a mail thread."""
    app = bare_app(tmp_path)
    app.config[setting] = value
    with pytest.raises(ConfigError, match=f"{setting}.*{message}|{message}"):
        Flows(app, db=db, user_model=User)


def test_db_is_found_in_app_extensions(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    Flows(app, user_model=User)
    assert app.extensions["flows"].db is db
    assert isinstance(app.extensions["sqlalchemy"], SQLAlchemy)


def test_get_state_outside_an_initialised_app() -> None:
    with Flask("plain").app_context(), pytest.raises(RuntimeError, match="Flows"):
        get_state()


def test_login_required_views_redirect_into_the_login_flow(make_app: MakeApp) -> None:
    from flask_login import login_required

    app, _ = make_app()

    @app.route("/private")
    @login_required
    def private() -> str:
        return "private"

    response = app.test_client().get("/private")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/flows/-/login/?next=")
    assert "%2Fprivate" in response.headers["Location"]


def test_flows_work_beside_an_app_wide_csrf_protect(make_app: MakeApp) -> None:
    from browsing import FlowBrowser
    from flask_wtf.csrf import CSRFProtect

    from flask_flows import Flow, FlowStageBinding, Stage

    app, _ = make_app()
    CSRFProtect(app)
    with app.app_context():
        state = app.extensions["flows"]
        state.user_store.create(username="alice", email="a@example.com", password="pw-123456")
        flow = Flow(slug="login", name="login", designation="authentication")
        flow.bindings = [
            FlowStageBinding(stage=Stage(name="id", type="identification"), order=1),
            FlowStageBinding(stage=Stage(name="pw", type="password"), order=2),
            FlowStageBinding(stage=Stage(name="in", type="user_login"), order=3),
        ]
        db.session.add(flow)
        db.session.commit()
    browser = FlowBrowser(app.test_client(), htmx=True)
    browser.start("login")
    assert browser.post("/flows/login/", {"uid_field": "alice"}).status_code == 400
    browser.start("login")
    browser.submit("login", uid_field="alice")
    browser.submit("login", password="pw-123456")
    assert browser.redirect_target == "/"
    assert browser.get("/").text == "home: alice"


def test_the_public_names_and_where_they_live_stay_in_step() -> None:
    """flask_flows resolves its exports on first use: every name in __all__ must be
    found, and every name it knows where to find must be in __all__."""
    import flask_flows

    assert sorted(flask_flows.__all__) == sorted(flask_flows._EXPORTS)
    for name in flask_flows.__all__:
        assert getattr(flask_flows, name) is not None
    assert flask_flows.signals.user_deleting is not None  # submodules, after `import flask_flows`


# -- the brand ---------------------------------------------------------------------------


def branded_app(name: str, **config: Any) -> Flask:
    app = Flask(name)
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI="sqlite://", **config)
    Flows(app, db=SQLAlchemy(app), user_model=User)
    return app


def test_the_default_brand_is_the_import_name_made_readable() -> None:
    assert branded_app("my_blog").config["FLOWS_BRAND_NAME"] == "My blog"
    assert branded_app("flaskr.factory").config["FLOWS_BRAND_NAME"] == "Flaskr"
    assert branded_app("app", FLOWS_BRAND_NAME="Notes").config["FLOWS_BRAND_NAME"] == "Notes"


def with_tables(app: Flask) -> Flask:
    with app.app_context():
        app.extensions["flows"].create_tables()
    return app


def test_a_generic_import_name_needs_a_brand_in_production() -> None:
    """Before: every mail of an app made as Flask("app") came from "app". Now its flow
    pages are refused until the brand is set, outside debug and testing; the app's own
    pages, and the flask command, go on."""
    app = branded_app("app")

    @app.get("/")
    def home() -> str:
        return "home"

    client = app.test_client()
    refusal = "set FLOWS_BRAND_NAME: .* 'App', after the import name 'app'"
    with pytest.raises(ConfigError, match=refusal):
        app.config["PROPAGATE_EXCEPTIONS"] = True
        client.get("/flows/-/login/")
    assert client.get("/").text == "home"
    testing = with_tables(branded_app("app", TESTING=True))
    assert testing.config["FLOWS_BRAND_NAME"] == "App"
    assert testing.test_client().get("/flows/-/login/").status_code == 404  # no flow yet


def test_debug_known_only_at_run_time_is_enough() -> None:
    app = with_tables(branded_app("__main__"))
    app.debug = True  # what app.run(debug=True) does, after init_app
    assert app.test_client().get("/flows/-/login/").status_code == 404
