"""Email: mails a single-use link that continues the flow, in this browser or any other.

The first time the stage is shown for a plan it stores a copy of the plan, advanced past
itself, behind a new :class:`~flask_flows.flow_tokens.FlowToken` and mails the link; the
page then asks the person to check their inbox and offers "Send again". The stage never
completes by itself: opening the link does, through the resume view. Sending on a GET is
acceptable here: a plan reaches this stage through the earlier stages' POSTs, which carry
CSRF and step tokens, or, when the stage comes first, by opening the flow, which can only
mail the logged-in user's own address, within the rate limit. Reloading the page sends
nothing more.

The recipient is the plan's pending user (or the logged-in user); for enrollment, before
the user exists, the address typed into the prompt (``prompt_data["email"]``). The user's
own address wins when both exist, so a prompt can never redirect another account's link.
A typed address is used for an existing user only when that user is the one logged in
(not one named at an identification stage): when they have no address yet, or always
with ``to: entered``, which confirms a new address before it is written (the email-change
flow). A known user with nowhere to send to is logged.

When identification pretended that an unknown account exists, nobody receives anything,
yet the page, its status and the work are the same as for a real account: the page
never shows the address then, and the rate-limit query, a new token, the mail templates
and a mail job happen either way. The job, in a thread started when the request ends,
stores the token and sends the mail, or for nobody does the same database write and
rolls it back (with ``FLOWS_MAIL_SEND_IN_BACKGROUND`` off it runs in the request, and a
real account's response is slower by an SMTP exchange).

Per-stage SMTP servers (authentik's ``use_global_settings: false``) are not supported:
configure ``FLOWS_MAIL_*`` instead.

.. versionadded:: 0.1
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from .. import mail
from ..expressions import Expression
from ..flow_tokens import hash_address, opened_since, save_token, tokens_sent_since
from ..i18n import N_, gettext, ngettext
from ..link_hosts import mailed_link
from ..options import ConfigError, Option
from ..plan import PENDING_USER_IDENTIFIER, PROMPT_DATA, FlowPlan
from ..tokens import new_token
from .base import WORDING, StageForm, StageResult, StageRun, StageType, invalid, ok

#: Plan context: the first mail for this plan went out (or was skipped); how many were asked for;
#: when the last one was asked for (Unix seconds).
EMAIL_SENT = "email_sent"
EMAIL_SENDS = "email_sends"
EMAIL_SENT_AT = "email_sent_at"
#: Form fields of the "Wrong address? Change it" and (without JavaScript) "I've opened
#: the link" buttons.
CHANGE_ADDRESS = "change_address"
OPENED = "opened"

SENT_AGAIN = N_("We sent another email.")
NOT_OPENED_YET = N_("The link has not been opened yet. Open it from the email, then come back.")
SENT_AGAIN_IF_EXISTS = N_("If an account exists for what you entered, we sent another email.")
RATE_LIMITED = N_(
    "We have already sent several emails. Please wait a while before asking for another,"
    " and check your spam folder."
)
#: The subject of the link's mail when none is configured (mailed in the language of
#: the request that sends it, as a configured subject the catalogue knows is too).
DEFAULT_SUBJECT = N_("Confirm your email address")
#: The subject of the mail to the owner of an address entered for another account.
SUBJECT_ACCOUNT_EXISTS = N_("You already have an account at {brand}")


def _too_soon(seconds: int) -> str:
    """ "Send again" came before ``resend_after``: when it will send, in the page's language."""
    return ngettext(
        "We just sent an email. You can ask for another one in {count} second.",
        "We just sent an email. You can ask for another one in {count} seconds.",
        seconds,
    )


