"""How a finished message leaves: the app's own mailer, SMTP, or the console.

``FLOWS_MAIL_BACKEND`` names one: ``"smtp"`` (the ``FLOWS_MAIL_*`` server), ``"console"``
(printed with its link, for development), ``"flask-mail"`` or ``"flask-mailman"`` (the
app's own Flask-Mail or Flask-Mailman, configured as the app already has it), or a
callable (or its import string) that takes an :class:`~email.message.EmailMessage`.

Left at ``None``, the app's mailer is found: Flask-Mail or Flask-Mailman when the app
has initialised one, else SMTP when ``FLOWS_MAIL_SERVER`` is set, else the console in
debug and testing. Otherwise there is no way to send, and flask-flows says so rather
than tell a person "we sent you an email": an app whose flows mail links refuses to
start (:func:`check_at_start`), and a mail asked for anyway is a ``ConfigError`` in the
request (:func:`backend_for`).
"""

from __future__ import annotations

import smtplib
import ssl
import sys
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from werkzeug.utils import import_string

from . import link_hosts
from .config import DEFAULTS
from .options import ConfigError, refuse_at_start

if TYPE_CHECKING:
    from .extension import FlowsState

#: Takes a finished message and delivers it; raises on failure.
MailBackend = Callable[[EmailMessage], None]

NOT_CONFIGURED = (
    "this app cannot send mail: set FLOWS_MAIL_SERVER (SMTP) or FLOWS_MAIL_BACKEND, or"
    " initialise Flask-Mail or Flask-Mailman before flask-flows"
)


def backend_for(app: Flask) -> MailBackend:
    """The app's way to send, as the module says; a ``ConfigError`` when there is none."""
    backend = _resolve(app)
    if backend is None:
        raise ConfigError(NOT_CONFIGURED)
    return backend


def check_config(config: Mapping[str, Any]) -> None:
    """A named or imported ``FLOWS_MAIL_BACKEND`` that cannot work is refused at start-up."""
    if _configured(config) is smtp and not config["FLOWS_MAIL_SERVER"]:
        raise ConfigError("FLOWS_MAIL_BACKEND 'smtp' needs FLOWS_MAIL_SERVER")


def check_at_start(
    app: Flask, state: FlowsState, mailing: Callable[[], str | None] | None = None
) -> None:
    """Refuse to start an app that mails links (a stage that mails is in its database)
    but has no way to send them. Under the ``flask`` command this is logged instead,
    as the host check does (:func:`flask_flows.link_hosts.check_at_start`, whose
    ``mailing`` query this shares)."""
    if _resolve(app) is not None:
        return
    found = mailing() if mailing is not None else link_hosts.mailing_stage(app, state)
    if found is not None:
        refuse_at_start(state.log, f"stage {found!r} mails links, but {NOT_CONFIGURED}")


def console(message: EmailMessage) -> None:
    """Print the message, its link included, for a developer to follow (stderr)."""
    text = message.get_body(("plain",))
    body = text.get_content() if text is not None else ""  # type: ignore[attr-defined]
    print(  # noqa: T201 (the point of this backend)
        f"\n--- mail to {message['To']}: {message['Subject']} ---\n{body}\n---",
        file=sys.stderr,
        flush=True,
    )


def smtp(message: EmailMessage) -> None:
    """Send by SMTP to the ``FLOWS_MAIL_*`` server."""
    config = current_app.config
    host = config["FLOWS_MAIL_SERVER"]
    if not host:
        raise ConfigError("FLOWS_MAIL_BACKEND 'smtp' needs FLOWS_MAIL_SERVER")
    port = int(config["FLOWS_MAIL_PORT"])
    timeout = float(config["FLOWS_MAIL_TIMEOUT"])
    context = ssl.create_default_context()
    server: smtplib.SMTP
    if config["FLOWS_MAIL_USE_SSL"]:
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if config["FLOWS_MAIL_USE_TLS"] and not config["FLOWS_MAIL_USE_SSL"]:
            server.starttls(context=context)
        if config["FLOWS_MAIL_USERNAME"]:
            server.login(config["FLOWS_MAIL_USERNAME"], config["FLOWS_MAIL_PASSWORD"] or "")
        server.send_message(message)


def flask_mail(message: EmailMessage) -> None:
    """Send through the app's Flask-Mail (its ``MAIL_*`` settings, its server)."""
    from flask_mail import Message

    text, html = _parts(message)
    current_app.extensions["mail"].send(
        Message(
            subject=str(message["Subject"]),
            recipients=[str(message["To"])],
            body=text,
            html=html,
            sender=_sender(message),
        )
    )


def flask_mailman(message: EmailMessage) -> None:
    """Send through the app's Flask-Mailman (its ``MAIL_*`` settings, its backend)."""
    from flask_mailman import EmailMultiAlternatives

    text, html = _parts(message)
    outgoing = EmailMultiAlternatives(
        subject=str(message["Subject"]),
        body=text,
        from_email=_sender(message),
        to=[str(message["To"])],
    )
    if html:
        outgoing.attach_alternative(html, "text/html")
    outgoing.send(fail_silently=False)


#: The backends ``FLOWS_MAIL_BACKEND`` can name, and the app extension that means each.
NAMED: dict[str, MailBackend] = {
    "smtp": smtp,
    "console": console,
    "flask-mail": flask_mail,
    "flask-mailman": flask_mailman,
}
_EXTENSIONS = (("mail", flask_mail), ("mailman", flask_mailman))


def _resolve(app: Flask) -> MailBackend | None:
    configured = _configured(app.config)
    if configured is not None:
        return configured
    for key, backend in _EXTENSIONS:
        if key in app.extensions:
            return backend
    if app.config["FLOWS_MAIL_SERVER"]:
        return smtp
    if app.debug or app.testing:
        return console
    return None


def _configured(config: Mapping[str, Any]) -> MailBackend | None:
    backend = config["FLOWS_MAIL_BACKEND"]
    if backend is None:
        return None
    if isinstance(backend, str):
        if backend in NAMED:
            return NAMED[backend]
        try:
            backend = import_string(backend)
        except ImportError as error:
            raise ConfigError(
                f"FLOWS_MAIL_BACKEND {backend!r} is neither one of {', '.join(NAMED)} nor"
                f" importable: {error}"
            ) from None
    if not callable(backend):
        raise ConfigError(f"FLOWS_MAIL_BACKEND must be callable, got {backend!r}")
    return backend  # type: ignore[no-any-return]


def _sender(message: EmailMessage) -> str | None:
    """``None`` (the app's mailer then uses its own ``MAIL_DEFAULT_SENDER``) when the app
    set that and not ``FLOWS_MAIL_DEFAULT_SENDER``; else flask-flows' From."""
    config = current_app.config
    ours = config["FLOWS_MAIL_DEFAULT_SENDER"] != DEFAULTS["FLOWS_MAIL_DEFAULT_SENDER"]
    if not ours and config.get("MAIL_DEFAULT_SENDER"):
        return None
    return str(message["From"])


def _parts(message: EmailMessage) -> tuple[str, str | None]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return (
        text.get_content() if text is not None else "",  # type: ignore[attr-defined]
        html.get_content() if html is not None else None,  # type: ignore[attr-defined]
    )
