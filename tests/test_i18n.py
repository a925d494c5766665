"""Translations: the language of a request's pages (Accept-Language, or the app's
Flask-Babel), an app's own wording by message id, its own catalogues, right-to-left,
and shipped catalogues that are complete and in step with the code."""

from __future__ import annotations

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


# -- configured texts -----------------------------------------------------------------------------


def test_the_shipped_flows_configured_texts_read_in_the_pages_language(
    app: Flask, defaults: None
) -> None:
    """The shipped flows' titles, labels and help are in the catalogue: a German visitor
    reads them in German, an English one as the blueprint wrote them."""
    german = FlowBrowser(app.test_client())
    german.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    assert ">Willkommen</h1>" in german.start("default-authentication-flow").text
    page = german.start("default-enrollment-flow").text
    assert "Mindestens 8 Zeichen. Eine Passphrase aus einigen Wörtern eignet sich gut." in page
    assert ">Konto erstellen</h1>" in page and "Ihre Angaben" in page
    english = FlowBrowser(app.test_client()).start("default-enrollment-flow").text
    assert "At least 8 characters. A passphrase of a few words works well." in english


#: An app's own flow, with a text in each place a blueprint has one.
CLUB = """\
version: 1
stages:
  - name: club-prompt
    type: prompt
    config:
      title: Tell us about you
      submit_label: Join
      fields:
        - field_key: about
          type: static
          label: Before you join
          initial_value: Members meet on Fridays.
        - field_key: colour
          type: radio
          label: Favourite colour
          help_text: Pick one.
          choices:
            - {value: red, label: Red}
            - blue
        - field_key: motto
          type: text
          label: Motto
          placeholder: Carpe diem
          initial_value: prompt_data.motto
policies:
  - name: club-members
    type: group_membership
    config: {group: club, message: Members only.}
flows:
  - slug: club
    name: Club sign-up
    title: Join the club
    designation: enrollment
    bindings:
      - {stage: club-prompt, order: 10}
"""
CLUB_TEXTS = {
    "Tell us about you": "Erzählen Sie von sich",
    "Join": "Beitreten",
    "Before you join": "Bevor Sie beitreten",
    "Members meet on Fridays.": "Die Mitglieder treffen sich freitags.",
    "Favourite colour": "Lieblingsfarbe",
    "Pick one.": "Wählen Sie eine.",
    "Red": "Rot",
    "blue": "blau",
    "Motto": "Wahlspruch",
    "Carpe diem": "Nutze den Tag",
    "Members only.": "Nur für Mitglieder.",
    "Join the club": "Dem Club beitreten",
}


def test_an_apps_blueprint_is_extracted_and_its_flow_translated(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """`[flask_flows: flows/*.yaml]` in an app's babel.cfg extracts every text of its
    blueprints (not references, keys or names of things), each with where it is shown;
    with the app's catalogue, its flow reads in German."""
    from babel.messages.extract import extract_from_file

    from flask_flows.blueprints import apply_files

    blueprint = tmp_path / "club.yaml"
    blueprint.write_text(CLUB)
    found = {
        message: comments for _, message, comments, _ in extract_from_file("flask_flows", blueprint)
    }
    assert set(found) == set(CLUB_TEXTS)
    assert found["Favourite colour"] == ["stage club-prompt, field colour: label"]
    assert found["Join the club"] == ["flow club: title"]
    assert found["Members only."] == ["policy club-members: message"]

    _compile(tmp_path / "catalogues", "de", CLUB_TEXTS)
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path / "catalogues")])
    with app.app_context():
        apply_files(app.extensions["flows"], [blueprint])
    browser = FlowBrowser(app.test_client())
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    page = browser.start("club").text
    for translated in set(CLUB_TEXTS.values()) - {"Nur für Mitglieder."}:
        assert translated in page, translated
    assert "Favourite colour" not in page and "Carpe diem" not in page


def test_configured_consent_permissions_read_in_the_pages_language(
    make_app: MakeApp, make_user: Callable[..., User], tmp_path: Path
) -> None:
    """A consent stage's permissions are texts (Option(text=True)): the page lists them
    through the catalogue."""
    _compile(tmp_path, "de", {"Read your photos": "Ihre Fotos lesen"})
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path)])
    make_user("alice", password=PASSWORD)
    with app.app_context():
        from flask_flows.models import FlowStageBinding, Stage

        flow = Flow(slug="photos", name="photos", designation="authentication")
        stages = [
            Stage(name="photos-id", type="identification"),
            Stage(name="photos-pw", type="password"),
            Stage(
                name="photos-consent", type="consent", config={"permissions": ["Read your photos"]}
            ),
        ]
        for order, stage in enumerate(stages):
            flow.bindings.append(FlowStageBinding(stage=stage, order=order))
        app.extensions["flows"].db.session.add(flow)
        app.extensions["flows"].db.session.commit()
    browser = FlowBrowser(app.test_client())
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    browser.start("photos")
    browser.step("photos", uid_field="alice")
    page = browser.step("photos", password=PASSWORD).text
    assert browser.stage_type == "consent"
    assert "<li>Ihre Fotos lesen</li>" in page


def test_a_rewording_with_other_placeholders_is_refused_at_start(make_app: MakeApp) -> None:
    """`{name}` missing or misspelt in FLOWS_MESSAGES would fail every page showing it."""
    from flask_flows import ConfigError

    with pytest.raises(ConfigError, match=r"FLOWS_MESSAGES\['Stay signed in as \{name\}'\]"):
        make_app(FLOWS_MESSAGES={"Stay signed in as {name}": {"de": "Bleib als {user}"}})


def test_a_translation_that_does_not_fit_shows_the_english(
    make_app: MakeApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A translator's slip in an app's catalogue (a placeholder renamed) is logged and the
    English shown, not a 500; in testing it fails, as errors surface there."""
    _compile(tmp_path, "de", {"Stay signed in as {name}": "Angemeldet bleiben als {nom}"})
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path)])
    from flask_flows.i18n import gettext, template_gettext

    with app.test_request_context(headers={"Accept-Language": "de"}):
        with pytest.raises(KeyError):
            gettext("Stay signed in as {name}", name="alice")
        app.testing = False
        assert gettext("Stay signed in as {name}", name="alice") == "Stay signed in as alice"
        assert template_gettext("Stay signed in as {name}", name="<b>") == (
            "Stay signed in as &lt;b&gt;"
        )
    assert "does not fit its message" in caplog.text


def test_an_english_catalogue_corrects_the_english(
    make_app: MakeApp, login_flow: Flow, tmp_path: Path
) -> None:
    """An app's `en` catalogue rewords flask-flows' English, as a German one its German."""
    _compile(tmp_path, "en", {"Sign in": "Log on"})
    app, _ = make_app(FLOWS_TRANSLATION_DIRECTORIES=[str(tmp_path)])
    page = FlowBrowser(app.test_client()).start("login").text
    assert ">Log on</" in page
