"""Where authentik users expect authentik's behaviour: each test states what authentik
does in the same situation (its own flow, stage and policy tests), and flask-flows does
the same. Differences kept on purpose are listed in docs/concepts.md ("Coming from
authentik")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from browsing import FlowBrowser, plan_context
from factory import User, db
from flask import Flask
from test_authenticator_validate import add_recovery_codes, add_totp

from flask_flows import Flow, Flows, FlowStageBinding, Policy, PolicyBinding, PolicyResult, Stage
from flask_flows.blueprints import BlueprintError, apply_blueprint
from flask_flows.extension import FlowsState
from flask_flows.grants import create_invitation
from flask_flows.plan import PROMPT_DATA
from flask_flows.planner import MSG_LOG_IN
from flask_flows.remembered_mfa import MFA_COOKIE
from flask_flows.signals import login_failed
from flask_flows.stages.authenticator_validate import CHOOSE_SETUP
from flask_flows.stages.invitation import CODE_REFUSALS, INVITATION, MSG_INVALID, MSG_USED
from flask_flows.stages.password import NO_PENDING_USER
from flask_flows.stages.prompt_checks import MSG_MISMATCH
from flask_flows.stages.redirect import MSG_NO_TARGET
from flask_flows.stages.user_write import MSG_REQUIRED

PASSWORD = "correct horse battery"


def test_a_password_stage_with_no_pending_user_denies(
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    """authentik's password stage without a pending user denies the flow ("No pending
    user"): a mis-built flow, not a wrong password, so no form, no failed attempt."""
    make_user("alice", password=PASSWORD)
    make_flow("no-one", "password", "user_login")
    failures: list[object] = []
    app = browser.client.application
    with login_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        page = browser.start("no-one")
    assert NO_PENDING_USER in page.text
    assert "Request denied" in page.text
    assert browser.stage_type is None
    assert failures == []
    # Signed in, the same stage is re-authentication: it asks for the password.
    browser.log_in("alice", PASSWORD, slug="login")
    browser.start("no-one")
    assert browser.stage_type == "password"


