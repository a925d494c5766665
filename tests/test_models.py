"""Model constraints (enforced by the database, on SQLite and PostgreSQL) and the
``Flow.revision`` bumps that make running and cached plans stale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from factory import db
from flask import Flask
from sqlalchemy.exc import IntegrityError, StatementError

from flask_flows import Flow, FlowStageBinding, Group, Policy, PolicyBinding, Stage


def revisions(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {flow.slug: flow.revision for flow in db.session.scalars(sa.select(Flow))}


def change(app: Flask, edit: Callable[[], Any]) -> None:
    """Run ``edit`` in a fresh app context and commit."""
    with app.app_context():
        edit()
        db.session.commit()


def flow(slug: str) -> Flow:
    found = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
    assert found is not None
    return found


def by_name(model: type[Any], name: str) -> Any:
    return db.session.scalar(sa.select(model).where(model.name == name))


@pytest.fixture
def two_flows(app: Flask) -> None:
    """``one`` and ``two`` share the stage ``shared``; ``one`` also has ``own``.
    The policy ``direct`` is bound to flow ``one``, ``nested`` to ``two``'s binding,
    ``unused`` to nothing; flow ``three`` has a stage of its own."""
    with app.app_context():
        shared = Stage(name="shared", type="dummy")
        one = Flow(slug="one", name="one", designation="authentication")
        two = Flow(slug="two", name="two", designation="authentication")
        three = Flow(slug="three", name="three", designation="authentication")
        one.bindings.append(FlowStageBinding(stage=shared, order=10))
        one.bindings.append(FlowStageBinding(stage=Stage(name="own", type="dummy"), order=20))
        two.bindings.append(FlowStageBinding(stage=shared, order=10))
        three.bindings.append(FlowStageBinding(stage=Stage(name="third", type="dummy"), order=10))
        one.policy_bindings.append(
            PolicyBinding(policy=Policy(name="direct", type="authenticated"))
        )
        two.bindings[0].policy_bindings.append(
            PolicyBinding(policy=Policy(name="nested", type="authenticated"))
        )
        db.session.add_all([one, two, three, Policy(name="unused", type="authenticated")])
        db.session.commit()


# -- constraints ---------------------------------------------------------------------------


def _insert_policy_binding(app: Flask, **columns: Any) -> None:
    with app.app_context():
        db.session.add(PolicyBinding(**columns))
        db.session.commit()


@pytest.mark.parametrize(
    "columns",
    [
        {"flow": "one"},
        {"flow": "one", "policy": "unused", "user_id": "1"},
        {"flow": "one", "group": True, "user_id": "1"},
        {"policy": "unused"},
        {"flow": "one", "binding": True, "policy": "unused"},
    ],
    ids=["no-subject", "policy-and-user", "group-and-user", "no-target", "two-targets"],
)
def test_policy_binding_needs_one_subject_and_one_target(
    app: Flask, two_flows: None, columns: dict[str, Any]
) -> None:
    with app.app_context():
        group = Group(name="staff")
        db.session.add(group)
        db.session.commit()
        values: dict[str, Any] = {"user_id": columns.get("user_id")}
        if "flow" in columns:
            values["flow_id"] = flow(columns["flow"]).id
        if columns.get("binding"):
            values["binding_id"] = flow("one").bindings[0].id
        if "policy" in columns:
            values["policy_id"] = by_name(Policy, columns["policy"]).id
        if columns.get("group"):
            values["group_id"] = group.id
    with pytest.raises(IntegrityError, match="(?i)flows_policy_binding_one|check"):
        _insert_policy_binding(app, **values)


@pytest.mark.parametrize("subject", ["policy", "group", "user"], ids=["policy", "group", "user"])
@pytest.mark.parametrize("target", ["flow", "binding"])
def test_policy_binding_with_one_subject_and_one_target_is_accepted(
    app: Flask, two_flows: None, subject: str, target: str
) -> None:
    with app.app_context():
        values: dict[str, Any] = {}
        if target == "flow":
            values["flow_id"] = flow("three").id
        else:
            values["binding_id"] = flow("three").bindings[0].id
        if subject == "policy":
            values["policy_id"] = by_name(Policy, "unused").id
        elif subject == "group":
            group = Group(name="staff")
            db.session.add(group)
            db.session.flush()
            values["group_id"] = group.id
        else:
            values["user_id"] = "42"
        db.session.add(PolicyBinding(**values))
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PolicyBinding)) == 3


def test_binding_order_is_unique_per_flow(app: Flask, two_flows: None) -> None:
    with app.app_context():
        # the same order in another flow is fine
        three, own = flow("three"), by_name(Stage, "own")
        three.bindings.append(FlowStageBinding(stage=own, order=20))
        db.session.commit()
    with app.app_context(), pytest.raises(IntegrityError):
        one, third = flow("one"), by_name(Stage, "third")
        one.bindings.append(FlowStageBinding(stage=third, order=20))
        db.session.commit()


def test_enum_columns_reject_unknown_values_in_python(app: Flask) -> None:
    with app.app_context(), pytest.raises(StatementError, match="bogus"):
        db.session.add(Flow(slug="x", name="x", designation="bogus"))
        db.session.commit()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("designation", "bogus"),
        ("authentication", "require_nothing"),
        ("denied_action", "explode"),
        ("policy_engine_mode", "most"),
    ],
)
def test_enum_columns_reject_unknown_values_in_the_database(
    app: Flask, column: str, value: str
) -> None:
    row = {
        "slug": "x",
        "name": "x",
        "title": "",
        "designation": "authentication",
        "authentication": "none",
        "denied_action": "message",
        "policy_engine_mode": "any",
        "layout": "stacked",
        "revision": 1,
        column: value,
    }
    # Raw SQL: the Enum type would refuse the value in Python before the database sees it.
    statement = sa.text(
        "INSERT INTO flows_flow (slug, name, title, designation, authentication, denied_action,"
        " policy_engine_mode, layout, revision) VALUES (:slug, :name, :title, :designation,"
        " :authentication, :denied_action, :policy_engine_mode, :layout, :revision)"
    )
    with app.app_context(), pytest.raises(IntegrityError):
        db.session.execute(statement, row)
        db.session.commit()


def test_enum_values_round_trip(app: Flask) -> None:
    with app.app_context():
        db.session.add(
            Flow(
                slug="x",
                name="x",
                designation="stage_configuration",
                authentication="require_superuser",
                denied_action="continue",
                policy_engine_mode="all",
            )
        )
        db.session.commit()
    with app.app_context():
        row = db.session.execute(
            sa.text(
                "SELECT designation, authentication, denied_action, policy_engine_mode"
                " FROM flows_flow"
            )
        ).one()
        assert tuple(row) == ("stage_configuration", "require_superuser", "continue", "all")
        assert flow("x").denied_action.value == "continue"


# -- revision bumps ----------------------------------------------------------------------------


def test_creating_flows_does_not_bump(app: Flask, two_flows: None) -> None:
    assert revisions(app) == {"one": 1, "two": 1, "three": 1}


def test_saving_without_changes_does_not_bump(app: Flask, two_flows: None) -> None:
    change(app, lambda: setattr(flow("one"), "title", flow("one").title))
    assert revisions(app) == {"one": 1, "two": 1, "three": 1}


def test_editing_a_flow_bumps_it_once_per_commit(app: Flask, two_flows: None) -> None:
    def edit() -> None:
        one = flow("one")
        one.title = "New"
        one.layout = "sidebar_left"

    change(app, edit)
    assert revisions(app) == {"one": 2, "two": 1, "three": 1}
    change(app, lambda: setattr(flow("one"), "title", "Newer"))
    assert revisions(app)["one"] == 3


def test_editing_a_stage_bound_to_two_flows_bumps_both(app: Flask, two_flows: None) -> None:
    change(app, lambda: setattr(by_name(Stage, "shared"), "config", {"message": "Hi."}))
    assert revisions(app) == {"one": 2, "two": 2, "three": 1}
    change(app, lambda: setattr(by_name(Stage, "own"), "name", "renamed"))
    assert revisions(app) == {"one": 3, "two": 2, "three": 1}


def test_editing_a_policy_bumps_flows_that_bind_it(app: Flask, two_flows: None) -> None:
    change(app, lambda: setattr(by_name(Policy, "direct"), "config", {"message": "Log in."}))
    assert revisions(app) == {"one": 2, "two": 1, "three": 1}
    change(app, lambda: setattr(by_name(Policy, "nested"), "config", {"message": "Log in."}))
    assert revisions(app) == {"one": 2, "two": 2, "three": 1}
    change(app, lambda: setattr(by_name(Policy, "unused"), "config", {"message": "Log in."}))
    assert revisions(app) == {"one": 2, "two": 2, "three": 1}


def test_deleting_a_policy_bumps_flows_that_bind_it(app: Flask, two_flows: None) -> None:
    def delete() -> None:
        for binding in db.session.scalars(sa.select(PolicyBinding)):
            if binding.policy is not None and binding.policy.name == "nested":
                db.session.delete(binding)
        db.session.delete(by_name(Policy, "nested"))

    change(app, delete)
    assert revisions(app) == {"one": 1, "two": 2, "three": 1}


def test_editing_a_binding_bumps_its_flow(app: Flask, two_flows: None) -> None:
    change(app, lambda: setattr(flow("two").bindings[0], "evaluate_on_plan", True))
    assert revisions(app) == {"one": 1, "two": 2, "three": 1}


def test_adding_and_deleting_bindings_bumps_the_flow(app: Flask, two_flows: None) -> None:
    def add() -> None:
        three, shared = flow("three"), by_name(Stage, "shared")
        three.bindings.append(FlowStageBinding(stage=shared, order=20))

    change(app, add)
    assert revisions(app)["three"] == 2
    change(app, lambda: db.session.delete(flow("three").bindings[0]))
    assert revisions(app) == {"one": 1, "two": 1, "three": 3}


def test_adding_a_binding_by_foreign_key_bumps_the_flow(app: Flask, two_flows: None) -> None:
    def add() -> None:
        db.session.add(
            FlowStageBinding(flow_id=flow("three").id, stage_id=by_name(Stage, "own").id, order=20)
        )

    change(app, add)
    assert revisions(app) == {"one": 1, "two": 1, "three": 2}


def test_adding_policy_bindings_by_foreign_key_bumps_the_flow(app: Flask, two_flows: None) -> None:
    change(app, lambda: db.session.add(PolicyBinding(flow_id=flow("three").id, user_id="1")))
    assert revisions(app) == {"one": 1, "two": 1, "three": 2}
    change(
        app,
        lambda: db.session.add(PolicyBinding(binding_id=flow("two").bindings[0].id, user_id="1")),
    )
    assert revisions(app) == {"one": 1, "two": 2, "three": 2}


def test_editing_and_deleting_policy_bindings_bumps_the_flow(app: Flask, two_flows: None) -> None:
    change(app, lambda: setattr(flow("one").policy_bindings[0], "negate", True))
    assert revisions(app)["one"] == 2
    change(app, lambda: setattr(flow("two").bindings[0].policy_bindings[0], "enabled", False))
    assert revisions(app)["two"] == 2
    change(app, lambda: db.session.delete(flow("two").bindings[0].policy_bindings[0]))
    assert revisions(app) == {"one": 2, "two": 3, "three": 1}


def test_deleting_a_flow_leaves_others_alone(app: Flask, two_flows: None) -> None:
    change(app, lambda: db.session.delete(flow("two")))
    assert revisions(app) == {"one": 1, "three": 1}


def test_deleting_a_bound_stage_is_refused_on_every_database(app, make_flow) -> None:
    """Foreign keys hold on SQLite too (the extension turns them on), so the RESTRICT on
    a binding's stage protects flows there as on PostgreSQL."""
    import sqlalchemy as sa
    from factory import db
    from sqlalchemy.exc import IntegrityError

    from flask_flows import FlowStageBinding, Stage

    make_flow("guarded", "dummy")
    with app.app_context():
        with pytest.raises(IntegrityError):
            db.session.execute(sa.delete(Stage))
            db.session.flush()
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(FlowStageBinding)) == 1
