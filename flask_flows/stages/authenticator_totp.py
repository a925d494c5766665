"""Authenticator app setup (TOTP, RFC 6238): show a secret, keep it once a code proves it works.

The secret lives only in the database, on an unconfirmed :class:`TOTPDevice`; the plan
keeps its id, so the session cookie never carries it. The device counts as an
authenticator only after the user typed a valid code, which shows that the app and the
server agree on secret, digits, algorithm and time. The page shows the secret (as a QR
code, as text and as an ``otpauth://`` link), so the stage keeps it out of htmx's
history cache.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import segno
import sqlalchemy as sa
from flask import current_app
from markupsafe import Markup, escape
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .. import signals
from ..devices import TOTPDevice
from ..i18n import N_, gettext
from ..models import utcnow
from ..options import Option
from ..otp import new_totp_secret, provisioning_uri, verify_totp
from ..outcomes import Outcome
from .authenticator_setup import AuthenticatorSetupStage, name_field, strip
from .base import WORDING, StageForm, StageResult, StageRun, deny, invalid, ok

#: Plan context key holding the id of the unconfirmed device being set up.
SETUP_DEVICE = "totp_setup_device"
#: Unconfirmed devices older than this are abandoned setups, removed when a new one starts.
ABANDONED_AFTER = timedelta(hours=1)

NO_USER = N_("Sign in before setting up an authenticator app.")
WRONG_CODE = N_("That code is not valid. Check the time on your phone and enter the current code.")
SETUP_EXPIRED = N_("This setup expired. Scan the new QR code and enter the code it shows.")
#: The name a new authenticator app is given (and offered) unless the stage names one.
DEVICE_NAME = N_("Authenticator app")


class TOTPSetupForm(StageForm):
    name = name_field(
        N_("Name this authenticator"),
        N_("Give this authenticator a name, such as the phone it is on."),
    )
    code = StringField(
        N_("Code from the app"),
        filters=[strip],
        validators=[
            DataRequired(N_("Enter the code your authenticator app shows.")),
            Length(max=32, message=WRONG_CODE),
        ],
        render_kw={
            "inputmode": "numeric",
            "autocomplete": "one-time-code",
            "autocapitalize": "off",
            "spellcheck": "false",
        },
    )


class AuthenticatorTOTPStage(AuthenticatorSetupStage):
    name = "authenticator_totp"
    template = "flows/stages/authenticator_totp.html"
    options = {
        **WORDING,
        "issuer": Option(
            str,
            default=None,
            nullable=True,
            help="Shown in the app next to the account; the app's FLOWS_BRAND_NAME if unset.",
        ),
        "digits": Option(int, default=6, choices=(6, 8)),
        "algorithm": Option(
            str,
            default="sha1",
            choices=("sha1", "sha256", "sha512"),
            help="Many authenticator apps (Google Authenticator among them) only support sha1"
            " and silently show wrong codes for the others.",
        ),
        "device_name": Option(str, default=DEVICE_NAME, text=True),
    }

    def form_class(self, run: StageRun) -> type[StageForm]:
        return TOTPSetupForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        assert isinstance(form, TOTPSetupForm)
        user = run.pending_user()
        device = _setup_device(run, user) or _new_device(run, user)
        if not form.name.data:
            form.name.data = gettext(run.config["device_name"])
        issuer = run.config["issuer"] or str(run.state.config["FLOWS_BRAND_NAME"])
        account = _account_label(run, user)
        uri = provisioning_uri(device, account=account, issuer=issuer)
        return {
            "qr_svg": _qr_svg(
                uri,
                gettext(
                    "QR code to add {account} at {issuer} to an authenticator app",
                    account=account,
                    issuer=issuer,
                ),
            ),
            "otpauth_uri": uri,
            "secret_groups": [device.secret[i : i + 4] for i in range(0, len(device.secret), 4)],
            "issuer": issuer,
            "account": account,
            "digits": device.digits,
            "algorithm": device.algorithm.upper(),
            "period": device.period,
        }

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(NO_USER)
        assert isinstance(form, TOTPSetupForm)
        device = _setup_device(run, user)
        if device is None:
            # The device went away (deleted as abandoned, or the plan was tampered with).
            form.code.errors = [SETUP_EXPIRED]
            return invalid()
        check = verify_totp(device, form.code.data or "")
        if not check.accepted:
            run.state.log.info(
                "authenticator_totp: %s code for device %s of user %s",
                "replayed" if check.replayed else "wrong",
                device.id,
                device.user_id,
            )
            form.code.errors = [WRONG_CODE]
            return invalid()

        device.confirmed = True
        device.name = form.name.data or gettext(run.config["device_name"])
        device.last_step = check.step or 0
        run.state.db.session.commit()
        run.context.pop(SETUP_DEVICE, None)
        run.state.log.info(
            "authenticator_totp: user %s confirmed TOTP device %s", device.user_id, device.id
        )
        signals.authenticator_added.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user=user,
            device=device,
        )
        run.record(Outcome.authenticator_added)
        return ok()


def _setup_device(run: StageRun, user: Any) -> TOTPDevice | None:
    """The unconfirmed device this plan is setting up, if it still exists and is the user's."""
    device_id = run.context.get(SETUP_DEVICE)
    if not isinstance(device_id, int):
        return None
    device = run.state.db.session.get(TOTPDevice, device_id)
    if (
        device is None
        or device.confirmed
        or device.user_id != run.state.user_store.user_id(user)
        or device.digits != run.config["digits"]
        or device.algorithm != run.config["algorithm"]
    ):
        return None
    return device


def _new_device(run: StageRun, user: Any) -> TOTPDevice:
    """A fresh unconfirmed device; the user's abandoned setups are removed on the way."""
    session = run.state.db.session
    user_id = run.state.user_store.user_id(user)
    session.execute(
        sa.delete(TOTPDevice).where(
            TOTPDevice.user_id == user_id,
            TOTPDevice.confirmed.is_(False),
            TOTPDevice.created < utcnow() - ABANDONED_AFTER,
        )
    )
    device = TOTPDevice(
        user_id=user_id,
        name=run.config["device_name"],
        secret=new_totp_secret(),
        digits=run.config["digits"],
        algorithm=run.config["algorithm"],
        confirmed=False,
    )
    session.add(device)
    session.commit()
    run.context[SETUP_DEVICE] = device.id
    run.state.log.info(
        "authenticator_totp: started setup of TOTP device %s for user %s", device.id, user_id
    )
    return device


def _account_label(run: StageRun, user: Any) -> str:
    """What the app lists the account as: the username, else the email, else the id."""
    store = run.state.user_store
    return store.display_name(user) or store.user_id(user)


def _qr_svg(uri: str, label: str) -> Markup:
    """The QR code as inline SVG: no image request, no script, no third-party service.

    Black on an explicit white background with the standard four-module quiet zone, so
    it scans in dark mode too; sized by CSS through its viewBox.
    """
    svg = segno.make(uri, error="m").svg_inline(
        dark="#000000",
        light="#ffffff",
        border=4,
        title=label,
        svgclass="flows-qr-code",
        omitsize=True,
    )
    # segno writes `<svg viewBox=…` and escapes the title; name it as one image for
    # assistive technology (the label holds the username, so it is escaped here too).
    named = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return Markup(named)  # noqa: S704 - segno's markup, every user value escaped
