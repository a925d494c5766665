"""Recovery codes setup: show a fresh set of single-use codes once, keep only their hashes.

Codes come from the OS CSPRNG and are stored argon2-hashed on an unconfirmed
:class:`StaticDevice` whose id is the only thing the plan keeps. The plaintext exists
only in the response that shows it, so showing the page again (a reload, a form error)
cannot repeat the codes: it throws the unconfirmed set away and makes a new one. When
the user confirms they saved them, the set becomes the user's only one: any older set
stops working (ASVS 6.5.2-6.5.4). The page is kept out of htmx's history cache.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app
from wtforms import BooleanField
from wtforms.validators import DataRequired

from .. import signals
from ..devices import StaticDevice, StaticToken
from ..options import Option
from ..otp import new_recovery_codes, store_recovery_codes
from ..outcomes import Outcome
from .authenticator_setup import AuthenticatorSetupStage
from .base import StageForm, StageResult, StageRun, deny, invalid, ok

#: Plan context key holding the id of the unconfirmed set being shown.
SETUP_DEVICE = "static_setup_device"

NO_USER = "Sign in before creating recovery codes."
NEW_SET = "These are new codes: the ones shown before will not work."
NOT_SAVED = "Confirm that you have saved these codes."
SETUP_EXPIRED = "Those codes expired. Save these new ones instead."


class StaticSetupForm(StageForm):
    saved = BooleanField(
        "I have saved these codes",
        validators=[DataRequired(NOT_SAVED)],
        render_kw={"required": True},
    )


class AuthenticatorStaticStage(AuthenticatorSetupStage):
    name = "authenticator_static"
    template = "flows/stages/authenticator_static.html"
    options = {
        "token_count": Option(int, default=10, minimum=1),
        "device_name": Option(str, default="Recovery codes"),
    }

    def form_class(self, run: StageRun) -> type[StageForm]:
        return StaticSetupForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        user = run.pending_user()
        session = run.state.db.session
        previous = _setup_device(run, user)
        if previous is not None:
            delete_static_devices(session, [previous.id])
            run.messages.append(NEW_SET)
        user_id = run.state.user_store.user_id(user)
        codes = new_recovery_codes(run.config["token_count"])
        device = StaticDevice(user_id=user_id, name=run.config["device_name"], confirmed=False)
        store_recovery_codes(device, codes, run.state.hashing)
        session.add(device)
        session.commit()
        run.context[SETUP_DEVICE] = device.id
        run.state.log.info(
            "authenticator_static: showed %d new recovery codes (device %s) to user %s",
            len(codes),
            device.id,
            user_id,
        )
        brand = run.state.config["FLOWS_BRAND_NAME"]
        text = "\n".join([f"Recovery codes for {brand}", "Each code works once.", "", *codes, ""])
        return {
            "codes": codes,
            "download_href": "data:text/plain;charset=utf-8," + quote(text, safe=""),
        }

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(NO_USER)
        device = _setup_device(run, user)
        if device is None:
            return invalid(SETUP_EXPIRED)

        session = run.state.db.session
        older = session.scalars(
            sa.select(StaticDevice.id).where(
                StaticDevice.user_id == device.user_id, StaticDevice.id != device.id
            )
        ).all()
        delete_static_devices(session, list(older))
        device.confirmed = True
        session.commit()
        run.context.pop(SETUP_DEVICE, None)
        run.state.log.info(
            "authenticator_static: user %s confirmed recovery codes (device %s), %d older sets"
            " removed",
            device.user_id,
            device.id,
            len(older),
        )
        signals.authenticator_added.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user=user,
            device=device,
        )
        run.record(Outcome.recovery_codes_saved)
        return ok()


def delete_static_devices(session: Any, device_ids: list[int]) -> None:
    """Delete recovery code sets with their tokens.

    The tokens go first and explicitly: the foreign key's ON DELETE CASCADE is not
    enforced by SQLite unless the app turns it on, and SQLite may hand a deleted
    device's id to the next new one, which would inherit the orphaned codes.
    """
    if not device_ids:
        return
    session.execute(sa.delete(StaticToken).where(StaticToken.device_id.in_(device_ids)))
    session.execute(
        sa.delete(StaticDevice)
        .where(StaticDevice.id.in_(device_ids))
        .execution_options(synchronize_session="fetch")
    )


def _setup_device(run: StageRun, user: Any) -> StaticDevice | None:
    """The unconfirmed set this plan showed, if it still exists and is the user's."""
    device_id = run.context.get(SETUP_DEVICE)
    if not isinstance(device_id, int):
        return None
    device = run.state.db.session.get(StaticDevice, device_id)
    if device is None or device.confirmed or device.user_id != run.state.user_store.user_id(user):
        return None
    return device
