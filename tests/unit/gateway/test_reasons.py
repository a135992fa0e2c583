"""Reason codes: unique, printable in both languages, and discreet about logins."""

from __future__ import annotations

import pytest

from auth._authenticator import REASONS as AUTH_OUTCOMES
from gateway._reasons import ProtocolError, Reason, for_auth_outcome


def test_codes_slugs_and_exit_codes_are_each_unique() -> None:
    members = list(Reason)
    assert len({r.code for r in members}) == len(members)
    assert len({r.slug for r in members}) == len(members)
    assert len({r.exit_code for r in members}) == len(members)


def test_exit_codes_are_small_and_avoid_the_cli_refused_and_usage_statuses() -> None:
    assert Reason.CLIENT_QUIT.exit_code == 0
    for reason in Reason:
        assert 0 <= reason.exit_code <= 125
        if reason is not Reason.CLIENT_QUIT:
            assert reason.exit_code not in (0, 1, 2)


def test_every_reason_is_one_plain_sentence_in_each_language() -> None:
    for reason in Reason:
        assert reason.english.endswith(".") and "\n" not in reason.english
        assert reason.chinese.endswith("。") and "\n" not in reason.chinese
        assert reason.english.count(". ") == 0, reason
        assert reason.bilingual == f"{reason.chinese} {reason.english}"


def test_a_failed_login_says_one_thing_whatever_factor_was_wrong() -> None:
    assert Reason.AUTH_FAILED.english == "The account, password or one-time code is not correct."
    assert Reason.AUTH_FAILED.chinese == "账号、密码或动态口令不正确。"
    for outcome in ("unknown-account", "bad-password", "bad-otp", "otp-reused", "empty-password"):
        assert for_auth_outcome(outcome) is Reason.AUTH_FAILED
    assert for_auth_outcome("something-new") is Reason.AUTH_FAILED


def test_every_authenticator_refusal_has_an_employer_facing_reason() -> None:
    for outcome in AUTH_OUTCOMES - {"ok"}:
        assert isinstance(for_auth_outcome(outcome), Reason)
    with pytest.raises(ValueError):
        for_auth_outcome("ok")


def test_lockout_and_throttling_tell_the_employer_to_wait() -> None:
    assert for_auth_outcome("locked") is Reason.LOCKED
    assert for_auth_outcome("throttled") is Reason.THROTTLED
    for reason in (Reason.LOCKED, Reason.THROTTLED):
        assert "wait" in reason.english and "稍后" in reason.chinese
    assert "carrier" in Reason.LOCKED.english and "电信" in Reason.LOCKED.chinese


def test_only_a_wrong_factor_or_a_stale_resume_token_leave_the_login_open() -> None:
    assert {r for r in Reason if r.retry_auth} == {Reason.AUTH_FAILED, Reason.RESUME_INVALID}


def test_the_session_registry_end_reasons_all_exist() -> None:
    for slug in (
        "officer-kill",
        "account-suspended",
        "account-cancelled",
        "cert-revoked",
        "gateway-shutdown",
        "network-lost",
        "node-lost",
        "idle-timeout",
        "max-lifetime",
        "client-quit",
    ):
        assert Reason.from_slug(slug).slug == slug


def test_lookups_by_code_and_slug() -> None:
    for reason in Reason:
        assert Reason.from_code(reason.code) is reason
        assert Reason.from_slug(reason.slug) is reason
    with pytest.raises(ValueError):
        Reason.from_code(0)
    with pytest.raises(ValueError):
        Reason.from_slug("no-such-reason")


def test_a_protocol_error_reads_as_slug_and_message() -> None:
    error = ProtocolError(Reason.FRAME_TOO_LARGE, "DATA: too big")
    assert str(error) == "frame-too-large: DATA: too big"
    assert error.reason is Reason.FRAME_TOO_LARGE


def test_staff_words_name_every_code_the_gateway_records() -> None:
    """One table of words for the officers' and the carriers' pages: every reason,
    every auth outcome, every way a stream ends and every refused TLS connection."""
    from gateway import REASON_WORDS
    from gateway._service import STREAM_ENDS
    from gateway._tls import _TLS_REFUSALS

    codes = {r.slug for r in Reason} | set(STREAM_ENDS.values())
    codes |= {code for _, code in _TLS_REFUSALS} | {"tls-timeout", "closed-before-handshake"}
    codes |= set(AUTH_OUTCOMES) - {"ok"}
    assert codes <= set(REASON_WORDS), sorted(codes - set(REASON_WORDS))
    assert all(words and "。" not in words for words in REASON_WORDS.values())
