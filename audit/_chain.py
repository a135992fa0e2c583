"""The hash chain: the canonical encoding of a record and the hash over it.

A record's hash is SHA-256 (hex) over the UTF-8 bytes of one canonical JSON object
(sorted keys, no spaces, non-ASCII kept as is) holding the format version, ``seq``,
every event field and ``prev_hash``.  ``seq`` and ``prev_hash`` are inside the hash, so
a record cannot be moved, swapped or re-linked without breaking it.

``at`` enters as ``repr(float)``: the shortest decimal that reads back as the same
IEEE double, which is what both SQLite REAL and PostgreSQL double precision store, so
a record read back from either database hashes exactly as it did when written.
``details`` enters as the canonical JSON text stored in the row, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from audit._events import AuditEvent, DetailValue

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64


def canonical_json(value: object) -> str:
    """The one JSON text for *value*: sorted keys, no whitespace, no NaN, Unicode as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_details(details: Mapping[str, DetailValue]) -> str:
    return canonical_json(dict(details))


def format_at(at: float) -> str:
    """``at`` as it enters the hash; exact for every finite double."""
    return repr(float(at))


def canonical_bytes(
    *,
    seq: int,
    at: float,
    actor: str,
    action: str,
    subject: str,
    outcome: str,
    reason: str,
    unit: str,
    session_id: str,
    details_json: str,
    prev_hash: str,
) -> bytes:
    """The bytes a record's hash is taken over, from the values as stored."""
    return canonical_json(
        {
            "v": FORMAT_VERSION,
            "seq": seq,
            "at": format_at(at),
            "actor": actor,
            "action": action,
            "subject": subject,
            "outcome": outcome,
            "reason": reason,
            "unit": unit,
            "session_id": session_id,
            "details": details_json,
            "prev_hash": prev_hash,
        }
    ).encode("utf-8")


def digest(encoded: bytes) -> str:
    """SHA-256 hex of a canonical encoding."""
    return hashlib.sha256(encoded).hexdigest()


def event_bytes(seq: int, event: AuditEvent, prev_hash: str) -> bytes:
    """The canonical encoding of *event* placed at *seq* after *prev_hash*."""
    return canonical_bytes(
        seq=seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        outcome=event.outcome,
        reason=event.reason,
        unit=event.unit,
        session_id=event.session_id,
        details_json=canonical_details(event.details),
        prev_hash=prev_hash,
    )


def event_hash(seq: int, event: AuditEvent, prev_hash: str) -> str:
    """The hash a record holding *event* at *seq* after *prev_hash* must carry."""
    return digest(event_bytes(seq, event, prev_hash))
