"""Builds the app every test runs against: the app's own db and User, Flows, fast argon2."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any

import sqlalchemy as sa
import yaml
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy.orm import Mapped, mapped_column

from flask_flows import Flow, FlowPlan, FlowPlanner, Flows, FlowsUserMixin, Policy, PolicyBinding
from flask_flows.blueprints import DEFAULT_BLUEPRINTS
from flask_flows.extension import FlowsState
from flask_flows.reputation import Reputation

db = SQLAlchemy()


class User(db.Model, FlowsUserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)


FAST_ARGON2 = {
    "FLOWS_ARGON2_TIME_COST": 1,
    "FLOWS_ARGON2_MEMORY_COST": 8,
    "FLOWS_ARGON2_PARALLELISM": 1,
}


#: The ``make_app`` fixture: ``make_app(**config)`` builds a test app on the test database.
MakeApp = Callable[..., tuple[Flask, Flows]]


class SessionBytecodeCache(BytecodeCache):
    """Compiled templates kept in memory for the whole test session. Every test builds a
    new app, and with it a new Jinja environment that would compile each template again;
    compiling took about a third of the suite's time. Jinja checks each template's source
    checksum, so an edited template is compiled anew."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = SessionBytecodeCache()


def create_test_app(database_url: str, **config: Any) -> tuple[Flask, Flows]:
    app = Flask(__name__)
    app.jinja_options = {**app.jinja_options, "bytecode_cache": TEMPLATES}
    app.config.update(
        TESTING=True,
        SECRET_KEY="test-secret-key",
        SQLALCHEMY_DATABASE_URI=database_url,
        FLOWS_BRAND_NAME="Test App",
        **FAST_ARGON2,
    )
    app.config.update(config)
    db.init_app(app)
    flows = Flows(db=db, user_model=User)
    flows.init_app(app)

    @app.route("/")
    def home() -> str:
        from flask_login import current_user

        if current_user.is_authenticated:
            return f"home: {current_user.username}"
        return "home: anonymous"

    return app, flows


def close_connections(apps: list[Flask]) -> None:
    """Close the database connections of the apps a test built: each app has an engine
    of its own, and the PostgreSQL server takes a limited number of connections."""
    for app in apps:
        with app.app_context():
            database = app.extensions["sqlalchemy"]
            database.session.remove()
            database.engine.dispose()


def default_definitions() -> dict[str, int]:
    """How many of each kind the shipped default blueprints define."""
    documents = [yaml.safe_load(p.read_text()) for p in DEFAULT_BLUEPRINTS.glob("*.yaml")]
    return {
        kind: sum(len(d.get(kind, [])) for d in documents)
        for kind in ("groups", "policies", "stages", "flows")
    }


def plan_flow(
    app: Flask, state: FlowsState, slug: str, user: User | None = None, **kwargs: Any
) -> FlowPlan:
    """Plan ``slug`` directly, as the executor does, for ``user`` (logged in) or anonymous."""
    with app.test_request_context():
        flow = state.load_flow(slug)
        assert flow is not None
        subject = state.user_store.get(user.id) if user is not None else None
        return FlowPlanner(state, flow).plan(
            user=subject,
            authenticated_user=subject,
            request=request._get_current_object(),  # type: ignore[attr-defined]
            **kwargs,
        )


_policy_names = count()


def bind_policy(
    app: Flask,
    slug: str,
    policy_type: str,
    config: dict[str, Any] | None = None,
    *,
    order: int | None = None,
    **binding_fields: Any,
) -> None:
    """Bind a new policy to flow ``slug``, or to its stage binding at ``order`` (whose
    ``binding_fields``, such as ``evaluate_on_plan``, are set too), and commit."""
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
        name = f"{policy_type}-{next(_policy_names)}"
        policy_binding = PolicyBinding(
            policy=Policy(name=name, type=policy_type, config=config or {})
        )
        if order is None:
            policy_binding.flow = flow
        else:
            binding = next(b for b in flow.bindings if b.order == order)
            for field_name, value in binding_fields.items():
                setattr(binding, field_name, value)
            policy_binding.binding = binding
        db.session.add(policy_binding)
        db.session.commit()


def pass_time(app: Flask, seconds: float) -> None:
    """Let ``seconds`` go by for every reputation row (their times are Unix seconds), as
    if the guesses and logins they record had been made that much earlier."""
    with app.app_context():
        db.session.execute(
            sa.update(Reputation).values(
                not_before=Reputation.not_before - seconds,
                changed=Reputation.changed - seconds,
                familiar_until=Reputation.familiar_until - seconds,
            )
        )
        db.session.commit()
