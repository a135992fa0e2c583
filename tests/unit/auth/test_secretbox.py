"""SecretBox: AES-256-GCM sealing bound to a context; failures say nothing secret."""

from __future__ import annotations

import base64
import pickle

import pytest

from auth import SecretBox, SecretBoxError

CONTEXT = "totp-secret:33068212345678@sxlss"
PLAINTEXT = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def key() -> bytes:
    return SecretBox.generate_key()


def test_a_sealed_secret_opens_with_the_same_key_and_context(key: bytes) -> None:
    box = SecretBox(key)
    token = box.seal(PLAINTEXT, context=CONTEXT)
    assert token.startswith("sb1:")
    assert PLAINTEXT not in token
    assert SecretBox(key).open(token, context=CONTEXT) == PLAINTEXT


def test_unicode_plaintext_round_trips(key: bytes) -> None:
    box = SecretBox(key)
    assert box.open(box.seal("密钥 ✓", context="c"), context="c") == "密钥 ✓"


def test_each_seal_uses_a_fresh_nonce(key: bytes) -> None:
    box = SecretBox(key)
    tokens = {box.seal(PLAINTEXT, context=CONTEXT) for _ in range(100)}
    assert len(tokens) == 100
    nonces = {base64.urlsafe_b64decode(t[4:])[:12] for t in tokens}
    assert len(nonces) == 100


def test_every_single_byte_flip_is_detected(key: bytes) -> None:
    box = SecretBox(key)
    raw = bytearray(base64.urlsafe_b64decode(box.seal(PLAINTEXT, context=CONTEXT)[4:]))
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        token = "sb1:" + base64.urlsafe_b64encode(bytes(tampered)).decode()
        with pytest.raises(SecretBoxError, match="tampered"):
            box.open(token, context=CONTEXT)


def test_a_wrong_key_does_not_open(key: bytes) -> None:
    token = SecretBox(key).seal(PLAINTEXT, context=CONTEXT)
    with pytest.raises(SecretBoxError) as caught:
        SecretBox(SecretBox.generate_key()).open(token, context=CONTEXT)
    assert PLAINTEXT not in str(caught.value)


def test_a_secret_moved_to_another_principal_does_not_open(key: bytes) -> None:
    box = SecretBox(key)
    token = box.seal(PLAINTEXT, context=CONTEXT)
    with pytest.raises(SecretBoxError, match="another principal"):
        box.open(token, context="totp-secret:33068287654321@sxlss")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "JBSWY3DPEHPK3PXP",
        "sb2:AAAA",
        "sb1:",
        "sb1:AAAA",
        "sb1:!!!!" + "A" * 40,
        "sb1:" + "A" * 41,  # bad padding
        "sb1:é" + "A" * 40,
    ],
)
def test_malformed_tokens_are_refused_with_secret_box_error(key: bytes, token: str) -> None:
    with pytest.raises(SecretBoxError):
        SecretBox(key).open(token, context=CONTEXT)


def test_junk_inside_a_token_is_not_silently_skipped(key: bytes) -> None:
    box = SecretBox(key)
    token = box.seal(PLAINTEXT, context=CONTEXT)
    with pytest.raises(SecretBoxError):
        box.open(token[:10] + "*" + token[10:], context=CONTEXT)


@pytest.mark.parametrize("bad", [b"", b"x" * 16, b"x" * 31, b"x" * 33])
def test_keys_must_be_32_bytes(bad: bytes) -> None:
    with pytest.raises(SecretBoxError, match="32 bytes"):
        SecretBox(bad)


def test_generated_keys_are_32_random_bytes() -> None:
    keys = {SecretBox.generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 32 for k in keys)


def test_repr_and_str_never_show_the_key(key: bytes) -> None:
    box = SecretBox(key)
    for text in (repr(box), str(box), f"{box}", f"{box!r}"):
        assert text == "SecretBox(key=<hidden>)"
        assert key.hex() not in text
        assert repr(key) not in text


def test_a_box_cannot_be_pickled_with_its_key(key: bytes) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(SecretBox(key))
