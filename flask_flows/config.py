"""``FLOWS_*`` configuration keys and their defaults (set with ``setdefault`` in init_app)."""

from __future__ import annotations

from typing import Any

from .i18n import N_, gettext
from .models import Designation
from .options import ConfigError

DEFAULTS: dict[str, Any] = {
    # Where the blueprint is mounted.
    "FLOWS_URL_PREFIX": "/flows",
    # Where a finished flow goes when the plan has no validated `next`.
    "FLOWS_DEFAULT_REDIRECT": "/",
    # The flow /flows/-/default/<designation>/ (and /flows/-/login/, /-/logout/) opens,
    # per designation, e.g. {"authentication": "my-login"}; without one, or when the
    # visitor may not run it, the first flow of the designation by slug that they may.
    "FLOWS_DEFAULT_FLOWS": {},
    # Shown in the page shell, titles and mails. Defaults to the app's import name made
    # readable ("my_blog" -> "My blog"); a generic one ("app", "wsgi", ...) must be
    # replaced outside debug and testing, or every mail would come from "App".
    "FLOWS_BRAND_NAME": None,
    # The app's base template to render flow pages in (None: flask-flows' own shell),
    # the block of it that a flow page fills, and the block that holds the page title.
    "FLOWS_LAYOUT_TEMPLATE": None,
    "FLOWS_LAYOUT_BLOCK": "content",
    "FLOWS_LAYOUT_TITLE_BLOCK": "title",
    # Flash what a finished flow did ("You are signed in."): True, False, or None for
    # "when FLOWS_LAYOUT_TEMPLATE shows flashed messages"; and the category flashed with.
    "FLOWS_FLASH": None,
    "FLOWS_FLASH_CATEGORY": "message",
    # A plan older than this (seconds) is restarted with a message.
    "FLOWS_PLAN_MAX_AGE": 3600,
    # How long a cached plan lives (seconds); 0 turns the plan cache off.
    "FLOWS_PLAN_CACHE_TTL": 300,
    # How often (seconds) a process re-reads a cached flow's revision. Changes committed
    # in this process are seen at once; changes made by
    # other processes (another worker, `flask flows apply`) within this many seconds.
    # 0 checks on every request.
    "FLOWS_DEFINITION_CHECK_SECONDS": 5.0,
    # An empty plan (no stage applies) finishes the flow at once instead of failing.
    "FLOWS_ALLOW_EMPTY_FLOWS": True,
    # Seconds an expression (an expression policy, an option written as {expression:})
    # may run before it is stopped and counts as failed (flask_flows.expressions).
    "FLOWS_EXPRESSION_TIME_LIMIT": 0.1,
    # argon2id parameters; the defaults are argon2-cffi's (RFC 9106 low-memory profile).
    "FLOWS_ARGON2_TIME_COST": 3,
    "FLOWS_ARGON2_MEMORY_COST": 65536,
    "FLOWS_ARGON2_PARALLELISM": 4,
    # At most this many argon2 computations at once in a process (None: one per CPU);
    # a request waits FLOWS_ARGON2_WAIT seconds for a turn, then is asked to try again.
    "FLOWS_ARGON2_MAX_CONCURRENT": None,
    "FLOWS_ARGON2_WAIT": 1.0,
    # What a request to the flows may bring (Flask's MAX_CONTENT_LENGTH and MAX_FORM_PARTS
    # win when the app sets them): a stage form is far smaller.
    "FLOWS_MAX_CONTENT_LENGTH": 1024 * 1024,
    "FLOWS_MAX_FORM_FIELDS": 100,
    # Who may show flows pages in a frame: a CSP frame-ancestors source list ("'none'",
    # "'self'", "'self' https://portal.example"); None sends no framing headers (the app
    # sets its own). 'none' and 'self' also send X-Frame-Options for old browsers.
    "FLOWS_FRAME_ANCESTORS": "'none'",
    # Where pages load htmx from; None serves the copy bundled in the package.
    "FLOWS_HTMX_URL": None,
    # Every login ends this many seconds after it began, and after this many seconds
    # unused (ASVS 7.3.2, 7.3.1; NIST AAL1's 30 days). A user_login stage's shorter
    # session_duration still applies. None or 0 turns a limit off.
    "FLOWS_SESSION_MAX_AGE": 30 * 24 * 3600,
    "FLOWS_SESSION_IDLE_TIMEOUT": 7 * 24 * 3600,
    # Log a user out when their server-side session row is gone (logout elsewhere, expiry).
    "FLOWS_ENFORCE_SESSIONS": True,
    # Turn on foreign keys for the app's SQLite engines (SQLite leaves them off), so
    # ON DELETE CASCADE works there as it does on PostgreSQL.
    "FLOWS_SQLITE_FOREIGN_KEYS": True,
    # Point Flask-Login's login_view at the default authentication flow when it has none.
    "FLOWS_SET_LOGIN_VIEW": True,
    # Outgoing mail (the email stage). SMTP server and credentials; USE_TLS is STARTTLS on
    # a plain connection, USE_SSL a TLS connection from the start (port 465).
    # None: no SMTP server (see flask_flows.mail_backends for what is used instead).
    "FLOWS_MAIL_SERVER": None,
    "FLOWS_MAIL_PORT": 25,
    "FLOWS_MAIL_USE_TLS": False,
    "FLOWS_MAIL_USE_SSL": False,
    "FLOWS_MAIL_USERNAME": None,
    "FLOWS_MAIL_PASSWORD": None,
    "FLOWS_MAIL_DEFAULT_SENDER": "no-reply@localhost",
    # Seconds to wait for the SMTP server.
    "FLOWS_MAIL_TIMEOUT": 10,
    # None sends through SMTP; else a callable, or "pkg.module:function", that takes an
    # email.message.EmailMessage (for apps that already send mail another way).
    "FLOWS_MAIL_BACKEND": None,
    # Send from a background thread, so a response takes as long whether or not a mail
    # went out (recovery must not reveal which accounts exist). Errors are logged.
    "FLOWS_MAIL_SEND_IN_BACKGROUND": True,
    # "count/seconds": at most this many links per address in that window.
    "FLOWS_MAIL_RATE_LIMIT": "5/3600",
    # Scheme and host for links in mails, e.g. "https://example.com". None takes them from
    # the request; set it (or SERVER_NAME / TRUSTED_HOSTS) in production so a forged Host
    # header cannot make a recovery mail link to another site.
    "FLOWS_MAIL_BASE_URL": None,
    # Password policy: the common-password list (None: the one shipped in the package).
    "FLOWS_COMMON_PASSWORDS_FILE": None,
    # Password policy `hibp`: the Pwned Passwords range API and how long to wait (seconds).
    "FLOWS_PWNED_PASSWORDS_URL": "https://api.pwnedpasswords.com/range/",
    "FLOWS_PWNED_PASSWORDS_TIMEOUT": 3.0,
    # Reputation: seconds after its last change that a score (and a pair's run of
    # failures) counts as 0 again.
    "FLOWS_REPUTATION_EXPIRY": 86400,
    # Reputation: the highest score successful logins can build up.
    "FLOWS_REPUTATION_MAX_SCORE": 5,
    # Guessing (passwords, TOTP and recovery codes), counted on the server per account and
    # client IP: this many failures in a row from one IP are free; then the next guess
    # from it waits FIRST_DELAY seconds, doubling per failure up to MAX_DELAY.
    "FLOWS_THROTTLE_FREE_FAILURES": 5,
    "FLOWS_THROTTLE_FIRST_DELAY": 60,
    "FLOWS_THROTTLE_MAX_DELAY": 3600,
    # From IPs the account has not logged in from, all together: BURST failures at once,
    # then HOURLY per hour, so at most BURST + HOURLY in any hour (ASVS 6.3.1: <= 100).
    "FLOWS_THROTTLE_ACCOUNT_BURST": 60,
    "FLOWS_THROTTLE_ACCOUNT_HOURLY": 40,
    # A login from an IP makes it familiar to that account for this many days: guesses
    # from it are not held back by failures from elsewhere.
    "FLOWS_THROTTLE_FAMILIAR_DAYS": 30,
    # Passkeys (WebAuthn): the site's domain they are made for (the relying party ID,
    # e.g. "example.com"; None: the host of SERVER_NAME, else of FLOWS_MAIL_BASE_URL) and
    # the origins pages run on (e.g. ["https://example.com"]; None: that address, on
    # https but at localhost, else https on the RP ID). With none of these, passkeys work
    # only in debug, in testing and with TRUSTED_HOSTS (on the request's host), and an
    # app offering them will not start.
    "FLOWS_WEBAUTHN_RP_ID": None,
    "FLOWS_WEBAUTHN_ORIGINS": None,
    # Words: an app's own wording of any message, by its English text (its id), for
    # every language or per locale: {"Invalid username or password.": "Wrong login."}
    # or {"…": {"de": "…", "en": "…"}}. And directories of more catalogues
    # (<locale>/LC_MESSAGES/flask_flows.mo), searched before the shipped ones.
    "FLOWS_MESSAGES": {},
    "FLOWS_TRANSLATION_DIRECTORIES": [],
    # Whom people should contact when the site cannot do something for them itself (an
    # account that other records still refer to), e.g. "support@example.com".
    "FLOWS_SUPPORT_CONTACT": None,
    # Scheme, host and path prefix of links made outside a request (`flask flows invite`);
    # None uses SERVER_NAME, else http://localhost:5000.
    "FLOWS_EXTERNAL_URL": None,
}


