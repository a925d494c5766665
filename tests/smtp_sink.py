"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives.

Tests point ``FLOWS_MAIL_SERVER``/``FLOWS_MAIL_PORT`` at it (see the ``mailbox`` and
``mail_config`` fixtures in conftest.py) and read the mail the app really sent over SMTP.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

# aiosmtpd logs every line of every message at DEBUG, links included: that is the test
# server talking, not the app, and would drown the app's own log in tests that read it.
logging.getLogger("mail.log").setLevel(logging.WARNING)

#: The resume link in a mail body.
LINK = re.compile(r"https?://[^\s\"'<>]+/flows/-/resume/[A-Za-z0-9_-]+/")


class Mailbox:
    """Starts an SMTP server on 127.0.0.1 at a free port and collects what it receives."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port(self.host)
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()

    @property
    def config(self) -> dict[str, Any]:
        """App config that sends mail here."""
        return {"FLOWS_MAIL_SERVER": self.host, "FLOWS_MAIL_PORT": self.port}

    def wait_for_message(self, count: int = 1, timeout: float = 5.0) -> EmailMessage:
        """The ``count``-th message received, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} message(s) within {timeout}s, got {len(self.messages)}"
                    )
                self._arrived.wait(left)
            return self.messages[count - 1]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"


def bodies(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML part of a multipart/alternative message."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None, "expected a text and an HTML part"
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


def link_in(message: EmailMessage) -> str:
    """The resume link of a mail (the same in both parts)."""
    text, html = bodies(message)
    match = LINK.search(text)
    assert match, f"no link in the mail:\n{text}"
    assert match.group(0) in html
    return match.group(0)


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (an SMTP server that is down)."""
    return _free_port(host)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
