"""A checkpoint file round-trips, and every malformed one is a CheckpointError naming the
file and the field — never a KeyError or a crash in verify."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import CheckpointError, key_id
from audit._checkpoint import parse_checkpoint, sign, signature_valid

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
GOOD = sign(KEY, 42, "ab" * 32, 1_780_000_000.123456)


def test_a_signed_checkpoint_round_trips_through_its_file_and_verifies() -> None:
    again = parse_checkpoint(GOOD.to_json(), "f")
    assert again == GOOD
    assert again.key_id == key_id(KEY.public_key())
    assert signature_valid(again, KEY.public_key())
    assert not signature_valid(again, Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"v": 2}, "not an ssgate audit checkpoint"),
        ({"type": "other"}, "not an ssgate audit checkpoint"),
        ({"seq": -1}, "seq is not a record number"),
        ({"seq": "42"}, "seq is not a record number"),
        ({"seq": True}, "seq is not a record number"),
        ({"hash": "AB" * 32}, "hash is not 64 hex digits"),
        ({"hash": None}, "hash is not 64 hex digits"),
        ({"key_id": "x" * 16}, "key_id is not 16 hex digits"),
        ({"signature": "00"}, "signature is not 128 hex digits"),
        ({"at": 1_780_000_000.123456}, "at is not a time"),
        ({"at": "1780000000.1234560"}, "at is not a time"),
        ({"at": "soon"}, "at is not a time"),
    ],
)
def test_a_malformed_checkpoint_names_the_file_and_the_field(
    change: dict[str, object], expected: str
) -> None:
    body = json.loads(GOOD.to_json())
    body.update(change)
    with pytest.raises(CheckpointError, match=f"checkpoint /x/c.json.*{expected}"):
        parse_checkpoint(json.dumps(body).encode(), "/x/c.json")


@pytest.mark.parametrize("data", [b"", b"[]", b"\xff", b"{"])
def test_a_checkpoint_that_is_not_a_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(CheckpointError, match="checkpoint f is not"):
        parse_checkpoint(data, "f")
