"""Authenticator kinds: what a second factor can be, registered like stage types.

A kind names its device model, its label, the flow that sets one up, whether a user has
one that can verify now (an EXISTS clause, so the validation stage asks about every kind
in one query), how a code typed for it is checked and spent, and how the settings page
lists one. A kind is *typed* (its codes go into the code field) or, like passkeys, not
(its proof is a ceremony in the browser). ``authenticator_validate`` (its
``device_classes`` are kind keys) and the settings page know kinds only through this
registry (``Flows.authenticator_kinds``, and ``@flows.authenticator_kind`` for an app's
own). TOTP apps, recovery codes and passkeys are the built-in kinds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from .devices import StaticDevice, StaticToken, TOTPDevice, WebAuthnDevice
from .i18n import N_, gettext
from .models import utcnow
from .otp import match_recovery_code, verify_totp

if TYPE_CHECKING:
    from .extension import FlowsState
    from .stages.base import StageRun

INVALID_CODE = N_("That code is not valid.")
REPLAYED_CODE = N_("This code was already used. Wait for the next code from your app.")


@dataclass(frozen=True)
class CodeMatch:
    """What checking a code found: ``spend`` uses up the matching code (``None`` when
    nothing matched, then ``error`` says why) and returns an error if a parallel request
    used it first."""

    spend: Callable[[], str | None] | None = None
    error: str = INVALID_CODE


class AuthenticatorKind:
    """Base class of authenticator kinds; subclasses set the class attributes and
    implement :meth:`match`. Devices are rows of ``model`` with ``id``, ``user_id``,
    ``name``, ``confirmed``, ``created`` and ``last_used`` columns."""

    #: The kind's name in ``device_classes``, URLs and the ``auth_methods`` it proves.
    key: ClassVar[str]
    #: What one is called ("Authenticator app"), in English: its message id, read in the
    #: page's language where it is shown (mark it with :func:`~flask_flows.i18n.N_`).
    label: ClassVar[str]
    model: ClassVar[type[Any]]
    #: Slug of the flow that sets one up (linked from the settings page when installed).
    setup_flow: ClassVar[str | None] = None
    #: What the code field asks for when this is the user's only kind (an English
    #: message id, like :attr:`label`).
    code_hint: ClassVar[str] = N_("Enter the code.")
    #: Its codes are digits only: the field asks for a numeric keypad.
    numeric: ClassVar[bool] = False
    #: A person types its codes (into the code field, checked by :meth:`match`); a
    #: passkey is not typed but answers a challenge in the browser.
    typed: ClassVar[bool] = True

    def usable(self, user_id: str) -> sa.ColumnElement[bool]:
        """Whether ``user_id`` has a device of this kind that can verify now."""
        model = self.model
        return sa.exists().where(model.user_id == user_id, model.confirmed.is_(True))

    def looks_like(self, code: str) -> bool:
        """Whether ``code`` has the shape of this kind's codes (the kind of a typed code
        is read from its shape, so the person never has to say which they typed)."""
        return True

    def match(self, run: StageRun, user: Any, code: str) -> CodeMatch:
        """Check ``code`` against ``user``'s devices of this kind, spending nothing yet."""
        raise NotImplementedError

    def devices(self, state: FlowsState, user_id: str) -> list[Any]:
        """The user's confirmed devices of this kind, oldest first (the settings page)."""
        model = self.model
        return list(
            state.db.session.scalars(
                sa.select(model)
                .where(model.user_id == user_id, model.confirmed.is_(True))
                .order_by(model.created, model.id)
            )
        )

    def details(self, device: Any) -> list[tuple[str, str]]:
        """More about one device for the settings page, as (term, description) pairs in
        the page's language."""
        return []

    def remove_all(self, state: FlowsState, user_id: str) -> None:
        """Delete every device of this kind of ``user_id`` (``flask flows mfa reset``);
        the caller commits."""
        model = self.model
        state.db.session.execute(sa.delete(model).where(model.user_id == user_id))

    def add_label(self, has_one: bool) -> str:
        """The settings page's button that runs :attr:`setup_flow`, in the page's language:
        "Add {kind}" with the label as it is. A kind words its own, whole, where that
        reads better in its languages (the built-in kinds do: "Add an authenticator app")."""
        return gettext("Add {kind}", kind=gettext(self.label))


class TOTPKind(AuthenticatorKind):
    """An authenticator app sharing a TOTP secret (RFC 6238). A code is accepted at most
    once per time step: the step is stored with a conditional UPDATE, so of two parallel
    uses only one wins, and a replay is refused and logged (ASVS 6.5.1)."""

    key = "totp"
    label = N_("Authenticator app")
    model = TOTPDevice
    setup_flow = "default-authenticator-totp-setup"
    code_hint = N_("Enter the code your authenticator app shows for this account.")
    numeric = True

    def looks_like(self, code: str) -> bool:
        compact = "".join(code.split()).replace("-", "")
        return compact.isdigit() and len(compact) <= 8

    def add_label(self, has_one: bool) -> str:
        return gettext("Add an authenticator app")

    def match(self, run: StageRun, user: Any, code: str) -> CodeMatch:
        replayed: TOTPDevice | None = None
        for device in self.devices(run.state, run.state.user_store.user_id(user)):
            check = verify_totp(device, code)
            if check.accepted and check.step is not None:
                return CodeMatch(functools.partial(self._spend, run, device, check.step))
            if check.replayed:
                replayed = device
        if replayed is None:
            return CodeMatch()
        run.state.log.warning(
            "authenticator_validate: replayed TOTP code for user %s, device %s",
            run.state.user_store.user_id(user),
            replayed.id,
        )
        return CodeMatch(error=REPLAYED_CODE)

    @staticmethod
    def _spend(run: StageRun, device: TOTPDevice, step: int) -> str | None:
        """Store ``step`` as the device's last, conditional on the stored one."""
        session = run.state.db.session
        spent = _execute(
            session,
            sa.update(TOTPDevice)
            .where(TOTPDevice.id == device.id, TOTPDevice.last_step < step)
            .values(last_step=step, last_used=utcnow())
            .execution_options(synchronize_session=False),
        )
        session.commit()
        return None if spent.rowcount == 1 else REPLAYED_CODE


