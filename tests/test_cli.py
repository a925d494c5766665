"""``flask flows …``: init, apply, export, list and create-user through Flask's CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from click.testing import Result
from factory import User, db, default_definitions
from flask import Flask

from flask_flows import Flow, FlowStageBinding, Stage
from flask_flows.blueprints import export_flow
from flask_flows.extension import FlowsState

PROMPT_FLOW = """\
version: 1
stages:
  - name: cli-identification
    type: identification
flows:
  - slug: cli-flow
    name: CLI flow
    title: From the CLI
    designation: enrollment
    bindings:
      - {stage: cli-identification, order: 1}
"""


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["flows", *args], input=input)


def counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (User, Flow, Stage, FlowStageBinding)
        )


def test_init_installs_the_default_flows_and_is_idempotent(app: Flask) -> None:
    first = run(app, "init")
    assert first.exit_code == 0, first.output
    defined = default_definitions()
    flows, stages = defined["flows"], defined["stages"]
    assert f"flows: {flows} created, 0 updated, 0 unchanged" in first.output
    assert f"stages: {stages} created" in first.output
    installed = counts(app)

    second = run(app, "init")
    assert second.exit_code == 0, second.output
    assert f"flows: 0 created, 0 updated, {flows} unchanged" in second.output
    assert counts(app) == installed


def test_list_shows_each_flow_with_its_stages_in_order(app: Flask) -> None:
    assert "No flows yet" in run(app, "list").output
    run(app, "init")

    result = run(app, "list")

    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["SLUG", "DESIGNATION", "TITLE", "STAGES"]
    assert len(rows) == default_definitions()["flows"]
    slugs = [row.split()[0] for row in rows]
    assert slugs == sorted(slugs)
    login = rows[slugs.index("default-authentication-flow")]
    assert login.split()[:3] == ["default-authentication-flow", "authentication", "Welcome"]
    assert login.endswith(
        "default-authentication-identification, default-authentication-mfa-validation,"
        " default-authentication-login"
    )
    assert "Log out" in rows[slugs.index("default-invalidation-flow")]
    # Columns line up: every row's stage list starts where the header's STAGES does.
    column = header.index("STAGES")
    assert all(row[column - 2 : column] == "  " for row in rows)


def test_apply_prints_the_report(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "cli.yaml"
    path.write_text(PROMPT_FLOW)

    result = run(app, "apply", str(path))

    assert result.exit_code == 0, result.output
    assert "stages: 1 created, 0 updated, 0 unchanged" in result.output
    assert "flows: 1 created" in result.output
    again = run(app, "apply", str(path))
    assert "flows: 0 created, 0 updated, 1 unchanged" in again.output


def test_apply_a_broken_file_exits_1_and_changes_nothing(app: Flask, tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text(PROMPT_FLOW)
    broken = tmp_path / "b.yaml"
    broken.write_text(PROMPT_FLOW.replace("cli-flow", "cli-other").replace("order: 1", "order: x"))
    before = counts(app)

    result = run(app, "apply", str(good), str(broken))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{broken}: flows[0] (slug 'cli-other'), bindings[0]" in result.stderr
    assert "field 'order'" in result.stderr
    assert counts(app) == before


def test_apply_a_missing_file_exits_with_an_error(app: Flask, tmp_path: Path) -> None:
    result = run(app, "apply", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_export_prints_the_blueprint(app: Flask, state: FlowsState) -> None:
    run(app, "init")
    result = run(app, "export", "default-invalidation-flow")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert result.stdout == export_flow(state, "default-invalidation-flow")
    assert "type: user_logout" in result.stdout


def test_export_of_an_unknown_slug_exits_1(app: Flask) -> None:
    result = run(app, "export", "no-such-flow")
    assert result.exit_code == 1
    assert "no flow with slug 'no-such-flow'" in result.stderr
    assert result.stdout == ""


def test_create_user_then_log_in(app: Flask) -> None:
    run(app, "init")
    result = run(
        app, "create-user", "carol", "--email", "carol@example.com", "--password", "s3cret pass"
    )
    assert result.exit_code == 0, result.output
    assert "Created user 'carol'" in result.output

    browser = FlowBrowser(app.test_client())
    browser.log_in("carol@example.com", "s3cret pass", slug="default-authentication-flow")
    assert browser.whoami() == "home: carol"
    stranger = browser.fresh()
    stranger.log_in("carol", "wrong password", slug="default-authentication-flow")
    assert stranger.whoami() == "home: anonymous"


def test_create_user_prompts_for_a_hidden_password_twice(app: Flask) -> None:
    run(app, "init")
    result = run(app, "create-user", "dave", "--superuser", input="hidden pw\nhidden pw\n")

    assert result.exit_code == 0, result.output
    assert "Password:" in result.output
    assert "Repeat for confirmation:" in result.output
    assert "hidden pw" not in result.output
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "dave"))
        assert user is not None
        assert user.is_superuser
        assert user.email is None
    browser = FlowBrowser(app.test_client())
    browser.log_in("dave", "hidden pw", slug="default-authentication-flow")
    assert browser.whoami() == "home: dave"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ALICE", "--email", "new@example.com"],
            "a user with the username 'ALICE' already exists",
        ),
        (
            ["bob", "--email", "Alice@Example.com"],
            "email address 'Alice@Example.com' already exists",
        ),
    ],
    ids=["username", "email"],
)
def test_create_user_refuses_duplicates(app: Flask, args: list[str], message: str) -> None:
    first = run(app, "create-user", "alice", "--email", "alice@example.com", "--password", "pw")
    assert first.exit_code == 0, first.output
    before = counts(app)

    result = run(app, "create-user", *args, "--password", "pw")

    assert result.exit_code == 1
    assert message in result.stderr
    assert counts(app) == before


def test_create_user_refuses_an_empty_password(app: Flask) -> None:
    result = run(app, "create-user", "erin", "--password", "")
    assert result.exit_code == 1
    assert "password must not be empty" in result.stderr
    assert counts(app)[0] == 0


@pytest.mark.parametrize("args", [["check"], ["list"], ["db", "current"], ["init"]])
def test_an_app_without_flows_set_up_is_told_how(args: list[str]) -> None:
    """Installed but not yet set up (the first step of docs/existing-app.md): a clear
    message, not a traceback."""
    from flask_flows.cli import flows_cli

    bare = Flask(__name__)
    result = bare.test_cli_runner().invoke(flows_cli, args)
    assert result.exit_code == 1
    assert "flask-flows is not set up in this app: call flows.init_app(app" in result.output
    assert "Traceback" not in result.output


def revisions(app: Flask) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(sa.select(Flow.slug, Flow.revision)).all()
        return {slug: revision for slug, revision in rows}


def test_init_keeps_what_the_app_changed_and_restores_on_request(app: Flask) -> None:
    """Before: every init put the shipped definitions back over the app's edits and bumped
    their revisions, restarting logins in progress on every deploy."""
    run(app, "init")
    installed = revisions(app)
    assert run(app, "init").exit_code == 0
    assert revisions(app) == installed  # nothing changed: no revision moves

    with app.app_context():  # the app's edits: a flow's title, a stage's label, a flow gone
        flow = db.session.scalar(sa.select(Flow).filter_by(slug="default-authentication-flow"))
        flow.title = "Sign in to Notes"
        stage = db.session.scalar(
            sa.select(Stage).filter_by(name="default-authentication-password")
        )
        stage.config = {**stage.config, "allow_show_password": False}
        db.session.delete(
            db.session.scalar(sa.select(Flow).filter_by(slug="default-password-change"))
        )
        db.session.commit()
    edited = revisions(app)

    result = run(app, "init")
    assert result.exit_code == 0, result.output
    assert "kept as changed in this database: default-authentication-password," in result.output
    assert "default-authentication-flow" in result.output
    assert "flask flows init --restore puts the shipped definitions back" in result.output
    after = revisions(app)
    assert after["default-authentication-flow"] == edited["default-authentication-flow"]
    assert "default-password-change" in after  # what was missing is added again
    with app.app_context():
        title = db.session.scalar(
            sa.select(Flow.title).filter_by(slug="default-authentication-flow")
        )
        assert title == "Sign in to Notes"

    result = run(app, "init", "--restore")
    assert result.exit_code == 0, result.output
    assert "kept as changed" not in result.output
    with app.app_context():
        title = db.session.scalar(
            sa.select(Flow.title).filter_by(slug="default-authentication-flow")
        )
        config = db.session.scalar(
            sa.select(Stage.config).filter_by(name="default-authentication-password")
        )
    assert title == "Welcome"
    assert "allow_show_password" not in config or config["allow_show_password"] is True


def test_a_kept_flow_whose_bindings_changed_is_left_whole(app: Flask) -> None:
    run(app, "init")
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).filter_by(slug="default-authentication-flow"))
        flow.bindings.remove(flow.bindings[-2])  # the app dropped the MFA step
        db.session.commit()
    before = revisions(app)["default-authentication-flow"]
    result = run(app, "init")
    assert "kept as changed in this database: default-authentication-flow" in result.output
    assert revisions(app)["default-authentication-flow"] == before
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).filter_by(slug="default-authentication-flow"))
        assert len(flow.bindings) == 2
