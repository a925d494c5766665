"""The ``password`` policy: length, optional composition rules, zxcvbn, common and breached lists.

Defaults follow NIST SP 800-63B and OWASP ASVS 5: at least 8 characters (6.2.1), at least
64 accepted and nothing truncated (6.2.8, 6.2.9), no composition rules unless configured
(6.2.5), and a check against a local list of common passwords (6.2.4). The online
Have I Been Pwned range check (6.2.12) is opt-in: it sends only the first five hex
characters of the password's SHA-1, never the password, and a network failure lets the
password through with a logged warning rather than locking users out.

Lengths and comparisons use the NFKC form, as NIST asks verifiers to normalise: a
full-width ``ｐａｓｓｗｏｒｄ`` is as common as ``password``.

The policy reads the plaintext from ``request.context["prompt_data"][field_key]``, a
transient context the prompt stage builds for validation; the stored plan context only
ever holds the hash.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import unicodedata
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from threading import Lock
from typing import Any

from zxcvbn import zxcvbn

from ..i18n import N_, ngettext
from ..options import ConfigError, Option
from ..plan import PENDING_USER_IDENTIFIER, PROMPT_DATA
from .base import PolicyRequest, PolicyResult, PolicyType

logger = logging.getLogger("flask_flows.policies.password")

#: NIST 800-63B / ASVS 6.2.9: verifiers must accept at least 64 characters.
MIN_ACCEPTED_LENGTH = 64
#: zxcvbn is slow on long inputs and refuses more than this; longer passwords are scored by
#: their first 72 characters, which can only underestimate their strength.
ZXCVBN_MAX_LENGTH = 72
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt"

MSG_MISSING = N_("Enter a password.")
MSG_COMMON = N_("This password is too common. Choose another one.")
MSG_BREACHED = N_("This password has appeared in a data breach. Choose another one.")
MSG_WEAK = N_("This password is too easy to guess. Choose a longer or less predictable one.")

# zxcvbn keeps the user inputs of the running call in a module-level dictionary.
_zxcvbn_lock = Lock()


class PasswordPolicy(PolicyType):
    name = "password"
    options = {
        "field_key": Option(str, default="password", help="Key of the password in prompt_data."),
        "min_length": Option(int, default=8, minimum=1),
        "max_length": Option(int, default=1000, minimum=MIN_ACCEPTED_LENGTH),
        "min_uppercase": Option(int, default=0, minimum=0),
        "min_lowercase": Option(int, default=0, minimum=0),
        "min_digits": Option(int, default=0, minimum=0),
        "min_symbols": Option(int, default=0, minimum=0),
        "zxcvbn_min_score": Option(int, default=0, choices=(0, 1, 2, 3, 4), help="0 is off."),
        "check_common": Option(bool, default=True),
        "hibp": Option(bool, default=False, help="Ask the Pwned Passwords range API."),
        "hibp_allowed_count": Option(int, default=0, minimum=0),
    }

    def check_config(self, config: Mapping[str, Any], where: str) -> None:
        if config["min_length"] > config["max_length"]:
            raise ConfigError(
                f"{where}, field 'min_length': {config['min_length']} is above "
                f"max_length ({config['max_length']})"
            )
        # Characters each of a kind: more than max_length of them can never be typed.
        required = sum(
            config[name] for name in ("min_uppercase", "min_lowercase", "min_digits", "min_symbols")
        )
        if required > config["max_length"]:
            raise ConfigError(
                f"{where}: min_uppercase, min_lowercase, min_digits and min_symbols ask for"
                f" {required} characters, above max_length ({config['max_length']}), so no"
                " password could pass"
            )

    def evaluate(self, config: Mapping[str, Any], request: PolicyRequest) -> PolicyResult:
        field_key = config["field_key"]
        prompt_data = request.context.get(PROMPT_DATA) or {}
        raw = prompt_data.get(field_key)
        if not isinstance(raw, str) or not raw:
            return PolicyResult(False, (MSG_MISSING,), field=field_key)
        password = unicodedata.normalize("NFKC", raw)

        messages = _length_messages(password, config) + _composition_messages(password, config)
        if len(password) <= config["max_length"]:
            messages += _guessability_messages(password, config, request)
        # Last and only when all else passed: it is the one check that leaves the process.
        if (
            not messages
            and config["hibp"]
            and not request.preview
            and _breach_count(request, password) > config["hibp_allowed_count"]
        ):
            messages.append(MSG_BREACHED)
        if messages:
            return PolicyResult(False, tuple(messages), field=field_key)
        return PolicyResult(True, field=field_key)


def is_common(password: str, path: Path = COMMON_PASSWORDS_FILE) -> bool:
    """True when ``password`` (NFKC, case-insensitive) is on the list at ``path``."""
    return unicodedata.normalize("NFKC", password).casefold() in common_passwords(path)


@functools.cache
def common_passwords(path: Path) -> frozenset[str]:
    """The list at ``path``, read once per process; ``#`` lines are comments."""
    with path.open(encoding="utf-8") as lines:
        return frozenset(
            unicodedata.normalize("NFKC", line.strip()).casefold()
            for line in lines
            if line.strip() and not line.startswith("#")
        )


