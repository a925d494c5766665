"""Blueprints: checking files, applying them all or nothing, idempotency, export, defaults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from browsing import FlowBrowser
from factory import db, default_definitions
from flask import Flask

from flask_flows import (
    Flow,
    Flows,
    FlowStageBinding,
    Group,
    Option,
    Policy,
    PolicyBinding,
    Stage,
    StageType,
)
from flask_flows.blueprints import (
    DEFAULT_BLUEPRINTS,
    BlueprintError,
    apply_blueprint,
    apply_files,
    export_flow,
    install_default_flows,
    load_blueprint,
)
from flask_flows.extension import FlowsState

MODELS = (Group, Policy, Stage, Flow, FlowStageBinding, PolicyBinding)

BASE = """\
version: 1
groups:
  - name: staff
policies:
  - name: staff-only
    type: group_membership
    config: {group: staff, message: Staff only.}
stages:
  - name: base-identification
    type: identification
    config: {user_fields: [username]}
  - name: base-password
    type: password
flows:
  - slug: base
    name: Base
    title: Base title
    designation: authentication
    policies:
      - {group: staff, order: 5}
    bindings:
      - stage: base-identification
        order: 10
      - stage: base-password
        order: 20
        evaluate_on_plan: true
        policies:
          - {policy: staff-only, negate: true}
"""

# Valid changes to the base objects plus new ones; each broken case comes after them.
VALID_STAGES = """
  - name: base-identification
    type: identification
    config: {user_fields: [email]}
  - name: extra-login
    type: user_login
"""
VALID_FLOWS = """
  - slug: extra
    name: Extra
    title: Changed title
    designation: authentication
    bindings:
      - {stage: base-identification, order: 10}
      - {stage: extra-login, order: 20}
  - slug: base
    name: Base
    title: Changed title
    designation: authentication
    bindings:
      - {stage: extra-login, order: 10}
