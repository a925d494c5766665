"""The plan cache: what is cached, for whom, and what makes an entry stale.

Policy evaluations are counted with a spy policy type that is not request-dependent,
so plans of flows bound to it are cacheable; a cache hit evaluates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser
from factory import bind_policy, db, plan_flow
from flask import Flask, request

from flask_flows import (
    Flow,
    FlowPlanner,
    Flows,
    FlowStageBinding,
    Policy,
    PolicyBinding,
    PolicyResult,
    PolicyType,
    Stage,
)
from flask_flows.options import Option
from flask_flows.planner import PlanCache


class SpyPolicy(PolicyType):
    """Passes or fails as configured and records every evaluation."""

    name = "spy"
    options = {"passing": Option(bool, default=True)}
    calls: ClassVar[list[str]] = []

    def evaluate(self, config: Any, policy_request: Any) -> PolicyResult:
        SpyPolicy.calls.append("spy")
        return PolicyResult(config["passing"], () if config["passing"] else ("Spied.",))


@pytest.fixture
def spy(flows: Flows) -> Iterator[list[str]]:
    flows.register_policy_type(SpyPolicy)
    SpyPolicy.calls.clear()
    yield SpyPolicy.calls
    SpyPolicy.calls.clear()


def flow_revision(app: Flask, slug: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Flow.revision).where(Flow.slug == slug))  # type: ignore[return-value]


def edit(app: Flask, change: Callable[[Flow], None], slug: str = "cached") -> None:
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
        change(flow)
        db.session.commit()


@pytest.fixture
def cached_flow(app: Flask, make_flow: Callable[..., Flow], spy: list[str]) -> Flow:
    """Two dummy stages; the flow and its first binding (evaluated on plan only) bound to spies."""
    flow = make_flow("cached", "dummy", "dummy")
    bind_policy(app, "cached", "spy")
    bind_policy(app, "cached", "spy", order=10, evaluate_on_plan=True, re_evaluate_policies=False)
    return flow


# -- what is cached ---------------------------------------------------------------------------


def test_second_plan_for_same_user_evaluates_no_policies(
    app, state, cached_flow, spy, make_user
) -> None:
    alice = make_user("alice")
    first = plan_flow(app, state, "cached", alice)
    assert len(spy) == 2
    second = plan_flow(app, state, "cached", alice)
    assert len(spy) == 2
    assert second.bindings == first.bindings == [b.id for b in cached_flow.bindings]
    assert len(state.plan_cache) == 1


class FlakyPolicy(PolicyType):
    """Raises on its first evaluation (a database hiccup), passes afterwards."""

    name = "flaky"
    calls: ClassVar[list[str]] = []

    def evaluate(self, config: Any, policy_request: Any) -> PolicyResult:
        FlakyPolicy.calls.append("flaky")
        if len(FlakyPolicy.calls) == 1:
            raise RuntimeError("database hiccup")
        return PolicyResult(True)


def test_a_plan_built_on_a_failed_policy_is_not_cached(
    app, state, flows, make_flow, make_user
) -> None:
    """A policy that raised (or overran its timeout) got its binding's failure_result;
    caching that plan would keep the stage wrongly out for FLOWS_PLAN_CACHE_TTL."""
    flows.register_policy_type(FlakyPolicy)
    FlakyPolicy.calls.clear()
    flow = make_flow("cached", "dummy", "dummy")
    bind_policy(app, "cached", "flaky", order=10, evaluate_on_plan=True, re_evaluate_policies=False)
    alice = make_user("alice")
    ids = [b.id for b in flow.bindings]
    assert plan_flow(app, state, "cached", alice).bindings == ids[1:]  # raised: left out
    assert len(state.plan_cache) == 0
    assert plan_flow(app, state, "cached", alice).bindings == ids  # asked again: passes
    assert plan_flow(app, state, "cached", alice).bindings == ids  # now from the cache
    assert FlakyPolicy.calls == ["flaky", "flaky"]


def test_cached_plan_keeps_filtered_bindings_and_markers(app, state, make_flow, spy) -> None:
    flow = make_flow("cached", "dummy", "dummy", "dummy")
    bind_policy(app, "cached", "spy", {"passing": False}, order=10, evaluate_on_plan=True)
    bind_policy(
        app, "cached", "spy", order=20
    )  # re-evaluated: a marker, not evaluated at plan time
    ids = [b.id for b in flow.bindings]
    first = plan_flow(app, state, "cached")
    second = plan_flow(app, state, "cached")
    assert len(spy) == 1
    assert second.bindings == first.bindings == ids[1:]
    assert second.markers == first.markers == [ids[1]]
    second.advance()  # plans from the cache are independent copies
    assert plan_flow(app, state, "cached").bindings == ids[1:]


def test_cache_is_per_user(app, state, cached_flow, spy, make_user) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    plan_flow(app, state, "cached", alice)
    plan_flow(app, state, "cached", bob)
    plan_flow(app, state, "cached")
    assert len(spy) == 6
    plan_flow(app, state, "cached", bob)
    plan_flow(app, state, "cached")
    assert len(spy) == 6
    assert len(state.plan_cache) == 3


def test_pending_user_and_logged_in_user_both_key_the_cache(
    app, state, cached_flow, spy, make_user
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    with app.test_request_context():
        flow = state.load_flow("cached")
        planner = FlowPlanner(state, flow)
        users = {u.username: state.user_store.get(u.id) for u in (alice, bob)}
        for pending, logged_in in [("alice", None), ("alice", "bob"), ("alice", None)]:
            planner.plan(
                user=users[pending],
                authenticated_user=users[logged_in] if logged_in else None,
                request=request._get_current_object(),  # type: ignore[attr-defined]
            )
    assert len(spy) == 4


def test_flow_refusals_are_not_cached(app, state, make_flow, spy) -> None:
    make_flow("cached", "dummy")
    bind_policy(app, "cached", "spy", {"passing": False})
    for _ in range(2):
        with pytest.raises(Exception, match="Spied."):
            plan_flow(app, state, "cached")
    assert len(spy) == 2
    assert len(state.plan_cache) == 0


def test_use_cache_false_bypasses_the_cache(app, state, cached_flow, spy) -> None:
    plan_flow(app, state, "cached")
    plan_flow(app, state, "cached", use_cache=False)
    assert len(spy) == 4


def test_request_dependent_flow_policy_is_never_cached(app, state, flows, make_flow) -> None:
    calls: list[int] = []
    flows.policy("counted")(lambda policy_request: calls.append(1) is None)
    make_flow("live", "dummy")
    bind_policy(app, "live", "python", {"function": "counted"})
    plan_flow(app, state, "live")
    plan_flow(app, state, "live")
    assert len(calls) == 2
    assert len(state.plan_cache) == 0


def test_request_dependent_evaluate_on_plan_policy_is_never_cached(
    app, state, flows, make_flow, spy
) -> None:
    calls: list[int] = []
    flows.policy("counted")(lambda policy_request: calls.append(1) is None)
    make_flow("live", "dummy", "dummy")
    bind_policy(app, "live", "spy")
    bind_policy(app, "live", "python", {"function": "counted"}, order=20, evaluate_on_plan=True)
    plan_flow(app, state, "live")
    plan_flow(app, state, "live")
    assert (len(calls), len(spy)) == (2, 2)


def test_request_dependent_policy_only_re_evaluated_at_run_time_does_not_stop_caching(
    app, state, flows, make_flow, spy
) -> None:
    flows.policy("yes")(lambda policy_request: True)
    make_flow("cached", "dummy", "dummy")
    bind_policy(app, "cached", "spy")
    bind_policy(app, "cached", "python", {"function": "yes"}, order=20)  # not evaluate_on_plan
    plan_flow(app, state, "cached")
    plan_flow(app, state, "cached")
    assert len(spy) == 1


def test_stage_configuration_flows_are_never_cached(app, state, make_flow, spy) -> None:
    make_flow("setup", "dummy", designation="stage_configuration")
    bind_policy(app, "setup", "spy")
    plan_flow(app, state, "setup")
    plan_flow(app, state, "setup")
    assert len(spy) == 2
    assert len(state.plan_cache) == 0


def test_cache_serves_http_plans(browser: FlowBrowser, cached_flow, spy) -> None:
    for _ in range(2):
        browser.start("cached")
        assert browser.stage_type == "dummy"
        browser.client.post("/flows/cached/cancel/", data={"csrf_token": browser.csrf_token()})
    assert len(spy) == 2


# -- staleness -------------------------------------------------------------------------------


def _edit_flow(flow: Flow) -> None:
    flow.title = "Renamed"


def _edit_binding(flow: Flow) -> None:
    flow.bindings[1].order = 99


def _edit_stage(flow: Flow) -> None:
    flow.bindings[1].stage.config = {"message": "Changed."}


def _edit_policy(flow: Flow) -> None:
    flow.policy_bindings[0].policy.config = {"passing": True}  # same outcome, new config


def _edit_binding_policy(flow: Flow) -> None:
    flow.bindings[0].policy_bindings[0].policy.config = {"passing": True}


def _edit_policy_binding(flow: Flow) -> None:
    flow.policy_bindings[0].timeout = 5


def _add_policy_binding(flow: Flow) -> None:
    flow.bindings[1].policy_bindings.append(
        PolicyBinding(policy=Policy(name="added", type="spy", config={}))
    )


def _delete_binding(flow: Flow) -> None:
    db.session.delete(flow.bindings[1])


@pytest.mark.parametrize(
    "change",
    [
        _edit_flow,
        _edit_binding,
        _edit_stage,
        _edit_policy,
        _edit_binding_policy,
        _edit_policy_binding,
        _add_policy_binding,
        _delete_binding,
    ],
)
def test_definition_changes_rebuild_the_plan(
    app, state, cached_flow, spy, change: Callable[[Flow], None]
) -> None:
    plan_flow(app, state, "cached")
    old_revision = flow_revision(app, "cached")
    edit(app, change)
    new_revision = flow_revision(app, "cached")
    assert new_revision > old_revision
    calls = len(spy)
    plan = plan_flow(app, state, "cached")
    assert len(spy) > calls
    assert plan.revision == new_revision
    flow_id = cached_flow.id
    assert state.plan_cache.get((flow_id, old_revision, "|")) is None
    assert state.plan_cache.get((flow_id, new_revision, "|")) is not None
    assert len(state.plan_cache) == 1


def test_stale_entries_of_other_flows_survive(app, state, make_flow, spy) -> None:
    make_flow("cached", "dummy")
    make_flow("other", "dummy")
    bind_policy(app, "cached", "spy")
    bind_policy(app, "other", "spy")
    plan_flow(app, state, "cached")
    plan_flow(app, state, "other")
    edit(app, _edit_flow)
    plan_flow(app, state, "cached")
    assert len(state.plan_cache) == 2
    plan_flow(app, state, "other")
    assert len(spy) == 3


# -- lifetime ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("flask_flows.planner.time.monotonic", clock)
    return clock


def test_entries_expire_after_the_ttl(app, state, cached_flow, spy, clock) -> None:
    assert state.plan_cache.ttl == 300
    plan_flow(app, state, "cached")
    clock.now += 299
    plan_flow(app, state, "cached")
    assert len(spy) == 2
    clock.now += 2
    plan_flow(app, state, "cached")
    assert len(spy) == 4


@pytest.mark.parametrize("app_config", [{"FLOWS_PLAN_CACHE_TTL": 0}])
def test_ttl_zero_disables_the_cache(app, state, cached_flow, spy, clock) -> None:
    plan_flow(app, state, "cached")
    plan_flow(app, state, "cached")
    assert len(spy) == 4
    assert len(state.plan_cache) == 0


def test_plan_cache_ttl_zero_stores_nothing(clock) -> None:
    cache = PlanCache(ttl=0)
    cache.put((1, 1, "|"), [1], [])
    assert cache.get((1, 1, "|")) is None
    assert len(cache) == 0


def test_plan_cache_full_is_cleared_not_unbounded(clock) -> None:
    cache = PlanCache(ttl=60, max_entries=2)
    for flow_id in (1, 2, 3):
        cache.put((flow_id, 1, "|"), [flow_id], [])
    assert len(cache) <= 2
    assert cache.get((3, 1, "|")) is not None


def test_unknown_policy_type_does_not_break_planning(app, state, make_flow, caplog) -> None:
    """A policy of an unregistered type fails closed (failure_result) instead of a 500."""
    make_flow("odd", "dummy")
    bind_policy(app, "odd", "no-such-type")
    with pytest.raises(Exception, match="not allowed"):
        plan_flow(app, state, "odd")
    assert "no-such-type" in caplog.text


def test_stage_of_two_flows_drops_both_cached_plans(app, state, spy) -> None:
    with app.app_context():
        shared = Stage(name="shared", type="dummy", config={})
        for slug in ("one", "two"):
            flow = Flow(slug=slug, name=slug, designation="authentication")
            flow.bindings.append(FlowStageBinding(stage=shared, order=10))
            db.session.add(flow)
        db.session.commit()
    for slug in ("one", "two"):
        bind_policy(app, slug, "spy")
        plan_flow(app, state, slug)
    with app.app_context():
        stage = db.session.scalar(sa.select(Stage).where(Stage.name == "shared"))
        stage.config = {"message": "New."}
        db.session.commit()
    plan_flow(app, state, "one")
    plan_flow(app, state, "two")
    assert len(spy) == 4


def test_restart_plans_without_the_cache(browser: FlowBrowser, app, make_flow, spy) -> None:
    make_flow("retry", ("dummy", {"fail": True}))
    edit(app, lambda flow: setattr(flow.bindings[0], "invalid_response_action", "restart"), "retry")
    bind_policy(app, "retry", "spy")
    browser.start("retry")
    browser.submit("retry")  # rejected: the binding's action restarts the flow
    browser.settle()
    assert browser.stage_type == "dummy"
    assert len(spy) == 2
