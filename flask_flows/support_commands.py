"""``flask flows users|sessions|mfa|reputation …`` and ``delete-flow``: what a support
desk needs.

A user who lost their phone and their recovery codes, an office held back by one
attacker's guesses, an account to suspend: each is one command. Every command that
changes something does it in one transaction, logs what it did on the ``flask_flows``
logger (an audit trail of who was changed, not of who ran it: that is the shell's), and
says what it did. Users are named as identification names them: a username or an email
address, compared by key ("Alice" is "alice").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from . import guesses, reputation, sessions, signals
from .cli_state import app_state, user_named
from .extension import FlowsState
from .models import AuthenticatedSession, Flow
from .remembered_mfa import RememberedMfa

users_cli = AppGroup("users", help="List, disable and enable users.")
sessions_cli = AppGroup("sessions", help="List and end a user's logins.")
mfa_cli = AppGroup("mfa", help="Reset a user's second factors.")
reputation_cli = AppGroup("reputation", help="Clear the failed guesses held against an IP or user.")


@users_cli.command("list")
@click.option("--search", default=None, help="Only users whose username or email contains this.")
@click.option("--inactive", is_flag=True, help="Only disabled users.")
@click.option("--limit", default=50, show_default=True, help="At most this many.")
def users_list_command(search: str | None, inactive: bool, limit: int) -> None:
    """List users: id, name, whether active, second factors and logins."""
    state = app_state()
    store = state.user_store
    model = store.model
    query = sa.select(model).order_by(*sa.inspect(model).primary_key).limit(limit)
    if search:
        pattern = f"%{search.strip().lower()}%"
        fields = [sa.func.lower(getattr(model, f)).like(pattern) for f in store.available_fields]
        query = query.where(sa.or_(*fields))
    if inactive and store.has_field("active"):
        query = query.where(model.active.is_(False))
    users = list(store.session.scalars(query))
    if not users:
        click.echo("No users.")
        return
    ids = [store.user_id(user) for user in users]
    devices = {
        kind.key: _counts(state, kind.model, ids, kind.model.confirmed.is_(True))
        for kind in state.authenticator_kinds()
    }
    logins = _counts(state, AuthenticatedSession, ids)
    rows = [("ID", "NAME", "ACTIVE", "MFA", "LOGINS")]
    for user, user_id in zip(users, ids, strict=True):
        kinds = [key for key, counts in devices.items() if counts.get(user_id)]
        rows.append(
            (
                user_id,
                store.display_name(user) or "-",
                "yes" if store.is_active(user) else "no",
                ",".join(kinds) or "-",
                str(logins.get(user_id, 0)),
            )
        )
    _table(rows)


@users_cli.command("disable")
@click.argument("identifier")
def users_disable_command(identifier: str) -> None:
    """Disable a user: they cannot log in, and their logins end now."""
    state = app_state()
    user = user_named(state, identifier)
    state.user_store.update(user, active=False)
    ended = sessions.end_sessions(state, state.user_store.user_id(user), keep_current=False)
    state.log.info(
        "cli: disabled user %s, ended %d sessions", state.user_store.user_id(user), ended
    )
    click.echo(f"Disabled {_name(state, user, identifier)!r}; {_plural(ended, 'login')} ended.")


@users_cli.command("enable")
@click.argument("identifier")
def users_enable_command(identifier: str) -> None:
    """Enable a disabled user again."""
    state = app_state()
    user = user_named(state, identifier)
    state.user_store.update(user, active=True)
    state.user_store.session.commit()
    state.log.info("cli: enabled user %s", state.user_store.user_id(user))
    click.echo(f"Enabled {_name(state, user, identifier)!r}.")


@sessions_cli.command("list")
@click.argument("identifier")
def sessions_list_command(identifier: str) -> None:
    """List a user's logins: id, started, last seen, address and browser."""
    state = app_state()
    user = user_named(state, identifier)
    records = state.db.session.scalars(
        sa.select(AuthenticatedSession)
        .where(AuthenticatedSession.user_id == state.user_store.user_id(user))
        .order_by(AuthenticatedSession.last_seen.desc())
    ).all()
    if not records:
        click.echo(f"{_name(state, user, identifier)!r} is not logged in anywhere.")
        return
    rows = [("ID", "STARTED (UTC)", "LAST SEEN (UTC)", "ADDRESS", "BROWSER")]
    for record in records:
        rows.append(
            (
                str(record.id),
                f"{record.created:%Y-%m-%d %H:%M}",
                f"{record.last_seen:%Y-%m-%d %H:%M}",
                record.ip_address or "-",
                (record.user_agent or "-")[:60],
            )
        )
    _table(rows)


