"""``flask flows …`` commands: set up, import, export and inspect flows; create users.

Every command that writes does so in one transaction (``init``: one per step, each safe
to run again) and, on a mistake, prints what went wrong to stderr and exits with status
1 having changed nothing (``init``: nothing in the step that failed).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app, url_for
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from . import schema_check, sessions, signals, support_commands
from .blueprints import BlueprintError, apply_files, export_flow, install_default_flows
from .blueprints.defaults import PASSWORD_POLICY
from .cli_state import app_state, user_named
from .extension import FlowsState
from .grants import create_invitation
from .migrations.commands import db_cli, migration_errors
from .models import Flow, FlowStageBinding, Policy
from .plan import PROMPT_DATA
from .policies.base import PolicyRequest

flows_cli = AppGroup("flows", help="Manage flask-flows flows, stages, policies and users.")
flows_cli.add_command(db_cli)
support_commands.register(flows_cli)


@flows_cli.command("init")
@click.option(
    "--restore",
    is_flag=True,
    help="Put the shipped default flows back over changes made to them in the database.",
)
def init_command(restore: bool) -> None:
    """Bring flask-flows' tables to this version, fill the lookup keys of users written
    before them, and add the default flows that are missing, keeping those changed in
    the database (safe to run on every deploy); then check the user table as 'check'
    does."""
    state = app_state()
    with migration_errors():
        state.create_tables()
    _fill_keys(state)
    _refuse_problems(state, definitions=False)
    try:
        report = install_default_flows(state, restore=restore)
    except BlueprintError as error:
        raise click.ClickException(str(error)) from error
    click.echo("flask-flows: tables ready")
    click.echo(f"default flows:\n{report}")
    kept = [name for names in report.kept.values() for name in names]
    if kept:
        click.echo(
            f"kept as changed in this database: {', '.join(kept)}\n"
            "(flask flows init --restore puts the shipped definitions back)"
        )


@flows_cli.command("check")
@click.option("--fix", is_flag=True, help="Fill the lookup keys of users that have none.")
def check_command(fix: bool) -> None:
    """Check that the database holds what flask-flows needs; say what is missing and how
    to add it (an existing app's user table, above all)."""
    state = app_state()
    if fix:
        _fill_keys(state, quiet=False)  # or, with nowhere to put them yet, the check says why
    _refuse_problems(state)
    click.echo("flask-flows: the database has what flask-flows needs")


def _fill_keys(state: FlowsState, quiet: bool = True) -> None:
    """Fill the lookup keys of users written before the key columns existed, unless the
    user table lacks columns (nowhere to put them yet)."""
    if any(problem.in_user_table for problem in schema_check.problems(state)):
        return
    try:
        filled = schema_check.fill_keys(state)
    except schema_check.KeyCollision as error:
        raise click.ClickException(str(error)) from error
    if filled or not quiet:
        click.echo(f"flask-flows: filled the lookup keys of {filled} users")


def _refuse_problems(state: FlowsState, *, definitions: bool = True) -> None:
    """Exit 1 naming every problem; with ``definitions`` off, refused stored stages and
    policies (which break one flow, not the database) are only warned about."""
    found = schema_check.problems(state)
    if not definitions:
        for problem in (p for p in found if p.in_definitions):
            click.echo(f"flask-flows: warning: {problem.what}\n  {problem.fix}", err=True)
        found = [problem for problem in found if not problem.in_definitions]
    if found:
        listing = "\n".join(str(problem) for problem in found)
        raise click.ClickException(f"the database is not ready for flask-flows:\n{listing}")


@flows_cli.command("apply")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def apply_command(files: tuple[Path, ...]) -> None:
    """Apply blueprint FILES in one transaction: all of them, or none on any error."""
    try:
        report = apply_files(app_state(), files)
    except BlueprintError as error:
        raise click.ClickException(str(error)) from error
    click.echo(str(report))


@flows_cli.command("export")
@click.argument("slug")
def export_command(slug: str) -> None:
    """Print the flow SLUG, its stages, policies and groups as a blueprint."""
    try:
        text = export_flow(app_state(), slug)
    except BlueprintError as error:
        raise click.ClickException(str(error)) from error
    click.echo(text, nl=False)


@flows_cli.command("list")
def list_command() -> None:
    """Show every flow: slug, designation, title and its stages in order."""
    flows = (
        app_state()
        .db.session.scalars(
            sa.select(Flow)
            .order_by(Flow.slug)
            .options(selectinload(Flow.bindings).joinedload(FlowStageBinding.stage))
        )
        .all()
    )
    if not flows:
        click.echo("No flows yet: run `flask flows init` to install the default flows.")
        return
    rows = [("SLUG", "DESIGNATION", "TITLE", "STAGES")] + [
        (
            flow.slug,
            flow.designation.value,
            flow.title,
            ", ".join(binding.stage.name for binding in flow.bindings) or "-",
        )
        for flow in flows
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[3]]))


