"""The self-service settings page: a user's authenticators, sessions and account links.

It is not a flow: nothing here is a sequence of stages, and everything the user changes
is one small action. So it is one page, ``GET /flows/-/settings/``, rendered in the same
themable shell as the stages, plus a POST endpoint per action. Every action carries a
CSRF token and answers with a 303 back to the page (post/redirect/get) and a short
notice kept in the session until the page shows it once.

Removing an authenticator asks for the password again, or a passkey of the user's
(ASVS 7.5.1): someone holding an unattended, logged-in browser must not be able to strip
the second factor. Any authenticator can be renamed. Ending
sessions deletes their server-side rows, so those cookies are anonymous from their next
request on (ASVS 7.4.1, 7.4.3).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, Label, PasswordField
from wtforms.validators import Length

from . import guesses, layouts, lockouts, outcomes, passkeys, sessions, signals
from .authenticators import PasskeyKind
from .csrf import MSG_CSRF
from .extension import FlowsState, get_state
from .guesses import Verdict
from .i18n import N_, gettext, ngettext
from .models import AuthenticatedSession, utcnow
from .passwords import MSG_BUSY, HashingBusy
from .stages.authenticator_setup import name_field
from .stages.base import RequiredUnlessPasskey
from .user_agents import describe_user_agent

#: Session key of the one-time notice shown at the top of the page after an action.
NOTICE_KEY = outcomes.SETTINGS_NOTICE
#: Session key counting wrong passwords for a login that has no server-side row.
FAILURES_KEY = "_flows_settings_password_failures"
#: Wrong confirmation passwords in a row, counted on the login's server-side row, after
#: which the session is ended: a stolen cookie gets this many guesses, from however many
#: addresses, then (every copy of) it is dead. The account's waits apply besides.
MAX_PASSWORD_FAILURES = 5

#: Flows the page links to when they exist (looked up by slug on every request); each
#: authenticator kind names its own setup flow.
PASSWORD_CHANGE_FLOW = "default-password-change"  # noqa: S105  (a flow slug)
EMAIL_CHANGE_FLOW = "default-email-change"
UNENROLLMENT_FLOW = "default-unenrollment-flow"

#: The notices and errors of the page: English message ids, in the page's language when
#: they are shown (a notice with values is worded when it is made).
MSG_WRONG_PASSWORD = N_("That password is not correct, so nothing was removed.")  # noqa: S105
MSG_TOO_MANY_FAILURES = N_("Too many wrong passwords: you have been logged out.")
MSG_REMOVED = N_("{name} was removed.")
MSG_RENAMED = N_("{old} is now called {new}.")
MSG_SESSION_ENDED = N_("Session ended: {device}.")
MSG_NO_OTHER_SESSIONS = N_("There were no other sessions to end.")
MSG_OTHER_SESSION_ENDED = N_("Your other session was ended.")
#: When and from where a session began, beside its device when two read the same.
SIGNED_IN_FROM = N_("signed in {time} UTC from {address}")
SIGNED_IN = N_("signed in {time} UTC")
#: A session's device with what tells it from another of the same browser and system.
DEVICE_AND_DISTINCTION = N_("{device}, {distinction}")


class RemoveDeviceForm(FlaskForm):
    """Confirms removing an authenticator with the account password, or a passkey."""

    password = PasswordField(
        N_("Your password"),
        validators=[
            RequiredUnlessPasskey(N_("Enter your password to confirm.")),
            Length(max=4096, message=N_("That password is too long.")),
        ],
        render_kw={"autocomplete": "current-password"},
    )
    #: The answer of a passkey of the user's instead of the password (passkeys.js).
    passkey = HiddenField()


class RenameDeviceForm(FlaskForm):
    """A new name for an authenticator."""

    name = name_field(N_("New name"), N_("Enter a name."))


class ActionForm(FlaskForm):
    """A form with nothing but its CSRF token, for actions that need no input."""


@dataclass
class DeviceEntry:
    """One authenticator as the page shows it."""

    kind: str
    #: The kind's label and the device's name (its kind's label when it has none), in
    #: the page's language (a name is the user's, as they typed it).
    kind_label: str
    id: int
    name: str
    created: datetime
    last_used: datetime | None
    #: More about it, as (term, description) pairs ("Codes left", "7").
    details: list[tuple[str, str]]
    form: RemoveDeviceForm
    rename_form: RenameDeviceForm

    @property
    def remove_url(self) -> str:
        return url_for("flows.settings_remove_device", kind=self.kind, device_id=self.id)

    @property
    def rename_url(self) -> str:
        return url_for("flows.settings_rename_device", kind=self.kind, device_id=self.id)


@dataclass
class SessionEntry:
    """One authenticated session as the page shows it."""

    id: int
    device: str
    ip_address: str
    created: datetime
    last_seen: datetime
    current: bool
    #: What tells this session from another of the same browser and system ("signed in
    #: 2026-11-30 09:12 UTC"), empty when its device name alone does; in the page's
    #: language, like ``device``.
    distinction: str = ""

    @property
    def label(self) -> str:
        if not self.distinction:
            return self.device
        return gettext(DEVICE_AND_DISTINCTION, device=self.device, distinction=self.distinction)

    @property
    def end_url(self) -> str:
        return url_for("flows.settings_end_session", session_id=self.id)


def register_settings(blueprint: Blueprint) -> None:
    """Add the settings page and its actions to the ``flows`` blueprint."""
    blueprint.add_url_rule("/-/settings/", endpoint="settings", view_func=show_settings)
    blueprint.add_url_rule(
        "/-/settings/authenticators/<kind>/<int:device_id>/remove/",
        endpoint="settings_remove_device",
        view_func=remove_device,
        methods=["POST"],
    )
    blueprint.add_url_rule(
        "/-/settings/authenticators/<kind>/<int:device_id>/rename/",
        endpoint="settings_rename_device",
        view_func=rename_device,
        methods=["POST"],
    )
    blueprint.add_url_rule(
        "/-/settings/sessions/<int:session_id>/end/",
        endpoint="settings_end_session",
        view_func=end_session,
        methods=["POST"],
    )
    blueprint.add_url_rule(
        "/-/settings/sessions/end-others/",
        endpoint="settings_end_other_sessions",
        view_func=end_other_sessions,
        methods=["POST"],
    )


def show_settings() -> Response:
    """``GET /flows/-/settings/``: the page, with the notice of the last action if any."""
    state = get_state()
    user = state.current_user()
    if user is None:
        return _to_login()
    return _page(state, user)


def remove_device(kind: str, device_id: int) -> Response:
    """``POST …/authenticators/<kind>/<id>/remove/``: remove one of the user's devices
    after checking the password (one argon2 verification) or a passkey of theirs."""
    state = get_state()
    user = state.current_user()
    if user is None:
        return _to_login()
    device = _device(state, user, kind, device_id)
    authenticator = state.authenticator_kind(kind)
    user_id = state.user_store.user_id(user)
    form = RemoveDeviceForm()
    if not form.validate_on_submit():
        if form.meta.csrf_field_name in form.errors:
            return _back(MSG_CSRF)
        return _page(state, user, failed=(kind, device_id, form))
    if form.passkey.data:
        assertion = passkeys.authenticate(
            state, session, form.passkey.data, user_id=user_id, require_user_verification=True
        )
        if assertion.device is None:
            form.password.errors = [assertion.error]
            return _page(state, user, failed=(kind, device_id, form))
        return _remove(state, user, authenticator.label, kind, device)
    try:
        password_ok = state.user_store.check_password(user, form.password.data or "")
    except HashingBusy:
        return _back(MSG_BUSY)
    verdict = guesses.judge(state, guesses.account(state, user), password_ok)
    failed = (kind, device_id, form)
    if verdict.refused:
        form.password.errors = [verdict.refusal_message()]
        response = _page(state, user, failed=failed, status=429)
        response.headers["Retry-After"] = str(verdict.wait_seconds())
        return response
    if not password_ok:
        return _wrong_password(state, user, failed, verdict)
    _forget_wrong_passwords(state)
    return _remove(state, user, authenticator.label, kind, device)


def rename_device(kind: str, device_id: int) -> Response:
    """``POST …/authenticators/<kind>/<id>/rename/``: give one of the user's devices a
    new name (nothing to re-authenticate for: a name grants nothing)."""
    state = get_state()
    user = state.current_user()
    if user is None:
        return _to_login()
    device = _device(state, user, kind, device_id)
    form = RenameDeviceForm()
    if not form.validate_on_submit():
        if form.meta.csrf_field_name in form.errors:
            return _back(MSG_CSRF)
        return _page(state, user, failed=(kind, device_id, form))
    old = device.name or gettext(state.authenticator_kind(kind).label)
    device.name = form.name.data
    state.db.session.commit()
    state.log.info(
        "settings: user %s renamed %s device %s", state.user_store.user_id(user), kind, device_id
    )
    return _back(gettext(MSG_RENAMED, old=old, new=device.name))


def end_session(session_id: int) -> Response:
    """``POST …/sessions/<id>/end/``: end one of the user's sessions; ending the
    current one is logging out."""
    state = get_state()
    user = state.current_user()
    if user is None:
        return _to_login()
    user_id = state.user_store.user_id(user)
    record = state.db.session.scalar(
        sa.select(AuthenticatedSession).where(
            AuthenticatedSession.id == session_id, AuthenticatedSession.user_id == user_id
        )
    )
    if record is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        return _back(MSG_CSRF)
    current = sessions.current_record(state)
    if current is not None and current.id == record.id:
        _log_out(state, user)
        return _redirect(str(state.config["FLOWS_DEFAULT_REDIRECT"]))
    device = describe_user_agent(record.user_agent)
    state.db.session.delete(record)
    state.db.session.commit()
    state.log.info("settings: user %s ended session %s", user_id, session_id)
    return _back(gettext(MSG_SESSION_ENDED, device=device))


def end_other_sessions() -> Response:
    """``POST …/sessions/end-others/``: end every session of the user but this one."""
    state = get_state()
    user = state.current_user()
    if user is None:
        return _to_login()
    if not ActionForm().validate_on_submit():
        return _back(MSG_CSRF)
    user_id = state.user_store.user_id(user)
    count = sessions.end_sessions(state, user_id, keep_current=True)
    state.log.info("settings: user %s ended %d other sessions", user_id, count)
    if count == 0:
        return _back(MSG_NO_OTHER_SESSIONS)
    if count == 1:
        return _back(MSG_OTHER_SESSION_ENDED)
    # More than one (the singular is for languages that say 21 as they say 1).
    return _back(
        ngettext(
            "Your {count} other session was ended.",
            "Your {count} other sessions were ended.",
            count,
        )
    )


# -- helpers --------------------------------------------------------------------------------


def _device(state: FlowsState, user: Any, kind: str, device_id: int) -> Any:
    """The user's device ``device_id`` of ``kind``; 404 when there is none."""
    if kind not in state.flows.authenticator_kinds:
        abort(404)
    model = state.authenticator_kind(kind).model
    device = state.db.session.scalar(
        sa.select(model).where(
            model.id == device_id, model.user_id == state.user_store.user_id(user)
        )
    )
    if device is None:
        abort(404)
    return device


