"""The software authenticator against py_webauthn's own verifier: if these pass, what it sends
is what a relying party accepts from a real browser, and what it forges is what one refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from passkey_authenticator import (
    ExcludedCredential,
    NoCredential,
    SoftAuthenticator,
)
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_authenticator_data
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import PublicKeyCredentialDescriptor

RP_ID = "example.test"
ORIGIN = "https://example.test"
USER_ID = b"user-handle-of-alice"


def register(
    authenticator: SoftAuthenticator,
    *,
    user_id: bytes = USER_ID,
    rp_id: str = RP_ID,
    origin: str = ORIGIN,
    exclude: list[bytes] | None = None,
) -> Any:
    """A registration ceremony verified as a server would (UV required)."""
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name="Example",
        user_id=user_id,
        user_name="alice",
        exclude_credentials=[PublicKeyCredentialDescriptor(id=i) for i in exclude or []],
    )
    response = authenticator.create(options_to_json(options), origin)
    return verify_registration_response(
        credential=response,
        expected_challenge=options.challenge,
        expected_rp_id=rp_id,
        expected_origin=origin,
        require_user_verification=True,
    )


def login_options(allow: list[bytes] | None = None, rp_id: str = RP_ID) -> Any:
    return generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[PublicKeyCredentialDescriptor(id=i) for i in allow or []],
    )


def verify_login(
    response: dict[str, Any],
    options: Any,
    public_key: bytes,
    *,
    current_count: int = 0,
    require_uv: bool = True,
) -> Any:
    return verify_authentication_response(
        credential=response,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=public_key,
        credential_current_sign_count=current_count,
        require_user_verification=require_uv,
    )


def user_verified(verified: Any, response: dict[str, Any]) -> bool:
    """The UV flag as the verifier read it: ``VerifiedAuthentication.user_verified`` appeared
    after py_webauthn 2.2, our lowest supported version, which only enforces it; there the
    flag is read from the authenticator data the verifier accepted."""
    if hasattr(verified, "user_verified"):
        return bool(verified.user_verified)
    auth_data = base64url_to_bytes(response["response"]["authenticatorData"])
    return parse_authenticator_data(auth_data).flags.uv


# Registration ---------------------------------------------------------------------------------


def test_registration_round_trip() -> None:
    authenticator = SoftAuthenticator()
    verified = register(authenticator)

    [held] = authenticator.credentials
    assert verified.credential_id == held.id
    assert len(held.id) == 32
    assert held.rp_id == RP_ID
    assert held.user_handle == USER_ID
    assert held.user_name == "alice"
    assert verified.credential_public_key == held.cose_public_key
    assert verified.user_verified is True
    assert verified.credential_backed_up is True
    assert verified.credential_device_type == "multi_device"
    assert verified.aaguid == "00000000-0000-0000-0000-000000000000"
    assert verified.fmt == "none"
    assert verified.sign_count == 0


def test_registration_response_is_what_to_json_gives() -> None:
    options = generate_registration_options(rp_id=RP_ID, rp_name="Example", user_name="alice")
    response = SoftAuthenticator().create(json.loads(options_to_json(options)), ORIGIN)

    assert response["type"] == "public-key"
    assert response["id"] == response["rawId"]
    assert response["authenticatorAttachment"] == "platform"
    assert response["clientExtensionResults"] == {}
    assert response["response"]["transports"] == ["internal", "hybrid"]
    assert response["response"]["publicKeyAlgorithm"] == -7
    for value in (response["id"], *response["response"].values()):
        if isinstance(value, str):
            assert "=" not in value and "+" not in value and "/" not in value
    client_data = json.loads(base64url_to_bytes(response["response"]["clientDataJSON"]))
    assert client_data == {
        "type": "webauthn.create",
        "challenge": bytes_to_base64url(options.challenge),
        "origin": ORIGIN,
        "crossOrigin": False,
    }


def test_registration_flags_and_aaguid_follow_the_options() -> None:
    aaguid = bytes(range(16))
    authenticator = SoftAuthenticator(aaguid=aaguid, backup_eligible=False, backed_up=False)
    verified = register(authenticator)

    assert verified.aaguid == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert verified.credential_backed_up is False
    assert verified.credential_device_type == "single_device"


def test_authenticator_data_flags() -> None:
    options = generate_registration_options(rp_id=RP_ID, rp_name="Example", user_name="alice")
    response = SoftAuthenticator(backed_up=False).create(options_to_json(options), ORIGIN)
    auth_data = parse_authenticator_data(
        base64url_to_bytes(response["response"]["authenticatorData"])
    )
    assert (auth_data.flags.up, auth_data.flags.uv, auth_data.flags.at) == (True, True, True)
    assert (auth_data.flags.be, auth_data.flags.bs) == (True, False)
    assert auth_data.attested_credential_data is not None


def test_backed_up_needs_backup_eligible() -> None:
    with pytest.raises(ValueError):
        SoftAuthenticator(backup_eligible=False)


def test_registration_without_uv_fails_when_uv_is_required() -> None:
    with pytest.raises(InvalidRegistrationResponse, match="verif"):
        register(SoftAuthenticator(user_verification=False))


def test_registration_from_another_origin_fails() -> None:
    options = generate_registration_options(rp_id=RP_ID, rp_name="Example", user_name="alice")
    response = SoftAuthenticator().create(options_to_json(options), "https://evil.test")
    with pytest.raises(InvalidRegistrationResponse, match="origin"):
        verify_registration_response(
            credential=response,
            expected_challenge=options.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_registration_with_another_challenge_fails() -> None:
    options = generate_registration_options(rp_id=RP_ID, rp_name="Example", user_name="alice")
    response = SoftAuthenticator().create(options_to_json(options), ORIGIN)
    with pytest.raises(InvalidRegistrationResponse, match="challenge"):
        verify_registration_response(
            credential=response,
            expected_challenge=b"another challenge",
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_registration_for_another_rp_id_fails() -> None:
    options = generate_registration_options(rp_id="evil.test", rp_name="Evil", user_name="alice")
    response = SoftAuthenticator().create(options_to_json(options), ORIGIN)
    with pytest.raises(InvalidRegistrationResponse, match="RP ID"):
        verify_registration_response(
            credential=response,
            expected_challenge=options.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_excluded_credential_is_refused() -> None:
    authenticator = SoftAuthenticator()
    first = register(authenticator)
    with pytest.raises(ExcludedCredential):
        register(authenticator, user_id=b"another", exclude=[b"unknown", first.credential_id])
    assert len(authenticator.credentials) == 1


def test_excluded_credentials_of_other_authenticators_do_not_matter() -> None:
    authenticator = SoftAuthenticator()
    other = register(SoftAuthenticator())
    mine = register(authenticator, exclude=[other.credential_id])
    assert [c.id for c in authenticator.credentials] == [mine.credential_id]


def test_registering_the_same_account_again_replaces_the_passkey() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator)
    bob = register(authenticator, user_id=b"bob")
    second = register(authenticator)
    assert [c.id for c in authenticator.credentials] == [bob.credential_id, second.credential_id]


# Authentication -------------------------------------------------------------------------------


def test_authentication_round_trip_with_allow_credentials() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    options = login_options(allow=[b"unknown", registered.credential_id])

    response = authenticator.get(options_to_json(options), ORIGIN)
    verified = verify_login(response, options, registered.credential_public_key)

    assert verified.credential_id == registered.credential_id
    assert user_verified(verified, response) is True
    assert verified.new_sign_count == 0
    assert verified.credential_backed_up is True
    assert verified.credential_device_type == "multi_device"
    assert base64url_to_bytes(response["response"]["userHandle"]) == USER_ID
    client_data = json.loads(base64url_to_bytes(response["response"]["clientDataJSON"]))
    assert client_data["type"] == "webauthn.get"
    assert client_data["crossOrigin"] is False


def test_discoverable_login_picks_the_credential_for_the_rp() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator, rp_id="other.test", origin="https://other.test")
    registered = register(authenticator)
    options = login_options()

    response = authenticator.get(options_to_json(options), ORIGIN)
    verified = verify_login(response, options, registered.credential_public_key)

    assert verified.credential_id == registered.credential_id
    assert base64url_to_bytes(response["response"]["userHandle"]) == USER_ID


def test_credential_id_chooses_among_held_ones() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator)
    bob = register(authenticator, user_id=b"bob")
    options = login_options()

    response = authenticator.get(options_to_json(options), ORIGIN, bob.credential_id)
    verify_login(response, options, bob.credential_public_key)
    assert base64url_to_bytes(response["response"]["userHandle"]) == b"bob"


def test_signature_covers_client_data() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    options = login_options()
    response = authenticator.get(options_to_json(options), ORIGIN)
    other = authenticator.get(options_to_json(login_options()), ORIGIN)
    response["response"]["signature"] = other["response"]["signature"]
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        verify_login(response, options, registered.credential_public_key)


def test_another_key_does_not_verify() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator)
    stranger = register(SoftAuthenticator())
    options = login_options()
    response = authenticator.get(options_to_json(options), ORIGIN)
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        verify_login(response, options, stranger.credential_public_key)


def test_authentication_without_uv() -> None:
    authenticator = SoftAuthenticator(user_verification=False)
    options = generate_registration_options(rp_id=RP_ID, rp_name="Example", user_name="alice")
    registered = verify_registration_response(
        credential=authenticator.create(options_to_json(options), ORIGIN),
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    assert registered.user_verified is False

    options = login_options()
    response = authenticator.get(options_to_json(options), ORIGIN)
    verified = verify_login(response, options, registered.credential_public_key, require_uv=False)
    assert user_verified(verified, response) is False
    with pytest.raises(InvalidAuthenticationResponse, match="verif"):
        verify_login(response, options, registered.credential_public_key, require_uv=True)


def test_wrong_origin_fails() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    options = login_options()
    response = authenticator.get(options_to_json(options), "https://evil.test")
    with pytest.raises(InvalidAuthenticationResponse, match="origin"):
        verify_login(response, options, registered.credential_public_key)


def test_wrong_rp_id_fails() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    options = login_options()
    response = authenticator.get(options_to_json(options), ORIGIN, rp_id="evil.test")
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        verify_login(response, options, registered.credential_public_key)


def test_wrong_challenge_fails() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    answered, expected = login_options(), login_options()
    response = authenticator.get(options_to_json(answered), ORIGIN)
    with pytest.raises(InvalidAuthenticationResponse, match="challenge"):
        verify_login(response, expected, registered.credential_public_key)


def test_user_handle_override_is_sent() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    options = login_options()
    response = authenticator.get(options_to_json(options), ORIGIN, user_handle=b"mallory")
    assert base64url_to_bytes(response["response"]["userHandle"]) == b"mallory"
    # userHandle is outside what is signed: only the server's own check can catch this.
    verify_login(response, options, registered.credential_public_key)


# Signature counter ----------------------------------------------------------------------------


def test_synced_passkey_always_sends_zero() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    for _ in range(3):
        options = login_options()
        response = authenticator.get(options_to_json(options), ORIGIN)
        assert verify_login(response, options, registered.credential_public_key).new_sign_count == 0
    assert authenticator.credentials[0].sign_count == 0


def test_counting_authenticator_counts_up() -> None:
    authenticator = SoftAuthenticator(counts=True)
    registered = register(authenticator)
    assert registered.sign_count == 0
    count = registered.sign_count
    for expected in (1, 2, 3):
        options = login_options()
        response = authenticator.get(options_to_json(options), ORIGIN)
        count = verify_login(
            response, options, registered.credential_public_key, current_count=count
        ).new_sign_count
        assert count == expected
    assert authenticator.credentials[0].sign_count == 3


def test_clone_replays_a_lower_counter_and_is_refused() -> None:
    authenticator = SoftAuthenticator(counts=True)
    registered = register(authenticator)
    clone = authenticator.clone()
    assert [c.id for c in clone.credentials] == [registered.credential_id]
    key = registered.credential_public_key

    count = 0
    for _ in range(2):
        options = login_options()
        response = authenticator.get(options_to_json(options), ORIGIN)
        count = verify_login(response, options, key, current_count=count).new_sign_count
    assert count == 2

    options = login_options()
    replay = clone.get(options_to_json(options), ORIGIN)
    assert (
        parse_authenticator_data(
            base64url_to_bytes(replay["response"]["authenticatorData"])
        ).sign_count
        == 1
    )
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        verify_login(replay, options, key, current_count=count)
    # The clone's counters are its own.
    assert authenticator.credentials[0].sign_count == 2
    assert clone.credentials[0].sign_count == 1


def test_sign_count_override_is_sent_and_does_not_advance_the_counter() -> None:
    authenticator = SoftAuthenticator(counts=True)
    registered = register(authenticator)
    key = registered.credential_public_key
    options = login_options()
    count = verify_login(
        authenticator.get(options_to_json(options), ORIGIN), options, key
    ).new_sign_count
    assert count == 1

    options = login_options()
    replay = authenticator.get(options_to_json(options), ORIGIN, sign_count=1)
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        verify_login(replay, options, key, current_count=count)

    options = login_options()
    response = authenticator.get(options_to_json(options), ORIGIN)
    assert verify_login(response, options, key, current_count=count).new_sign_count == 2


# No fitting credential ------------------------------------------------------------------------


def test_no_credential_for_the_rp() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator, rp_id="other.test", origin="https://other.test")
    with pytest.raises(NoCredential):
        authenticator.get(options_to_json(login_options()), ORIGIN)


def test_no_credential_in_allow_credentials() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator)
    with pytest.raises(NoCredential):
        authenticator.get(options_to_json(login_options(allow=[b"someone else's"])), ORIGIN)


def test_no_credential_with_that_id() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator)
    with pytest.raises(NoCredential):
        authenticator.get(options_to_json(login_options()), ORIGIN, b"unknown")


def test_empty_authenticator_has_nothing() -> None:
    with pytest.raises(NoCredential):
        SoftAuthenticator().get(options_to_json(login_options()), ORIGIN)