#: Import names that say nothing about the site: no brand can be made of them.
GENERIC_NAMES = frozenset(
    {
        "app",
        "application",
        "main",
        "wsgi",
        "asgi",
        "server",
        "run",
        "web",
        "api",
        "site",
        "src",
        "factory",
        "create_app",
        "manage",
        "index",
        "flask_app",
    }
)


def apply_defaults(config: dict[str, Any], app_name: str) -> None:
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    if not config["FLOWS_BRAND_NAME"]:
        config["FLOWS_BRAND_NAME"] = brand_from(app_name)
    _check_default_flows(config["FLOWS_DEFAULT_FLOWS"])


def brand_from(app_name: str) -> str:
    """A readable name from an import name: ``my_blog.app`` -> ``My blog``."""
    words = app_name.split(".")[0].strip("_").replace("_", " ").replace("-", " ").strip()
    return (words[:1].upper() + words[1:]) if words else "This site"


def generic_brand(config: dict[str, Any], app_name: str) -> bool:
    """Whether the brand is the default made of a name that says nothing ("App")."""
    base = app_name.split(".")[0].strip("_").lower()
    return base in GENERIC_NAMES and config["FLOWS_BRAND_NAME"] == brand_from(app_name)


def _check_default_flows(chosen: Any) -> None:
    designations = [d.value for d in Designation]
    if not isinstance(chosen, dict):
        raise ConfigError("FLOWS_DEFAULT_FLOWS: expected a dict of designation -> flow slug")
    for designation, slug in chosen.items():
        if designation not in designations:
            raise ConfigError(
                f"FLOWS_DEFAULT_FLOWS: {designation!r} is not a designation"
                f" ({', '.join(designations)})"
            )
        if not isinstance(slug, str) or not slug:
            raise ConfigError(f"FLOWS_DEFAULT_FLOWS[{designation!r}]: expected a flow slug")


#: Whom a person is told to contact when ``FLOWS_SUPPORT_CONTACT`` names no one.
DEFAULT_CONTACT = N_("the site administrators")


def support_contact(config: Any) -> str:
    """Whom a person is told to contact (``FLOWS_SUPPORT_CONTACT``, or a plain default in
    the page's language)."""
    return str(config["FLOWS_SUPPORT_CONTACT"] or gettext(DEFAULT_CONTACT))