def _remove(state: FlowsState, user: Any, label: str, kind: str, device: Any) -> Response:
    """Delete ``device``, confirmed; back to the page with a notice (``label``, the
    kind's, is English: the signal's name is, the notice's is in the page's language)."""
    name = device.name or label
    device_id = device.id
    state.db.session.delete(device)  # a recovery-code set's tokens go by ON DELETE CASCADE
    state.db.session.commit()  # also keeps a re-hash check_password made
    state.log.info(
        "settings: user %s removed %s device %s", state.user_store.user_id(user), kind, device_id
    )
    signals.authenticator_removed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user=user,
        kind=kind,
        device_id=device_id,
        name=name,
    )
    return _back(gettext(MSG_REMOVED, name=_device_name(device, label)))


#: A refused form to show again: the device's kind and id, and the form.
Failed = tuple[str, int, RemoveDeviceForm | RenameDeviceForm]


def _page(
    state: FlowsState, user: Any, failed: Failed | None = None, status: int = 200
) -> Response:
    """The whole page; ``failed`` is the removal or rename form to show again with its
    errors. A user with passkeys may confirm a removal with one: the page carries the
    ceremony's options (its challenge waits in the session)."""
    user_id = state.user_store.user_id(user)
    devices = _devices(state, user_id, failed)
    own_passkeys = [d for d in devices if d.kind == PasskeyKind.key]
    passkey_options = None
    if own_passkeys:
        passkey_options = passkeys.authentication_options(
            state, session, passkeys.devices_of(state, user_id), "required"
        )
    html = render_template(
        "flows/settings.html",
        layout=layouts.page_layout(),
        flow=None,
        user=user,
        notice=session.pop(NOTICE_KEY, None),
        devices=devices,
        passkey_options=passkey_options,
        sessions=_sessions(state, user_id),
        settings_url=url_for("flows.settings"),
        setup_links=_setup_links(state, devices),
        password_change_url=_flow_url(state, PASSWORD_CHANGE_FLOW),
        email_change_url=_flow_url(state, EMAIL_CHANGE_FLOW),
        unenrollment_url=_flow_url(state, UNENROLLMENT_FLOW),
    )
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _devices(state: FlowsState, user_id: str, failed: Failed | None) -> list[DeviceEntry]:
    entries: list[DeviceEntry] = []
    for kind in state.authenticator_kinds():
        for device in kind.devices(state, user_id):
            refused = (
                failed[2] if failed is not None and failed[:2] == (kind.key, device.id) else None
            )
            form = refused if isinstance(refused, RemoveDeviceForm) else None
            rename_form = refused if isinstance(refused, RenameDeviceForm) else None
            form = form or RemoveDeviceForm(formdata=None)
            form.passkey.data = ""  # an answer is never sent back to the page
            rename_form = rename_form or RenameDeviceForm(formdata=None, name=device.name)
            if refused is not None:
                field = refused.password if isinstance(refused, RemoveDeviceForm) else refused.name
                field.render_kw = {**(field.render_kw or {}), "autofocus": True}
            prefix = f"{kind.key}-{device.id}"
            _give_ids(form.password, f"remove-{prefix}-password")
            _give_ids(form.passkey, f"remove-{prefix}-passkey")
            _give_ids(rename_form.name, f"rename-{prefix}-name")
            entries.append(
                DeviceEntry(
                    kind=kind.key,
                    kind_label=gettext(kind.label),
                    id=device.id,
                    name=_device_name(device, kind.label),
                    created=device.created,
                    last_used=device.last_used,
                    details=kind.details(device),
                    form=form,
                    rename_form=rename_form,
                )
            )
    return entries


