"""Passkeys (WebAuthn): the two ceremonies, registration and authentication.

A passkey proves its holder by signing a fresh challenge with a private key that never
leaves the authenticator; the server keeps only the public key
(:class:`flask_flows.devices.WebAuthnDevice`). Each answer is checked against the
relying party (:mod:`flask_flows.relying_party`: the domain and the origins, never the
request's ``Host`` alone) and the one-time challenge it answers
(:mod:`flask_flows.challenges`). A signed assertion whose sign count went backwards (a
cloned authenticator) is refused and logged. Nothing secret is written to the cookie
or the log: a challenge is a nonce, a credential id names a public key.

The cryptography is py_webauthn's (``webauthn``); this module decides what to ask for
and what to store.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import webauthn
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_authenticator_data
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .challenges import CHALLENGE_SECONDS, issue_challenge, spend_challenge, take_challenge
from .devices import WebAuthnDevice
from .i18n import N_
from .models import utcnow
from .relying_party import RelyingParty, usable_relying_party

if TYPE_CHECKING:
    from .extension import FlowsState

#: The user handle a first passkey is being made with, and whose (plan context key):
#: kept until one is stored, so a refused attempt and the next give the authenticator
#: the same account, and never used for another user.
USER_HANDLE = "passkey_user_handle"
#: The longest credential id WebAuthn allows, in bytes.
MAX_CREDENTIAL_ID = 1023
#: The longest response accepted (a registration with attestation is a few kilobytes).
MAX_RESPONSE = 16 * 1024

NOT_ANSWERED = N_("The passkey did not answer. Try again.")
EXPIRED = N_("That took too long. Try again.")
NOT_VERIFIED = N_("That passkey could not be verified. Try again, or use another way to sign in.")
UNKNOWN = N_(
    "This passkey is not registered here (it may have been removed). Use another way to sign in."
)
CLONED = N_("This passkey was refused. Use another way to sign in.")
NO_USER_VERIFICATION = N_(
    "Your passkey did not check that it is you (with a PIN, fingerprint or face)."
    " Set one up for it, or use another way to sign in."
)
ALREADY_REGISTERED = N_("This passkey is already registered.")
NOT_ADDED = N_("That passkey could not be added. Try again.")
UNAVAILABLE_HERE = N_("Passkeys cannot be used on this address of the site.")


@dataclass(frozen=True)
class Registration:
    """A verified new credential, ready to store."""

    credential_id: str
    public_key: bytes
    sign_count: int
    transports: str
    backup_eligible: bool
    backed_up: bool
    aaguid: str


@dataclass(frozen=True)
class Assertion:
    """What an authentication ceremony found: the passkey used, or why none counts."""

    device: WebAuthnDevice | None = None
    error: str = NOT_VERIFIED


# -- registration ---------------------------------------------------------------------------


def registration_options(
    state: FlowsState,
    store: MutableMapping[str, Any],
    user: Any,
    config: dict[str, Any],
) -> str | None:
    """The creation options (JSON, for ``navigator.credentials.create``) for a new passkey
    of ``user``, per a setup stage's ``config``; its challenge waits in ``store``.
    ``None`` where passkeys cannot work (see :func:`usable_relying_party`)."""
    rp = usable_relying_party(state)
    if rp is None:
        return None
    user_id = state.user_store.user_id(user)
    existing = devices_of(state, user_id)
    kept = store.get(USER_HANDLE)
    if existing:
        handle = existing[0].user_handle
    elif isinstance(kept, dict) and kept.get("user") == user_id:
        handle = kept["handle"]
    else:
        handle = bytes_to_base64url(secrets.token_bytes(32))
    store[USER_HANDLE] = {"user": user_id, "handle": handle}
    challenge = issue_challenge(store, "create")
    account = state.user_store.display_name(user) or user_id
    attachment = config.get("authenticator_attachment")
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=base64url_to_bytes(handle),
        user_name=account,
        user_display_name=account,
        challenge=challenge,
        timeout=CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference(config.get("attestation", "none")),
        authenticator_selection=AuthenticatorSelectionCriteria(
            authenticator_attachment=AuthenticatorAttachment(attachment) if attachment else None,
            resident_key=ResidentKeyRequirement(config.get("resident_key", "preferred")),
            user_verification=UserVerificationRequirement(
                config.get("user_verification", "preferred")
            ),
        ),
        exclude_credentials=_descriptors(existing),
    )
    return webauthn.options_to_json(options)


def register(
    state: FlowsState,
    store: MutableMapping[str, Any],
    response: str,
    config: dict[str, Any],
    user_id: str,
) -> tuple[Registration, str] | str:
    """Verify a registration ``response`` of ``user_id`` against the challenge in
    ``store``: the new credential and the user handle it was made for, or the message
    saying why not. The caller stores the credential, then drops :data:`USER_HANDLE`."""
    answer = _answer(state, store, "create", response, NOT_ADDED)
    kept = store.get(USER_HANDLE)
    if isinstance(answer, str):
        return answer
    if not isinstance(kept, dict) or kept.get("user") != user_id:
        return EXPIRED
    handle = str(kept["handle"])
    parsed, rp = answer.parsed, answer.rp
    try:
        verified = webauthn.verify_registration_response(
            credential=parsed,
            expected_challenge=answer.challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            require_user_verification=config.get("user_verification") == "required",
        )
    except (
        WebAuthnException,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
    ) as error:
        state.log.info("passkeys: registration refused: %r", str(error))
        return NOT_ADDED
    if not spend_challenge(state, answer.challenge):
        state.log.warning("passkeys: a registration answered a spent challenge")
        return EXPIRED
    if len(verified.credential_id) > MAX_CREDENTIAL_ID:
        return NOT_ADDED  # longer than WebAuthn allows (and the column holds)
    credential_id = bytes_to_base64url(verified.credential_id)
    if state.db.session.scalar(
        sa.select(WebAuthnDevice.id).where(WebAuthnDevice.credential_id == credential_id)
    ):
        return ALREADY_REGISTERED
    return (
        Registration(
            credential_id=credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=",".join(_transports(parsed)),
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            aaguid=str(verified.aaguid),
        ),
        handle,
    )


# -- authentication -------------------------------------------------------------------------


def authentication_options(
    state: FlowsState,
    store: MutableMapping[str, Any],
    devices: list[WebAuthnDevice] | None,
    user_verification: str,
) -> str | None:
    """The request options (JSON, for ``navigator.credentials.get``): for ``devices``, or,
    with ``None``, for any passkey of this site (a passwordless login, where the
    authenticator says whose it is). ``None`` where passkeys cannot work."""
    rp = usable_relying_party(state)
    if rp is None:
        return None
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        challenge=issue_challenge(store, "get"),
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=_descriptors(devices or []),
        user_verification=UserVerificationRequirement(user_verification),
    )
    return webauthn.options_to_json(options)


def authenticate(
    state: FlowsState,
    store: MutableMapping[str, Any],
    response: str,
    *,
    user_id: str | None,
    require_user_verification: bool,
) -> Assertion:
    """Verify an authentication ``response`` against the challenge in ``store``: by one
    of ``user_id``'s passkeys, or (``None``) by anyone's, named by the response. A match
    updates the passkey's sign count, backup state and last use (and commits)."""
    answer = _answer(state, store, "get", response, NOT_VERIFIED)
    if isinstance(answer, str):
        return Assertion(error=answer)
    parsed, rp = answer.parsed, answer.rp
    credential_id = parsed["rawId"]
    query = sa.select(WebAuthnDevice).where(WebAuthnDevice.credential_id == credential_id)
    if user_id is not None:
        query = query.where(WebAuthnDevice.user_id == user_id)
    device = state.db.session.scalar(query)
    if device is None:
        state.log.info("passkeys: an unknown credential answered")
        return Assertion(error=UNKNOWN)
    handle = parsed["response"].get("userHandle")
    # A passkey sign-in must say whose it is (a discoverable credential always does).
    if (handle or user_id is None) and handle != device.user_handle:
        state.log.warning("passkeys: credential %s answered for another account", device.id)
        return Assertion(error=NOT_VERIFIED)
    try:
        # The count is compared below, once the signature proves the response genuine.
        verified = webauthn.verify_authentication_response(
            credential=parsed,
            expected_challenge=answer.challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=device.public_key,
            credential_current_sign_count=0,
            require_user_verification=False,
        )
    except (
        WebAuthnException,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
    ) as error:
        state.log.info("passkeys: assertion by credential %s refused: %r", device.id, str(error))
        return Assertion(error=NOT_VERIFIED)
    count = verified.new_sign_count
    if (count > 0 or device.sign_count > 0) and count <= device.sign_count:
        state.log.warning(
            "passkeys: sign count of credential %s of user %s went from %d to %d: the"
            " authenticator may have been cloned; refused",
            device.id,
            device.user_id,
            device.sign_count,
            count,
        )
        return Assertion(error=CLONED)
    if require_user_verification and not _user_verified(parsed):
        return Assertion(error=NO_USER_VERIFICATION)
    device_id = device.id
    # Conditional on the count read above: of two answers in parallel, one moves it.
    used = state.db.session.execute(
        sa.update(WebAuthnDevice)
        .where(WebAuthnDevice.id == device_id, WebAuthnDevice.sign_count == device.sign_count)
        .values(sign_count=count, backed_up=verified.credential_backed_up, last_used=utcnow())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        state.db.session.rollback()
        state.log.warning("passkeys: credential %s answered twice at once", device_id)
        return Assertion(error=NOT_VERIFIED)
    if not spend_challenge(state, answer.challenge):
        state.log.warning("passkeys: credential %s answered a spent challenge", device_id)
        return Assertion(error=EXPIRED)
    return Assertion(device)


@dataclass(frozen=True)
class _Answer:
    challenge: bytes
    parsed: dict[str, Any]
    rp: RelyingParty


def _answer(
    state: FlowsState,
    store: MutableMapping[str, Any],
    purpose: str,
    response: str,
    refused: str,
) -> _Answer | str:
    """The answer to the challenge for ``purpose`` in ``store``, checked as far as both
    ceremonies check it: a challenge was waiting (it is taken now), the answer is a JSON
    object of the right shape, passkeys work here, and it comes from a listed origin.
    Else the message saying why not (``refused`` for an answer that is no good)."""
    waiting = take_challenge(store, purpose)
    if waiting is None:
        return EXPIRED
    parsed = _parse(response)
    if parsed is None:
        return NOT_ANSWERED
    if not _well_formed(parsed):
        return refused
    rp = usable_relying_party(state)
    if rp is None:
        return UNAVAILABLE_HERE
    if not _from_known_origin(state, rp, parsed):
        return refused
    return _Answer(waiting["c"], parsed, rp)


def devices_of(state: FlowsState, user_id: str) -> list[WebAuthnDevice]:
    """The user's passkeys, oldest first."""
    return list(
        state.db.session.scalars(
            sa.select(WebAuthnDevice)
            .where(WebAuthnDevice.user_id == user_id)
            .order_by(WebAuthnDevice.created, WebAuthnDevice.id)
        )
    )


def _descriptors(devices: list[WebAuthnDevice]) -> list[PublicKeyCredentialDescriptor]:
    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(device.credential_id),
            transports=[
                AuthenticatorTransport(name)
                for name in device.transports.split(",")
                if name in known
            ]
            or None,
        )
        for device in devices
    ]


