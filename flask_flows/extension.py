"""The :class:`Flows` extension object and the per-app :class:`FlowsState`."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, has_app_context
from flask_login import LoginManager, current_user
from flask_login import config as flask_login_config
from flask_login import signals as flask_login_signals
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import generate_csrf
from sqlalchemy import event

from . import (
    csrf,
    devices,  # noqa: F401  (authenticator tables share the metadata)
    expressions,
    guesses,
    i18n,
    layouts,
    link_hosts,
    mail,
    mail_backends,
    migrations,
    outcomes,
    relying_party,
    remembered_mfa,
    reputation,
    revisions,  # noqa: F401  (registers the revision-bumping flush hook)
    sessions,
)
from .authenticators import BUILT_IN_KINDS, AuthenticatorKind
from .config import apply_defaults, generic_brand
from .definitions import FlowDefinitions
from .models import Flow, Policy, Stage
from .options import ConfigError, validate_options
from .password_formats import DEFAULT_FORMATS, PasswordFormat
from .passwords import PasswordHashing
from .planner import PlanCache
from .policies.base import PolicyType
from .registry import POLICY_TYPES, STAGE_TYPES
from .stages.base import StageType
from .transactions import release_connection
from .users import UserStore

PolicyFunction = TypeVar("PolicyFunction", bound=Callable[..., Any])
StageTypeClass = TypeVar("StageTypeClass", bound=type[StageType])
AuthenticatorKindClass = TypeVar("AuthenticatorKindClass", bound=type[AuthenticatorKind])

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``templates``/``static`` inside the installed package, or beside it in a checkout."""
    inside = _PACKAGE_DIR / name
    return inside if inside.is_dir() else _PACKAGE_DIR.parent / name