def _setup_links(state: FlowsState, devices: list[DeviceEntry]) -> list[tuple[str, str]]:
    """(label, URL) of each kind's setup flow that is installed (labels in the page's
    language)."""
    links = []
    for kind in state.authenticator_kinds():
        url = _flow_url(state, kind.setup_flow) if kind.setup_flow else None
        if url is not None:
            has_one = any(device.kind == kind.key for device in devices)
            links.append((kind.add_label(has_one), url))
    return links


def _give_ids(field: Any, field_id: str) -> None:
    """A unique id for a field of one form among many on the page (its *name* stays)."""
    field.id = field_id
    field.label = Label(field.id, field.label.text)


def _sessions(state: FlowsState, user_id: str) -> list[SessionEntry]:
    current = sessions.current_record(state)
    records = state.db.session.scalars(
        sa.select(AuthenticatedSession)
        .where(
            AuthenticatedSession.user_id == user_id,
            sa.or_(AuthenticatedSession.expires.is_(None), AuthenticatedSession.expires > utcnow()),
        )
        .order_by(AuthenticatedSession.last_seen.desc(), AuthenticatedSession.id.desc())
    )
    entries = [
        SessionEntry(
            id=record.id,
            device=describe_user_agent(record.user_agent),
            ip_address=record.ip_address,
            created=record.created,
            last_seen=record.last_seen,
            current=current is not None and record.id == current.id,
        )
        for record in records
    ]
    # Two sessions of one browser on one system read the same: name them by when and
    # from where they began.
    names = Counter(entry.device for entry in entries)
    for entry in entries:
        if names[entry.device] > 1:
            time = f"{entry.created:%Y-%m-%d %H:%M}"
            entry.distinction = (
                gettext(SIGNED_IN_FROM, time=time, address=entry.ip_address)
                if entry.ip_address
                else gettext(SIGNED_IN, time=time)
            )
    # This device first; the rest by most recent use.
    return sorted(entries, key=lambda entry: not entry.current)


