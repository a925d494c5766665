"""A software WebAuthn authenticator, so tests can register and use passkeys without a browser.

:class:`SoftAuthenticator` plays both halves of the client side of a WebAuthn ceremony: the
browser (which builds ``clientDataJSON`` and serialises the result with
``PublicKeyCredential.toJSON()``) and the authenticator (which keeps the key pairs, builds
authenticator data and signs). It takes the options exactly as a server sends them to the page
(the camelCase JSON of :func:`webauthn.options_to_json`) and returns exactly what the page would
post back, so a test drives the server's real endpoints end to end.

It is written from the WebAuthn Level 3 specification (sections 6.1 "Authenticator Data",
6.5 "Attestation", 5.8.1 "Client Data", 5.1.8-9 JSON serialisation) and CTAP 2.1
(authenticatorMakeCredential / authenticatorGetAssertion). Where a real browser would refuse
to go on (an origin that does not match the rp id, ``userVerification: "required"`` on an
authenticator that cannot verify), it goes on anyway: the point of the suite is to check that
the *server* refuses such responses, so the client side must be able to send them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

__all__ = ["ExcludedCredential", "NoCredential", "SoftAuthenticator", "SoftCredential"]

#: COSE algorithm identifier of ES256 (ECDSA with SHA-256 on P-256), the one algorithm every
#: relying party must accept, hence the one a minimal authenticator needs.
ES256 = -7

# Authenticator data flags (WebAuthn L3 section 6.1).
FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_BE = 0x08  # backup eligible: the credential may be synced to other devices
FLAG_BS = 0x10  # backed up: the credential is currently synced
FLAG_AT = 0x40  # attested credential data follows the sign count

#: What a phone or laptop passkey provider reports: built in, and reachable from another
#: device over the hybrid (QR code / Bluetooth) transport.
TRANSPORTS = ["internal", "hybrid"]


class ExcludedCredential(Exception):
    """The authenticator already holds a credential the server listed in ``excludeCredentials``.

    A real client rejects ``navigator.credentials.create()`` with ``InvalidStateError`` here, so
    that the same authenticator is not registered twice for one account.
    """


class NoCredential(Exception):
    """No held credential fits the request (rp id, ``allowCredentials``, chosen id).

    A real client leaves ``navigator.credentials.get()`` pending until the user cancels, then
    rejects with ``NotAllowedError``; a test wants to know at once.
    """


@dataclass
class SoftCredential:
    """One credential source (WebAuthn L3 section 6.4.1) as the authenticator stores it."""

    id: bytes
    rp_id: str
    user_handle: bytes
    user_name: str
    private_key: ec.EllipticCurvePrivateKey
    sign_count: int = 0

    @property
    def cose_public_key(self) -> bytes:
        """The public key as a COSE_Key (RFC 9053 EC2), the form the server stores and
        :func:`webauthn.verify_authentication_response` takes."""
        numbers = self.private_key.public_key().public_numbers()
        # Keys in CTAP2 canonical CBOR order (shorter encoding first): 1, 3, -1, -2, -3.
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: ES256,  # alg
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


def _load(options: str | dict[str, Any]) -> dict[str, Any]:
    """Options as a dict whether the test kept :func:`webauthn.options_to_json`'s string or
    parsed it first (as the page's JavaScript would)."""
    return json.loads(options) if isinstance(options, str) else options


def _default_rp_id(origin: str) -> str:
    """The rp id a browser uses when the options name none: the origin's effective domain."""
    host = urlsplit(origin).hostname
    if not host:
        raise ValueError(f"origin {origin!r} has no host")
    return host


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    """``clientDataJSON`` as a browser serialises it (WebAuthn L3 section 5.8.1.1): these
    members in this order, no whitespace, the challenge echoed as the options gave it."""
    data = {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
    return json.dumps(data, separators=(",", ":")).encode()


class SoftAuthenticator:
    """An in-memory passkey provider, like a phone's or a laptop's platform authenticator.

    Every credential it creates is discoverable (a passkey), so it can answer a login whose
    ``allowCredentials`` is empty. The defaults describe a synced passkey (iCloud Keychain,
    Google Password Manager): it verifies the user, the credential is backup eligible and
    backed up, and the signature counter stays 0 for ever because copies on other devices
    could not keep one counter in step.
    """

    def __init__(
        self,
        *,
        aaguid: bytes = bytes(16),
        user_verification: bool = True,
        backup_eligible: bool = True,
        backed_up: bool = True,
        counts: bool = False,
    ) -> None:
        """
        :param aaguid: the 16-byte model identifier put in attested credential data; all zeros
            is what providers send with ``"none"`` attestation.
        :param user_verification: whether it verifies the user (biometrics, PIN) and so sets
            the UV flag. It never refuses for lack of it, so tests can check the server does.
        :param backup_eligible: whether credentials may be synced (BE flag).
        :param backed_up: whether they are synced now (BS flag); needs ``backup_eligible``.
        :param counts: whether it keeps a per-credential signature counter, as a security key
            does: 0 at registration, then 1, 2, ... per assertion. Without it every counter is 0.
        """
        if len(aaguid) != 16:
            raise ValueError("an AAGUID is 16 bytes")
        if backed_up and not backup_eligible:
            # WebAuthn L3 section 6.1.3: BS set with BE clear is an invalid combination.
            raise ValueError("a credential cannot be backed up without being backup eligible")
        self.aaguid = aaguid
        self.user_verification = user_verification
        self.backup_eligible = backup_eligible
        self.backed_up = backed_up
        self.counts = counts
        #: The credentials held, oldest first; the first fitting one answers a login.
        self.credentials: list[SoftCredential] = []

    # Ceremonies ---------------------------------------------------------------------------

    def create(self, options: str | dict[str, Any], origin: str) -> dict[str, Any]:
        """Register: what ``navigator.credentials.create({publicKey: options})`` then
        ``credential.toJSON()`` give the page, ready to post back to the server.

        :param options: PublicKeyCredentialCreationOptionsJSON as the server sent it.
        :param origin: the page's origin, put in ``clientDataJSON`` unchecked.
        :raises ExcludedCredential: it holds one of ``excludeCredentials`` for this rp id.
        """
        opts = _load(options)
        rp_id = opts.get("rp", {}).get("id") or _default_rp_id(origin)
        user = opts["user"]
        user_handle = base64url_to_bytes(user["id"])

        params = opts.get("pubKeyCredParams") or []
        # An empty list means "ES256 or RS256" (WebAuthn L3 section 5.1.3 step 10).
        if params and not any(p.get("alg") == ES256 for p in params):
            raise ValueError("the server accepts no algorithm this authenticator has (ES256)")

        excluded = {base64url_to_bytes(c["id"]) for c in opts.get("excludeCredentials") or []}
        for held in self._held_for(rp_id):
            if held.id in excluded:
                raise ExcludedCredential(f"already registered: {bytes_to_base64url(held.id)}")

        credential = SoftCredential(
            id=secrets.token_bytes(32),
            rp_id=rp_id,
            user_handle=user_handle,
            user_name=user.get("name", ""),
            private_key=ec.generate_private_key(ec.SECP256R1()),
        )
        # A discoverable credential replaces the one the authenticator holds for the same
        # account on the same site (CTAP 2.1 authenticatorMakeCredential step 17), as a phone
        # does when you register again without the server excluding the old one.
        self.credentials = [
            c for c in self.credentials if (c.rp_id, c.user_handle) != (rp_id, user_handle)
        ]
        self.credentials.append(credential)

        attested = (
            self.aaguid
            + len(credential.id).to_bytes(2, "big")
            + credential.id
            + credential.cose_public_key
        )
        auth_data = self._authenticator_data(rp_id, FLAG_AT, credential.sign_count) + attested
        # Keys in CTAP2 canonical order; "none" attestation says nothing about the model,
        # which is what passkey providers send unless asked otherwise.
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = _client_data("webauthn.create", opts["challenge"], origin)
        public_key_der = credential.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "id": bytes_to_base64url(credential.id),
            "rawId": bytes_to_base64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation_object),
                "transports": list(TRANSPORTS),
                # Level 3 AuthenticatorAttestationResponseJSON also carries these three
                # conveniences, so servers need not parse CBOR; browsers send them.
                "authenticatorData": bytes_to_base64url(auth_data),
                "publicKey": bytes_to_base64url(public_key_der),
                "publicKeyAlgorithm": ES256,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: str | dict[str, Any],
        origin: str,
        credential_id: bytes | None = None,
        *,
        sign_count: int | None = None,
        user_handle: bytes | None = None,
        rp_id: str | None = None,
    ) -> dict[str, Any]:
        """Log in: what ``navigator.credentials.get({publicKey: options})`` then
        ``credential.toJSON()`` give the page.

        :param options: PublicKeyCredentialRequestOptionsJSON as the server sent it.
        :param origin: the page's origin, put in ``clientDataJSON`` unchecked.
        :param credential_id: use this held credential whatever the rp id and
            ``allowCredentials`` say (to present one the server did not ask for); otherwise
            the first held for the rp id that ``allowCredentials`` lists, or any held for the
            rp id when the list is empty (a discoverable, username-less login).
        :param sign_count: send this counter instead of the credential's (to replay an old
            one); the credential's own counter is then left as it was.
        :param user_handle: send this user handle instead of the credential's owner.
        :param rp_id: hash this rp id into the authenticator data instead of the requested one.
        :raises NoCredential: nothing held fits.
        """
        opts = _load(options)
        requested_rp_id = opts.get("rpId") or _default_rp_id(origin)
        credential = self._choose(requested_rp_id, opts.get("allowCredentials"), credential_id)

        if sign_count is None:
            if self.counts:
                credential.sign_count += 1
            sign_count = credential.sign_count

        auth_data = self._authenticator_data(rp_id or requested_rp_id, 0, sign_count)
        client_data = _client_data("webauthn.get", opts["challenge"], origin)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = credential.user_handle if user_handle is None else user_handle
        return {
            "id": bytes_to_base64url(credential.id),
            "rawId": bytes_to_base64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
                "userHandle": bytes_to_base64url(handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def clone(self) -> SoftAuthenticator:
        """A copy holding the same credentials with their counters as they are now.

        Used alone afterwards, the copy and the original each advance their own counters, so
        whichever is used second sends a counter the server has already seen: the sign of a
        cloned authenticator that a counting server must refuse (WebAuthn L3 section 6.1.1).
        """
        twin = SoftAuthenticator(
            aaguid=self.aaguid,
            user_verification=self.user_verification,
            backup_eligible=self.backup_eligible,
            backed_up=self.backed_up,
            counts=self.counts,
        )
        # Private keys are immutable, so sharing them is sharing the key material, as a clone
        # does; the counters are per copy.
        twin.credentials = [replace(c) for c in self.credentials]
        return twin

    # Internals ----------------------------------------------------------------------------

    def _held_for(self, rp_id: str) -> list[SoftCredential]:
        """Credentials scoped to ``rp_id``: an authenticator never offers another site's."""
        return [c for c in self.credentials if c.rp_id == rp_id]

    def _choose(
        self,
        rp_id: str,
        allow_credentials: list[dict[str, Any]] | None,
        credential_id: bytes | None,
    ) -> SoftCredential:
        """The credential to answer with (see :meth:`get`)."""
        if credential_id is not None:
            for held in self.credentials:
                if held.id == credential_id:
                    return held
            raise NoCredential(f"no credential {bytes_to_base64url(credential_id)} held")
        allowed = {base64url_to_bytes(c["id"]) for c in allow_credentials or []}
        for held in self._held_for(rp_id):
            if not allowed or held.id in allowed:
                return held
        raise NoCredential(f"no credential held for {rp_id!r} that the server allows")

    def _authenticator_data(self, rp_id: str, extra_flags: int, sign_count: int) -> bytes:
        """rpIdHash, flags and signCount (WebAuthn L3 section 6.1): the part of authenticator
        data both ceremonies share; registration appends attested credential data."""
        flags = FLAG_UP | extra_flags  # a test's call stands for the user's touch
        if self.user_verification:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE
        if self.backed_up:
            flags |= FLAG_BS
        return (
            hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + sign_count.to_bytes(4, "big")
        )