def _parse(response: str) -> dict[str, Any] | None:
    """The browser's JSON answer as a dict, ``None`` when it is not one."""
    if not response or len(response) > MAX_RESPONSE:
        return None
    try:
        parsed = json.loads(response)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _well_formed(parsed: dict[str, Any]) -> bool:
    """Whether an answer has the members read here before py_webauthn checks the rest:
    a ``response`` object and string ids."""
    return (
        isinstance(parsed.get("response"), dict)
        and isinstance(parsed.get("id"), str)
        and isinstance(parsed.get("rawId"), str)
    )


def _from_known_origin(state: FlowsState, rp: RelyingParty, parsed: dict[str, Any]) -> bool:
    """Whether the browser says the answer was made on one of the RP's origins. One that
    was not is a look-alike site relaying it, or (more often) origins that do not name
    where the site runs: logged as a warning that says which."""
    try:
        client_data = json.loads(base64url_to_bytes(parsed["response"]["clientDataJSON"]))
        origin = client_data["origin"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return True  # malformed: py_webauthn refuses it with its reason
    if origin in rp.origins:
        return True
    state.log.warning(
        "passkeys: an answer came from %r, which is not among the origins %s"
        " (FLOWS_WEBAUTHN_ORIGINS, or the site's address): a look-alike site, or"
        " FLOWS_WEBAUTHN_ORIGINS must name it",
        origin,
        list(rp.origins),
    )
    return False


def _user_verified(parsed: dict[str, Any]) -> bool:
    """The UV flag of a response already verified (read here: py_webauthn 2.2, our
    oldest, does not report it)."""
    data = base64url_to_bytes(parsed["response"]["authenticatorData"])
    return bool(parse_authenticator_data(data).flags.uv)


def _transports(parsed: dict[str, Any]) -> list[str]:
    known = {transport.value for transport in AuthenticatorTransport}
    given = parsed["response"].get("transports") or []
    if not isinstance(given, list):
        return []
    return [name for name in given if isinstance(name, str) and name in known][:8]