def test_two_password_fields_in_a_prompt_must_match(
    browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik compares a prompt's two password fields ("Passwords don't match."), so
    a flow ported with `password` and `password_repeat` as two fields refuses a typo."""
    fields = [
        {"field_key": "password", "label": "Password", "type": "password", "order": 1},
        {"field_key": "password_repeat", "label": "Again", "type": "password", "order": 2},
    ]
    make_flow("pair", ("prompt", {"fields": fields}), "dummy", designation="enrollment")
    browser.start("pair")
    page = browser.step("pair", password=PASSWORD, password_repeat=PASSWORD + "!")
    assert browser.stage_type == "prompt"
    assert MSG_MISMATCH in page.text
    browser.step("pair", password=PASSWORD, password_repeat=PASSWORD)
    assert browser.stage_type == "dummy"


@pytest.mark.parametrize("username", ["", "   "])
def test_user_write_refuses_an_account_without_a_username(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow], username: str
) -> None:
    """authentik's user_write refuses an empty username; so does flask-flows, saying so
    (the model's username is NOT NULL: an empty string would have been written)."""
    fields = [
        {"field_key": "username", "label": "Name", "type": "text", "required": False},
        {"field_key": "email", "label": "Email", "type": "email"},
    ]
    make_flow(
        "join", ("prompt", {"fields": fields}), "user_write", "dummy", designation="enrollment"
    )
    browser.start("join")
    page = browser.step("join", username=username, email="nameless@example.com")
    assert MSG_REQUIRED["username"] in page.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_user_write_keeps_a_username_it_is_not_given(
    app: Flask,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
    login_flow: Flow,
) -> None:
    """Updating an account without a username in the prompt leaves the name alone."""
    make_user("alice", password=PASSWORD)
    fields = [{"field_key": "email", "label": "Email", "type": "email"}]
    make_flow(
        "profile",
        ("prompt", {"fields": fields}),
        "user_write",
        "dummy",
        designation="stage_configuration",
    )
    browser.log_in("alice", PASSWORD, slug="login")
    browser.start("profile")
    browser.step("profile", email="new@example.com")
    assert browser.stage_type == "dummy"
    with app.app_context():
        assert db.session.scalar(sa.select(User.username)) == "alice"


def test_a_redirect_into_a_flow_the_visitor_may_not_run_denies(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik's redirect stage plans the target flow first and denies when it does not
    apply; it never sends the visitor to a page that turns them away."""
    with app.app_context():
        members = Policy(
            name="members",
            type="group_membership",
            config={"group": "club", "message": "Members only."},
        )
        flow = Flow(slug="club", name="club", designation="stage_configuration")
        flow.policy_bindings.append(PolicyBinding(policy=members, order=0))
        flow.bindings.append(
            FlowStageBinding(stage=Stage(name="club-dummy", type="dummy"), order=10)
        )
        db.session.add(flow)
        db.session.commit()
    make_flow("private", "dummy", authentication="require_authenticated")
    make_flow("to-club", ("redirect", {"target_flow": "club"}))
    make_flow("to-private", ("redirect", {"target_flow": "private"}))
    make_flow("to-nowhere", ("redirect", {"target_flow": "no-such-flow"}))

    for slug, reason in [
        ("to-club", "Members only."),
        ("to-private", MSG_LOG_IN),
        ("to-nowhere", MSG_NO_TARGET),
    ]:
        page = browser.start(slug)
        assert browser.redirect_target is None, slug
        assert "Request denied" in page.text and reason in page.text, slug


def test_an_identification_stage_that_can_find_nobody_is_refused_at_apply(
    app: Flask, state: FlowsState
) -> None:
    """authentik refuses an identification stage with no user fields (and no other way
    in); so does `flask flows apply`, naming the stage and the field."""
    blueprint = """
version: 1
stages:
  - name: nobody
    type: identification
    config: {user_fields: []}
"""
    with app.app_context(), pytest.raises(BlueprintError, match="'nobody'.*user_fields"):
        apply_blueprint(state, blueprint)


def test_prompt_fields_take_the_values_the_plan_already_holds(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik's prompt shows the value the prompt data holds for a field's key (an
    invitation's fixed_data fills the enrollment form; a hidden field takes it) without
    an `initial_value`; a read-only or hidden field keeps it whatever is posted, and an
    optional field left empty does not wipe what the invitation fixed."""
    fields = [
        {"field_key": "email", "type": "email"},
        {"field_key": "team", "type": "hidden", "initial_value": "general"},
        {"field_key": "company", "type": "text_read_only"},
        {"field_key": "nickname", "type": "text", "required": False},
        {"field_key": "motto", "type": "text", "required": False, "initial_value": "hi"},
        {"field_key": "note", "type": "static", "initial_value": "Welcome."},
    ]
    make_flow(
        "invited",
        "invitation",
        ("prompt", {"fields": fields}),
        "dummy",
        designation="enrollment",
    )
    fixed = {
        "email": "erin@example.com",
        "team": "sales",
        "company": "Acme",
        "nickname": "E",
        "note": "Invited by Bob.",
    }
    with app.app_context():
        _invitation, token = create_invitation(db.session, flow_slug="invited", fixed_data=fixed)
        db.session.commit()

    browser.get(f"/flows/invited/?itoken={token}")
    page = browser.step("invited")  # the invitation's "Continue"
    assert browser.stage_type == "prompt"
    for value in ("erin@example.com", "sales", "Acme", "E", "hi"):
        assert f'value="{value}"' in page.text, value
    assert "Invited by Bob." in page.text and "Welcome." not in page.text

    browser.step(
        "invited",
        email="erin@example.org",
        team="admins",
        company="Evil Corp",
        nickname="",
        motto="",
    )
    assert browser.stage_type == "dummy"
    assert plan_context(browser.client, "invited")[PROMPT_DATA] == {
        **fixed,
        "email": "erin@example.org",  # an editable field takes the answer
        "motto": "",  # not the invitation's: an empty answer stands
    }


def test_a_remembered_check_skips_only_its_own_stage_and_kinds(
    app: Flask,
    state: FlowsState,
    browser: FlowBrowser,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
) -> None:
    """authentik's MFA cookie is bound to the validation stage that set it and to the
    class of device that passed: a recovery code at a lenient stage does not skip a
    stricter stage, nor the same stage once it stops accepting recovery codes."""
    alice = make_user("alice", password=PASSWORD)
    add_totp(app, alice)
    codes = add_recovery_codes(app, state, alice)
    remembered = {"last_auth_threshold": 3600}
    lenient = {"device_classes": ["totp", "static"], **remembered}
    for slug, config in [
        ("login", lenient),
        ("strict", {"device_classes": ["totp"], **remembered}),
    ]:
        make_flow(
            slug, "identification", "password", ("authenticator_validate", config), "user_login"
        )

    def second_factor(slug: str, cookie: str) -> str | None:
        """A new browser session carrying only the MFA cookie: where the login goes."""
        later = browser.fresh()
        later.client.set_cookie(MFA_COOKIE, cookie)
        later.start(slug)
        later.step(slug, uid_field="alice")
        later.step(slug, password=PASSWORD)
        return later.stage_type

    browser.start("login")
    browser.step("login", uid_field="alice")
    browser.step("login", password=PASSWORD)
    browser.step("login", code=codes[0])
    assert browser.whoami() == "home: alice"
    cookie = browser.client.get_cookie(MFA_COOKIE)
    assert cookie is not None

    assert second_factor("login", cookie.value) is None  # skipped: logged in
    assert second_factor("strict", cookie.value) == "authenticator_validate"
    with app.app_context():
        stage = db.session.scalar(
            sa.select(Stage).where(Stage.name.like("login-%-authenticator_validate"))
        )
        assert stage is not None
        stage.config = {**stage.config, "device_classes": ["totp"]}
        db.session.commit()
    assert second_factor("login", cookie.value) == "authenticator_validate"


def test_a_user_without_mfa_chooses_one_of_several_setups(
    browser: FlowBrowser,
    defaults: None,
    make_flow: Callable[..., Flow],
    make_user: Callable[..., User],
) -> None:
    """authentik's validation stage with several configuration stages lets a user who has
    nothing set up choose one (by the kind it sets up), and runs that one only."""
    make_user("alice", password=PASSWORD)
    config = {
        "not_configured_action": "configure",
        "configuration_stages": [
            "default-authenticator-totp-setup-stage",
            "default-authenticator-static-setup-stage",
        ],
    }
    make_flow("mfa", "identification", "password", ("authenticator_validate", config), "user_login")
    browser.start("mfa")
    browser.step("mfa", uid_field="alice")
    page = browser.step("mfa", password=PASSWORD)
    assert browser.stage_type == "authenticator_validate"
    assert "Set up two-step verification" in page.text
    for name, label in [
        ("default-authenticator-totp-setup-stage", "Authenticator app"),
        ("default-authenticator-static-setup-stage", "Recovery codes"),
    ]:
        assert f'name="setup" value="{name}">{label}</button>' in page.text

    page = browser.step("mfa", setup="default-authenticator-login")  # not offered
    assert browser.stage_type == "authenticator_validate"
    assert CHOOSE_SETUP in page.text

    page = browser.step("mfa", setup="default-authenticator-static-setup-stage")
    assert browser.stage_type == "authenticator_static"
    # The codes are this account's second factor, not a stand-in for one.
    assert "you will be asked for one of these codes" in page.text
    assert "If you lose your authenticator" not in page.text
    browser.step("mfa", saved="y")
    assert browser.whoami() == "home: alice"  # the app's setup was not run too


#: Definitions authentik refuses when they are saved, because they can never work, and
#: the field flask-flows names when `flask flows apply` refuses them.
NEVER_WORKING = [
    ("identification", {"password_stage": "no-such-stage"}, "password_stage"),
    ("identification", {"password_stage": "a-dummy"}, "password_stage"),
    ("identification", {"webauthn_stage": "a-dummy"}, "webauthn_stage"),
    ("identification", {"webauthn_stage": "codes-only"}, "webauthn_stage"),
    ("identification", {"enrollment_flow": "no-such-flow"}, "enrollment_flow"),
    ("identification", {"recovery_flow": "no-such-flow"}, "recovery_flow"),
    (
        "authenticator_validate",
        {"not_configured_action": "configure", "configuration_stages": ["no-such-stage"]},
        "configuration_stages",
    ),
    ("redirect", {"target_flow": "no-such-flow"}, "target_flow"),
    (
        "prompt",
        {"fields": [{"field_key": "a", "type": "text"}], "validation_policies": ["x"]},
        "validation_policies",
    ),
]


def _blueprint(stages: list[dict[str, Any]], policies: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"version": 1, "stages": stages, "policies": policies or []})


@pytest.mark.parametrize(("stage_type", "config", "field"), NEVER_WORKING)
def test_a_stage_naming_what_is_not_there_is_refused_at_apply(
    app: Flask, state: FlowsState, stage_type: str, config: dict[str, object], field: str
) -> None:
    """A stage whose options name a stage, flow or policy that does not exist (or one of
    the wrong kind) is refused when applied, naming the stage and the field, and
    nothing of the blueprint is written."""
    known = [
        {"name": "a-dummy", "type": "dummy"},
        {"name": "codes-only", "type": "authenticator_validate"},
    ]
    with app.app_context():
        apply_blueprint(state, _blueprint(known))
        broken = {"name": "broken", "type": stage_type, "config": config}
        with pytest.raises(BlueprintError, match=rf"'broken'.*field '{field}'"):
            apply_blueprint(state, _blueprint([{"name": "written-too", "type": "dummy"}, broken]))
        names = set(db.session.scalars(sa.select(Stage.name)))
    assert names == {"a-dummy", "codes-only"}


def test_a_blueprint_may_name_what_it_defines_itself(app: Flask, state: FlowsState) -> None:
    """The names are looked up in the blueprint being applied as well as the database."""
    blueprint = """
version: 1
policies:
  - {name: strong, type: password}
stages:
  - {name: own-password, type: password}
  - name: own-identification
    type: identification
    config: {password_stage: own-password, recovery_flow: own-flow}
  - name: own-prompt
    type: prompt
    config:
      fields: [{field_key: password, type: password}]
      validation_policies: [strong]
flows:
  - slug: own-flow
    name: Own flow
    designation: authentication
    bindings:
      - {stage: own-identification, order: 10}
"""
    with app.app_context():
        report = apply_blueprint(state, blueprint)
    assert "3 created" in str(report)


@pytest.mark.parametrize(
    ("policy_type", "config", "reason"),
    [
        ("python", {"function": "not-registered"}, "no function is registered"),
        (
            "password",
            {"max_length": 64, "min_uppercase": 30, "min_digits": 30, "min_symbols": 30},
            "no password could pass",
        ),
    ],
)
def test_a_policy_that_can_never_pass_is_refused_at_apply(
    app: Flask, state: FlowsState, policy_type: str, config: dict[str, object], reason: str
) -> None:
    """authentik refuses a policy that can never decide as configured: a Python policy
    naming no registered function, a password policy asking for more characters of
    each kind than a password may have."""
    policy = {"name": "never", "type": policy_type, "config": config}
    with app.app_context(), pytest.raises(BlueprintError, match=rf"'never'.*{reason}"):
        apply_blueprint(state, _blueprint([], [policy]))


def test_check_names_a_stage_whose_reference_was_deleted(app: Flask, state: FlowsState) -> None:
    """A stage applied when its password stage existed, which was deleted since:
    `flask flows check` names it (a deploy's check catches what apply could not)."""
    stages = [
        {"name": "pw", "type": "password"},
        {"name": "id", "type": "identification", "config": {"password_stage": "pw"}},
    ]
    with app.app_context():
        apply_blueprint(state, _blueprint(stages))
        db.session.execute(sa.delete(Stage).where(Stage.name == "pw"))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["flows", "check"])
    assert result.exit_code == 1
    assert (
        "stage 'id' (identification), field 'password_stage': there is no password stage"
        in result.output
    )


def _bind(
    app: Flask, slug: str, policy: str, *, stage_order: int | None = None, **fields: Any
) -> None:
    """Bind python policy ``policy`` to the flow ``slug`` (or to its stage at ``stage_order``)."""
    with app.app_context():
        flow = db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
        assert flow is not None
        target = (
            flow
            if stage_order is None
            else next(b for b in flow.bindings if b.order == stage_order)
        )
        found = db.session.scalar(sa.select(Policy).where(Policy.name == policy))
        row = found or Policy(name=policy, type="python", config={"function": policy})
        target.policy_bindings.append(
            PolicyBinding(policy=row, order=len(target.policy_bindings), **fields)
        )
        db.session.commit()


def test_what_passing_policies_say_is_shown_on_the_next_page(
    app: Flask, flows: Flows, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik keeps the messages of passing policies (its notices): a flow policy's
    show on the first page, a stage binding's above that stage, each once; a negated
    binding's messages are its policy's reasons to fail and are not shown."""
    flows.policy("trial")(lambda request: PolicyResult(True, ("Your trial ends in 3 days.",)))
    flows.policy("nearly")(lambda request: PolicyResult(True, ("Almost there.",)))
    flows.policy("members")(lambda request: PolicyResult(False, ("Members only.",)))
    make_flow("notices", ("dummy", {"message": "First."}), ("dummy", {"message": "Second."}))
    _bind(app, "notices", "trial")
    _bind(app, "notices", "nearly", stage_order=20)
    _bind(app, "notices", "members", stage_order=20, negate=True)

    page = browser.start("notices")
    assert "First." in page.text and "Your trial ends in 3 days." in page.text
    assert "Almost there." not in page.text
    page = browser.step("notices")
    assert "Second." in page.text and "Almost there." in page.text
    assert "Your trial ends in 3 days." not in page.text and "Members only." not in page.text
    assert "Your trial ends in 3 days." not in browser.get("/flows/notices/").text


def test_a_notice_no_page_showed_comes_with_the_outcome(
    make_app: Callable[..., tuple[Flask, Flows]], make_user: Callable[..., User]
) -> None:
    """A notice of the last stage, which shows no page (the login), is flashed with the
    flow's outcome."""
    app, flows = make_app(FLOWS_FLASH=True)
    flows.policy("welcome")(lambda request: PolicyResult(True, ("Welcome back!",)))
    with app.app_context():
        user = User(username="alice", email="alice@example.com")
        app.extensions["flows"].user_store.set_password(user, PASSWORD)
        db.session.add(user)
        flow = Flow(slug="login", name="login", designation="authentication")
        for order, stage_type in ((10, "identification"), (20, "password"), (30, "user_login")):
            stage = Stage(name=f"login-{stage_type}", type=stage_type)
            flow.bindings.append(FlowStageBinding(stage=stage, order=order))
        db.session.add(flow)
        db.session.commit()
    _bind(app, "login", "welcome", stage_order=30)
    browser = FlowBrowser(app.test_client())
    browser.log_in("alice", PASSWORD, slug="login")
    with browser.client.session_transaction() as session:
        assert session["_flashes"] == [("message", "You are signed in. Welcome back!")]


def test_an_invitation_code_typed_into_a_prompt_is_accepted(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """authentik's invitation stage reads a token typed into a prompt (`prompt_data`'s
    `token`), for codes given out on paper. A wrong one is asked for again, saying why;
    the right one is accepted, its fixed data fills the next prompt, and no token stays
    in the plan."""
    code_prompt = [{"field_key": "token", "type": "text", "label": "Invitation code"}]
    details = [{"field_key": "email", "type": "email"}]
    make_flow(
        "paper",
        ("prompt", {"fields": code_prompt}),
        "invitation",
        ("prompt", {"fields": details}),
        "dummy",
        designation="enrollment",
    )
    with app.app_context():
        _used, spent = create_invitation(db.session, flow_slug="paper")
        _used.used_at = _used.created
        _invitation, token = create_invitation(
            db.session, flow_slug="paper", fixed_data={"email": "paper@example.com"}
        )
        db.session.commit()

    browser.start("paper")
    page = browser.step("paper", token=token[:-2])
    assert browser.stage_type == "invitation"
    assert CODE_REFUSALS[MSG_INVALID] in page.text
    assert "Your invitation code" in page.text and "You are invited" not in page.text
    assert "Request denied" not in page.text
    page = browser.step("paper", token=spent)
    assert CODE_REFUSALS[MSG_USED] in page.text
    page = browser.step("paper", token=f"  {token} ")
    assert browser.stage_type == "prompt"
    assert 'value="paper@example.com"' in page.text
    context = plan_context(browser.client, "paper")
    assert token not in repr(context)
    assert context[INVITATION] is not None


def test_a_valid_invitation_code_needs_no_second_click(
    app: Flask, browser: FlowBrowser, make_flow: Callable[..., Flow]
) -> None:
    """The prompt's submit was the person's own action: a valid code is accepted at
    once, with no "Continue" page in between."""
    code_prompt = [{"field_key": "token", "type": "text"}]
    make_flow(
        "paper",
        ("prompt", {"fields": code_prompt}),
        "invitation",
        "dummy",
        designation="enrollment",
    )
    with app.app_context():
        _invitation, token = create_invitation(db.session, flow_slug="paper")
        db.session.commit()
    browser.start("paper")
    browser.step("paper", token=token)
    assert browser.stage_type == "dummy"
