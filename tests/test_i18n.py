"""Translations: the language of a request's pages (Accept-Language, or the app's
Flask-Babel), an app's own wording by message id, its own catalogues, right-to-left,
and shipped catalogues that are complete and in step with the code."""

from __future__ import annotations

import html as html_module
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from browsing import FlowBrowser
from factory import MakeApp, User
from flask import Flask
from flask_babel import Babel

from flask_flows import Flow
from flask_flows.i18n import TRANSLATIONS
from flask_flows.stages.password import WRONG_CREDENTIALS

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("de", "es", "fr")
#: The sign-in page's heading, in each shipped language and in English.
SIGN_IN = {"en": "Sign in", "de": "Anmelden", "es": "Iniciar sesión", "fr": "Se connecter"}
_HTML = re.compile(r'<html lang="([^"]+)" dir="([^"]+)">')


@pytest.fixture
def login_page(login_flow: Flow, make_user: Callable[..., User]) -> Callable[..., Any]:
    """``login_page(app, accept_language)``: a browser on the login flow's first page."""
    make_user("alice", password=PASSWORD)

    def open_page(app: Flask, accept_language: str | None = None) -> FlowBrowser:
        browser = FlowBrowser(app.test_client())
        if accept_language:
            browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
        browser.start("login")
        return browser

    return open_page


def html_attributes(browser: FlowBrowser) -> tuple[str, str]:
    assert browser.last is not None
    found = _HTML.search(browser.last.text)
    assert found, "no <html lang dir> on the page"
    return found.group(1), found.group(2)


# -- the language of a request ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "locale"),
    [
        (None, "en"),
        ("de", "de"),
        ("de-AT,de;q=0.9,en;q=0.5", "de"),
        ("es-MX", "es"),
        ("fr-CA,en;q=0.3", "fr"),
        ("ja,en;q=0.1", "en"),
        ("ja", "en"),
    ],
)
def test_the_browsers_language_among_the_shipped_ones(
    app: Flask, login_page: Callable[..., FlowBrowser], accept_language: str | None, locale: str
) -> None:
    """Without Flask-Babel the request's Accept-Language picks a shipped locale."""
    browser = login_page(app, accept_language)
    assert html_attributes(browser) == (locale, "ltr")
    assert f">{SIGN_IN[locale]}</" in browser.last.text  # type: ignore[union-attr]


def test_a_german_login_speaks_german_from_labels_to_errors(
    app: Flask, login_page: Callable[..., FlowBrowser]
) -> None:
    browser = login_page(app, "de")
    page = browser.last.text  # type: ignore[union-attr]
    assert "Benutzername oder E-Mail-Adresse" in page
    assert "Abbrechen" in page
    page = browser.step("login", uid_field="").text
    assert "Geben Sie Ihren Benutzernamen oder Ihre E-Mail-Adresse ein." in page
    assert "<title>Fehler: " in page
    browser.step("login", uid_field="alice")
    page = browser.step("login", password="not it").text
    assert "Benutzername oder Passwort ist ungültig." in page
    assert WRONG_CREDENTIALS not in page
    assert "Passwort anzeigen" in page  # the Show button's name
    browser.step("login", password=PASSWORD)
    assert browser.whoami() == "home: alice"


@pytest.mark.parametrize(("chosen", "locale"), [("es", "es"), ("fr_CA", "fr"), ("ja", "en")])
def test_an_app_with_flask_babel_decides(
    make_app: MakeApp,
    login_flow: Flow,
    make_user: Callable[..., User],
    chosen: str,
    locale: str,
) -> None:
    """The app's locale selector wins over the browser's Accept-Language; a locale we do
    not ship (nor its language) is English."""
    app, _ = make_app()
    Babel(app, locale_selector=lambda: chosen)
    make_user("alice", password=PASSWORD)
    browser = FlowBrowser(app.test_client())
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    browser.start("login")
    assert html_attributes(browser)[0] == locale
    assert f">{SIGN_IN[locale]}</" in browser.last.text  # type: ignore[union-attr]


# -- an app's own words -------------------------------------------------------------------------


def test_an_app_rewords_a_message_by_config_alone(
    make_app: MakeApp, login_flow: Flow, make_user: Callable[..., User]
) -> None:
    """docs/translations.md's FLOWS_MESSAGES, run as written: one wording for every
    language, or one per locale (the others keep the catalogue's)."""
    guide = (ROOT / "docs" / "translations.md").read_text()
    example = guide.split("## Rewording a message", 1)[1].split("```python\n", 1)[1]
    settings: dict[str, Any] = {}
    exec(example.split("```", 1)[0], settings)  # noqa: S102 - the guide's example
    assert WRONG_CREDENTIALS in settings["FLOWS_MESSAGES"]
    app, _ = make_app(FLOWS_MESSAGES=settings["FLOWS_MESSAGES"])
    make_user("alice", password=PASSWORD)
    for language, wording, heading in (
        ("en", "That did not work. Check your name and password.", "Sign in"),
        ("de", "That did not work. Check your name and password.", "Einloggen"),
        ("fr", "That did not work. Check your name and password.", "Se connecter"),
    ):
        browser = FlowBrowser(app.test_client())
        browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        assert f">{heading}</" in browser.start("login").text
        browser.step("login", uid_field="alice")
        assert wording in browser.step("login", password="not it").text


