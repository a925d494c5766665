"""The pseudo-locale test: every message of the catalogue marked ‹…›, pages and mails
show no English outside the marks. It keeps a text added without ``_flows``/``N_`` (or
a configured text missing from the catalogue) from escaping translation."""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from browsing import FlowBrowser
from factory import MakeApp, User

from flask_flows.i18n import TRANSLATIONS

PASSWORD = "correct horse battery"


def _catalogue(path: Path) -> Any:
    with path.open("rb") as po:
        return read_po(po)


# -- nothing escapes the catalogue ---------------------------------------------------------------

#: Marks around every message of the pseudo-locale: text outside them was not translated.
_OPEN, _CLOSE = "\u2039", "\u203a"
#: Markup, and elements whose content is data, not words: scripts, styles, the QR code,
#: codes (a TOTP secret, recovery codes).
_TAGS = re.compile(
    r"<script.*?</script>|<style.*?</style>|<svg.*?</svg>|<code.*?</code>|<[^>]+>", re.DOTALL
)
_MARKED = re.compile(f"{_OPEN}[^{_OPEN}{_CLOSE}]*{_CLOSE}")
_READ_ATTRIBUTES = re.compile(r'\b(?:aria-label|title|placeholder|alt)="([^"]*)"')


def _pseudo_catalogue(directory: Path) -> None:
    """Every message of the template as ‹message› (placeholders kept), as locale eo."""
    template = _catalogue(TRANSLATIONS / "flask_flows.pot")
    for message in template:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            message.string = tuple(f"{_OPEN}{form}{_CLOSE}" for form in message.id)
        else:
            message.string = f"{_OPEN}{message.id}{_CLOSE}"
    target = directory / "eo" / "LC_MESSAGES"
    target.mkdir(parents=True)
    template.locale = "eo"
    with (target / "flask_flows.mo").open("wb") as mo:
        write_mo(mo, template)


def _untranslated(page: str, known: set[str]) -> list[str]:
    """Words a person reads on ``page`` outside the pseudo-locale's marks, leaving out
    ``known`` texts (data: names, addresses)."""
    readable = " ".join([_TAGS.sub(" ", page), *_READ_ATTRIBUTES.findall(page)])
    readable = html_module.unescape(readable)
    while _MARKED.search(readable):  # innermost first: a message may hold another
        readable = _MARKED.sub(" ", readable)
    for text in sorted(known, key=len, reverse=True):
        readable = readable.replace(text, " ")
    return re.findall(r"[A-Za-z][A-Za-z'’]+", readable)


def test_no_text_of_a_page_escapes_the_catalogue(
    make_app: MakeApp, make_user: Callable[..., User], tmp_path: Path
) -> None:
    """In a pseudo-locale that marks every message, the login, its error, the sign-up,
    recovery, every setup page, the settings page and an error page show no English
    outside the marks (the shipped flows' configured texts included): a text added
    without _flows or N_ fails here."""
    from flask_flows.blueprints import install_default_flows

    _pseudo_catalogue(tmp_path)
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path)])
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    make_user("alice", password=PASSWORD)
    known = {"Test App", "alice", "alice@example.com", "UTC", "SHA1"}
    anonymous = FlowBrowser(app.test_client())
    anonymous.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "eo"
    pages: dict[str, str] = {}
    pages["login"] = anonymous.start("default-authentication-flow").text
    pages["login error"] = anonymous.step(uid_field="alice", password="not it").text
    pages["sign-up"] = anonymous.start("default-enrollment-flow").text
    pages["recovery"] = anonymous.start("default-recovery-flow").text
    pages["not found"] = anonymous.get("/flows/no-such-flow/").text
    me = FlowBrowser(app.test_client())
    me.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "eo"
    me.start("default-authentication-flow")
    me.step(uid_field="alice", password=PASSWORD)
    pages["settings"] = me.get("/flows/-/settings/").text
    for slug in (
        "default-authenticator-totp-setup",
        "default-authenticator-static-setup",
        "default-authenticator-webauthn-setup",
    ):
        me.start(slug)
        pages[slug] = me.step(password=PASSWORD).text
    leaks = {name: words for name, page in pages.items() if (words := _untranslated(page, known))}
    assert leaks == {}