def _common_file(request: PolicyRequest) -> Path:
    configured = request.state.config.get("FLOWS_COMMON_PASSWORDS_FILE")
    return Path(configured) if configured else COMMON_PASSWORDS_FILE


def _length_messages(password: str, config: Mapping[str, Any]) -> list[str]:
    """Messages are translated as they are made (they hold numbers): in the request's
    language, English outside a request."""
    length = len(password)
    if length < config["min_length"]:
        return [
            ngettext(
                "Use at least {count} character.",
                "Use at least {count} characters.",
                config["min_length"],
            )
        ]
    if length > config["max_length"]:
        return [
            ngettext(
                "Use at most {count} character.",
                "Use at most {count} characters.",
                config["max_length"],
            )
        ]
    return []


def _composition_messages(password: str, config: Mapping[str, Any]) -> list[str]:
    messages = []
    needed = config["min_uppercase"]
    if sum(c.isupper() for c in password) < needed:
        messages.append(
            ngettext(
                "Use at least {count} uppercase letter.",
                "Use at least {count} uppercase letters.",
                needed,
            )
        )
    needed = config["min_lowercase"]
    if sum(c.islower() for c in password) < needed:
        messages.append(
            ngettext(
                "Use at least {count} lowercase letter.",
                "Use at least {count} lowercase letters.",
                needed,
            )
        )
    needed = config["min_digits"]
    if sum(c.isdigit() for c in password) < needed:
        messages.append(
            ngettext("Use at least {count} digit.", "Use at least {count} digits.", needed)
        )
    needed = config["min_symbols"]
    if sum(not c.isalnum() for c in password) < needed:
        messages.append(
            ngettext("Use at least {count} symbol.", "Use at least {count} symbols.", needed)
        )
    return messages


def _guessability_messages(
    password: str, config: Mapping[str, Any], request: PolicyRequest
) -> list[str]:
    if config["check_common"] and is_common(password, _common_file(request)):
        return [MSG_COMMON]
    minimum = config["zxcvbn_min_score"]
    if minimum and _zxcvbn_score(password, _user_inputs(request)) < minimum:
        return [MSG_WEAK]
    return []


def _user_inputs(request: PolicyRequest) -> list[str]:
    """Words zxcvbn should treat as easy to guess: who the user says they are."""
    prompt_data = request.context.get(PROMPT_DATA) or {}
    values = [
        prompt_data.get("username"),
        prompt_data.get("email"),
        request.context.get(PENDING_USER_IDENTIFIER),
    ]
    for user in (request.user, request.authenticated_user):
        values += [getattr(user, "username", None), getattr(user, "email", None)]
    inputs: list[str] = []
    for value in values:
        if isinstance(value, str) and value:
            inputs.append(value)
            if "@" in value:
                inputs.append(value.split("@", 1)[0])
    return inputs


def _zxcvbn_score(password: str, user_inputs: list[str]) -> int:
    with _zxcvbn_lock:
        result = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=user_inputs)
    return int(result["score"])


def _breach_count(request: PolicyRequest, password: str) -> int:
    """How often the range API has seen ``password``; 0 when it cannot be asked."""
    config = request.state.config
    digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    url = config["FLOWS_PWNED_PASSWORDS_URL"].rstrip("/") + "/" + prefix
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"FLOWS_PWNED_PASSWORDS_URL must be an http(s) URL, not {url!r}")
    # Padding makes every response about the same size, so its length says nothing either.
    range_request = urllib.request.Request(  # noqa: S310  (scheme checked above)
        url, headers={"Add-Padding": "true", "User-Agent": "flask-flows"}
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            range_request, timeout=config["FLOWS_PWNED_PASSWORDS_TIMEOUT"]
        ) as response:
            body = response.read().decode("ascii", "replace")
    except (OSError, http.client.HTTPException) as error:
        logger.warning("password: breached-password check unavailable, skipped (%s)", error)
        return 0
    for line in body.splitlines():
        candidate, _, count = line.strip().partition(":")
        if candidate.upper() == suffix:
            try:
                return int(count)
            except ValueError:
                return 0
    return 0