@flows_cli.command("create-user")
@click.argument("username", required=False)
@click.option("--email", default=None, help="The user's email address (unique).")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for (hidden, twice) when left out, which keeps it out of shell history.",
)
@click.option("--superuser", is_flag=True, help="Make the user a superuser.")
def create_user_command(
    username: str | None, email: str | None, password: str, superuser: bool
) -> None:
    """Create the user USERNAME with a password. For a user model without usernames,
    leave USERNAME out and give --email."""
    state = app_state()
    store = state.user_store
    username = username.strip() if username else None
    email = email.strip() if email else None
    has_usernames = store.has_field("username")
    if has_usernames and not username:
        raise click.ClickException("the username must not be empty")
    if not has_usernames and username:
        raise click.ClickException("this app's users have no username: give --email only")
    if not has_usernames and not email:
        raise click.ClickException("this app's users have no username: give --email")
    _check_password(state, password, None)
    # Identification matches by key ("Alice" is "alice"), so such twins would collide.
    if username and store.username_taken(username):
        raise click.ClickException(f"a user with the username {username!r} already exists")
    if email and store.email_taken(email):
        raise click.ClickException(f"a user with the email address {email!r} already exists")
    attributes: dict[str, object] = {"email": email}
    if username:
        attributes["username"] = username
    if superuser:
        attributes["is_superuser"] = True
    name = username or email
    try:
        user = store.create(password=password, **attributes)
        store.session.commit()
    except IntegrityError as error:
        store.session.rollback()
        raise click.ClickException(
            f"the user {name!r} could not be created: the username or email is taken"
        ) from error
    signals.user_created.send(current_app._get_current_object(), user=user)  # type: ignore[attr-defined]
    kind = "superuser" if superuser else "user"
    click.echo(f"Created {kind} {name!r}.")


@flows_cli.command("set-password")
@click.argument("identifier")
@click.option(
    "--password",
    prompt="New password",
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for (hidden, twice) when left out, which keeps it out of shell history.",
)
def set_password_command(identifier: str, password: str) -> None:
    """Set the password of the user IDENTIFIER (a username or email address) and end
    every session of theirs, in one transaction: for someone no recovery mail can reach.
    The password must pass the default password policy, as in the flows."""
    state = app_state()
    store = state.user_store
    user = user_named(state, identifier)
    _check_password(state, password, user)
    user_id = store.user_id(user)
    store.set_password(user, password)
    ended = sessions.end_sessions(state, user_id, keep_current=False, commit=False)
    store.session.commit()
    state.log.info("cli: set the password of user %s, ended %d sessions", user_id, ended)
    signals.password_changed.send(current_app._get_current_object(), user=user)  # type: ignore[attr-defined]
    name = store.display_name(user) or identifier
    ended_text = {0: "no session", 1: "1 session"}.get(ended, f"{ended} sessions")
    click.echo(f"Set the password of {name!r}; {ended_text} of theirs ended.")
    if not store.is_active(user):
        click.echo("The account is inactive: it cannot log in until it is activated.")


def _check_password(state: FlowsState, password: str, user: Any | None) -> None:
    """Refuse an empty password, and one the default password policy (when installed)
    refuses, with the policy's own words."""
    if not password.strip():
        raise click.ClickException("the password must not be empty")
    policy = state.db.session.scalar(sa.select(Policy).where(Policy.name == PASSWORD_POLICY))
    if policy is None:
        return
    config = state.policy_config(policy)
    request = PolicyRequest(
        state=state, user=user, context={PROMPT_DATA: {config["field_key"]: password}}
    )
    result = state.policy_type(policy.type).evaluate(config, request)
    if not result.passing:
        raise click.ClickException(f"the password is refused: {' '.join(result.messages)}")


@flows_cli.command("invite")
@click.option("--flow", "slug", required=True, help="The slug of the flow the link opens.")
@click.option(
    "--expires-in",
    type=click.FloatRange(min=0, min_open=True),
    default=72,
    show_default=True,
    help="Hours until the link stops working.",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fixed data for the flow's prompts (repeatable), e.g. --data email=bob@example.com.",
)
@click.option("--multi-use", is_flag=True, help="Let the link be used more than once.")
@click.option(
    "--code",
    is_flag=True,
    help="Make a code to give out on paper (20 letters and digits, case and dashes ignored"
    " when typed) for a prompt field 'token', and print it instead of the link.",
)
def invite_command(
    slug: str, expires_in: float, data: tuple[str, ...], multi_use: bool, code: bool
) -> None:
    """Create an invitation to the flow SLUG and print its link (or, with --code, its
    code).

    The link is the only copy of the invitation's token: only its hash is stored.
    """
    state = app_state()
    if state.db.session.scalar(sa.select(Flow.id).where(Flow.slug == slug)) is None:
        raise click.ClickException(f"there is no flow with the slug {slug!r}")
    fixed_data: dict[str, str] = {}
    for item in data:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.ClickException(f"--data {item!r}: expected KEY=VALUE")
        fixed_data[key.strip()] = value
    _invitation, token = create_invitation(
        state.db.session,
        flow_slug=slug,
        expires_in=timedelta(hours=expires_in),
        fixed_data=fixed_data,
        single_use=not multi_use,
        code=code,
    )
    state.db.session.commit()
    if code:
        click.echo(token)
        return
    with current_app.test_request_context(base_url=_external_base_url()):
        click.echo(url_for("flows.execute", slug=slug, itoken=token, _external=True))


def _external_base_url() -> str:
    """Where links printed by the CLI point: there is no request to take the host from."""
    config = current_app.config
    if config["FLOWS_EXTERNAL_URL"]:
        return str(config["FLOWS_EXTERNAL_URL"])
    if config.get("SERVER_NAME"):
        scheme = config.get("PREFERRED_URL_SCHEME") or "http"
        return f"{scheme}://{config['SERVER_NAME']}{config.get('APPLICATION_ROOT') or ''}"
    return "http://localhost:5000"
