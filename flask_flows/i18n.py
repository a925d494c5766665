"""Translations: the words a person reads, in their language, and an app's own wording.

flask-flows keeps its own catalogue, apart from the app's: the gettext domain
``flask_flows``, compiled to ``flask_flows/translations/<locale>/LC_MESSAGES/`` when the
package is built (``make messages`` extracts and updates the ``.po`` files). Its
locale is the app's where the app has one (Flask-Babel's locale selector), else the best
of the available locales for the request's ``Accept-Language``, else English; so an app
without Flask-Babel still serves German to a browser asking for ``de``.

Messages are English in the code, where they serve as their own ids (gettext's msgids):
they are marked with :func:`N_` where they are defined, and translated where a person
reads them (:func:`gettext`; ``_flows`` in templates). Tests, logs and signals keep
the English. ``FLOWS_MESSAGES`` rewords any message by that id, in every language or
per locale, without copying a template; ``FLOWS_TRANSLATION_DIRECTORIES`` adds
catalogues (another language, or an app's corrections) searched before the shipped
ones.
"""

from __future__ import annotations

import functools
import gettext as stdlib_gettext
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from markupsafe import Markup, escape

#: The gettext domain of flask-flows' messages (the app's own stay in its domain).
DOMAIN = "flask_flows"
#: Where the shipped catalogues are (``<locale>/LC_MESSAGES/flask_flows.mo``).
TRANSLATIONS = Path(__file__).parent / "translations"
#: The language the messages are written in: no catalogue needed.
SOURCE_LOCALE = "en"
#: Languages written right to left (by their language subtag).
RIGHT_TO_LEFT = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ps", "sd", "ug", "ur", "yi"}
)

_LOCALE_KEY = "_flows_locale"
#: A locale chosen for work done away from its request (a mail sent from a thread).
_FORCED: ContextVar[str | None] = ContextVar("flows_locale", default=None)