class Flows:
    """Adds authentik-style flows to a Flask app.

    ::

        db = SQLAlchemy(app)
        flows = Flows(app, db=db, user_model=User)

    or, with an app factory, ``flows = Flows()`` then ``flows.init_app(app, db=db,
    user_model=User)``. Per-app state lives in ``app.extensions["flows"]``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        user_model: type[Any] | None = None,
        user_store: Callable[..., UserStore] = UserStore,
    ) -> None:
        self.db = db
        self.user_model = user_model
        self.user_store_class = user_store
        self.python_policies: dict[str, Callable[..., Any]] = {}
        #: Password hash formats besides argon2 that verify (and are re-hashed on login);
        #: append your own (every app of this object sees the list as it is).
        self.password_formats: list[PasswordFormat] = list(DEFAULT_FORMATS)
        self.stage_types: dict[str, type[StageType]] = {t.name: t for t in STAGE_TYPES}
        self.policy_types: dict[str, type[PolicyType]] = {t.name: t for t in POLICY_TYPES}
        #: Second-factor kinds by key, in the order a person is asked for them.
        self.authenticator_kinds: dict[str, type[AuthenticatorKind]] = {
            k.key: k for k in BUILT_IN_KINDS
        }
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        db: SQLAlchemy | None = None,
        user_model: type[Any] | None = None,
        user_store: Callable[..., UserStore] | None = None,
    ) -> None:
        """Set flask-flows up on ``app``. Arguments left out fall back to those given to
        :class:`Flows` (and ``db`` to the app's Flask-SQLAlchemy), so a factory can make
        ``Flows()`` at module level and pass the model here, where importing it cannot
        be circular."""
        db = db or self.db or app.extensions.get("sqlalchemy")
        if db is None:
            raise ConfigError(
                "Flows needs Flask-SQLAlchemy: pass db= or call SQLAlchemy(app) first"
            )
        user_model = user_model or self.user_model
        if user_model is None:
            raise ConfigError("Flows needs the app's user model: pass user_model=")
        apply_defaults(app.config, app.name)
        mail.check_config(app.config)
        relying_party.check_config(app.config)
        expressions.check_config(app.config)
        state = FlowsState(self, app, db, user_model, user_store or self.user_store_class)
        app.extensions["flows"] = state
        self._setup_login(app, state)
        blueprint = _build_blueprint()
        if generic_brand(app.config, app.name):
            blueprint.before_request(_BrandCheck(app))
        app.register_blueprint(blueprint, url_prefix=app.config["FLOWS_URL_PREFIX"])
        if app.config["FLOWS_ENFORCE_SESSIONS"]:
            app.before_request(lambda: sessions.enforce(state))
        i18n.init_app(app)
        app.add_template_global(generate_csrf, "flows_csrf_token")
        app.add_template_global(csrf.field_name, "flows_csrf_field")
        # What pages call a user: username, else email, never the primary key.
        app.add_template_global(state.user_store.display_name, "flows_user_name")
        guesses.connect_signals(app)
        remembered_mfa.connect_signals(app)
        mail.connect(app)
        if app.config["FLOWS_SQLITE_FOREIGN_KEYS"]:
            # Now if db.init_app(app) came first, else at the first request or command
            # that uses the database: the order of the two init calls must not matter.
            state.enforce_sqlite_foreign_keys()
            app.before_request(state.enforce_sqlite_foreign_keys)
        # Both checks need the one query for a stage that mails links, if any needs it.
        mailing_stage = functools.cache(lambda: link_hosts.mailing_stage(app, state))
        link_hosts.check_at_start(app, state, mailing_stage)
        mail_backends.check_at_start(app, state, mailing_stage)
        relying_party.check_at_start(app, state)

        from .cli import flows_cli

        if "flows" not in app.cli.commands:
            app.cli.add_command(flows_cli)

    def policy(self, name: str) -> Callable[[PolicyFunction], PolicyFunction]:
        """Register a Python policy usable as ``{type: python, config: {function: name}}``."""

        def register(function: PolicyFunction) -> PolicyFunction:
            self.python_policies[name] = function
            return function

        return register

    def stage_type(self, cls: StageTypeClass) -> StageTypeClass:
        """Register a custom stage type class (decorator)."""
        self.stage_types[cls.name] = cls
        return cls

    def authenticator_kind(self, cls: AuthenticatorKindClass) -> AuthenticatorKindClass:
        """Register an authenticator kind class (decorator); see docs/stages.md."""
        self.authenticator_kinds[cls.key] = cls
        return cls

    def register_policy_type(self, cls: type[PolicyType]) -> type[PolicyType]:
        """Register a custom policy type class (decorator)."""
        self.policy_types[cls.name] = cls
        return cls

    @staticmethod
    def _setup_login(app: Flask, state: FlowsState) -> None:
        manager: LoginManager | None = getattr(app, "login_manager", None)
        if manager is None:
            manager = LoginManager(app)
        if manager._user_callback is None:  # the app did not register its own loader
            manager.user_loader(state.user_store.get)
        # A login the app makes with flask_login.login_user() gets its server-side
        # session too (otherwise session enforcement would undo it on the next request).
        flask_login_signals.user_logged_in.connect(sessions.record_app_login, app, weak=False)
        if app.config["FLOWS_SET_LOGIN_VIEW"] and not manager.login_view:
            manager.login_view = "flows.login"
        # Flask-Login's own default message ("Please log in to access this page.") is
        # flashed on the way to the login flow: where flow pages show no flashes it would
        # wait in the session and greet the user on the app's next page, after logging
        # in. Unless the app changed it. Decided at the first request, when the app's
        # templates (does its layout show flashes?) can be read.
        if manager.login_message == flask_login_config.LOGIN_MESSAGE:
            app.before_request(_LoginMessage(app, manager))


class FlowsState:
    """Everything flask-flows keeps for one app: registries, user store, caches."""

    def __init__(
        self,
        flows: Flows,
        app: Flask,
        db: SQLAlchemy,
        user_model: type[Any],
        user_store: Callable[..., UserStore] = UserStore,
    ) -> None:
        config = app.config
        self.flows = flows
        self.db = db
        self.config = config
        self.app = app
        self._foreign_keys_enforced = False
        #: Whether the missing-ProxyFix warning was logged (once per process).
        self.proxy_warned = False
        #: Why passkeys were not offered, as logged (once per reason).
        self.passkeys_warned: set[str] = set()
        self.log = logging.getLogger("flask_flows")
        self.hashing = PasswordHashing(
            time_cost=config["FLOWS_ARGON2_TIME_COST"],
            memory_cost=config["FLOWS_ARGON2_MEMORY_COST"],
            parallelism=config["FLOWS_ARGON2_PARALLELISM"],
            max_concurrent=config["FLOWS_ARGON2_MAX_CONCURRENT"],
            wait=config["FLOWS_ARGON2_WAIT"],
            before_slow_work=self._before_hashing,
            formats=flows.password_formats,
        )
        self.user_store: UserStore = user_store(db, user_model, self.hashing)
        self.reputation_rules = reputation.Rules(config)
        self.plan_cache = PlanCache(ttl=config["FLOWS_PLAN_CACHE_TTL"])
        self.definitions = FlowDefinitions(check_seconds=config["FLOWS_DEFINITION_CHECK_SECONDS"])
        self._stage_instances: dict[str, StageType] = {}
        self._kind_instances: dict[str, AuthenticatorKind] = {}
        self._configs: WeakKeyDictionary[Stage | Policy, tuple[Any, dict[str, Any]]] = (
            WeakKeyDictionary()
        )
        self._policy_instances: dict[str, PolicyType] = {}

    @property
    def python_policies(self) -> dict[str, Callable[..., Any]]:
        return self.flows.python_policies

    def _before_hashing(self) -> None:
        if has_app_context():  # a request's or the CLI's; none when used on its own
            release_connection(self.db.session)

    def stage_type(self, name: str) -> StageType:
        return _instance(self.flows.stage_types, self._stage_instances, "stage", name)

    def authenticator_kind(self, key: str) -> AuthenticatorKind:
        return _instance(self.flows.authenticator_kinds, self._kind_instances, "authenticator", key)

    def authenticator_kinds(self) -> list[AuthenticatorKind]:
        """Every registered kind, in order."""
        return [self.authenticator_kind(key) for key in self.flows.authenticator_kinds]

    def policy_type(self, name: str) -> PolicyType:
        return _instance(self.flows.policy_types, self._policy_instances, "policy", name)

    def stage_config(self, stage: Stage) -> dict[str, Any]:
        """The stage's validated options (a fresh dict each call); see :meth:`_config`."""
        return self._config(stage, self.stage_type(stage.type), "stage")

    def policy_config(self, policy: Policy) -> dict[str, Any]:
        """The policy's validated options (a fresh dict each call); see :meth:`_config`."""
        return self._config(policy, self.policy_type(policy.type), "policy")

    def _config(
        self, obj: Stage | Policy, typed: StageType | PolicyType, kind: str
    ) -> dict[str, Any]:
        """Validation runs once per object and raw config: the cached flow definitions
        keep their Stage and Policy objects for a whole revision, so a request does not
        re-check options checked before."""
        cached = self._configs.get(obj)
        if cached is not None and cached[0] is obj.config:
            return dict(cached[1])
        where = f"{kind} {obj.name!r} ({obj.type})"
        config = validate_options(typed.options, obj.config, where)
        typed.check_config(config, where)
        self._configs[obj] = (obj.config, config)
        return dict(config)

    def current_user(self) -> Any | None:
        """The logged-in user, or ``None`` for anonymous requests."""
        user = current_user._get_current_object()  # type: ignore[attr-defined]
        return user if getattr(user, "is_authenticated", False) else None

    def load_flow(self, slug: str, *, recheck: bool = False) -> Flow | None:
        """The flow with its whole definition graph, detached and read-only (cached by
        revision, see :mod:`flask_flows.definitions`). ``recheck`` reads the revision
        now, whatever the check interval: for a plan newer than this process's copy."""
        return self.definitions.load(self.db.session, slug, recheck=recheck)

    def flows_of(self, designation: str) -> Iterator[Flow]:
        """The flows of ``designation``: the one ``FLOWS_DEFAULT_FLOWS`` names first, then
        the others by slug, each loaded only when the caller asks for it (picking the
        default flow costs the same however many flows there are)."""
        slugs = list(
            self.db.session.scalars(
                sa.select(Flow.slug).where(Flow.designation == designation).order_by(Flow.slug)
            )
        )
        chosen = self.config["FLOWS_DEFAULT_FLOWS"].get(designation)
        if chosen in slugs:
            slugs.remove(chosen)
            slugs.insert(0, chosen)
        elif chosen is not None:
            self.log.warning(
                "FLOWS_DEFAULT_FLOWS names %r for %s, but there is no such flow of that"
                " designation",
                chosen,
                designation,
            )
        for slug in slugs:
            flow = self.load_flow(slug)
            if flow is not None:
                yield flow

    def enforce_sqlite_foreign_keys(self) -> None:
        """Turn SQLite's foreign keys on for the app's engines, once (a no-op after that,
        on other databases, and with ``FLOWS_SQLITE_FOREIGN_KEYS`` off)."""
        if self._foreign_keys_enforced or not self.config["FLOWS_SQLITE_FOREIGN_KEYS"]:
            return
        self._foreign_keys_enforced = _enforce_sqlite_foreign_keys(self.app, self.db)

    def create_tables(self) -> None:
        """Bring flask-flows' tables to this version's schema (create them, or run its
        migrations), and create the app's tables that do not exist, unless the app's own
        migrations (Flask-Migrate) make them: created here, a table a pending migration
        adds would make ``flask db upgrade`` fail."""
        self.enforce_sqlite_foreign_keys()
        if "migrate" not in self.app.extensions:
            self.db.create_all()
        migrations.upgrade(self.db.engine)


Registered = TypeVar("Registered")


def _instance(
    registry: dict[str, type[Registered]], instances: dict[str, Registered], kind: str, name: str
) -> Registered:
    """The one instance of the registered ``kind`` type ``name`` (created on first use)."""
    if name not in instances:
        cls = registry.get(name)
        if cls is None:
            raise ConfigError(
                f"unknown {kind} type {name!r} (known: {', '.join(sorted(registry))})"
            )
        instances[name] = cls()
    return instances[name]


def get_state() -> FlowsState:
    """The :class:`FlowsState` of the current app."""
    try:
        return current_app.extensions["flows"]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "Flows is not initialised on this app: call Flows(app) or flows.init_app(app)"
        ) from None


