"""A readable label for a User-Agent header, for lists of a user's sessions."""

from __future__ import annotations

from .i18n import gettext


def describe_user_agent(user_agent: str) -> str:
    """A short, readable "Browser on System" from a User-Agent header, in the request's
    language (the names of browsers and systems are the same in every language).

    Werkzeug no longer parses user agents and a full parser is a heavy dependency for a
    label; the order of the checks matters because browsers mention their ancestors
    (Edge says Chrome and Safari, Chrome says Safari, Android says Linux).
    """
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return gettext("{browser} on {system}", browser=browser, system=system)
    if browser:
        return browser
    if system:
        return gettext("Browser on {system}", system=system)
    return gettext("Unknown browser")


_BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)