def N_(message: str) -> str:  # noqa: N802 (gettext's name for a no-op marker)
    """Mark ``message`` for extraction where it is defined; it is translated where it
    is shown. Returns it unchanged, so it stays the message's id."""
    return message


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the current locale (the app's rewording first), with
    ``{name}`` placeholders filled from ``variables``."""
    text = _lookup(message, None)
    return _format(text, message, variables) if variables else text


def ngettext(singular: str, plural: str, count: int, **variables: Any) -> str:
    """The singular or plural of a message for ``count`` (``{count}`` is filled in)."""
    text = _lookup(singular, (plural, count))
    source = singular if count == 1 else plural
    return _format(text, source, {"count": count, **variables})


def template_gettext(message: str, **variables: Any) -> Markup:
    """``_flows`` in templates: like :func:`gettext`, as markup whose text is escaped,
    translators' and apps' wording too, and whose ``variables`` are escaped unless they
    are markup already (``flows_strong(name)``)."""
    text = escape(_lookup(message, None))
    # Without values the text is shown as it is (braces and all: it may come from
    # elsewhere, an app's error description).
    return _format(text, escape(message), variables) if variables else text


def template_ngettext(singular: str, plural: str, count: int, **variables: Any) -> Markup:
    """``_nflows`` in templates: :func:`ngettext` as :func:`template_gettext` does it."""
    text = escape(_lookup(singular, (plural, count)))
    source = escape(singular if count == 1 else plural)
    return _format(text, source, {"count": count, **variables})


def strong(value: Any) -> Markup:
    """``value`` in bold, for a placeholder of a translated sentence."""
    return Markup("<strong>{}</strong>").format(value)


@contextmanager
def using_locale(locale: str) -> Iterator[None]:
    """Speak ``locale`` inside the block, whatever the request: for work done after or
    away from the request it serves (a mail rendered in a background thread takes the
    locale :func:`current_locale` gave in the request)."""
    token = _FORCED.set(locale)
    try:
        yield
    finally:
        _FORCED.reset(token)


def current_locale() -> str:
    """The locale of this request's pages and mails (``de``, ``pt_BR``), once worked
    out per request; English outside a request (unless :func:`using_locale`)."""
    forced = _FORCED.get()
    if forced is not None:
        return forced
    if not has_request_context():
        return SOURCE_LOCALE
    locale = g.get(_LOCALE_KEY)
    if locale is None:
        locale = _choose_locale(current_app)
        setattr(g, _LOCALE_KEY, locale)
    return str(locale)


def text_direction(locale: str | None = None) -> str:
    """``rtl`` for a right-to-left language, else ``ltr`` (the shell's ``dir``)."""
    language = (locale or current_locale()).replace("-", "_").split("_")[0].lower()
    return "rtl" if language in RIGHT_TO_LEFT else "ltr"


def html_lang(locale: str | None = None) -> str:
    """The locale as an HTML ``lang`` value (``pt-BR``)."""
    return (locale or current_locale()).replace("_", "-")


def available_locales(app: Flask) -> list[str]:
    """The locales with a catalogue (shipped, or in ``FLOWS_TRANSLATION_DIRECTORIES``),
    English first."""
    return list(_available(tuple(_directories(app))))


def init_app(app: Flask) -> None:
    """Make ``_flows``, ``_nflows``, ``flows_strong``, ``flows_lang`` and ``flows_dir``
    available to templates."""
    app.add_template_global(template_gettext, "_flows")
    app.add_template_global(template_ngettext, "_nflows")
    app.add_template_global(strong, "flows_strong")
    check_messages(app)
    app.context_processor(_template_context)


def _template_context() -> dict[str, str]:
    locale = current_locale()
    return {"flows_lang": html_lang(locale), "flows_dir": text_direction(locale)}


def check_messages(app: Flask) -> None:
    """Refuse an app's wording (``FLOWS_MESSAGES``) whose placeholders differ from its
    message's: ``{name}`` missing or unknown would fail on every page that shows it."""
    from .options import ConfigError

    for message, wording in (app.config.get("FLOWS_MESSAGES") or {}).items():
        texts = wording.values() if isinstance(wording, Mapping) else [wording]
        wanted = _placeholders(message)
        for text in texts:
            if not isinstance(text, str) or _placeholders(text) != wanted:
                names = ", ".join(sorted(wanted or ())) or "none"
                raise ConfigError(
                    f"FLOWS_MESSAGES[{message!r}]: {text!r} must be text with the same"
                    f" placeholders as the message ({names})"
                )


def _placeholders(text: str) -> set[str] | None:
    """The ``{name}`` placeholders of ``text``; ``None`` when braces do not parse."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return None


def _format(text: Any, source: Any, variables: Mapping[str, Any]) -> Any:
    """``text`` with ``variables`` filled in. A translation whose placeholders do not
    fit (a translator's slip in an app's catalogue) is logged and the English ``source``
    shown instead, rather than failing the page; in testing and debug it fails."""
    try:
        return text.format(**variables)
    except (KeyError, IndexError, ValueError):
        app = current_app if has_app_context() else None
        if app is None or app.testing or app.debug:
            raise
        app.logger.warning("flask-flows: translation %r does not fit its message %r", text, source)
        return source.format(**variables)


# -- lookup -------------------------------------------------------------------------------------


def _lookup(message: str, plural: tuple[str, int] | None) -> str:
    locale = current_locale()
    app = current_app if has_app_context() else None
    if app is not None:
        reworded = _reworded(app.config.get("FLOWS_MESSAGES") or {}, message, locale)
        if reworded is not None:
            return reworded
    directories = tuple(_directories(app)) if app is not None else (str(TRANSLATIONS),)
    # English needs no catalogue, unless an app brings one (its corrections).
    if locale == SOURCE_LOCALE and plural is None and len(directories) == 1:
        return message
    catalogue = _catalogue(directories, locale)
    if plural is not None:
        return catalogue.ngettext(message, plural[0], plural[1])
    return catalogue.gettext(message)


def _reworded(overrides: Mapping[str, Any], message: str, locale: str) -> str | None:
    """An app's wording of ``message`` for ``locale``: a string for every language, or a
    mapping of locales (``de``, ``pt_BR``; the language alone serves its regions)."""
    wording = overrides.get(message)
    if wording is None or isinstance(wording, str):
        return wording
    if isinstance(wording, Mapping):
        for key in (locale, locale.split("_")[0]):
            if key in wording:
                return str(wording[key])
    return None


@functools.lru_cache(maxsize=64)
def _catalogue(directories: tuple[str, ...], locale: str) -> stdlib_gettext.NullTranslations:
    """The catalogue of ``locale``: each directory's in turn, the app's before the
    shipped one (a message missing from one is looked up in the next)."""
    found: stdlib_gettext.NullTranslations = stdlib_gettext.NullTranslations()
    for directory in reversed(directories):
        translations = stdlib_gettext.translation(
            DOMAIN, localedir=directory, languages=[locale], fallback=True
        )
        translations.add_fallback(found)
        found = translations
    return found


def _directories(app: Flask) -> list[str]:
    extra = app.config.get("FLOWS_TRANSLATION_DIRECTORIES") or []
    if isinstance(extra, str):
        extra = [extra]
    return [*map(str, extra), str(TRANSLATIONS)]


@functools.lru_cache(maxsize=16)
def _available(directories: tuple[str, ...]) -> tuple[str, ...]:
    locales = {SOURCE_LOCALE}
    for directory in directories:
        for catalogue in Path(directory).glob(f"*/LC_MESSAGES/{DOMAIN}.mo"):
            locales.add(catalogue.parent.parent.name)
    return (SOURCE_LOCALE, *sorted(locales - {SOURCE_LOCALE}))


def _choose_locale(app: Flask) -> str:
    """The app's locale (Flask-Babel) if it has one we can serve (or its language),
    else the request's best ``Accept-Language`` among the available locales."""
    available = available_locales(app)
    if "babel" in app.extensions:
        from flask_babel import get_locale

        chosen = get_locale()
        if chosen is not None:
            for candidate in (str(chosen), chosen.language):
                if candidate in available:
                    return candidate
            return SOURCE_LOCALE
    # The browser's languages in its order of preference, each matched exactly, then by
    # its language alone (fr-CA is served French before an en;q=0.3 is served English).
    known = {locale.lower(): locale for locale in available}
    for value, _quality in request.accept_languages:
        tag = value.replace("-", "_").lower()
        for candidate in (tag, tag.split("_")[0]):
            if candidate in known:
                return known[candidate]
    return SOURCE_LOCALE
