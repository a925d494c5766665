"""Building and sending the extension's emails (``FLOWS_MAIL_*`` settings).

A message is rendered in the request, from a text and an HTML template the app can
override, in the request's language (:func:`flask_flows.i18n.current_locale`: the mail
speaks as the page did, to the person who asked for it), and delivered by the backend
:mod:`flask_flows.mail_backends` picks (the app's Flask-Mail or Flask-Mailman, SMTP, the
console in development, or ``FLOWS_MAIL_BACKEND``). Delivery runs in a daemon thread by
default: a response then takes as long whether a mail went out or not, which the
recovery flow needs so that it does not reveal which accounts exist, and a slow or
broken mail server never fails the request. Delivery errors are logged, never raised
into the request; an app with no way to send at all is a ``ConfigError`` there
(:mod:`flask_flows.mail_backends`).

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from flask import Flask, current_app, g, has_request_context, render_template

from . import i18n, mail_backends
from .mail_backends import MailBackend
from .options import ConfigError

log = logging.getLogger("flask_flows.mail")

_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()
#: ``g`` key: mail threads to start when the request ends.
_DEFERRED = "_flows_deferred_mail"


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` messages per address in ``seconds`` (``FLOWS_MAIL_RATE_LIMIT``)."""

    count: int
    seconds: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RateLimit:
        value = config["FLOWS_MAIL_RATE_LIMIT"]
        try:
            count, seconds = (int(part) for part in str(value).split("/"))
        except ValueError:
            raise ConfigError(
                f"FLOWS_MAIL_RATE_LIMIT: expected 'count/seconds' like '5/3600', got {value!r}"
            ) from None
        if count < 1 or seconds < 1:
            raise ConfigError(f"FLOWS_MAIL_RATE_LIMIT: both numbers must be positive: {value!r}")
        return cls(count, seconds)


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse a mail configuration that could only fail later, at start-up (init_app):
    a bad rate limit would otherwise be an error page on the email stage, and a backend
    that does not import a failure logged from the mail thread."""
    RateLimit.from_config(config)
    mail_backends.check_config(config)


#: The text templates' ``_flows`` and ``_nflows``: plain strings, as a ``.txt`` template
#: is not autoescaped (the HTML ones keep the escaping globals of :mod:`flask_flows.i18n`,
#: whose markup would show as ``&#39;`` in a text mail).
_PLAIN_TEXT: dict[str, Callable[..., str]] = {"_flows": i18n.gettext, "_nflows": i18n.ngettext}


def build_message(*, to: str, subject: str, template: str, **context: Any) -> EmailMessage:
    """A multipart text + HTML message from ``<template>.txt`` and ``<template>.html``.

    Rendered here, in the request, where ``url_for`` and the app's templates work, and in
    its language: ``subject`` comes translated by the caller, the templates' texts are
    translated as they render. Only delivery happens in the background (:func:`send`),
    so a thread never picks the language. Rendered outside a request (a command), the
    mail is in English unless the caller sets one with :func:`flask_flows.i18n.using_locale`.
    """
    config = current_app.config
    text = render_template(f"{template}.txt", subject=subject, **context, **_PLAIN_TEXT)
    html = render_template(f"{template}.html", subject=subject, **context)
    sender = str(config["FLOWS_MAIL_DEFAULT_SENDER"])
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    # make_msgid() without a domain asks the resolver for this host's name, which can stall.
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("<> ") or "localhost")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send(
    message: EmailMessage, prepare: Callable[[], None] | None = None, *, deliver: bool = True
) -> None:
    """Deliver ``message`` now or from a background thread (``FLOWS_MAIL_SEND_IN_BACKGROUND``).

    ``prepare`` runs first, in the same thread and app context, and the message is not
    sent if it fails: the email stage stores the link's token there, so that the database
    write is not foreground work either. A delivery failure never raises: it is logged,
    because the person in front of the form can do nothing about it and must not learn
    more than "we sent a link". Only an app with no way to send at all raises
    (``ConfigError``, :func:`flask_flows.mail_backends.backend_for`), in the request.
    With ``deliver=False`` only ``prepare`` runs: a job that costs what a real one does,
    for someone who must not be told that nobody gets a mail.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    # Here, in the request: with no way to send at all, the person is not told "we sent
    # you an email" (a ConfigError, whether or not this mail has a recipient).
    backend = mail_backends.backend_for(app)
    if not app.config["FLOWS_MAIL_SEND_IN_BACKGROUND"]:
        _deliver_logged(app, message, prepare, deliver, backend)
        return
    gate = _Gate()
    if has_request_context():
        # The thread waits for the request to end (its response is built): its database
        # write and SMTP exchange then cannot slow that response down, which would tell a
        # real account's recovery from a pretended one's.
        g.setdefault(_DEFERRED, []).append(gate)
    else:
        gate.open(go=True)
    thread = threading.Thread(
        target=_deliver_after,
        args=(gate, app, message, prepare, deliver, backend),
        name="flask-flows-mail",
        daemon=True,
    )
    with _pending_lock:
        _pending.add(thread)
    thread.start()


def connect(app: Flask) -> None:
    """Release the mail a request handed over once it ends (called once per app)."""
    app.teardown_request(_release_deferred)


class _Gate:
    """Holds a mail thread until its request has ended; says whether to go on."""

    #: Seconds a thread waits for its request's end before going on anyway (a teardown
    #: function of the app that raised first would keep ours from running).
    LONGEST = 10.0

    def __init__(self) -> None:
        self._event = threading.Event()
        self.go = True

    def open(self, *, go: bool) -> None:
        self.go = go
        self._event.set()

    def wait(self) -> bool:
        self._event.wait(self.LONGEST)
        return self.go


def _release_deferred(error: BaseException | None) -> None:
    for gate in g.pop(_DEFERRED, []):
        if error is not None:
            # The request failed after handing the mail over: nothing it promised is sent.
            log.warning("mail: not sent, the request that asked for it failed")
        gate.open(go=error is None)


def _deliver_after(
    gate: _Gate,
    app: Flask,
    message: EmailMessage,
    prepare: Callable[[], None] | None,
    send: bool,
    backend: MailBackend,
) -> None:
    if gate.wait():
        _deliver_logged(app, message, prepare, send, backend)
        return
    with _pending_lock:
        _pending.discard(threading.current_thread())


def wait_for_outgoing_mail(timeout: float | None = None) -> bool:
    """Wait until every mail handed to a background thread is delivered (or failed).

    Background threads are daemons and die with the interpreter: a CLI command or a
    worker that sends mail and then exits should call this first. Tests use it too.
    Returns ``False`` if some delivery was still running when ``timeout`` ran out.
    """
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(timeout)
    return not any(thread.is_alive() for thread in threads)


def _deliver_logged(
    app: Flask,
    message: EmailMessage,
    prepare: Callable[[], None] | None,
    send: bool,
    backend: MailBackend,
) -> None:
    try:
        with app.app_context():
            if prepare is not None:
                prepare()
            if not send:
                return
            backend(message)
        log.info("mail: sent %r", message["Subject"])
    except Exception:
        # The traceback names the error, never the body: the body holds the link.
        log.exception("mail: could not send %r", message["Subject"])
    finally:
        with _pending_lock:
            _pending.discard(threading.current_thread())
