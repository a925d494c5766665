"""User write: creates or updates a user from what earlier prompts collected.

``prompt_data`` keys ``username`` and ``email`` are written to the user of the same
attributes, and the hash a prompt made of ``password`` becomes ``password_hash`` (the
plaintext never got this far). ``attribute_mapping`` writes other prompt keys to other
attributes; it may not touch ``id``, ``active``, ``is_superuser`` or ``password_hash``.

The target is the plan's pending user, else the logged-in user; ``user_creation_mode``
says whether to create one instead. Everything happens in one transaction: when a write
fails (a username or email taken meanwhile, by a concurrent sign-up too) nothing is
kept and the stage says why. After a password change the user's other sessions end
(ASVS 7.4.3) unless ``terminate_other_sessions_on_password_change`` is off.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeGuard

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import identifiers, mail, sessions, signals
from ..config import support_contact
from ..expressions import Expression
from ..i18n import N_, gettext
from ..models import Group
from ..options import ConfigError, Option
from ..outcomes import Outcome
from ..plan import PENDING_USER, PROMPT_DATA
from .base import StageForm, StageResult, StageRun, StageType, deny, invalid, ok
from .prompt import password_hash, unique_username, within_the_model
from .prompt_fields import PromptField, build_field, parse_fields, stored_value

CREATION_MODES = ("never_create", "create_when_required", "always_create")
#: Attributes only this module's own logic may set, never a mapping.
PROTECTED_ATTRIBUTES = frozenset({"id", "active", "is_superuser", "password_hash"})
#: The prompt key whose hash becomes the user's password.
PASSWORD_KEY = "password"  # noqa: S105  (a field name, not a secret)

MSG_NO_USER = N_("There is no account to update. Please sign in and try again.")
MSG_USERNAME_TAKEN = N_("That username is already taken.")
MSG_EMAIL_TAKEN = N_("That email address is already used by another account.")
MSG_NOT_SAVED = N_("Your details could not be saved. Please try again.")
MSG_CHOOSE_USERNAME = N_("That username is already taken. Choose another one.")
#: An account's name the model requires came empty (a flow that asks for none).
MSG_REQUIRED = {
    "username": N_("A username is required. Please start again and enter one."),
    "email": N_("An email address is required. Please start again and enter one."),
}
#: The subject of the notice mailed to the address an account had before.
SUBJECT_EMAIL_CHANGED = N_("Your email address was changed")
#: Plan context: the username to write was taken; the stage asks for another one.
USERNAME_TAKEN = "user_write_username_taken"
_TELL = "tell"


class UserWriteStage(StageType):
    name = "user_write"
    #: Shown only when the write fails, with the reason and a way to start again.
    template = "flows/stages/user_write.html"
    options = {
        "user_creation_mode": Option(str, default="create_when_required", choices=CREATION_MODES),
        "create_users_as_inactive": Option(bool, default=False),
        "create_users_group": Option(
            str,
            default=None,
            nullable=True,
            expression=True,
            help="A group for new users; an expression may give a list of them.",
        ),
        "allowed_groups": Option(
            list,
            default=(),
            items=str,
            help="The groups an expression in create_users_group may choose from.",
        ),
        "attribute_mapping": Option(
            dict, default=None, nullable=True, help="prompt_data key → user attribute."
        ),
        "terminate_other_sessions_on_password_change": Option(bool, default=True),
        "notify_previous_email": Option(
            bool,
            default=True,
            help="When an existing user's email address changes, tell the old address.",
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        chooses = isinstance(config.get("create_users_group"), Expression)
        if chooses and not config.get("allowed_groups"):
            raise ConfigError(
                f"{where}, field 'allowed_groups': name the groups the create_users_group"
                " expression may choose (it may be made of the visitor's answers)"
            )
        for key, attribute in (config["attribute_mapping"] or {}).items():
            if not isinstance(key, str) or not isinstance(attribute, str):
                raise ConfigError(f"{where}, field 'attribute_mapping': use names (strings)")
            if attribute in PROTECTED_ATTRIBUTES or attribute.startswith("_"):
                raise ConfigError(
                    f"{where}, field 'attribute_mapping': {attribute!r} cannot be written"
                )

    def is_interactive(self, run: StageRun) -> bool:
        """Only while it asks for another username: the one entered was taken (a prompt
        that does not ``report_taken_username`` let it through, or someone took it
        meanwhile), told only now, after the earlier stages (the email link) ran."""
        return bool(run.context.get(USERNAME_TAKEN))

    def form_class(self, run: StageRun) -> type[StageForm]:
        spec = _username_spec(run) if run.context.get(USERNAME_TAKEN) else None
        if spec is None:
            return StageForm
        taken = (run.context.get(PROMPT_DATA) or {}).get(spec.key)
        field = build_field(spec, taken, [unique_username(run)])
        return type("UsernameForm", (StageForm,), {spec.key: field})

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        spec = _username_spec(run) if run.context.get(USERNAME_TAKEN) else None
        field = form[spec.key] if spec is not None and spec.key in form else None
        if field is not None and run.context.get(USERNAME_TAKEN) == _TELL:
            # Said once, on the page that first asks (after a redirect too).
            field.errors = [MSG_CHOOSE_USERNAME]
            run.context[USERNAME_TAKEN] = True
        return {"username_field": field}

    def forget(self, run: StageRun) -> None:
        """Back left the page asking for another username: the prompt asks again, and
        the username it takes is tried afresh."""
        run.context.pop(USERNAME_TAKEN, None)

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        store = run.state.user_store
        data = dict(run.context.get(PROMPT_DATA) or {})
        spec = _username_spec(run) if form is not None else None
        if spec is not None and form is not None and spec.key in form:
            data[spec.key] = stored_value(spec, form[spec.key].data)
            run.context[PROMPT_DATA] = data
        user = run.pending_user()
        mode = run.config["user_creation_mode"]
        create = mode == "always_create" or (mode == "create_when_required" and user is None)
        if user is None and not create:
            return deny(MSG_NO_USER)
        attributes = _attributes(run, data)
        missing = _missing_identifier(run, attributes, create)
        if missing is not None:
            return invalid(MSG_REQUIRED[missing])
        new_hash = password_hash(data.get(PASSWORD_KEY))
        previous_email = getattr(user, "email", None) if user is not None else None
        try:
            _lock_identifiers(run, attributes)
            if create:
                user = store.model(**attributes)
                user.active = not run.config["create_users_as_inactive"]
                store.session.add(user)
            else:
                store.update(user, **attributes)
            if new_hash is not None:
                store.set_password_hash(user, new_hash)
            store.session.flush()
            taken = _taken_ignoring_case(run, attributes, user)
            if taken is not None:
                store.session.rollback()
                return self._not_written(run, taken)
            if create:
                for group in _groups(run):
                    store.add_to_group(user, group)
            store.session.commit()
        except SQLAlchemyError as error:
            store.session.rollback()
            return self._not_written(run, _failure_message(run, error, attributes))
        run.context.pop(USERNAME_TAKEN, None)
        if not create and _changed(previous_email, getattr(user, "email", None)):
            run.record(Outcome.email_changed)
        if not create and run.config["notify_previous_email"]:
            _notify_previous_email(run, user, previous_email)
        return self._after_write(run, user, created=create, password_changed=new_hash is not None)

    def _not_written(self, run: StageRun, message: str) -> StageResult:
        """A username entered in a prompt was taken: ask for another one here. Anything
        else (an email address taken, a failed write) is said, with a way to start again."""
        if message == MSG_USERNAME_TAKEN and _username_spec(run) is not None:
            run.context[USERNAME_TAKEN] = _TELL  # challenge() puts the error on the field
            return invalid()
        return invalid(message)

    def _after_write(
        self, run: StageRun, user: Any, *, created: bool, password_changed: bool
    ) -> StageResult:
        store = run.state.user_store
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        user_id = store.user_id(user)
        run.context[PENDING_USER] = user_id
        # The hash served its purpose; keep it out of the cookie from here on.
        prompt_data = dict(run.context.get(PROMPT_DATA) or {})
        prompt_data.pop(PASSWORD_KEY, None)
        run.context[PROMPT_DATA] = prompt_data
        if created:
            run.state.log.info("user_write: created user %s in flow %s", user_id, run.flow.slug)
            signals.user_created.send(app, user=user)
            run.record(Outcome.created)
        else:
            run.state.log.info("user_write: updated user %s in flow %s", user_id, run.flow.slug)
        if password_changed and not created:
            if run.config["terminate_other_sessions_on_password_change"]:
                ended = sessions.end_sessions(run.state, user_id, keep_current=True)
                run.state.log.info("user_write: ended %d other sessions of %s", ended, user_id)
            signals.password_changed.send(app, user=user)
            run.record(Outcome.password_changed)
        return ok()


#: Identifying attributes that must be unique ignoring case.
_IDENTIFIERS = ("username", "email")


def _given(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _lock_identifiers(run: StageRun, attributes: dict[str, Any]) -> None:
    """On PostgreSQL, serialise writes of the same username or email (ignoring case) with
    transaction-scoped advisory locks, so that the check after the flush sees a parallel
    sign-up as "Bob" which the unique constraint (case-sensitive) lets through beside
    "bob". SQLite needs none: its writers take the database lock in turn, at the flush."""
    session = run.state.user_store.session
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted(
        identifier_lock(name, attributes[name])
        for name in _IDENTIFIERS
        if _given(attributes.get(name))
    )
    for key in keys:  # in a fixed order, so two writers cannot deadlock on them
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


def identifier_lock(name: str, value: str) -> str:
    """The name of the PostgreSQL advisory lock a write of ``name`` = ``value`` holds
    (hashed with ``hashtextextended(…, 0)``): the same for every case of ``value``."""
    return f"flask-flows:{name}:{identifiers.key(value)}"


def _taken_ignoring_case(run: StageRun, attributes: dict[str, Any], user: Any) -> str | None:
    """After the flush, in the same transaction: is a written username or email another
    user's in another case? (The database's unique constraint usually compares
    case-sensitively; the store ignores case.)"""
    store = run.state.user_store
    username, email = attributes.get("username"), attributes.get("email")
    if _given(username) and store.username_taken(username, exclude=user):
        return MSG_USERNAME_TAKEN
    if _given(email) and store.email_taken(email, exclude=user):
        return MSG_EMAIL_TAKEN
    return None


def _attributes(run: StageRun, data: dict[str, Any]) -> dict[str, Any]:
    """The user attributes to write: username, email and the mapped prompt keys."""
    model = run.state.user_store.model
    mapping = {"username": "username", "email": "email", **(run.config["attribute_mapping"] or {})}
    attributes: dict[str, Any] = {}
    for key, attribute in mapping.items():
        if key not in data:
            continue
        if attribute == run.state.user_store.password_field:  # a renamed hash column too
            raise ConfigError(
                f"stage {run.stage.name!r} (user_write), field 'attribute_mapping': "
                f"{attribute!r} cannot be written"
            )
        if not hasattr(model, attribute):
            raise ConfigError(
                f"stage {run.stage.name!r} (user_write), field 'attribute_mapping': "
                f"the user model has no attribute {attribute!r}"
            )
        value = data[key]
        if isinstance(value, dict):
            raise ConfigError(
                f"stage {run.stage.name!r} (user_write), field 'attribute_mapping': "
                f"{key!r} is a password; only {PASSWORD_KEY!r} sets the user's password"
            )
        attributes[attribute] = _column_value(model, attribute, value)
    return attributes


def _missing_identifier(run: StageRun, attributes: dict[str, Any], create: bool) -> str | None:
    """The username or email the model requires (a NOT NULL column) that would be
    written blank, or left out of a new account; as authentik, never an account without
    its name."""
    store = run.state.user_store
    try:
        columns = sa.inspect(store.model).columns
    except sa.exc.NoInspectionAvailable:  # a store of its own kind: its own rules
        return None
    for field in ("username", "email"):
        if not store.has_field(field) or columns[field].nullable:
            continue
        if field not in attributes and not create:
            continue  # left as it is
        value = attributes.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            return field
    return None


def _column_value(model: type[Any], attribute: str, value: Any) -> Any:
    """Dates travel through the plan as ISO strings; date columns want them back as dates."""
    column = sa.inspect(model).columns.get(attribute)
    if column is None or not isinstance(value, str):
        return value
    if not value:
        # An optional field left empty: no value, rather than "" (which a unique
        # email column would then allow only once).
        return None if column.nullable else value
    try:
        python_type = column.type.python_type
        if python_type is datetime:
            return datetime.fromisoformat(value)
        if python_type is date:
            return date.fromisoformat(value)
    except (NotImplementedError, ValueError):
        pass  # the database decides; a refusal is reported like any failed write
    return value


def _failure_message(run: StageRun, error: SQLAlchemyError, attributes: dict[str, Any]) -> str:
    """Say which value is taken when a unique constraint failed; log anything else."""
    if isinstance(error, IntegrityError):
        taken = _taken_ignoring_case(run, attributes, run.pending_user())
        if taken is not None:
            return taken
    run.state.log.exception("user_write: writing the user failed in flow %s", run.flow.slug)
    return MSG_NOT_SAVED


def _username_spec(run: StageRun) -> PromptField | None:
    """The prompt field, earlier in this flow, whose value becomes the username (through
    ``attribute_mapping`` too), as that prompt checks it: what the stage asks for again
    when the name is taken. ``None`` when no prompt of the flow collected one."""
    if "username_spec" in run.memo:
        found: PromptField | None = run.memo["username_spec"]
        return found
    mapping = {"username": "username", "email": "email", **(run.config["attribute_mapping"] or {})}
    keys = {key for key, attribute in mapping.items() if attribute == "username"}
    data = run.context.get(PROMPT_DATA) or {}
    found = None
    for binding in run.flow.bindings:
        if binding.stage.type != "prompt":
            continue
        where = f"stage {binding.stage.name!r} (prompt)"
        for spec in parse_fields(run.state.stage_config(binding.stage)["fields"], where):
            if spec.key in keys and isinstance(data.get(spec.key), str) and not spec.fixed:
                found = within_the_model(run, spec)
    run.memo["username_spec"] = found
    return found


def _changed(previous: str | None, current: str | None) -> bool:
    """Whether the account has a new address now (a first one too), not counting case."""
    return bool(current) and identifiers.key(previous or "") != identifiers.key(current or "")


def _notify_previous_email(run: StageRun, user: Any, previous: str | None) -> None:
    """Tell the address the account had that it has another now: if someone else made
    the change (a stolen password), the owner hears of it where they still read mail."""
    current = getattr(user, "email", None)
    if not previous or not _changed(previous, current):
        return
    contact = support_contact(run.state.config)
    message = mail.build_message(
        to=previous,
        # Rendered here, in the request: in the language of the person who changed it.
        subject=gettext(SUBJECT_EMAIL_CHANGED),
        template="flows/email/email_changed",
        username=getattr(user, "username", None),
        new_address=current,
        contact=contact,
    )
    try:
        mail.send(message)
    except ConfigError:
        # The new address is written; a notice the app cannot send must not undo it.
        run.state.log.warning(
            "user_write: the previous address of user %s was not told of the change:"
            " this app cannot send mail",
            run.state.user_store.user_id(user),
        )
        return
    run.state.log.info(
        "user_write: told the previous address of user %s of the change",
        run.state.user_store.user_id(user),
    )


def _groups(run: StageRun) -> list[str]:
    """The groups a new user joins: ``create_users_group``, or those its expression gives
    (a name or a list of names). An expression may be made of the visitor's answers, so
    it chooses only among ``allowed_groups``, never a group with administrator rights;
    anything else (or a failure) is left out, with a log line."""
    if not isinstance(run.config["create_users_group"], Expression):
        return [run.config["create_users_group"]] if run.config["create_users_group"] else []
    value = run.option("create_users_group", fallback=None)
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    wanted = {name for name in names if isinstance(name, str) and name.strip()}
    allowed = wanted & set(run.config["allowed_groups"])
    allowed -= set(
        run.state.db.session.scalars(
            sa.select(Group.name).where(Group.name.in_(allowed), Group.is_superuser.is_(True))
        )
    )
    if wanted - allowed:
        run.state.log.warning(
            "user_write %s: left out groups not allowed (allowed_groups, no administrator"
            " rights): %s",
            run.stage.name,
            ", ".join(sorted(wanted - allowed)),
        )
    return sorted(allowed)