def _compile(directory: Path, locale: str, entries: dict[str, str]) -> None:
    lines = [
        'msgid ""',
        'msgstr "Content-Type: text/plain; charset=utf-8\\n"',
        "",
    ]
    for source, translated in entries.items():
        lines += [f'msgid "{source}"', f'msgstr "{translated}"', ""]
    catalogue = read_po(iter(line + "\n" for line in lines), locale=locale)
    target = directory / locale / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / "flask_flows.mo").open("wb") as mo:
        write_mo(mo, catalogue)


def test_an_app_adds_a_language_and_corrects_a_shipped_one(
    make_app: MakeApp, login_flow: Flow, make_user: Callable[..., User], tmp_path: Path
) -> None:
    """FLOWS_TRANSLATION_DIRECTORIES: a language flask-flows does not ship, and an app's
    own word for one German message (the rest of German still comes from the package);
    right-to-left languages turn the page around; a catalogue's text is escaped."""
    _compile(tmp_path, "nl", {"Sign in": "Inloggen"})
    _compile(tmp_path, "de", {"Sign in": "Einloggen"})
    _compile(tmp_path, "he", {"Sign in": "<b>התחברות</b>"})
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path)])
    make_user("alice", password=PASSWORD)

    def page(language: str) -> FlowBrowser:
        browser = FlowBrowser(app.test_client())
        browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        browser.start("login")
        return browser

    dutch = page("nl")
    assert html_attributes(dutch) == ("nl", "ltr")
    assert ">Inloggen</" in dutch.last.text  # type: ignore[union-attr]
    german = page("de").last.text  # type: ignore[union-attr]
    assert ">Einloggen</" in german and "Benutzername oder E-Mail-Adresse" in german
    hebrew = page("he")
    assert html_attributes(hebrew) == ("he", "rtl")
    assert "&lt;b&gt;התחברות&lt;/b&gt;" in hebrew.last.text  # type: ignore[union-attr]


def test_a_name_in_a_sentence_is_escaped(
    app: Flask, make_flow: Callable[..., Flow], make_user: Callable[..., User]
) -> None:
    make_flow("login", "identification", "password", "user_login")
    make_user("<i>eve</i>", password=PASSWORD, email="eve@example.com")
    browser = FlowBrowser(app.test_client())
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    browser.start("login")
    page = browser.step("login", uid_field="<i>eve</i>").text
    assert "Anmeldung als <strong>&lt;i&gt;eve&lt;/i&gt;</strong>" in page


# -- the catalogues -----------------------------------------------------------------------------


def _catalogue(path: Path, locale: str | None = None) -> Any:
    with path.open("rb") as po:
        return read_po(po, locale=locale)


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("locale", SHIPPED)
def test_each_shipped_catalogue_is_complete_and_keeps_the_placeholders(locale: str) -> None:
    template = _catalogue(TRANSLATIONS / "flask_flows.pot")
    catalogue = _catalogue(TRANSLATIONS / locale / "LC_MESSAGES" / "flask_flows.po", locale)
    assert not catalogue.fuzzy
    expected = {message.id for message in template if message.id}
    translated = {message.id: message for message in catalogue if message.id}
    assert set(translated) == expected
    for source, message in translated.items():
        # A plural entry has its English forms and a translation per plural form.
        sources = source if isinstance(source, tuple) else (source,)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(forms), f"{locale}: {source!r} is not translated"
        assert not message.fuzzy, f"{locale}: {source!r} is fuzzy"
        english = set().union(*map(_placeholders, sources))
        said = [_placeholders(form) for form in forms]
        assert all(names <= english for names in said), (locale, source)
        assert set().union(*said) == english, (locale, source)


def test_the_message_template_is_in_step_with_the_code(tmp_path: Path) -> None:
    """Every marked message of the package and its templates is in the catalogue
    template (`make messages` puts it there); none that no longer exists stays."""
    extracted = tmp_path / "flask_flows.pot"
    subprocess.run(  # noqa: S603 - our own command line
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_flows",
            "-k",
            "_nflows:1,2",
            "--no-location",
            "-o",
            str(extracted),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    current = {message.id for message in _catalogue(extracted) if message.id}
    shipped = {message.id for message in _catalogue(TRANSLATIONS / "flask_flows.pot") if message.id}
    assert current == shipped, "run `make messages` and translate what it adds"


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


def _configured_texts() -> set[str]:
    """Every text the shipped flows' blueprints set (titles, labels, help): shown as
    configured for now (issue 16 leaves them for a later step)."""
    import yaml

    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.add(value)

    for blueprint in (ROOT / "flask_flows" / "blueprints" / "default").glob("*.yaml"):
        walk(yaml.safe_load(blueprint.read_text()))
    return found


def _untranslated(page: str, known: set[str]) -> list[str]:
    """Words a person reads on ``page`` outside the pseudo-locale's marks, leaving out
    ``known`` texts (data, configured texts)."""
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
    outside the marks: a text added without _flows or N_ fails here."""
    from flask_flows.blueprints import install_default_flows

    _pseudo_catalogue(tmp_path)
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path)])
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    make_user("alice", password=PASSWORD)
    known = _configured_texts() | {"Test App", "alice", "alice@example.com", "UTC", "SHA1"}
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