class EmailStage(StageType):
    name = "email"
    template = "flows/stages/email.html"
    mails_links = True
    options = {
        "title": WORDING["title"],
        "subject": Option(str, default=DEFAULT_SUBJECT, text=True),
        "template": Option(
            str,
            default="flows/email/verification",
            help="Base name of the mail templates: <template>.txt and <template>.html.",
        ),
        "token_expiry": Option(int, default=30, minimum=1, help="Minutes the link stays valid."),
        "resend_after": Option(
            int, default=30, minimum=0, help="Seconds before 'Send again' sends another email."
        ),
        "activate_user_on_success": Option(bool, default=True),
        "use_global_settings": Option(
            bool, default=True, help="Per-stage SMTP settings are not supported: keep true."
        ),
        "to": Option(
            str,
            default="account",
            choices=("account", "entered"),
            expression=True,
            help="account: the user's address (else the one entered, for the logged-in user"
            " or a sign-up); entered: the address entered in the prompt, to confirm it; or"
            " an expression giving the address.",
        ),
        "address_in_use": Option(
            str,
            default="tell_owner",
            choices=("tell_owner", "send_link"),
            help="An entered address that is another account's: tell_owner mails its owner"
            " that they have an account (sign-in and recovery links) and continues nothing,"
            " so the page cannot tell a used address from a free one; send_link mails the"
            " link anyway (the write after it then says the address is taken).",
        ),
    }

    def check_config(self, config: dict[str, Any], where: str) -> None:
        if not config["use_global_settings"]:
            raise ConfigError(
                f"{where}, field 'use_global_settings': per-stage mail servers are not"
                " supported; configure the FLOWS_MAIL_* settings instead"
            )
        if not config["subject"].strip():
            raise ConfigError(f"{where}, field 'subject': a subject is required")

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        recipient = _Recipient.of(run)
        if not run.context.get(EMAIL_SENT):
            if not self._send(run, recipient):
                run.messages.append(RATE_LIMITED)
            run.context[EMAIL_SENT] = True  # the executor saves the plan after challenge()
        return {
            "address": recipient.shown,
            "expires_in": _duration(run.config["token_expiry"]),
            "can_change_address": recipient.typed and _address_prompt(run) is not None,
            "opened_elsewhere": self.waited_for(run),
        }

    def forget(self, run: StageRun) -> None:
        """Back left this page: shown again, it mails a link again (to the address then
        known). The sends already made still count against the plan's limit."""
        run.context.pop(EMAIL_SENT, None)

    def waited_for(self, run: StageRun) -> bool:
        """Whether the link was opened, in another browser or device: this browser's plan
        still waits here, and can only say so (the flow goes on where the link was
        opened). Opened in this browser, the plan itself has moved on."""
        if "opened" not in run.memo:
            # Asked for a pretended account too, by the identifier (whose links are never
            # stored): the page costs the same queries for a real account and none.
            address = _Recipient.of(run).address or run.context.get(PENDING_USER_IDENTIFIER)
            run.memo["opened"] = opened_since(run.state, hash_address(address or ""), run.plan)
        return bool(run.memo["opened"])

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        """ "Send again" (never completes the stage, only says what happened), or "Wrong
        address? Change it", which goes back to the prompt the address was typed into."""
        recipient = _Recipient.of(run)
        if run.request.form.get(OPENED):
            # Without JavaScript the page cannot ask by itself: the person does.
            return invalid() if self.waited_for(run) else invalid(NOT_OPENED_YET)
        if run.request.form.get(CHANGE_ADDRESS):
            prompt = _address_prompt(run) if recipient.typed else None
            if prompt is not None:
                # The prompt, then this stage again, for the address typed there now.
                run.plan.bindings[1:1] = [prompt, run.plan.bindings[0]]
                run.context.pop(EMAIL_SENT, None)
                return ok()
        wait = _resend_wait(run)
        if wait:
            return invalid(_too_soon(wait))
        if not self._send(run, recipient):
            return invalid(RATE_LIMITED)
        return invalid(SENT_AGAIN if recipient.shown else SENT_AGAIN_IF_EXISTS)

    def _send(self, run: StageRun, recipient: _Recipient) -> bool:
        """Send a link if the limits allow; ``False`` when the person must be told to wait.

        Two limits: the sends asked for in this plan (told to the person, the same for
        every account or none), and the links mailed to the address from any plan
        (``FLOWS_MAIL_RATE_LIMIT``). The second is told only for an address the person
        typed themselves; for an account's address it would reveal that the account
        exists, so the mail is silently not sent.
        """
        limit = mail.RateLimit.from_config(run.state.config)
        sends = int(run.context.get(EMAIL_SENDS, 0))
        if sends >= limit.count:
            return False
        run.context[EMAIL_SENDS] = sends + 1
        run.context[EMAIL_SENT_AT] = int(time.time())
        address = recipient.address
        address_hash = hash_address(address or run.context.get(PENDING_USER_IDENTIFIER) or "")
        recent = tokens_sent_since(run.state, address_hash, limit.seconds)
        if address and recent >= limit.count:
            run.state.log.info("email: rate limit reached for an address in flow %s", run.flow.slug)
            address = None
            if recipient.user_id is None:
                return False
        # With no address (an account pretended, or its mailbox at its limit), the same
        # work is done and nothing is kept or sent: the response and the mail job then
        # cost what they cost for a real account (ASVS 6.3.8). An entered address that
        # is another account's gets a mail for its owner instead of the link; its token
        # is stored all the same (never mailed, so nobody can claim it), so the work is
        # the same and the address's rate limit counts that mail too.
        token = new_token()
        link = mailed_link("flows.resume", token=token)
        owner, recovery = _owner_to_tell(run, recipient, address)
        if owner is not None:
            message = _account_exists_message(run, address or "", owner, recovery)
        else:
            message = mail.build_message(
                to=address or "nobody@invalid",
                subject=gettext(run.config["subject"]),
                template=run.config["template"],
                link=link,
                user=recipient.user,
                username=getattr(recipient.user, "username", None),
                expires_in=_duration(run.config["token_expiry"]),
                flow=run.flow,
            )
        save = partial(
            save_token,
            run.state,
            token,
            _continuation(run.plan),
            user_id=recipient.user_id,
            address=address or "",
            lifetime=timedelta(minutes=run.config["token_expiry"]),
            activate_user=run.config["activate_user_on_success"],
            rehearse=address is None,
        )
        # The token is stored by the mail thread, which starts when the request ends: a
        # database write here would make a real account's response slower.
        mail.send(message, prepare=save, deliver=address is not None)
        if owner is not None:
            run.state.log.info(
                "email: address entered in flow %s is user %s's; told its owner",
                run.flow.slug,
                run.state.user_store.user_id(owner),
            )
        elif address:
            run.state.log.info("email: link for flow %s handed to the mailer", run.flow.slug)
        return True


