"""Signed checkpoints: the chain head, signed, kept outside the database.

The hash chain shows that no single record was edited, but whoever can write the
database can edit a record and recompute every later hash and the head.  A checkpoint
closes that gap: the head (``seq``, ``hash``) and the time, signed with the audit key
(Ed25519), written to a file outside the database and recorded as an
``audit.checkpoint`` event, which the syslog forwarder carries off the host like every
other event.  A later rewrite of any record at or below a checkpoint's ``seq`` changes
the hash the chain holds there, and :func:`verify_checkpoints` names the first
checkpoint it contradicts.

Why Ed25519: a 32-byte key and a 64-byte signature fit in a file name's worth of text
and a syslog line; signing is deterministic (no per-signature random number whose
reuse would leak the key, as with (EC)DSA); it has no parameters to choose wrongly; it
is in ``cryptography`` and in OpenSSL, so an officer can check a checkpoint with tools
other than ssgate (``openssl pkeyutl -verify -rawin``).

The signed bytes are the canonical JSON of ``{"v", "type", "seq", "hash", "at",
"key_id"}`` (sorted keys, no spaces, ``at`` as ``repr(float)``, the chain's rules).  A
checkpoint file is that object plus ``signature`` (hex).  ``key_id`` is the first 16
hex digits of the SHA-256 of the raw 32-byte public key: the fingerprint an officer
pins.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection

from audit._archive import hash_at
from audit._chain import canonical_json, format_at
from audit._events import AuditEvent, AuditRecord
from audit._files import ensure_directory, write_bytes_atomically
from audit._log import _lock_head, append

CHECKPOINT_ACTION: Final = "audit.checkpoint"
CHECKPOINT_VERSION: Final = 1
CHECKPOINT_TYPE: Final = "ssgate audit checkpoint"
PUBLIC_KEY_FILE: Final = "audit-key.pub.pem"
CHECKPOINT_MODE: Final = 0o644  # public facts: a head hash and a signature

_FILE = re.compile(r"^checkpoint-(\d{12})-(\d{8}T\d{6}(?:\d{6})?Z)\.json$")
_HEX = re.compile(r"^[0-9a-f]+$")


class CheckpointError(ValueError):
    """A checkpoint file or key cannot be read; the message names it."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain head at ``seq`` (``hash``) at time ``at``, signed by key ``key_id``."""

    seq: int
    hash: str
    at: float
    key_id: str
    signature: str  # hex, 64 bytes

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.seq, self.hash, self.at, self.key_id)

    def file_name(self) -> str:
        when = datetime.fromtimestamp(self.at, UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"checkpoint-{self.seq:012d}-{when}.json"

    def to_json(self) -> bytes:
        body: dict[str, Any] = json.loads(self.signed_bytes())
        body["signature"] = self.signature
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def signed_bytes(seq: int, hash: str, at: float, key_id: str) -> bytes:
    return canonical_json(
        {
            "v": CHECKPOINT_VERSION,
            "type": CHECKPOINT_TYPE,
            "seq": seq,
            "hash": hash,
            "at": format_at(at),
            "key_id": key_id,
        }
    ).encode("utf-8")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise CheckpointError(f"{source}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{source}: not an Ed25519 public key")
    return key


def sign(private_key: Ed25519PrivateKey, seq: int, hash: str, at: float) -> Checkpoint:
    kid = key_id(private_key.public_key())
    signature = private_key.sign(signed_bytes(seq, hash, at, kid))
    return Checkpoint(seq=seq, hash=hash, at=float(at), key_id=kid, signature=signature.hex())


def parse_checkpoint(data: bytes, source: str) -> Checkpoint:
    """A checkpoint file's contents; :class:`CheckpointError` naming *source* if bad."""
    try:
        body = json.loads(data)
    except ValueError:
        raise CheckpointError(f"checkpoint {source} is not JSON") from None
    if not isinstance(body, dict):
        raise CheckpointError(f"checkpoint {source} is not a JSON object")
    if body.get("v") != CHECKPOINT_VERSION or body.get("type") != CHECKPOINT_TYPE:
        raise CheckpointError(f"checkpoint {source} is not an ssgate audit checkpoint (v1)")
    seq = body.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise CheckpointError(f"checkpoint {source}: seq is not a record number")
    hex_fields = {
        name: _hex_field(body, name, length, source)
        for name, length in (("hash", 64), ("key_id", 16), ("signature", 128))
    }
    at = body.get("at")
    try:
        when = float(at) if isinstance(at, str) else None
    except ValueError:
        when = None
    if when is None or format_at(when) != at:
        raise CheckpointError(f"checkpoint {source}: at is not a time as ssgate writes it")
    return Checkpoint(seq=seq, at=when, **hex_fields)


def _hex_field(body: dict[str, Any], name: str, length: int, source: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or len(value) != length or not _HEX.match(value):
        raise CheckpointError(f"checkpoint {source}: {name} is not {length} hex digits")
    return value


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


# -- taking a checkpoint ---------------------------------------------------------------


@dataclass(frozen=True)
class TakenCheckpoint:
    checkpoint: Checkpoint
    path: Path
    record: AuditRecord  # the audit.checkpoint event that records it


def take_checkpoint(
    conn: Connection,
    private_key: Ed25519PrivateKey,
    directory: Path,
    *,
    now: float,
    actor: str,
) -> TakenCheckpoint:
    """Sign the chain head, write the checkpoint file and record it as an event.

    In the caller's transaction: the head is locked (no append slips between the head
    read and the event), the checkpoint file is written atomically into *directory*
    with the public key beside it (``audit-key.pub.pem``), and the
    ``audit.checkpoint`` event (seq, hash, signature, key id) is appended right after
    the head it signs.  If the transaction then fails, the file still states a head
    the chain really had, so it remains a valid checkpoint.
    """
    seq, head_hash = _lock_head(conn)
    checkpoint = sign(private_key, seq, head_hash, now)
    ensure_directory(directory)
    publish_public_key(directory, private_key.public_key())
    path = directory / checkpoint.file_name()
    write_bytes_atomically(path, checkpoint.to_json(), mode=CHECKPOINT_MODE)
    record = append(
        conn,
        AuditEvent(
            at=now,
            actor=actor,
            action=CHECKPOINT_ACTION,
            subject=f"audit chain at {seq}",
            outcome="ok",
            details={
                "seq": seq,
                "hash": head_hash,
                "signature": checkpoint.signature,
                "key_id": checkpoint.key_id,
                "file": path.name,
            },
        ),
    )
    return TakenCheckpoint(checkpoint, path, record)


def publish_public_key(directory: Path, public_key: Ed25519PublicKey) -> None:
    """Put the public key beside the checkpoints unless the same one is there."""
    pem = public_key_pem(public_key)
    path = directory / PUBLIC_KEY_FILE
    try:
        if path.read_bytes() == pem:
            return
    except FileNotFoundError:
        pass
    write_bytes_atomically(path, pem, mode=CHECKPOINT_MODE)


# -- verifying the chain against checkpoints ------------------------------------------


@dataclass(frozen=True)
class CheckpointReport:
    """``checked`` checkpoints agreed with the chain; ``problem`` names the first that
    did not (its file) and why, or is empty."""

    ok: bool
    checked: int
    key_id: str
    problem: str
    bad_file: str = ""


def checkpoint_files(directory: Path) -> list[Path]:
    """The checkpoint files in *directory*, oldest head first."""
    found = []
    for path in directory.iterdir():
        match = _FILE.match(path.name)
        if match is not None:
            found.append((int(match.group(1)), match.group(2), path))
    return [path for _, _, path in sorted(found)]


def _read(paths: list[Path]) -> Iterator[tuple[Path, Checkpoint | str]]:
    for path in paths:
        try:
            yield path, parse_checkpoint(path.read_bytes(), str(path))
        except CheckpointError as e:
            yield path, str(e)
        except OSError as e:
            yield path, f"checkpoint {path} cannot be read: {e.strerror}"


def verify_checkpoints(
    conn: Connection,
    directory: Path,
    archive_dir: Path,
    public_key: Ed25519PublicKey,
) -> CheckpointReport:
    """Check every checkpoint in *directory*: signed by *public_key*, and the chain
    (archives in *archive_dir*, then the database) holds the signed hash at the signed
    ``seq``.  Verify the chain itself first (:func:`audit.verify_with_archives`): this
    compares hashes, it does not recompute them."""
    kid = key_id(public_key)
    checked = 0
    for path, read in _read(checkpoint_files(directory)):
        if isinstance(read, str):
            return CheckpointReport(False, checked, kid, read, path.name)
        problem = _contradiction(conn, archive_dir, read, public_key, kid)
        if problem is not None:
            return CheckpointReport(False, checked, kid, f"checkpoint {path}: {problem}", path.name)
        checked += 1
    return CheckpointReport(True, checked, kid, "")


def _contradiction(
    conn: Connection,
    archive_dir: Path,
    checkpoint: Checkpoint,
    public_key: Ed25519PublicKey,
    kid: str,
) -> str | None:
    if checkpoint.key_id != kid:
        return f"signed by key {checkpoint.key_id}, not by the audit key {kid}"
    if not signature_valid(checkpoint, public_key):
        return "its signature is not valid (the file was altered or forged)"
    held = hash_at(conn, archive_dir, checkpoint.seq)
    if held is None:
        return (
            f"the chain holds no record {checkpoint.seq}, which existed when the checkpoint "
            "was signed (records were removed)"
        )
    if held != checkpoint.hash:
        return (
            f"the chain holds a different hash for record {checkpoint.seq} than the one "
            "signed: the chain was rewritten at or before that record after the checkpoint"
        )
    return None
