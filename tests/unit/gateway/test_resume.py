"""Resume tokens: bound to the certificate, short-lived, tamper-evident."""

from __future__ import annotations

import pytest

from gateway._resume import (
    RESUME_VALIDITY_SECONDS,
    ResumeTokenError,
    issue_resume_token,
    verify_resume_token,
)

KEY = b"k" * 32
SID = "0123456789abcdef0123456789abcdef"


def _token(**kw: object) -> bytes:
    args: dict[str, object] = {
        "session_id": SID,
        "generation": 3,
        "fingerprint": "f" * 64,
        "now": 1000.0,
    }
    args.update(kw)
    return issue_resume_token(KEY, **args)  # type: ignore[arg-type]


def test_a_token_names_its_session_and_generation() -> None:
    claim = verify_resume_token(KEY, _token(), fingerprint="f" * 64, now=1001.0)
    assert (claim.session_id, claim.generation) == (SID, 3)


def test_a_token_is_refused_for_another_certificate() -> None:
    with pytest.raises(ResumeTokenError, match="certificate"):
        verify_resume_token(KEY, _token(), fingerprint="e" * 64, now=1001.0)


def test_a_token_expires_after_two_minutes() -> None:
    token = _token()
    verify_resume_token(KEY, token, fingerprint="f" * 64, now=1000.0 + RESUME_VALIDITY_SECONDS)
    with pytest.raises(ResumeTokenError, match="expired"):
        verify_resume_token(KEY, token, fingerprint="f" * 64, now=1001.0 + RESUME_VALIDITY_SECONDS)


@pytest.mark.parametrize("index", range(0, 140, 7))
def test_any_changed_byte_is_refused(index: int) -> None:
    token = bytearray(_token())
    if index >= len(token):
        return
    token[index] ^= 0x01
    with pytest.raises(ResumeTokenError):
        verify_resume_token(KEY, bytes(token), fingerprint="f" * 64, now=1001.0)


def test_another_key_is_refused() -> None:
    with pytest.raises(ResumeTokenError):
        verify_resume_token(b"x" * 32, _token(), fingerprint="f" * 64, now=1001.0)