def _resend_wait(run: StageRun) -> int:
    """Seconds until "Send again" may send another email (0: now)."""
    sent_at = run.context.get(EMAIL_SENT_AT)
    if not isinstance(sent_at, int):
        return 0
    return max(0, sent_at + int(run.config["resend_after"]) - int(time.time()))


def _address_prompt(run: StageRun) -> int | None:
    """The binding of the prompt, earlier in this flow, that asked for the email
    address: where "Wrong address? Change it" goes back to."""
    current = run.binding.order if hasattr(run.binding, "order") else None
    earlier = [
        binding
        for binding in run.flow.bindings
        if binding.stage.type == "prompt" and (current is None or binding.order < current)
    ]
    for binding in reversed(earlier):
        fields = run.state.stage_config(binding.stage)["fields"]
        if any(isinstance(f, dict) and f.get("field_key") == "email" for f in fields):
            return int(binding.id)
    return None


def _owner_to_tell(
    run: StageRun, recipient: _Recipient, address: str | None
) -> tuple[Any | None, bool]:
    """The account that already has the entered ``address``, when its owner is to be told
    (``address_in_use: tell_owner``) rather than mailed a link for another account, and
    whether the app has a recovery flow to offer them. Both lookups run for every typed
    address, used or free, so the two cost the same."""
    if not address or not recipient.typed or run.config["address_in_use"] != "tell_owner":
        return None, False
    store = run.state.user_store
    if not store.has_field("email"):
        return None, False
    owner = store.find_by_identifier(address, ["email"], True)
    has_recovery = next(run.state.flows_of("recovery"), None) is not None
    if owner is None or (recipient.user is not None and store.user_id(owner) == recipient.user_id):
        return None, has_recovery
    return owner, has_recovery


def _account_exists_message(run: StageRun, address: str, owner: Any, has_recovery: bool) -> Any:
    """What the owner of an address someone entered for another account reads: they have
    an account, how to sign in, and how to recover it."""
    brand = str(run.state.config["FLOWS_BRAND_NAME"])
    return mail.build_message(
        to=address,
        subject=gettext(SUBJECT_ACCOUNT_EXISTS, brand=brand),
        template="flows/email/account_exists",
        login_link=mailed_link("flows.login"),
        recovery_link=(
            mailed_link("flows.default_flow", designation="recovery") if has_recovery else None
        ),
        username=run.state.user_store.display_name(owner),
        flow=run.flow,
    )


