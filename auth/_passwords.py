"""Passwords: argon2id hashing and verification, the strength rule, generated passwords.

Verification is the slow, deliberate cost of a login (tens of milliseconds with the
OWASP minimum parameters), so callers run it on a thread pool, outside any database
transaction.  :meth:`PasswordHasher.burn` spends the same cost when there is nothing to
verify (unknown account, empty password, refused status): the time a refusal takes does
not tell an attacker which case it was.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

ARGON2ID_PREFIX = "$argon2id$"

# OWASP Password Storage Cheat Sheet, argon2id "m=19 MiB, t=2, p=1".
MIN_MEMORY_KIB = 19456
MIN_TIME_COST = 2
MIN_PARALLELISM = 1

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MIN_CHARACTER_CLASSES = 3
GENERATED_PASSWORD_LENGTH = 16

# Unambiguous when read aloud or copied from paper: no 0/O, 1/l/I.
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_DIGITS = "23456789"
_SYMBOLS = "#%+=-_!@"
GENERATED_ALPHABET = _LOWER + _UPPER + _DIGITS + _SYMBOLS


class Argon2ParamsError(ValueError):
    """Argon2 parameters below the accepted minimum; the message names the field."""


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters; the defaults are the OWASP minimum."""

    time_cost: int = MIN_TIME_COST
    memory_kib: int = MIN_MEMORY_KIB
    parallelism: int = MIN_PARALLELISM

    def validate(self) -> None:
        """Raise :class:`Argon2ParamsError` if any field is below the OWASP minimum."""
        for field_name, value, minimum in (
            ("time_cost", self.time_cost, MIN_TIME_COST),
            ("memory_kib", self.memory_kib, MIN_MEMORY_KIB),
            ("parallelism", self.parallelism, MIN_PARALLELISM),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise Argon2ParamsError(
                    f"argon2 {field_name} must be an integer, got {type(value).__name__}"
                )
            if value < minimum:
                raise Argon2ParamsError(
                    f"argon2 {field_name}={value} is below the OWASP argon2id minimum "
                    f"({field_name} >= {minimum})"
                )


def _encode(password: str) -> bytes:
    # surrogatepass: a malformed string from the wire must mismatch, never raise.
    return password.encode("utf-8", "surrogatepass")


class PasswordHasher:
    """argon2id hashing with fixed parameters and a cost-equal :meth:`burn`.

    Thread-safe: argon2-cffi releases the GIL while hashing, so verifications on a
    thread pool run in parallel.
    """

    def __init__(self, params: Argon2Params | None = None) -> None:
        self.params = params if params is not None else Argon2Params()
        self.params.validate()
        self._hasher = argon2.PasswordHasher(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_kib,
            parallelism=self.params.parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        # Made once, from a random password nobody knows: burn() verifies against it.
        self._dummy_hash = self._hasher.hash(secrets.token_bytes(32))

    def __repr__(self) -> str:
        return f"PasswordHasher({self.params!r})"

    def hash(self, password: str) -> str:
        """The argon2id hash (PHC string) of *password*, with a fresh random salt."""
        return self._hasher.hash(_encode(password))

    def verify(self, stored: str, password: str) -> bool:
        """True if *password* matches the *stored* hash; never raises on a mismatch.

        A stored value that is not an argon2id hash verifies as False, after the same
        cost as a real verification.
        """
        if not stored.startswith(ARGON2ID_PREFIX):
            self.burn(password)
            return False
        try:
            return self._hasher.verify(stored, _encode(password))
        except (VerificationError, InvalidHashError):
            return False

    def burn(self, password: str) -> None:
        """Spend one verification's cost on *password* and throw the result away."""
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy_hash, _encode(password))

    def needs_rehash(self, stored: str) -> bool:
        """True if *stored* was made with other parameters than this hasher's."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True


def check_password_strength(password: str) -> str | None:
    """None if *password* is acceptable, else a message saying why not.

    The rule: at least 10 characters and at least 3 of the 4 classes lowercase,
    uppercase, digits, symbols (anything else that is not a control character).
    The message never contains the password.
    """
    if not password:
        return "password is empty"
    classes = _character_classes(password)
    checks = (
        (
            len(password) > MAX_PASSWORD_LENGTH,
            f"password is longer than {MAX_PASSWORD_LENGTH} characters",
        ),
        (
            any("\ud800" <= c <= "\udfff" for c in password),
            "password contains an invalid (surrogate) character",
        ),
        (
            not password.isprintable(),
            "password contains a control or unprintable character",
        ),
        (
            len(password) < MIN_PASSWORD_LENGTH,
            f"password must be at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}",
        ),
        (
            classes < MIN_CHARACTER_CLASSES,
            f"password must mix at least {MIN_CHARACTER_CLASSES} of: lowercase letters, "
            f"uppercase letters, digits, symbols (it has {classes})",
        ),
    )
    return next((message for failed, message in checks if failed), None)


def _character_classes(password: str) -> int:
    lower = any("a" <= c <= "z" for c in password)
    upper = any("A" <= c <= "Z" for c in password)
    digit = any("0" <= c <= "9" for c in password)
    symbol = any(not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9") for c in password)
    return lower + upper + digit + symbol


def generate_password() -> str:
    """16 random characters from an unambiguous alphabet, with all four classes.

    Rejection sampling keeps the choice uniform over the passwords that qualify.
    """
    while True:
        candidate = "".join(
            secrets.choice(GENERATED_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH)
        )
        if _character_classes(candidate) == 4 and check_password_strength(candidate) is None:
            return candidate
