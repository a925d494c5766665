"""One-time codes: RFC 6238 vectors, replay protection, recovery codes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from flask_flows.devices import StaticDevice, TOTPDevice
from flask_flows.otp import (
    match_recovery_code,
    new_recovery_codes,
    new_recovery_seed,
    new_totp_secret,
    provisioning_uri,
    recovery_codes,
    store_recovery_codes,
    totp,
    verify_totp,
)
from flask_flows.passwords import PasswordHashing

#: RFC 6238 Appendix B (TOTP) and RFC 4226 Appendix D (HOTP) vectors, kept with the tests.
VECTORS = json.loads((Path(__file__).parent / "data" / "otp-vectors.json").read_text())


def device_for(algorithm: str, digits: int = 8, last_step: int = 0) -> TOTPDevice:
    seed = VECTORS["seeds_ascii"][algorithm].encode()
    return TOTPDevice(
        user_id="1",
        secret=base64.b32encode(seed).decode(),
        digits=digits,
        algorithm=algorithm.lower(),
        period=30,
        last_step=last_step,
    )


@pytest.mark.parametrize("vector", VECTORS["totp"], ids=lambda v: f"{v['algorithm']}-{v['time']}")
def test_rfc6238_appendix_b_vectors_pass_the_login_code_path(vector: dict) -> None:
    device = device_for(vector["algorithm"], vector["digits"])
    check = verify_totp(device, vector["code"], now=vector["time"])
    assert check.accepted
    assert check.step == vector["time"] // vector["step"]


def test_the_base32_seeds_match_the_reference() -> None:
    for algorithm, encoded in VECTORS["seeds_base32"].items():
        assert device_for(algorithm).secret == encoded


def test_a_wrong_code_fails() -> None:
    vector = VECTORS["totp"][0]
    device = device_for(vector["algorithm"])
    wrong = str((int(vector["code"]) + 1) % 10**8).zfill(8)
    assert not verify_totp(device, wrong, now=vector["time"]).accepted


def test_window_is_one_step_each_side() -> None:
    device = TOTPDevice(
        user_id="1", secret=new_totp_secret(), digits=6, algorithm="sha1", period=30
    )
    now = 1_700_000_000
    step = now // 30
    generator = totp(device)
    assert verify_totp(device, generator.generate_otp(step - 1), now=now).accepted
    assert verify_totp(device, generator.generate_otp(step + 1), now=now).accepted
    assert not verify_totp(device, generator.generate_otp(step - 2), now=now).accepted
    assert not verify_totp(device, generator.generate_otp(step + 2), now=now).accepted


def test_a_code_is_accepted_once_per_step() -> None:
    device = TOTPDevice(
        user_id="1", secret=new_totp_secret(), digits=6, algorithm="sha1", period=30, last_step=0
    )
    now = 1_700_000_000
    code = totp(device).generate_otp(now // 30)
    first = verify_totp(device, code, now=now)
    assert first.accepted
    device.last_step = first.step  # what the stage stores
    again = verify_totp(device, code, now=now + 5)
    assert not again.accepted and again.replayed
    previous = totp(device).generate_otp(now // 30 - 1)
    assert verify_totp(device, previous, now=now).replayed


def test_malformed_codes_are_refused() -> None:
    device = device_for("SHA1")
    for code in ["", "abcdefgh", "1234567", "123456789", "9428708x"]:
        assert not verify_totp(device, code, now=59).accepted
    assert verify_totp(device, "9428 7082", now=59).accepted


def test_provisioning_uri_names_account_and_issuer() -> None:
    secret = new_totp_secret()
    device = TOTPDevice(user_id="1", secret=secret, digits=6, algorithm="sha1", period=30)
    uri = provisioning_uri(device, "alice", "Example Co")
    assert uri.startswith("otpauth://totp/Example%20Co:alice?")
    assert f"secret={secret}" in uri
    assert "issuer=Example%20Co" in uri


def test_secrets_are_random_and_long() -> None:
    secrets = {new_totp_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(base64.b32decode(s)) == 20 for s in secrets)


def test_recovery_codes_are_distinct_hashed_and_single_lookup() -> None:
    hashing = PasswordHashing(time_cost=1, memory_cost=8, parallelism=1)
    codes = new_recovery_codes(10)
    assert len(set(codes)) == 10
    assert len({code[:4] for code in codes}) == 10
    assert all(len(code) == 14 and code.count("-") == 2 for code in codes)
    device = StaticDevice(user_id="1")
    store_recovery_codes(device, codes, hashing)
    stored = " ".join(t.lookup + t.secret_hash for t in device.tokens)
    for code in codes:
        assert code.replace("-", "")[4:] not in stored
    token = match_recovery_code([device], codes[3].lower().replace("-", " "), hashing)
    assert token is device.tokens[3]
    assert match_recovery_code([device], codes[3][:-1] + "0", hashing) in (None, device.tokens[3])
    assert match_recovery_code([device], "ZZZZ-ZZZZ-ZZZZ", hashing) is None
    assert match_recovery_code([device], "short", hashing) is None


def test_a_seed_always_gives_the_same_set_and_sets_differ_by_seed() -> None:
    seed = new_recovery_seed()
    assert len(seed) == 32
    assert recovery_codes(seed, 10) == recovery_codes(seed, 10)
    assert recovery_codes(seed, 3) == recovery_codes(seed, 10)[:3]
    assert not set(recovery_codes(seed, 10)) & set(recovery_codes(new_recovery_seed(), 10))
    many = recovery_codes(seed, 300)
    assert len({code[:4] for code in many}) == 300  # lookups stay unique in a large set


def test_derived_codes_use_every_letter_evenly() -> None:
    letters = "".join(c.replace("-", "") for c in recovery_codes(new_recovery_seed(), 2000))
    counts = {letter: letters.count(letter) for letter in set(letters)}
    assert len(counts) == 32
    assert not set(counts) & set("ILOU")
    expected = len(letters) / 32  # 750: a fair die stays well within a third of it
    assert all(abs(n - expected) < expected / 3 for n in counts.values())


def test_a_recovery_code_miss_costs_one_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    hashing = PasswordHashing(time_cost=1, memory_cost=8, parallelism=1)
    device = StaticDevice(user_id="1")
    store_recovery_codes(device, new_recovery_codes(10), hashing)
    calls: list[str] = []
    original = PasswordHashing.verify

    def counting(self: PasswordHashing, password_hash: str | None, password: str) -> bool:
        calls.append(password)
        return original(self, password_hash, password)

    monkeypatch.setattr(PasswordHashing, "verify", counting)
    for code in ["ZZZZ-ZZZZ-ZZZZ", "nonsense", device.tokens[0].lookup + "-0000-0000"]:
        calls.clear()
        assert match_recovery_code([device], code, hashing) is None
        assert len(calls) == 1
