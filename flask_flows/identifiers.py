"""What makes two usernames (or two email addresses) the same, and which ones to refuse.

People type names on different keyboards and phones: ``ＡＬＩＣＥ`` (fullwidth), ``josé``
composed or decomposed, ``oﬃce`` with a ligature, ``Ärger`` and ``ärger``. All of those
must be one account, at sign-up and at login alike, on SQLite as on PostgreSQL (whose
``lower()`` folds more than SQLite's, which folds only ASCII). So identifiers are compared
by their **key**: Unicode NFKC (width, compatibility characters), then case folding, then
NFKC again. PRECIS' UsernameCaseMapped profile (RFC 8265) is the model; it maps width
and case too but keeps NFC and lowercase, where NFKC and full case folding also make a
ligature its letters and ``Straße`` the same as ``STRASSE``. The key is stored in
its own indexed, unique column, so a lookup is one equality on an index however many
users there are.

Some names only *look* like another: ``alice`` with an invisible zero-width space, a
name reversed by a right-to-left override, ``alіce`` with a Cyrillic ``і``. Sign-up
refuses those (:func:`refusal`): invisible and bidirectional control characters, and
letters from more than one script in one name.
"""

from __future__ import annotations

import unicodedata

from .i18n import N_

#: Characters in a stored key (an email address's limit; NFKC can lengthen a name).
KEY_LENGTH = 254

#: Why a new identifier is refused (message ids, shown in the person's language).
MSG_TOO_LONG = N_("That is too long.")
MSG_INVISIBLE = N_(
    "Use only visible characters: this one contains invisible or control characters."
)
MSG_MIXED_SCRIPTS = N_(
    "Use letters from one alphabet: mixing them (like a Latin a with a Cyrillic і) makes"
    " names that look like others."
)

#: Unicode general categories nobody can see: format (zero-width, bidi controls, soft
#: hyphen), controls, surrogates, private use, unassigned.
_INVISIBLE = frozenset({"Cf", "Cc", "Cs", "Co", "Cn"})
#: Words of a character's Unicode name that give its script (enough for letters; others
#: are not letters and count as common to all scripts).
_SCRIPT_WORDS = frozenset(
    {
        "LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "HEBREW", "ARABIC", "DEVANAGARI",
        "BENGALI", "THAI", "GEORGIAN", "HANGUL", "HIRAGANA", "KATAKANA", "CJK", "ETHIOPIC",
        "CHEROKEE", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "GUJARATI", "GURMUKHI",
        "ORIYA", "SINHALA", "KHMER", "LAO", "TIBETAN", "MONGOLIAN", "COPTIC", "SYRIAC",
    }
)  # fmt: skip
#: Scripts written together in one language: Japanese mixes these three.
_TOGETHER = (frozenset({"CJK", "HIRAGANA", "KATAKANA"}),)


def key(value: str) -> str:
    """The form two identifiers are compared by: trimmed, NFKC, case-folded, NFKC."""
    folded = unicodedata.normalize("NFKC", value.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


def refusal(value: str) -> str | None:
    """Why ``value`` may not be a new username (or email address), or ``None``."""
    if any(unicodedata.category(ch) in _INVISIBLE for ch in value):
        return MSG_INVISIBLE
    if len(key(value)) > KEY_LENGTH:
        return MSG_TOO_LONG
    scripts = {script for ch in key(value) if ch.isalpha() and (script := _script(ch))}
    if len(scripts) > 1 and not any(scripts <= together for together in _TOGETHER):
        return MSG_MIXED_SCRIPTS
    return None


def _script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name (``None`` if not one we know)."""
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0]
    return first if first in _SCRIPT_WORDS else None
