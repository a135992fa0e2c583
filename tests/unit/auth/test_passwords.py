"""Passwords: argon2id parameters, hashing, cost-equal burning, strength, generation."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth import (
    Argon2Params,
    Argon2ParamsError,
    PasswordHasher,
    check_password_strength,
    generate_password,
)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(Argon2Params())


def test_the_default_parameters_are_the_owasp_minimum_and_valid() -> None:
    params = Argon2Params()
    assert (params.time_cost, params.memory_kib, params.parallelism) == (2, 19456, 1)
    params.validate()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (Argon2Params(time_cost=1), "time_cost"),
        (Argon2Params(memory_kib=19455), "memory_kib"),
        (Argon2Params(parallelism=0), "parallelism"),
        (Argon2Params(time_cost=True), "time_cost"),
    ],
)
def test_parameters_below_the_minimum_are_refused_naming_the_field(
    params: Argon2Params, field: str
) -> None:
    with pytest.raises(Argon2ParamsError, match=field):
        params.validate()
    with pytest.raises(Argon2ParamsError, match=field):
        PasswordHasher(params)


def test_a_hash_is_argon2id_with_the_configured_parameters_and_a_random_salt(
    hasher: PasswordHasher,
) -> None:
    first, second = hasher.hash("Correct-Horse-9"), hasher.hash("Correct-Horse-9")
    assert first.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert first != second
    assert "Correct-Horse-9" not in first


def test_verify_accepts_the_password_and_refuses_anything_else(hasher: PasswordHasher) -> None:
    stored = hasher.hash("Correct-Horse-9")
    assert hasher.verify(stored, "Correct-Horse-9")
    assert not hasher.verify(stored, "correct-Horse-9")
    assert not hasher.verify(stored, "")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        # argon2i of "x": only argon2id hashes are ever ours
        "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$Pz5D1QbCyPjt6W8NcTUaRZsDHMRxjoh3xu7JVCHWEHQ",
    ],
)
def test_verify_returns_false_for_an_unusable_stored_value_and_never_raises(
    hasher: PasswordHasher, stored: str
) -> None:
    assert hasher.verify(stored, "x") is False


def test_a_password_with_a_lone_surrogate_mismatches_instead_of_raising(
    hasher: PasswordHasher,
) -> None:
    stored = hasher.hash("Correct-Horse-9")
    assert hasher.verify(stored, "\ud800abc") is False
    hasher.burn("\udfff")


def test_burn_verifies_against_a_dummy_hash_made_with_the_same_parameters(
    hasher: PasswordHasher,
) -> None:
    """Cost parity: burning runs the same argon2id work as verifying a real hash."""
    dummy = hasher._dummy_hash
    assert dummy.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not hasher.needs_rehash(dummy)
    hasher.burn("anything")  # returns nothing, raises nothing


def test_needs_rehash_flags_hashes_made_with_other_parameters(hasher: PasswordHasher) -> None:
    stronger = PasswordHasher(Argon2Params(time_cost=3))
    assert hasher.needs_rehash(stronger.hash("x"))
    assert not hasher.needs_rehash(hasher.hash("x"))
    assert hasher.needs_rehash("garbage")


@settings(max_examples=15, deadline=None)
@given(password=st.text(max_size=40))
def test_verify_never_raises_for_any_password(hasher: PasswordHasher, password: str) -> None:
    assert hasher.verify(_STORED, password) is (password == "Correct-Horse-9")


_STORED = PasswordHasher(Argon2Params()).hash("Correct-Horse-9")


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("", "empty"),
        ("Ab1!", "at least 10 characters, got 4"),
        ("abcdefghijkl", "at least 3 of"),
        ("abcdefghij12", "(it has 2)"),
        ("Abcdefgh1\x00x", "control"),
        ("Abcdefgh1\tx", "control"),
        ("Abcdefgh1\ud800", "surrogate"),
        ("Aa1!" * 300, "longer than 1024"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason_that_does_not_repeat_them(
    password: str, expected: str
) -> None:
    message = check_password_strength(password)
    assert message is not None
    assert expected in message
    if password:
        assert password not in message


@pytest.mark.parametrize(
    "password", ["abcdefgh12!", "ABCDEFGH12a", "Abcdefghijk!", "密码密码Abc12345", "ab cd EF gh 12"]
)
def test_passwords_of_ten_characters_and_three_classes_are_accepted(password: str) -> None:
    assert check_password_strength(password) is None


def test_generated_passwords_are_16_unambiguous_characters_and_pass_the_rule() -> None:
    seen = set()
    for _ in range(300):
        password = generate_password()
        assert len(password) == 16
        assert not set(password) & set("0O1lI")
        assert set(password) <= set(string.printable) - set(string.whitespace)
        assert check_password_strength(password) is None
        assert any(c.islower() for c in password)
        assert any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password)
        assert any(not c.isalnum() for c in password)
        seen.add(password)
    assert len(seen) == 300


def test_the_hasher_repr_shows_parameters_only(hasher: PasswordHasher) -> None:
    assert repr(hasher) == (
        "PasswordHasher(Argon2Params(time_cost=2, memory_kib=19456, parallelism=1))"
    )