@sessions_cli.command("end")
@click.argument("identifier")
@click.argument("session_ids", nargs=-1, type=int)
@click.option("--all", "end_all", is_flag=True, help="End every login of the user.")
def sessions_end_command(identifier: str, session_ids: tuple[int, ...], end_all: bool) -> None:
    """End some of a user's logins (by the IDs 'sessions list' shows), or --all."""
    state = app_state()
    user = user_named(state, identifier)
    user_id = state.user_store.user_id(user)
    if end_all == bool(session_ids):
        raise click.ClickException("give the IDs of the logins to end, or --all")
    if end_all:
        ended = sessions.end_sessions(state, user_id, keep_current=False)
    else:
        result = state.db.session.execute(
            sa.delete(AuthenticatedSession).where(
                AuthenticatedSession.user_id == user_id,
                AuthenticatedSession.id.in_(session_ids),
            )
        )
        state.db.session.commit()
        ended = _rowcount(result)
    state.log.info("cli: ended %d sessions of user %s", ended, user_id)
    click.echo(f"Ended {_plural(ended, 'login')} of {_name(state, user, identifier)!r}.")


@mfa_cli.command("reset")
@click.argument("identifier")
@click.option("--yes", is_flag=True, help="Do not ask first.")
def mfa_reset_command(identifier: str, yes: bool) -> None:
    """Remove a user's authenticator apps and recovery codes (a lost phone and lost
    codes), and every browser that remembered their second factor. They log in with
    the password alone until they set one up again. Confirm who asks first."""
    state = app_state()
    user = user_named(state, identifier)
    user_id = state.user_store.user_id(user)
    name = _name(state, user, identifier)
    if not yes:
        click.confirm(f"Remove every second factor of {name!r}?", abort=True)
    session = state.db.session
    removed = [
        (kind.key, device_id, device_name)
        for kind in state.authenticator_kinds()
        for device_id, device_name in session.execute(
            sa.select(kind.model.id, kind.model.name).where(kind.model.user_id == user_id)
        )
    ]
    for authenticator in state.authenticator_kinds():
        authenticator.remove_all(state, user_id)
    session.execute(sa.delete(RememberedMfa).where(RememberedMfa.user_id == user_id))
    session.commit()
    state.log.info("cli: reset the second factors of user %s (%d removed)", user_id, len(removed))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for kind, device_id, device_name in removed:
        signals.authenticator_removed.send(
            app, user=user, kind=kind, device_id=device_id, name=device_name
        )
    click.echo(f"Removed {_plural(len(removed), 'second factor')} of {name!r}.")


@reputation_cli.command("clear")
@click.option(
    "--ip", default=None, help="An address: the waits its guesses earned, at every account."
)
@click.option("--user", "identifier", default=None, help="A user: the waits held against them.")
def reputation_clear_command(ip: str | None, identifier: str | None) -> None:
    """Clear the failed guesses held against an address (an office behind one, after an
    attack from there) or a user (after they were verified), so they are judged afresh."""
    if not ip and not identifier:
        raise click.ClickException("give --ip ADDRESS or --user IDENTIFIER (or both)")
    state = app_state()
    session = state.db.session
    cleared = 0
    if identifier:
        user = state.user_store.find_by_identifier(identifier, state.user_store.available_fields)
        key = guesses.account(state, user, identifier)
        result = session.execute(
            sa.delete(reputation.Reputation).where(reputation.Reputation.identifier == key)
        )
        cleared += _rowcount(result)
    if ip:
        result = session.execute(
            sa.delete(reputation.Reputation).where(
                reputation.Reputation.ip == reputation.ip_key(ip)
            )
        )
        cleared += _rowcount(result)
    session.commit()
    state.log.info("cli: cleared %d reputation rows (ip=%s, user=%s)", cleared, ip, identifier)
    click.echo(f"Cleared {_plural(cleared, 'record')} of failed guesses.")


@click.command("delete-flow")
@with_appcontext
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask first.")
def delete_flow_command(slug: str, yes: bool) -> None:
    """Delete the flow SLUG and its bindings (its stages and policies stay: other flows
    may use them). Plans running in it restart."""
    state = app_state()
    flow = state.db.session.scalar(sa.select(Flow).where(Flow.slug == slug))
    if flow is None:
        raise click.ClickException(f"there is no flow with the slug {slug!r}")
    if not yes:
        click.confirm(f"Delete the flow {slug!r}?", abort=True)
    state.db.session.delete(flow)
    state.db.session.commit()
    state.log.info("cli: deleted flow %s", slug)
    click.echo(f"Deleted the flow {slug!r}.")


def register(group: click.Group) -> None:
    for command in (users_cli, sessions_cli, mfa_cli, reputation_cli, delete_flow_command):
        group.add_command(command)


# -- helpers -----------------------------------------------------------------------------------


def _name(state: FlowsState, user: Any, identifier: str) -> str:
    return state.user_store.display_name(user) or identifier.strip()


def _counts(state: FlowsState, model: Any, user_ids: list[str], *where: Any) -> dict[str, int]:
    query = (
        sa.select(model.user_id, sa.func.count())
        .where(model.user_id.in_(user_ids), *where)
        .group_by(model.user_id)
    )
    return {user_id: int(count) for user_id, count in state.db.session.execute(query)}


def _rowcount(result: Any) -> int:
    """Rows a DELETE removed (``None`` from drivers that cannot say counts as 0)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
