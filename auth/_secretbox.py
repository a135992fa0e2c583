"""Secrets at rest: AES-256-GCM with a key from the state directory.

A sealed value is a versioned text token ``sb1:<base64url(nonce ‖ ciphertext ‖ tag)>``
that fits a ``String`` column.  Each seal uses a fresh random 96-bit nonce (NIST
SP 800-38D §8.2.2: fine for far more than the number of secrets a gateway seals under
one key).  The *context* — e.g. ``totp-secret:<principal>`` — is authenticated as
associated data together with the version, so a sealed secret moved to another
principal's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
TOKEN_PREFIX = "sb1:"  # noqa: S105 - a format tag, not a secret
_AAD_PREFIX = b"ssgate-secretbox-v1\x00"


class SecretBoxError(ValueError):
    """A key is unusable or a sealed value does not open; never says more than that."""


class SecretBox:
    """Seal and open short text secrets with one AES-256-GCM key.

    ``repr()`` never shows the key.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray):
            raise SecretBoxError(f"secret-box key must be bytes, got {type(key).__name__}")
        if len(key) != KEY_BYTES:
            raise SecretBoxError(f"secret-box key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(bytes(key))

    @staticmethod
    def generate_key() -> bytes:
        """A fresh random 256-bit key."""
        return secrets.token_bytes(KEY_BYTES)

    def __repr__(self) -> str:
        return "SecretBox(key=<hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretBox holds a key and cannot be pickled")

    def seal(self, plaintext: str, *, context: str) -> str:
        """Encrypt *plaintext* bound to *context*; returns a ``sb1:`` text token."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _aad(context))
        return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, *, context: str) -> str:
        """Decrypt a token made by :meth:`seal` with the same key and *context*.

        Raises :class:`SecretBoxError` if the token is malformed, was tampered with, was
        sealed under another key, or for another context.
        """
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            raise SecretBoxError(f"sealed secret is not a {TOKEN_PREFIX} token")
        try:
            raw = base64.b64decode(
                token[len(TOKEN_PREFIX) :].encode("ascii"), altchars=b"-_", validate=True
            )
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise SecretBoxError("sealed secret is not valid base64") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SecretBoxError("sealed secret is too short")
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(context))
        except InvalidTag:
            raise SecretBoxError(
                "sealed secret does not open: tampered with, sealed under another key, "
                "or sealed for another principal"
            ) from None
        return plain.decode("utf-8")


def _aad(context: str) -> bytes:
    return _AAD_PREFIX + context.encode("utf-8")