def _device_name(device: Any, label: str) -> str:
    """What the page calls ``device``: its name, else its kind's ``label`` (English) in
    the page's language."""
    return str(device.name) if device.name else gettext(label)


def _flow_url(state: FlowsState, slug: str) -> str | None:
    """A link into flow ``slug`` that comes back here, or ``None`` if the flow does not exist."""
    if state.load_flow(slug) is None:
        return None
    return url_for("flows.execute", slug=slug, next=url_for("flows.settings"))


def _wrong_password(
    state: FlowsState, user: Any, failed: tuple[str, int, RemoveDeviceForm], verdict: Verdict
) -> Response:
    """A wrong password, already judged on the server (the account's waits): counted for
    this login too, and after ``MAX_PASSWORD_FAILURES`` in a row the session ends, so a
    stolen cookie is worth only that many guesses from however many addresses."""
    user_id = state.user_store.user_id(user)
    signals.login_failed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        identifier=getattr(user, "username", None),
        stage=None,
        reason="invalid_password",
    )
    failures = _count_wrong_password(state)
    state.log.info("settings: wrong password %d for user %s", failures, user_id)
    if failures >= MAX_PASSWORD_FAILURES:
        state.log.warning(
            "settings: user %s logged out after %d wrong passwords", user_id, failures
        )
        _log_out(state, user)
        return _logged_out_page(state, verdict.after(MSG_TOO_MANY_FAILURES), verdict)
    failed[2].password.errors = [verdict.after(MSG_WRONG_PASSWORD)]
    return _page(state, user, failed=failed)