@dataclass(frozen=True)
class _Recipient:
    """Who the link is for, the address it goes to, and what the page may show of it."""

    user: Any | None
    user_id: str | None
    address: str | None
    shown: str | None
    #: The address was typed into a prompt (a sign-up, a new address), not the account's.
    typed: bool = False

    @classmethod
    def of(cls, run: StageRun) -> _Recipient:
        """Worked out once per request (the page, its check for an opened link and "Send
        again" all ask), so a user with nowhere to send to is logged once."""
        if "recipient" not in run.memo:
            run.memo["recipient"] = cls._find(run)
        found: _Recipient = run.memo["recipient"]
        return found

    @classmethod
    def _find(cls, run: StageRun) -> _Recipient:
        user = run.pending_user()
        store = run.state.user_store
        user_id = store.user_id(user) if user is not None else None
        own = getattr(user, "email", None) if user is not None else None
        # A typed address stands for an existing user only when it was typed by that
        # user, logged in: never for one named at identification (recovery), whose link
        # must go to the account's own address.
        typed_by_owner = (
            user is not None
            and PENDING_USER_IDENTIFIER not in run.context
            and _same_user(store, user, run.state.current_user())
        )
        if isinstance(run.config["to"], Expression):
            address, typed = _chosen(run, user, own, typed_by_owner)
        else:
            prompt = run.context.get(PROMPT_DATA)
            entered = prompt.get("email") if isinstance(prompt, dict) else None
            wants_entered = run.config["to"] == "entered"
            typed = user is None or (typed_by_owner and (wants_entered or not own))
            address = entered if typed else own
            if wants_entered and not typed:
                # The address to confirm was not typed by this account's owner, logged in
                # now (their login ended mid-flow): confirm nothing, and never fall back to
                # the account's own address, whose link would write the unconfirmed one.
                address = None
        address = address.strip() if isinstance(address, str) and _plausible(address) else None
        if user is not None and address is None and PENDING_USER_IDENTIFIER not in run.context:
            run.state.log.warning(
                "email: user %s has no address to send the link of flow %s to",
                user_id,
                run.flow.slug,
            )
        if PENDING_USER_IDENTIFIER in run.context:
            # Typed into an identification stage that may have pretended: show nothing
            # that differs between a real account and none.
            shown = None
        elif typed:
            shown = address
        else:
            shown = _mask(address) if address else None
        return cls(user, user_id, address, shown, typed=typed and address is not None)


def _chosen(run: StageRun, user: Any, own: str | None, typed_by_owner: bool) -> tuple[Any, bool]:
    """The address ``to``'s expression gives (authentik's recipient from the plan context)
    and whether it counts as typed. A sign-up's or the logged-in owner's may be any
    address; any other account's link (named at identification, a login that ended)
    goes only to the account's own address, never one the visitor may have typed."""
    chosen = run.option("to", fallback=None)
    if not isinstance(chosen, str):
        return None, False
    if PENDING_USER_IDENTIFIER not in run.context and (user is None or typed_by_owner):
        return chosen, True
    if user is None:
        return None, False  # named at identification, and nobody: nobody gets a link
    if own and chosen.strip().casefold() == own.strip().casefold():
        return own, False
    run.state.log.warning(
        "email: stage %r: the address is not the account's own; nothing is sent", run.stage.name
    )
    return None, False


def _continuation(plan: FlowPlan) -> FlowPlan:
    """The plan as the link continues it: past this stage, made now, without our flags."""
    advanced = FlowPlan.from_session(plan.flow_slug, copy.deepcopy(plan.to_session()))
    assert advanced is not None
    advanced.advance()
    advanced.created = time.time()
    for key in (EMAIL_SENT, EMAIL_SENDS, EMAIL_SENT_AT):
        advanced.context.pop(key, None)
    return advanced


def _same_user(store: Any, user: Any, other: Any | None) -> bool:
    return other is not None and store.user_id(other) == store.user_id(user)


def _plausible(address: str) -> bool:
    """Enough of an address to put in a To header: one @, no spaces or control characters."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    return (
        bool(local and at and domain)
        and len(address) <= 254
        and not any(ch.isspace() or ord(ch) < 32 or ch == "\x7f" for ch in address)
    )


def _mask(address: str) -> str:
    """``alice@example.com`` → ``a***@example.com``: recognisable, not readable."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _duration(minutes: int) -> str:
    """How long the link lasts, in words of the page's (and the mail's) language."""
    if minutes % 60 == 0:
        return ngettext("{count} hour", "{count} hours", minutes // 60)
    return ngettext("{count} minute", "{count} minutes", minutes)
