"""Signed checkpoints on SQLite and PostgreSQL: the chain head signed with Ed25519,
written to a file and recorded as an ``audit.checkpoint`` event; a consistent rewrite
of the chain (hashes recomputed, head moved) passes ``verify`` but contradicts the
first checkpoint at or after the edited record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

import audit
from audit import (
    CHECKPOINT_ACTION,
    AuditEvent,
    append,
    archive_batch,
    query,
    take_checkpoint,
    verify,
    verify_checkpoints,
    verify_with_archives,
)
from audit._checkpoint import parse_checkpoint, signed_bytes
from audit._schema import metadata
from audit.testing import rewrite_chain

T0 = 1_780_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    yield engine


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "checkpoints", tmp_path / "audit-archive"


def add(engine: Engine, n: int, start: int = 0) -> None:
    with engine.begin() as conn:
        for i in range(start, start + n):
            append(
                conn,
                AuditEvent(
                    at=T0 + i, actor="officer", action="login", subject=f"s{i}", outcome="ok"
                ),
            )


def checkpoint(engine: Engine, directory: Path, at: float) -> audit.TakenCheckpoint:
    with engine.begin() as conn:
        return take_checkpoint(conn, KEY, directory, now=at, actor="system")


def check(
    engine: Engine, dirs: tuple[Path, Path], key: Ed25519PrivateKey = KEY
) -> audit.CheckpointReport:
    with engine.begin() as conn:
        return verify_checkpoints(conn, dirs[0], dirs[1], key.public_key())


def test_a_checkpoint_signs_the_head_and_is_recorded_right_after_it(
    db: Engine, dirs: tuple[Path, Path]
) -> None:
    add(db, 5)
    taken = checkpoint(db, dirs[0], T0 + 10)
    cp = taken.checkpoint
    with db.begin() as conn:
        records = query(conn)
    assert (cp.seq, cp.hash) == (5, records[4].hash)
    assert cp.key_id == audit.key_id(KEY.public_key())
    KEY.public_key().verify(
        bytes.fromhex(cp.signature), signed_bytes(5, cp.hash, T0 + 10, cp.key_id)
    )
    # The event the syslog forwarder carries off the host, like every other event.
    event = records[5].event
    assert (taken.record.seq, event.action) == (6, CHECKPOINT_ACTION)
    assert dict(event.details) == {
        "seq": 5,
        "hash": cp.hash,
        "signature": cp.signature,
        "key_id": cp.key_id,
        "file": taken.path.name,
    }
    assert parse_checkpoint(taken.path.read_bytes(), "f") == cp
    assert oct(taken.path.stat().st_mode & 0o777) == "0o644"
    assert (dirs[0] / audit.PUBLIC_KEY_FILE).read_bytes() == audit.public_key_pem(KEY.public_key())
    report = check(db, dirs)
    assert report.ok and report.checked == 1, report.problem


def test_a_consistent_rewrite_passes_verify_but_contradicts_the_first_checkpoint_after_it(
    db: Engine, dirs: tuple[Path, Path]
) -> None:
    add(db, 5)
    first = checkpoint(db, dirs[0], T0 + 10)  # signs record 5
    add(db, 5, start=20)
    second = checkpoint(db, dirs[0], T0 + 30)  # signs record 11
    add(db, 3, start=40)
    with db.begin() as conn:
        assert rewrite_chain(conn, 8, subject="someone else") == 8
    with db.begin() as conn:
        assert verify(conn).ok  # the chain alone cannot tell
    report = check(db, dirs)
    assert not report.ok
    assert report.checked == 1  # the first checkpoint (record 5) still agrees
    assert report.bad_file == second.path.name != first.path.name
    assert "different hash for record 11" in report.problem


def test_a_checkpoint_of_an_archived_record_is_checked_against_its_archive(
    db: Engine, dirs: tuple[Path, Path]
) -> None:
    add(db, 5)
    checkpoint(db, dirs[0], T0 + 10)
    add(db, 5, start=20)
    with db.begin() as conn:
        moved = archive_batch(conn, dirs[1], before=T0 + 15, now=T0 + 50, node="n")
    assert moved is not None and moved.last_seq == 6
    with db.begin() as conn:
        assert verify_with_archives(conn, dirs[1]).ok
    assert check(db, dirs).ok


def test_records_removed_after_a_checkpoint_contradict_it(
    db: Engine, dirs: tuple[Path, Path]
) -> None:
    add(db, 5)
    checkpoint(db, dirs[0], T0 + 10)
    with db.begin() as conn:  # the newest records and the head rolled back to record 3
        conn.execute(text("DELETE FROM audit_events WHERE seq > 3"))
        last = conn.execute(text("SELECT hash FROM audit_events WHERE seq = 3")).scalar_one()
        conn.execute(text("UPDATE audit_head SET last_seq = 3, last_hash = :h"), {"h": last})
    with db.begin() as conn:
        assert verify(conn).ok
    report = check(db, dirs)
    assert not report.ok and "holds no record 5" in report.problem


def test_an_altered_checkpoint_file_fails_its_signature(
    db: Engine, dirs: tuple[Path, Path]
) -> None:
    add(db, 3)
    taken = checkpoint(db, dirs[0], T0 + 10)
    body = json.loads(taken.path.read_text())
    with db.begin() as conn:
        body["hash"] = query(conn)[1].hash  # a real hash, of another record
    taken.path.write_text(json.dumps(body))
    report = check(db, dirs)
    assert not report.ok and "signature is not valid" in report.problem
    assert report.bad_file == taken.path.name


def test_a_checkpoint_signed_by_another_key_is_refused(db: Engine, dirs: tuple[Path, Path]) -> None:
    add(db, 3)
    checkpoint(db, dirs[0], T0 + 10)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    report = check(db, dirs, key=other)
    assert not report.ok and "not by the audit key" in report.problem


def test_a_malformed_checkpoint_file_is_named_not_raised(
    db: Engine, dirs: tuple[Path, Path]
) -> None:
    add(db, 3)
    taken = checkpoint(db, dirs[0], T0 + 10)
    taken.path.write_text("{not json")
    report = check(db, dirs)
    assert not report.ok and str(taken.path) in report.problem and "not JSON" in report.problem
