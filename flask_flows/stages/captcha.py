"""Captcha: a challenge widget in the page, checked server-side against its provider.

Cloudflare Turnstile, hCaptcha and reCAPTCHA share one shape: the widget (loaded from
``js_url``, needing JavaScript by nature) puts a response token in the form under
``response_field``; the server POSTs ``secret``, ``response`` and ``remoteip`` to the
provider's ``verify_url`` and gets ``{"success": bool, "score"?: float, "error-codes"?:
[...]}`` back. Only that answer decides. A provider that cannot be reached, is slow or
answers nonsense fails the check with a message asking to try again (closed, never a 500).
Bind it behind a reputation policy to slow down guessing without bothering everyone.

The widget speaks the page's language: Turnstile reads the widget's ``data-language``,
hCaptcha and reCAPTCHA the script's ``hl`` parameter (added unless ``js_url`` has one).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..i18n import N_, html_lang
from ..options import ConfigError, Option
from .base import WORDING, StageForm, StageResult, StageRun, StageType, invalid, ok

MSG_MISSING = N_("Please complete the challenge before continuing.")
MSG_FAILED = N_("The challenge was not passed. Please try again.")
MSG_UNAVAILABLE = N_("Could not check the challenge, please try again.")

#: Verify answers are a few hundred bytes; anything far larger is not one.
_MAX_ANSWER = 64 * 1024
#: Response tokens are a few kilobytes at most (Turnstile documents 2048 characters).
_MAX_RESPONSE = 8 * 1024


class CaptchaStage(StageType):
    name = "captcha"
    revisitable = True
    template = "flows/stages/captcha.html"
    full_page = True
    options = {
        **WORDING,
        "public_key": Option(str, help="The site key, shown to the browser."),
        "private_key": Option(str, help="The secret key, sent only to verify_url."),
        "js_url": Option(str, default="https://challenges.cloudflare.com/turnstile/v0/api.js"),
        "verify_url": Option(
            str, default="https://challenges.cloudflare.com/turnstile/v0/siteverify"
        ),
        "score_min_threshold": Option((float, int), default=0.5),
        "score_max_threshold": Option((float, int), default=1.0),
        "response_field": Option(
            str,
            default="cf-turnstile-response",
            help="h-captcha-response for hCaptcha, g-recaptcha-response for reCAPTCHA.",
        ),
        "widget_class": Option(
            str, default="cf-turnstile", help="h-captcha for hCaptcha, g-recaptcha for reCAPTCHA."
        ),
        "timeout": Option((float, int), default=5, help="Seconds to wait for verify_url."),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        for name in ("js_url", "verify_url"):
            if urllib.parse.urlsplit(config[name]).scheme not in ("http", "https"):
                raise ConfigError(f"{where}, field {name!r}: must be an http(s) URL")
        if config["score_min_threshold"] > config["score_max_threshold"]:
            raise ConfigError(
                f"{where}, field 'score_min_threshold': must not exceed score_max_threshold"
            )
        if config["timeout"] <= 0:
            raise ConfigError(f"{where}, field 'timeout': must be more than 0 seconds")

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        language = html_lang()
        return {
            "public_key": run.config["public_key"],
            "widget_class": run.config["widget_class"],
            "widget_language": language,
            "script_url": _with_language(run.config["js_url"], language),
        }

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        response = run.request.form.get(run.config["response_field"], "").strip()
        if not response or len(response) > _MAX_RESPONSE:
            return invalid(MSG_MISSING)
        answer = self._verify(run, response)
        if answer is None:
            return invalid(MSG_UNAVAILABLE)
        if answer.get("success") is not True:
            run.state.log.info(
                "captcha: not passed in flow %s (%s)",
                run.flow.slug,
                ", ".join(str(code) for code in answer.get("error-codes") or []) or "no reason",
            )
            return invalid(MSG_FAILED)
        score = answer.get("score")
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, int | float):
                return invalid(MSG_UNAVAILABLE)
            if not run.config["score_min_threshold"] <= score <= run.config["score_max_threshold"]:
                run.state.log.info(
                    "captcha: score %s out of range in flow %s", score, run.flow.slug
                )
                return invalid(MSG_FAILED)
        return ok()

    def _verify(self, run: StageRun, response: str) -> dict[str, Any] | None:
        """The provider's answer, or ``None`` when there is no usable one."""
        fields = {"secret": run.config["private_key"], "response": response}
        if run.request.remote_addr:
            fields["remoteip"] = run.request.remote_addr
        # check_config allows only http(s) URLs, so no file: or custom scheme is opened.
        request = urllib.request.Request(  # noqa: S310
            run.config["verify_url"],
            data=urllib.parse.urlencode(fields).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=run.config["timeout"]) as reply:  # noqa: S310
                body = reply.read(_MAX_ANSWER + 1)
        except (OSError, ValueError, http.client.HTTPException) as error:
            # URLError, HTTPError, timeouts and refused connections are OSErrors; a
            # malformed reply is an HTTPException (BadStatusLine, IncompleteRead).
            run.state.log.warning("captcha: verify request failed: %s", type(error).__name__)
            return None
        try:
            answer = json.loads(body) if len(body) <= _MAX_ANSWER else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            run.state.log.warning("captcha: verify_url did not answer with a JSON object")
            return None
        return answer


def _with_language(url: str, language: str) -> str:
    """``url`` with ``hl=<language>`` added to its query, unless it names one already."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "hl" for name, _ in query):
        return url
    query.append(("hl", language))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