def _count_wrong_password(state: FlowsState) -> int:
    """One more wrong password for this login, on its server-side row (atomically, so
    parallel guesses all count; a copy of an older cookie does not reset it). A login
    without a row (the app logged the user in itself) counts in the cookie, where the
    account's waits still bound it."""
    record = sessions.current_record(state)
    if record is None:
        failures = int(session.get(FAILURES_KEY, 0)) + 1
        session[FAILURES_KEY] = failures
        return failures
    record.password_failures = AuthenticatedSession.password_failures + 1
    state.db.session.commit()
    return int(record.password_failures)


def _forget_wrong_passwords(state: FlowsState) -> None:
    session.pop(FAILURES_KEY, None)
    record = sessions.current_record(state)
    if record is not None:
        record.password_failures = 0  # committed with the action it confirmed


def _log_out(state: FlowsState, user: Any) -> None:
    sessions.log_out(state)
    state.log.info("settings: user %s logged out", state.user_store.user_id(user))
    signals.user_logged_out.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user=user,
    )


def _logged_out_page(state: FlowsState, message: str, verdict: Verdict) -> Response:
    """The lockout page, rendered here: a notice kept in the session would not survive
    the login that must come next, which starts a fresh session. "Log in again" only
    once no wait runs; meanwhile password recovery, which does not need the password."""
    return lockouts.page(
        state,
        message,
        verdict.wait_seconds(),
        flow=None,
        retry_url=url_for("flows.login", next=url_for("flows.settings")),
        retry_label=N_("Log in again"),
    )


def _back(notice: str) -> Response:
    """303 to the page, which shows ``notice`` once."""
    session[NOTICE_KEY] = notice
    return _redirect(url_for("flows.settings"))


def _to_login() -> Response:
    return _redirect(url_for("flows.login", next=url_for("flows.settings")))


def _redirect(target: str) -> Response:
    response = redirect(target, code=303)
    response.headers["Cache-Control"] = "no-store"
    return response