def _build_blueprint() -> Blueprint:
    from .views import register_views

    blueprint = Blueprint(
        "flows",
        __name__,
        static_folder=str(resource_dir("static")),
        static_url_path="/static",
    )
    blueprint.jinja_loader = layouts.TemplateLoader(resource_dir("templates"))
    register_views(blueprint)
    return blueprint


class _LoginMessage:
    """``before_request``: once, clear Flask-Login's default message unless flashed
    messages show around flow pages (:func:`flask_flows.outcomes.flashing`)."""

    def __init__(self, app: Flask, manager: LoginManager) -> None:
        self.app = app
        self.manager = manager
        self.settled = False

    def __call__(self) -> None:
        if self.settled:
            return
        self.settled = True
        if not outcomes.flashing(self.app):
            self.manager.login_message = None  # type: ignore[assignment]


class _BrandCheck:
    """``before_request`` of the flow pages of an app whose brand would be a generic
    import name ("Welcome to App" in every mail): outside debug and testing, no flow page
    is served (nor mail sent) until FLOWS_BRAND_NAME is set. Checked at requests, not at
    ``init_app``: debug is known only then (``app.run(debug=True)``), and the ``flask``
    command serves none."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.passed = False

    def __call__(self) -> None:
        app = self.app
        if self.passed or app.debug or app.testing or not generic_brand(app.config, app.name):
            self.passed = True
            return
        raise ConfigError(
            f"set FLOWS_BRAND_NAME: pages and mails would call this site"
            f" {app.config['FLOWS_BRAND_NAME']!r}, after the import name {app.name!r}"
        )


def _enforce_sqlite_foreign_keys(app: Flask, db: SQLAlchemy) -> bool:
    """SQLite ignores ``ON DELETE CASCADE`` unless each connection asks for foreign keys;
    flask-flows' tables rely on cascades (device tokens, bindings), as on PostgreSQL.
    ``False`` when ``db.init_app(app)`` has not run yet. Set on every checkout, not only
    on connect, so connections opened before (an in-memory database's one above all)
    are covered too, without closing them."""
    try:
        with app.app_context():
            engines = list(db.engines.values())
    except (KeyError, RuntimeError):  # db.init_app(app) not called yet: nothing to set up
        return False
    for engine in engines:
        if engine.dialect.name == "sqlite" and not event.contains(
            engine, "checkout", _sqlite_foreign_keys_on
        ):
            event.listen(engine, "checkout", _sqlite_foreign_keys_on)
    return True


def _sqlite_foreign_keys_on(connection: Any, *_: Any) -> None:
    """Foreign keys on, but off while Alembic migrates (the app's ``flask db upgrade``
    included): its SQLite batch mode rebuilds a table by copying and dropping it, which
    foreign keys refuse, so Alembic's documentation has them off for migrations."""
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA foreign_keys={'OFF' if _alembic_migrating() else 'ON'}")
    cursor.close()


def _alembic_migrating() -> bool:
    """Whether an Alembic environment (a migration run) is active in this process: its
    ``alembic.context`` module proxies the running one, and holds ``None`` otherwise."""
    context = sys.modules.get("alembic.context")
    return getattr(context, "_proxy", None) is not None
