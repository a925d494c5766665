"""Recovery codes setup: show a set of single-use codes until saved, keep only their hashes.

Codes are derived from a 256-bit seed from the OS CSPRNG and stored argon2-hashed on an
unconfirmed :class:`StaticDevice`. The plan keeps the device's id and the seed, sealed
with the rest of its context (:mod:`flask_flows.sealing`), so showing the page again (a
reload, a form error) shows the same codes: a person who already downloaded them never
holds a dead set. The seed leaves the plan when the set is confirmed or the plan ends,
and the database never holds a plaintext code. When the user confirms they saved them,
the set becomes the user's only one: any older set stops working (ASVS 6.5.2-6.5.4). The
page is kept out of htmx's history cache.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app
from wtforms import BooleanField
from wtforms.validators import DataRequired

from .. import signals
from ..devices import StaticDevice, StaticToken
from ..i18n import N_, gettext
from ..options import Option
from ..otp import new_recovery_seed, recovery_codes, store_recovery_codes
from ..outcomes import Outcome
from .authenticator_setup import AuthenticatorSetupStage
from .base import WORDING, StageForm, StageResult, StageRun, deny, invalid, ok

#: Plan context key holding the id of the unconfirmed set being shown.
SETUP_DEVICE = "static_setup_device"
#: Id of the element around the confirmation form: all htmx swaps after a form error.
CONFIRM_REGION = "flows-recovery-confirm"
#: Plan context key holding the seed of that set (base64), sealed with the context.
SETUP_SEED = "static_setup_seed"

NO_USER = N_("Sign in before creating recovery codes.")
NEW_SET = N_("These are new codes: the ones shown before will not work.")
NOT_SAVED = N_("Confirm that you have saved these codes.")
SETUP_EXPIRED = N_("Those codes expired. Save these new ones instead.")
#: The name of a set of recovery codes unless the stage names one.
DEVICE_NAME = N_("Recovery codes")


class StaticSetupForm(StageForm):
    saved = BooleanField(
        N_("I have saved these codes"),
        validators=[DataRequired(NOT_SAVED)],
        render_kw={"required": True},
    )


class AuthenticatorStaticStage(AuthenticatorSetupStage):
    name = "authenticator_static"
    template = "flows/stages/authenticator_static.html"
    options = {
        **WORDING,
        "token_count": Option(int, default=10, minimum=1),
        "device_name": Option(str, default=DEVICE_NAME, text=True),
    }

    def form_class(self, run: StageRun) -> type[StageForm]:
        return StaticSetupForm

    def challenge(self, run: StageRun, form: StageForm) -> dict[str, Any]:
        user = run.pending_user()
        codes = _shown_codes(run, user)
        if codes is None:
            codes = _new_set(run, user)
            run.memo["new_set"] = True
        brand = run.state.config["FLOWS_BRAND_NAME"]
        heading = gettext("Recovery codes for {brand}", brand=brand)
        text = "\n".join([heading, gettext("Each code works once."), "", *codes, ""])
        return {
            "codes": codes,
            "download_href": "data:text/plain;charset=utf-8," + quote(text, safe=""),
            "only_way": not _has_another_kind(run, user),
        }

    def error_region(self, run: StageRun) -> str | None:
        # The codes stay on screen when only the confirmation was missing; a new set
        # (the old one expired) replaces the whole stage.
        return None if run.memo.get("new_set") else CONFIRM_REGION

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        user = run.pending_user()
        if user is None:
            return deny(NO_USER)
        device = _setup_device(run, user)
        if device is None:
            run.context.pop(SETUP_DEVICE, None)  # the next set is shown as a new one anyway
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
        run.context.pop(SETUP_SEED, None)
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


def _has_another_kind(run: StageRun, user: Any) -> bool:
    """Whether the user has a second factor besides recovery codes (an app, a passkey),
    which the codes then stand in for; else they are the second factor itself."""
    user_id = run.state.user_store.user_id(user)
    others = [k.usable(user_id) for k in run.state.authenticator_kinds() if k.key != "static"]
    return bool(others) and any(run.state.db.session.execute(sa.select(*others)).one())


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


def _shown_codes(run: StageRun, user: Any) -> list[str] | None:
    """The codes of the set this plan showed, while that set is still waiting."""
    seed = _seed(run.context.get(SETUP_SEED))
    if seed is None or _setup_device(run, user) is None:
        return None
    return recovery_codes(seed, run.config["token_count"])


def _new_set(run: StageRun, user: Any) -> list[str]:
    """Make, store and note in the plan a new unconfirmed set; return its codes.

    Any unconfirmed set of the user's goes first: one left by a cancelled setup, a plan
    that expired, or another tab (whose Done then finds its set gone and shows this
    one's successor, saying the codes are new).
    """
    session = run.state.db.session
    user_id = run.state.user_store.user_id(user)
    waiting = session.scalars(
        sa.select(StaticDevice.id).where(
            StaticDevice.user_id == user_id, StaticDevice.confirmed.is_(False)
        )
    ).all()
    if SETUP_DEVICE in run.context:
        run.messages.append(NEW_SET)
    delete_static_devices(session, list(waiting))
    seed = new_recovery_seed()
    codes = recovery_codes(seed, run.config["token_count"])
    # Named in the person's language, as the other setup stages name theirs.
    device = StaticDevice(user_id=user_id, name=gettext(run.config["device_name"]), confirmed=False)
    store_recovery_codes(device, codes, run.state.hashing)
    session.add(device)
    session.commit()
    run.context[SETUP_DEVICE] = device.id
    run.context[SETUP_SEED] = base64.urlsafe_b64encode(seed).decode("ascii")
    run.state.log.info(
        "authenticator_static: showed %d new recovery codes (device %s) to user %s",
        len(codes),
        device.id,
        user_id,
    )
    return codes


def _seed(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        seed = base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        return None
    return seed if len(seed) == 32 else None


def _setup_device(run: StageRun, user: Any) -> StaticDevice | None:
    """The unconfirmed set this plan showed, if it still exists and is the user's."""
    device_id = run.context.get(SETUP_DEVICE)
    if not isinstance(device_id, int):
        return None
    device = run.state.db.session.get(StaticDevice, device_id)
    if device is None or device.confirmed or device.user_id != run.state.user_store.user_id(user):
        return None
    return device