class RecoveryCodesKind(AuthenticatorKind):
    """A set of single-use recovery codes; a used code is deleted, with a DELETE that
    reports its row count, so of two parallel uses of one code only one wins."""

    key = "static"
    label = N_("Recovery codes")
    model = StaticDevice
    setup_flow = "default-authenticator-static-setup"
    code_hint = N_("Enter one of your recovery codes. Each code works only once.")

    def usable(self, user_id: str) -> sa.ColumnElement[bool]:
        return sa.exists().where(*self._with_codes_left(user_id))

    @staticmethod
    def _with_codes_left(user_id: str) -> tuple[sa.ColumnElement[bool], ...]:
        """The user's confirmed sets that still have a code: the ones that verify."""
        return (
            StaticDevice.user_id == user_id,
            StaticDevice.confirmed.is_(True),
            StaticDevice.tokens.any(),
        )

    def add_label(self, has_one: bool) -> str:
        return gettext("Get new recovery codes") if has_one else gettext("Create recovery codes")

    def devices(self, state: FlowsState, user_id: str) -> list[Any]:
        return list(
            state.db.session.scalars(
                sa.select(StaticDevice)
                .where(StaticDevice.user_id == user_id, StaticDevice.confirmed.is_(True))
                .options(selectinload(StaticDevice.tokens))
                .order_by(StaticDevice.created, StaticDevice.id)
            )
        )

    def details(self, device: Any) -> list[tuple[str, str]]:
        return [(gettext("Codes left"), str(len(device.tokens)))]

    def remove_all(self, state: FlowsState, user_id: str) -> None:
        # Its codes first: SQLite keeps ON DELETE CASCADE only when asked to.
        sets = sa.select(StaticDevice.id).where(StaticDevice.user_id == user_id)
        state.db.session.execute(sa.delete(StaticToken).where(StaticToken.device_id.in_(sets)))
        super().remove_all(state, user_id)

    def match(self, run: StageRun, user: Any, code: str) -> CodeMatch:
        sets = list(
            run.state.db.session.scalars(
                sa.select(StaticDevice)
                .where(*self._with_codes_left(run.state.user_store.user_id(user)))
                .order_by(StaticDevice.id)
            )
        )
        token = match_recovery_code(sets, code, run.state.hashing)
        if token is None:
            return CodeMatch()
        return CodeMatch(functools.partial(self._spend, run, token.id, token.device_id))

    @staticmethod
    def _spend(run: StageRun, token_id: int, device_id: int) -> str | None:
        """Delete the used code; ``None`` unless a parallel request deleted it first."""
        session = run.state.db.session
        used = _execute(
            session,
            sa.delete(StaticToken)
            .where(StaticToken.id == token_id)
            .execution_options(synchronize_session=False),
        )
        session.execute(
            sa.update(StaticDevice)
            .where(StaticDevice.id == device_id)
            .values(last_used=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return None if used.rowcount == 1 else INVALID_CODE


class PasskeyKind(AuthenticatorKind):
    """A passkey or security key (WebAuthn). Nothing is typed: the browser answers a
    challenge (:mod:`flask_flows.passkeys`), so the validation stage runs the ceremony
    for it instead of :meth:`match`."""

    key = "webauthn"
    label = N_("Passkey")
    model = WebAuthnDevice
    setup_flow = "default-authenticator-webauthn-setup"
    typed = False

    def add_label(self, has_one: bool) -> str:
        return gettext("Add another passkey") if has_one else gettext("Add a passkey")

    def details(self, device: Any) -> list[tuple[str, str]]:
        if device.backed_up:
            synced = gettext("Yes, it is backed up and can move to your other devices")
        else:
            synced = gettext("No, it stays on the device or key that made it")
        return [(gettext("Synced"), synced)]


#: The built-in kinds, in the order a person is asked for them.
BUILT_IN_KINDS: tuple[type[AuthenticatorKind], ...] = (TOTPKind, RecoveryCodesKind, PasskeyKind)


def code_kind(code: str, classes: list[str], kinds: dict[str, AuthenticatorKind]) -> str:
    """Which of ``classes`` (kind keys, in order) a typed ``code`` is for: the first
    whose codes it looks like, else the first."""
    for key in classes:
        if kinds[key].looks_like(code):
            return key
    return classes[0]


def _execute(session: Any, statement: sa.Executable) -> sa.CursorResult[Any]:
    """Run an UPDATE or DELETE; its result reports how many rows it changed."""
    return cast(sa.CursorResult[Any], session.execute(statement))
