"""The bridge to the application's own user model.

flask-flows never owns the user table. :class:`FlowsUserMixin` adds the columns the
stages need to the app's model, and :class:`UserStore` is the one place that reads and
writes users, so an app with an unusual model can subclass it and pass its own.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, g, has_app_context
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column

from . import identifiers, reputation, signals
from .models import FlowsModel, Group, GroupMembership

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

    from .passwords import PasswordHashing


class FlowsUserMixin(UserMixin):
    """Columns and behaviour flask-flows expects on the app's user model.

    Use it with the app's declarative model::

        class User(db.Model, FlowsUserMixin):
            id: Mapped[int] = mapped_column(primary_key=True)
    """

    username: Mapped[str] = mapped_column(sa.String(150), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(254), unique=True, default=None)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256), default=None)
    # Server defaults too, so an existing table with rows can take the columns.
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    is_superuser: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: The forms identification looks users up by (:func:`flask_flows.identifiers.key`),
    #: kept up to date on every flush: unique, so two spellings of one name cannot be two
    #: accounts, and indexed, so a lookup costs the same with a million users. A unique
    #: *index* (named by the metadata's convention, ``ix_<table>_<column>``) rather than
    #: an unnamed constraint, which an app's SQLite migration could not add.
    username_key: Mapped[str | None] = mapped_column(
        sa.String(identifiers.KEY_LENGTH), unique=True, index=True, default=None
    )
    email_key: Mapped[str | None] = mapped_column(
        sa.String(identifiers.KEY_LENGTH), unique=True, index=True, default=None
    )

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return bool(self.active)


@sa.event.listens_for(FlowsUserMixin, "before_insert", propagate=True)
@sa.event.listens_for(FlowsUserMixin, "before_update", propagate=True)
def _keep_keys(mapper: Any, connection: Any, user: FlowsUserMixin) -> None:
    """Every ORM write of a user brings its keys along (Core statements and ORM bulk
    operations skip these events: they must set the keys themselves)."""
    for field in ("username", "email"):
        value = getattr(user, field)
        found = identifiers.key(value) if value else None
        if found is not None and len(found) > identifiers.KEY_LENGTH:
            raise ValueError(
                f"the {field} {value!r} is too long once normalised"
                f" ({len(found)} characters, at most {identifiers.KEY_LENGTH})"
            )
        setattr(user, f"{field}_key", found)


class UserStore:
    """Find, create, update and delete users of the app's model through its ``db`` session."""

    #: Attribute names that identification may match on.
    identifier_fields: tuple[str, ...] = ("username", "email")
    #: The attribute that holds the password hash (a subclass names the app's own).
    password_field: str = "password_hash"  # noqa: S105  (an attribute name)

    def __init__(self, db: SQLAlchemy, model: type[Any], hashing: PasswordHashing) -> None:
        self.db = db
        self.model = model
        self.hashing = hashing
        #: Of ``identifier_fields``, those the model has: an email-only model (its class
        #: sets ``username = None``) is identified by email alone.
        self.available_fields = tuple(f for f in self.identifier_fields if self.has_field(f))

    def has_field(self, field: str) -> bool:
        """Whether the model maps ``field`` to a column (``username = None`` on a model
        that uses :class:`FlowsUserMixin` without usernames: no)."""
        try:
            return field in sa.inspect(self.model).columns
        except sa.exc.NoInspectionAvailable:  # not a mapped class: a store of its own kind
            return hasattr(self.model, field)

    def display_name(self, user: Any | None) -> str | None:
        """What pages call the user: their username, else their email address; never
        the primary key, which means nothing to a person. ``None`` for no user or none
        of those."""
        if user is None:
            return None
        for field in self.available_fields:
            value = getattr(user, field, None)
            if isinstance(value, str) and value.strip():
                return value
        return None

    @property
    def session(self) -> Any:
        return self.db.session

    def user_id(self, user: Any) -> str:
        return str(user.get_id())

    def get(self, user_id: Any) -> Any | None:
        """The user whose primary key is ``user_id``, given as stored in a session (a
        string) or as the key itself (an ``int``, a ``uuid.UUID``)."""
        if user_id is None:
            return None
        pk_type = sa.inspect(self.model).primary_key[0].type.python_type
        try:
            key = user_id if isinstance(user_id, pk_type) else pk_type(user_id)
        except (TypeError, ValueError, AttributeError):
            return None
        return _kept(self.session.get(self.model, key))

    def find_by_identifier(
        self, identifier: str, fields: tuple[str, ...] | list[str], case_insensitive: bool = True
    ) -> Any | None:
        """The first user whose ``fields`` equal ``identifier`` (each field tried in order).

        One query for all fields: the database ranks a match on an earlier field first.
        An identifier no column can hold (a NUL character, which PostgreSQL refuses in a
        query) matches no one, without asking the database.
        """
        identifier = identifier.strip()
        if not identifier or not fields or "\x00" in identifier:
            return None
        clauses = []
        for field in fields:
            if field not in self.available_fields:
                continue  # the store or the model has no such field: the others still work
            if case_insensitive:
                clauses.append(self._same(field, identifier))
            else:
                clauses.append(getattr(self.model, field) == identifier)
        if not clauses:
            return None
        rank = sa.case(*((clause, index) for index, clause in enumerate(clauses)))
        return _kept(
            self.session.scalars(
                sa.select(self.model).where(sa.or_(*clauses)).order_by(rank).limit(1)
            ).first()
        )

    def create(self, password: str | None = None, **attributes: Any) -> Any:
        """Create and flush (not commit) a user; the caller owns the transaction."""
        user = self.model(**attributes)
        if password is not None:
            self.set_password(user, password)
        self.session.add(user)
        self.session.flush()
        return user

    def update(self, user: Any, **attributes: Any) -> Any:
        for name, value in attributes.items():
            setattr(user, name, value)
        return user

    def delete(self, user: Any) -> None:
        """Delete the user and every row flask-flows stored for them; the caller commits.

        First the ``user_deleting`` signal lets the app delete or reassign its own rows
        that refer to the user, in the same transaction (docs/users.md).

        Every flask-flows table with a ``user_id`` column is covered (sessions, group
        memberships, authenticator devices, policy bindings naming the user, tables added
        later), and so are rows that hang off those by a foreign key (recovery codes of a
        device): SQLite does not enforce ``ON DELETE CASCADE`` unless asked to. The user's
        reputation rows go too, and those of their username and email from before the
        account existed: they are personal data, and a later account with the same name
        should not inherit them.
        """
        user_id = self.user_id(user)
        signals.user_deleting.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user=user,
        )
        for table in reversed(FlowsModel.metadata.sorted_tables):
            if "user_id" in table.c:
                self.session.execute(sa.delete(table).where(table.c.user_id == user_id))
                continue
            for foreign_key in table.foreign_keys:
                parent = foreign_key.column.table
                if "user_id" in parent.c:
                    owned = sa.select(foreign_key.column).where(parent.c.user_id == user_id)
                    self.session.execute(sa.delete(table).where(foreign_key.parent.in_(owned)))
        reputation.forget(
            self.session,
            [reputation.user_key(user_id)]
            + [
                reputation.name_key(value)
                for field in self.identifier_fields
                if isinstance(value := getattr(user, field, None), str) and value.strip()
            ],
        )
        self.session.delete(user)

    def column_length(self, field: str) -> int | None:
        """The length the model gives the ``field`` column (``String(64)``: 64), if any:
        what forms may accept for it."""
        attribute = getattr(self.model, field, None)
        column = getattr(getattr(attribute, "property", None), "columns", [None])[0]
        return getattr(getattr(column, "type", None), "length", None)

    def username_taken(self, username: str, exclude: Any | None = None) -> bool:
        """Whether another user (not ``exclude``) has ``username``, compared by key."""
        return self._taken("username", username, exclude)

    def email_taken(self, email: str, exclude: Any | None = None) -> bool:
        """Whether another user (not ``exclude``) has ``email``, compared by key."""
        return self._taken("email", email, exclude)

    def set_password_hash(self, user: Any, password_hash: str) -> None:
        """Store a hash made earlier with :attr:`hashing` (a prompt hashes on receipt)."""
        setattr(user, self.password_field, password_hash)

    def set_password(self, user: Any, password: str) -> None:
        setattr(user, self.password_field, self.hashing.hash(password))

    def check_password(self, user: Any | None, password: str) -> bool:
        """One argon2 verification whether or not ``user`` exists or has a password.

        A match whose hash was made with other parameters is re-hashed on the spot
        (the caller commits), so raising ``FLOWS_ARGON2_*`` upgrades users as they log in.
        """
        password_hash = getattr(user, self.password_field, None) if user is not None else None
        ok = self.hashing.verify(password_hash, password)
        if ok and password_hash and self.hashing.needs_rehash(password_hash):
            self.set_password(user, password)
        return ok

    def password_fingerprint(self, user: Any) -> str:
        """A short digest that changes whenever the user's password changes (the stored
        hash is salted afresh each time); what a remembered MFA check is bound to. It
        reveals nothing usable about the password: the hash's salt is not in it."""
        password_hash = getattr(user, self.password_field, None) or ""
        return hashlib.sha256(password_hash.encode()).hexdigest()[:16]

    def is_active(self, user: Any) -> bool:
        return bool(getattr(user, "is_active", True))

    def is_superuser(self, user: Any) -> bool:
        if getattr(user, "is_superuser", False):
            return True
        return bool(
            self.session.scalar(
                sa.select(sa.func.count())
                .select_from(GroupMembership)
                .join(Group)
                .where(GroupMembership.user_id == self.user_id(user), Group.is_superuser.is_(True))
            )
        )

    def group_names(self, user: Any) -> set[str]:
        return set(
            self.session.scalars(
                sa.select(Group.name)
                .join(GroupMembership)
                .where(GroupMembership.user_id == self.user_id(user))
            )
        )

    def add_to_group(self, user: Any, group_name: str) -> None:
        group = self.session.scalar(sa.select(Group).where(Group.name == group_name))
        if group is None:
            group = Group(name=group_name)
            self.session.add(group)
            self.session.flush()
        user_id = self.user_id(user)
        if self.session.get(GroupMembership, (group.id, user_id)) is None:
            self.session.add(GroupMembership(group_id=group.id, user_id=user_id))

    def _same(self, field: str, value: str) -> sa.ColumnElement[bool]:
        """``field`` is ``value`` the way identification compares: by the stored key when
        the model has one (``<field>_key``, see :class:`FlowsUserMixin`), else by
        ``lower()``, which no index serves and which SQLite applies to ASCII only."""
        stored_key = getattr(self.model, f"{field}_key", None)
        if stored_key is not None:
            return stored_key == identifiers.key(value)  # type: ignore[no-any-return]
        return sa.func.lower(getattr(self.model, field)) == value.strip().lower()

    def _taken(self, field: str, value: str, exclude: Any | None) -> bool:
        query = sa.select(sa.func.count()).where(self._same(field, value))
        if exclude is not None:
            mapper = sa.inspect(self.model)
            primary_key = mapper.primary_key[0]
            key = mapper.get_property_by_column(primary_key).key
            query = query.where(primary_key != getattr(exclude, key))
        return bool(self.session.scalar(query))


def _kept(user: Any | None) -> Any | None:
    """Hold ``user`` until the request ends. The session's identity map holds objects
    weakly: without this, a user read by one stage is gone, and read again, by the next
    stage of the same request. Lookups still go through the session, so deletions show."""
    if user is not None and has_app_context():
        g.setdefault("_flows_users", {})[id(user)] = user
    return user
