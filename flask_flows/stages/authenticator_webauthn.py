"""Passkey setup (WebAuthn registration): the browser makes a key pair, we keep the public key.

The page's button asks the browser (``navigator.credentials.create``, in
``static/flows/passkeys.js``) for a new credential bound to this site; its answer comes
back in the form's hidden ``passkey`` field with the name the person gave it, and is
verified (:func:`flask_flows.passkeys.register`) before a
:class:`~flask_flows.devices.WebAuthnDevice` is stored. User verification and
discoverable credentials are preferred by default, so most authenticators make a
passkey that signs in alone (the login page's "Sign in with a passkey"); attestation is
not asked for, so no authenticator model is excluded and no device identity is
collected. Without JavaScript (or WebAuthn) nothing can be created: the page says so.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError
from wtforms import HiddenField

from .. import passkeys, signals
from ..devices import WebAuthnDevice
from ..i18n import N_, gettext
from ..options import Option
from ..outcomes import Outcome
from .authenticator_setup import AuthenticatorSetupStage, name_field
from .base import WORDING, StageForm, StageResult, StageRun, deny, invalid, ok

NO_USER = N_("Sign in before adding a passkey.")
NOT_CREATED = N_("Create the passkey with the button: your browser makes it.")
#: The name a new passkey is given (and offered) unless the stage names one.
DEVICE_NAME = N_("Passkey")


class WebAuthnSetupForm(StageForm):
    name = name_field(
        N_("Name this passkey"),
        N_("Give this passkey a name, such as the device or password manager."),
    )
    #: The browser's answer (JSON), filled in by passkeys.js.
    passkey = HiddenField()


class AuthenticatorWebAuthnStage(AuthenticatorSetupStage):
    name = "authenticator_webauthn"
    template = "flows/stages/authenticator_webauthn.html"
    options = {
        **WORDING,
        "user_verification": Option(
            str,
            default="preferred",
            choices=("required", "preferred", "discouraged"),
            help="Whether the authenticator must check it is its owner (PIN, fingerprint).",
        ),
        "resident_key": Option(
            str,
            default="preferred",
            choices=("required", "preferred", "discouraged"),
            help="Whether the credential is stored on the authenticator (discoverable), so"
            " that it can sign in without a username.",
        ),
        "authenticator_attachment": Option(
            str,
            default=None,
            nullable=True,
            choices=("platform", "cross-platform"),
            help="Only built-in authenticators (platform) or only security keys and phones"
            " (cross-platform); any when unset.",
        ),
        "attestation": Option(
            str,
            default="none",
            choices=("none", "indirect", "direct"),
            help="Ask the authenticator to prove its model; verified when given.",
        ),
        "device_name": Option(str, default=DEVICE_NAME, text=True),
    }

    def form_class(self, run: StageRun) -> type[StageForm]:
        return WebAuthnSetupForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        assert isinstance(form, WebAuthnSetupForm)
        user = run.pending_user()
        if not form.name.data:
            form.name.data = gettext(run.config["device_name"])
        form.passkey.data = ""  # an answer is never sent back to the page
        return {
            "passkey_options": passkeys.registration_options(
                run.state, run.context, user, run.config
            ),
        }

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(NO_USER)
        assert isinstance(form, WebAuthnSetupForm)
        if not form.passkey.data:
            form.passkey.errors = [NOT_CREATED]
            return invalid()
        state = run.state
        user_id = state.user_store.user_id(user)
        result = passkeys.register(state, run.context, form.passkey.data, run.config, user_id)
        if isinstance(result, str):
            form.passkey.errors = [result]
            return invalid()
        registration, handle = result
        device = WebAuthnDevice(
            user_id=user_id,
            name=form.name.data or gettext(run.config["device_name"]),
            credential_id=registration.credential_id,
            public_key=registration.public_key,
            sign_count=registration.sign_count,
            transports=registration.transports,
            backup_eligible=registration.backup_eligible,
            backed_up=registration.backed_up,
            aaguid=registration.aaguid,
            user_handle=handle,
        )
        state.db.session.add(device)
        try:
            state.db.session.commit()
        except IntegrityError:  # the same passkey, registered by a parallel request
            state.db.session.rollback()
            form.passkey.errors = [passkeys.ALREADY_REGISTERED]
            return invalid()
        run.context.pop(passkeys.USER_HANDLE, None)
        state.log.info(
            "authenticator_webauthn: user %s added passkey %s", device.user_id, device.id
        )
        signals.authenticator_added.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user=user,
            device=device,
        )
        run.record(Outcome.passkey_added)
        return ok()