"""


def after_valid(stages: str = "", flows: str = "") -> str:
    return f"version: 1\nstages:{VALID_STAGES}{stages}\nflows:{VALID_FLOWS}{flows}"


BROKEN: dict[str, tuple[str, list[str]]] = {
    "yaml syntax": (
        after_valid(flows="  - slug: broken\n    name: B: C\n"),
        ["invalid YAML at line 24, column 12", "mapping values are not allowed"],
    ),
    "duplicate key": (
        after_valid(flows="  - slug: broken\n    name: A\n    name: B\n"),
        ["invalid YAML at line 25, column 5", "the key 'name' is given twice"],
    ),
    "unknown stage type": (
        after_valid(stages="  - name: broken\n    type: fingerprint\n"),
        ["stages[2] (name 'broken'), field 'type'", "unknown stage type 'fingerprint'"],
    ),
    "unknown stage option": (
        after_valid(stages="  - name: broken\n    type: password\n    config: {colour: red}\n"),
        ["stages[2] (name 'broken'), config", "unknown option 'colour'"],
    ),
    "wrong option type": (
        after_valid(
            stages="  - name: broken\n    type: password\n"
            "    config: {failed_attempts_before_cancel: many}\n"
        ),
        [
            "stages[2] (name 'broken'), config, field 'failed_attempts_before_cancel'",
            "expected int",
        ],
    ),
    "wrong field type": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: authentication\n"
            "    bindings:\n      - {stage: extra-login, order: ten}\n"
        ),
        [
            "flows[2] (slug 'broken'), bindings[0] (stage 'extra-login'), field 'order'",
            "expected int",
        ],
    ),
    "bad enum value": (
        after_valid(flows="  - slug: broken\n    name: B\n    designation: login\n"),
        ["flows[2] (slug 'broken'), field 'designation'", "'login' is not one of"],
    ),
    "missing required field": (
        after_valid(flows="  - slug: broken\n    name: B\n"),
        ["flows[2] (slug 'broken'), field 'designation': a value is required"],
    ),
    "unknown field": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: recovery\n    titel: X\n"
        ),
        ["flows[2] (slug 'broken'): unknown field 'titel'"],
    ),
    "unknown stage reference": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: authentication\n"
            "    bindings:\n      - {stage: extra-login, order: 10}\n"
            "      - {stage: missing, order: 20}\n"
        ),
        [
            "flows[2] (slug 'broken'), bindings[1] (stage 'missing'), field 'stage'",
            "no stage named",
        ],
    ),
    "unknown policy reference": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: authentication\n"
            "    policies:\n      - {policy: nobody-wrote-this}\n"
        ),
        ["flows[2] (slug 'broken'), policies[0] (policy 'nobody-wrote-this'), field 'policy'"],
    ),
    "unknown user reference": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: authentication\n"
            "    policies:\n      - {user: ghost}\n"
        ),
        ["flows[2] (slug 'broken'), policies[0] (user 'ghost'), field 'user'", "no user"],
    ),
    "two subjects": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: authentication\n"
            "    policies:\n      - {user: ghost, group: staff}\n"
        ),
        ["flows[2] (slug 'broken'), policies[0]", "exactly one of the fields"],
    ),
    "duplicate binding order": (
        after_valid(
            flows="  - slug: broken\n    name: B\n    designation: authentication\n"
            "    bindings:\n      - {stage: extra-login, order: 10}\n"
            "      - {stage: base-password, order: 10}\n"
        ),
        [
            "flows[2] (slug 'broken'), bindings[1] (stage 'base-password'), field 'order'",
            "already used by bindings[0]",
        ],
    ),
    "duplicate flow slug": (
        after_valid(flows="  - slug: base\n    name: B\n    designation: recovery\n"),
        ["flows[2] (slug 'base'), field 'slug'", "already defined in"],
    ),
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row_counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in MODELS
        }


def flow_summary(app: Flask, slug: str) -> dict[str, Any]:
    """What a flow looks like in the database, ids included, for before/after comparisons."""
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
        assert flow is not None
        return {
            "title": flow.title,
            "revision": flow.revision,
            "bindings": [
                (
                    b.id,
                    b.order,
                    b.stage.name,
                    b.stage.config,
                    b.evaluate_on_plan,
                    [(p.id, p.policy_id, p.negate) for p in b.policy_bindings],
                )
                for b in flow.bindings
            ],
            "policies": [(p.id, p.group_id, p.order) for p in flow.policy_bindings],
        }


def apply_text(app: Flask, state: FlowsState, text: str) -> Any:
    with app.app_context():
        return apply_blueprint(state, text, name="test.yaml")


def test_load_fills_in_model_defaults() -> None:
    document = load_blueprint(BASE)
    flow = document["flows"][0]
    assert flow["denied_action"] == "message_continue"
    assert flow["authentication"] == "none"
    first, second = flow["bindings"]
    assert (first["evaluate_on_plan"], first["re_evaluate_policies"]) == (False, True)
    assert first["invalid_response_action"] == "retry"
    assert second["policies"][0] == {
        "policy": "staff-only",
        "group": None,
        "user": None,
        "order": 0,
        "enabled": True,
        "negate": True,
        "failure_result": False,
        "timeout": 30,
    }


def test_a_path_passed_as_text_is_explained() -> None:
    with pytest.raises(BlueprintError, match="pass a pathlib.Path"):
        load_blueprint("blueprints/login.yaml")


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_names_entry_and_field_and_changes_nothing(
    app: Flask, state: FlowsState, make_user: Callable[..., Any], tmp_path: Path, case: str
) -> None:
    make_user("alice")
    apply_text(app, state, BASE)
    before_counts = row_counts(app)
    before_flow = flow_summary(app, "base")

    text, fragments = BROKEN[case]
    path = write(tmp_path, "broken.yaml", text)
    with app.app_context(), pytest.raises(BlueprintError) as raised:
        apply_files(state, [path])

    message = str(raised.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message
    assert row_counts(app) == before_counts
    assert flow_summary(app, "base") == before_flow


def test_error_in_a_later_file_rolls_back_earlier_files(
    app: Flask, state: FlowsState, tmp_path: Path
) -> None:
    apply_text(app, state, BASE)
    before_counts = row_counts(app)
    before_flow = flow_summary(app, "base")
    good = write(tmp_path, "a-good.yaml", after_valid())
    bad = write(
        tmp_path,
        "b-bad.yaml",
        "version: 1\nflows:\n  - slug: late\n    name: L\n    designation: recovery\n"
        "    bindings:\n      - {stage: nowhere, order: 1}\n",
    )
    with app.app_context(), pytest.raises(BlueprintError, match=r"b-bad\.yaml: flows\[0\]"):
        apply_files(state, [good, bad])
    assert row_counts(app) == before_counts
    assert flow_summary(app, "base") == before_flow


def test_same_definition_in_two_files_is_refused(
    app: Flask, state: FlowsState, tmp_path: Path
) -> None:
    first = write(tmp_path, "first.yaml", BASE)
    second = write(tmp_path, "second.yaml", BASE)
    with app.app_context(), pytest.raises(BlueprintError) as raised:
        apply_files(state, [first, second])
    assert "second.yaml: groups[0] (name 'staff'), field 'name'" in str(raised.value)
    assert "first.yaml" in str(raised.value)
    assert sum(row_counts(app).values()) == 0


def test_applying_twice_changes_nothing(
    app: Flask, state: FlowsState, make_user: Callable[..., Any]
) -> None:
    make_user("alice")
    text = BASE.replace(
        "{group: staff, order: 5}", "{group: staff, order: 5}\n      - {user: alice}"
    )
    first = apply_text(app, state, text)
    assert first.created == {"groups": 1, "policies": 1, "stages": 2, "flows": 1}
    before = flow_summary(app, "base")
    assert before["revision"] == 1

    second = apply_text(app, state, text)

    assert not second.changed
    assert second.unchanged == {"groups": 1, "policies": 1, "stages": 2, "flows": 1}
    assert flow_summary(app, "base") == before


def test_apply_updates_a_changed_flow_and_bumps_its_revision(app: Flask, state: FlowsState) -> None:
    apply_text(app, state, BASE)
    before = flow_summary(app, "base")
    changed = (
        BASE.replace("title: Base title", "title: New title")
        .replace("      - {group: staff, order: 5}\n", "")
        .replace("    policies:\n    bindings:", "    bindings:")
        .replace("{policy: staff-only, negate: true}", "{policy: staff-only, negate: false}")
        + "      - stage: base-identification\n        order: 30\n"
    )
    report = apply_text(app, state, changed)

    after = flow_summary(app, "base")
    assert report.updated["flows"] == 1
    assert after["title"] == "New title"
    assert after["revision"] > before["revision"]
    assert after["policies"] == []
    assert [b[1:3] for b in after["bindings"]] == [
        (10, "base-identification"),
        (20, "base-password"),
        (30, "base-identification"),
    ]
    # Bindings at an unchanged order keep their rows, policy bindings too.
    assert [b[0] for b in after["bindings"][:2]] == [b[0] for b in before["bindings"]]
    assert after["bindings"][1][5][0][0] == before["bindings"][1][5][0][0]
    assert after["bindings"][1][5][0][2] is False


def test_removing_a_binding_makes_the_flow_match_the_file(app: Flask, state: FlowsState) -> None:
    apply_text(app, state, BASE)
    shorter = BASE.split("      - stage: base-password")[0]
    apply_text(app, state, shorter)
    after = flow_summary(app, "base")
    assert [b[1:3] for b in after["bindings"]] == [(10, "base-identification")]
    assert after["revision"] == 2
    # The stage itself stays: other flows may use it.
    assert row_counts(app)["Stage"] == 2
    assert row_counts(app)["PolicyBinding"] == 1


def test_changing_only_a_stage_config_bumps_the_flows_using_it(
    app: Flask, state: FlowsState
) -> None:
    apply_text(app, state, BASE)
    report = apply_text(app, state, BASE.replace("{user_fields: [username]}", "{}"))
    assert report.updated["stages"] == 1
    assert report.unchanged["flows"] == 1
    assert flow_summary(app, "base")["revision"] == 2


def test_references_may_point_to_objects_already_in_the_database(
    app: Flask, state: FlowsState
) -> None:
    apply_text(app, state, BASE)
    report = apply_text(
        app,
        state,
        "version: 1\nflows:\n  - slug: reuse\n    name: Reuse\n    designation: authentication\n"
        "    policies: [{group: staff}]\n"
        "    bindings:\n      - stage: base-password\n        policies: [{policy: staff-only}]\n",
    )
    assert report.created["flows"] == 1
    assert flow_summary(app, "reuse")["bindings"][0][2] == "base-password"


def test_export_round_trips(app: Flask, state: FlowsState, make_user: Callable[..., Any]) -> None:
    make_user("alice")
    text = BASE.replace(
        "{group: staff, order: 5}", "{group: staff, order: 5}\n      - {user: alice}"
    )
    apply_text(app, state, text)
    with app.app_context():
        exported = export_flow(state, "base")

    document = yaml.safe_load(exported)
    assert [s["name"] for s in document["stages"]] == ["base-identification", "base-password"]
    assert document["policies"][0]["config"] == {"group": "staff", "message": "Staff only."}
    assert document["groups"] == [{"name": "staff", "is_superuser": False}]
    # Policy bindings come out sorted by order: the user binding (order 0) first.
    assert [p.get("user", p.get("group")) for p in document["flows"][0]["policies"]] == [
        "alice",
        "staff",
    ]

    with app.app_context():
        for model in reversed(MODELS):  # children first: SQLite does not cascade here
            db.session.execute(sa.delete(model))
        db.session.commit()
    assert sum(row_counts(app).values()) == 0

    apply_text(app, state, exported)
    with app.app_context():
        assert export_flow(state, "base") == exported


def test_export_of_an_unknown_flow_fails_clearly(app: Flask, state: FlowsState) -> None:
    with app.app_context(), pytest.raises(BlueprintError, match="no flow with slug 'nope'"):
        export_flow(state, "nope")


def test_custom_stage_types_are_checked_with_their_own_options(
    app: Flask, flows: Flows, state: FlowsState
) -> None:
    @flows.stage_type
    class Greeting(StageType):
        name = "greeting"
        template = "flows/stages/dummy.html"
        options = {"greeting": Option(str)}

    ok = "version: 1\nstages:\n  - name: hello\n    type: greeting\n    config: {greeting: hi}\n"
    assert apply_text(app, state, ok).created["stages"] == 1
    with pytest.raises(
        BlueprintError, match=r"stages\[0\] \(name 'hello'\), config, field 'greeting'"
    ):
        apply_text(app, state, ok.replace("{greeting: hi}", "{greeting: 3}"))


def test_a_policy_config_its_type_refuses_is_refused_on_apply(
    app: Flask, state: FlowsState
) -> None:
    """Cross-field checks of policy types run when the blueprint is applied, as those of
    stage types do, rather than on every evaluation at login time."""
    text = (
        "version: 1\npolicies:\n  - name: strict\n    type: password\n"
        "    config: {min_length: 100, max_length: 80}\n"
    )
    with pytest.raises(
        BlueprintError, match=r"policies\[0\] \(name 'strict'\), config, field 'min_length'"
    ):
        apply_text(app, state, text)
    assert apply_text(app, state, text.replace("100", "12")).created["policies"] == 1


def test_install_default_flows_is_idempotent(app: Flask, state: FlowsState) -> None:
    names = sorted(p.name for p in DEFAULT_BLUEPRINTS.glob("*.yaml"))
    assert "default-authentication-flow.yaml" in names
    assert "default-invalidation-flow.yaml" in names
    with app.app_context():
        first = install_default_flows(state)
    assert first.created == default_definitions()
    before = flow_summary(app, "default-authentication-flow")
    assert [b[2] for b in before["bindings"]] == [
        "default-authentication-identification",  # asks for the password too
        "default-authentication-mfa-validation",
        "default-authentication-login",
    ]
    with app.app_context():
        second = install_default_flows(state)
    assert not second.changed
    assert flow_summary(app, "default-authentication-flow") == before


def test_default_flows_log_a_user_in_and_out(
    app: Flask, state: FlowsState, browser: FlowBrowser, make_user: Callable[..., Any]
) -> None:
    with app.app_context():
        install_default_flows(state)
    make_user("alice")

    browser.start("default-authentication-flow", next="/after")
    assert browser.stage_type == "identification"
    # The title names the stage and the flow, in a whole page and (for htmx) a fragment.
    assert "<title>Sign in · Welcome · Test App</title>" in browser.last.text
    # One page asks for both (the identification stage's password_stage).
    browser.submit(
        "default-authentication-flow", uid_field="alice", password="correct horse battery"
    )
    assert browser.redirect_target == "/after"
    assert browser.get("/").text == "home: alice"

    browser.start("default-invalidation-flow")
    assert browser.stage_type == "user_logout"
    browser.submit("default-invalidation-flow")
    assert browser.get("/").text == "home: anonymous"


def test_apply_blueprint_takes_a_mapping_or_a_path(
    app: Flask, state: FlowsState, tmp_path: Path
) -> None:
    with app.app_context():
        from_mapping = apply_blueprint(state, yaml.safe_load(BASE), name="mapping")
        from_path = apply_blueprint(state, write(tmp_path, "base.yaml", BASE))
    assert from_mapping.created["flows"] == 1
    assert from_path.unchanged["flows"] == 1
    bad = yaml.safe_load(BASE)
    bad["flows"][0]["designation"] = "nope"
    with app.app_context(), pytest.raises(BlueprintError, match=r"^mapping: flows\[0\]"):
        apply_blueprint(state, bad, name="mapping")


def test_every_mistake_of_a_blueprint_is_said_at_once(app: Flask, state: FlowsState) -> None:
    """A file with several mistakes names them all in one run, each with its place; so do
    options naming what does not exist."""
    broken = """
version: 1
policies:
  - {name: strict, type: password, config: {min_length: 0}}
stages:
  - {name: one, type: dummy, config: {mesage: x}}
  - {name: two, type: no-such-type}
"""
    with app.app_context(), pytest.raises(BlueprintError) as refused:
        apply_blueprint(state, broken)
    message = str(refused.value)
    assert message.startswith("3 problems:\n- ")
    for place in ("(name 'strict')", "(name 'one')", "(name 'two')"):
        assert place in message
    dangling = """
version: 1
stages:
  - {name: out, type: redirect, config: {target_flow: nowhere}}
  - {name: login-id, type: identification, config: {recovery_flow: gone}}
"""
    with app.app_context(), pytest.raises(BlueprintError) as refused:
        apply_blueprint(state, dangling)
    assert str(refused.value).startswith("2 problems:")
    assert "'nowhere'" in str(refused.value) and "'gone'" in str(refused.value)
