"""TOTP: secrets, provisioning URIs, and matching a code to its time-step."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from auth import (
    TotpSecretError,
    current_code,
    match_totp,
    new_totp_secret,
    totp_secret_context,
    totp_step,
    totp_uri,
)
from auth._totp import code_for_step

# RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", in base32.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
NOW = 1_767_225_615.0  # 2026-01-01T00:00:15Z, mid-step


def test_new_secrets_are_160_random_bits_as_32_base32_characters() -> None:
    secrets = {new_totp_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32
        assert len(base64.b32decode(secret)) == 20


@pytest.mark.parametrize(
    ("now", "step", "code"),
    [(59, 1, "287082"), (1111111109, 37037036, "081804"), (2000000000, 66666666, "279037")],
)
def test_rfc_6238_vectors_match_at_their_time_step(now: float, step: int, code: str) -> None:
    assert current_code(RFC_SECRET, now) == code
    assert match_totp(RFC_SECRET, code, now=now) == step


def test_a_code_matches_one_step_either_side_but_not_two() -> None:
    secret = new_totp_secret()
    step = totp_step(NOW)
    assert match_totp(secret, current_code(secret, NOW), now=NOW) == step
    assert match_totp(secret, code_for_step(secret, step - 1), now=NOW) == step - 1
    assert match_totp(secret, code_for_step(secret, step + 1), now=NOW) == step + 1
    for far in (step - 2, step + 2):
        code = code_for_step(secret, far)
        if code not in {code_for_step(secret, s) for s in (step - 1, step, step + 1)}:
            assert match_totp(secret, code, now=NOW) is None


def test_a_wrong_code_matches_nothing() -> None:
    secret = new_totp_secret()
    valid = {code_for_step(secret, totp_step(NOW) + d) for d in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    assert match_totp(secret, wrong, now=NOW) is None


def _full_width(code: str) -> str:
    return "".join(chr(ord(c) - ord("0") + ord("０")) for c in code)


@pytest.mark.parametrize(
    "mangle",
    [
        _full_width,  # pyotp alone would accept this after NFKC normalisation
        lambda c: "".join(chr(ord(d) - ord("0") + 0x0660) for d in c),  # Arabic-Indic
        lambda c: c[:5],
        lambda c: c + "0",
        lambda c: " " + c,
        lambda c: c + "\n",
        lambda c: c[:3] + " " + c[3:],
        lambda c: "",
        lambda c: "abcdef",
        lambda c: "-" + c[1:],
    ],
)
def test_anything_but_six_ascii_digits_matches_nothing(mangle: object) -> None:
    assert callable(mangle)
    secret = new_totp_secret()
    code = current_code(secret, NOW)
    assert match_totp(secret, mangle(code), now=NOW) is None


def test_pyotp_itself_would_accept_a_full_width_code_which_is_why_we_check_first() -> None:
    secret = new_totp_secret()
    code = current_code(secret, NOW)
    assert pyotp.TOTP(secret).verify(_full_width(code), for_time=NOW)


def test_the_provisioning_uri_has_issuer_label_and_parameter_and_the_default_algorithm() -> None:
    secret = new_totp_secret()
    uri = totp_uri(secret, account="33068212345678@sxlss", issuer="ssgate")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "otpauth",
        "totp",
        "/ssgate:33068212345678%40sxlss",
    )
    assert parse_qs(parts.query) == {"secret": [secret], "issuer": ["ssgate"]}
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.digits, parsed.interval, parsed.digest().name) == (6, 30, "sha1")
    assert parsed.at(NOW) == current_code(secret, NOW)


@pytest.mark.parametrize(("account", "issuer"), [("a:b", "ssgate"), ("acct", "ss:gate"), ("", "x")])
def test_labels_with_a_colon_or_empty_are_refused(account: str, issuer: str) -> None:
    with pytest.raises(TotpSecretError):
        totp_uri(new_totp_secret(), account=account, issuer=issuer)


@pytest.mark.parametrize("secret", ["", "ABC", "a" * 32, "A" * 31, "ABCDEFGH0" + "A" * 30])
def test_an_unusable_secret_is_refused_without_echoing_it(secret: str) -> None:
    with pytest.raises(TotpSecretError) as caught:
        match_totp(secret, "123456", now=NOW)
    if secret:
        assert secret not in str(caught.value)


def test_the_sealing_context_names_the_principal() -> None:
    assert totp_secret_context("33068212345678@sxlss") == "totp-secret:33068212345678@sxlss"
    assert totp_secret_context("alice") != totp_secret_context("bob")


@pytest.mark.parametrize("now", [float("nan"), float("inf"), -1.0, 29.0])
def test_an_impossible_now_is_a_programming_error_not_a_mismatch(now: float) -> None:
    with pytest.raises(ValueError, match="now must be epoch seconds"):
        match_totp(new_totp_secret(), "123456", now=now)
