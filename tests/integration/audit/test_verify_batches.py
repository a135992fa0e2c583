"""The batched verifier (``audit.begin_verify`` + ``audit.verify_batch``) reaches the
same verdict as ``audit.verify`` on SQLite and PostgreSQL: intact, edited, deleted,
truncated, beyond the head, without a head; each batch its own transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

import audit
from audit import AuditEvent, ChainWalk, append, begin_verify, verify, verify_batch
from audit._schema import metadata

T0 = 1_700_000_000.0
COUNT = 23  # not a multiple of any batch size used below


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    with engine.begin() as conn:
        for i in range(1, COUNT + 1):
            append(
                conn,
                AuditEvent(
                    at=T0 + i + 0.25,
                    actor="system",
                    action="login",
                    subject=f"s-{i}",
                    outcome="ok",
                    details={"i": i, "peer": "192.0.2.7:5000"},
                ),
            )
    yield engine


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def batched(engine: Engine, limit: int) -> tuple[audit.VerifyReport, int]:
    """The batched verdict and how many batches (transactions) it took."""
    with engine.begin() as conn:
        walk: ChainWalk = begin_verify(conn)
    batches = 0
    while not walk.done:
        with engine.begin() as conn:
            walk = verify_batch(conn, walk, limit=limit)
        batches += 1
        assert batches <= COUNT + 2, "the walk must always advance"
    assert walk.report is not None
    return walk.report, batches


def whole(engine: Engine) -> audit.VerifyReport:
    with engine.begin() as conn:
        return verify(conn)


DAMAGE: dict[str, Callable[[Engine], None]] = {
    "intact": lambda e: None,
    "edited": lambda e: sql(e, "UPDATE audit_events SET subject = 'x' WHERE seq = 9"),
    "deleted": lambda e: sql(e, "DELETE FROM audit_events WHERE seq = 12"),
    "deleted run across a batch edge": lambda e: sql(
        e, "DELETE FROM audit_events WHERE seq BETWEEN 4 AND 11"
    ),
    "truncated": lambda e: sql(e, "DELETE FROM audit_events WHERE seq > 20"),
    "relinked": lambda e: sql(
        e, "UPDATE audit_events SET prev_hash = :h WHERE seq = 15", h="0" * 64
    ),
    "head missing": lambda e: sql(e, "DELETE FROM audit_head"),
    "head moved back": lambda e: sql(e, "UPDATE audit_head SET last_seq = 18"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("limit", [1, 5, 1000])
def test_batched_verify_agrees_with_verify(db: Engine, damage: str, limit: int) -> None:
    DAMAGE[damage](db)
    expected = whole(db)
    report, _ = batched(db, limit)
    assert report == expected
    assert report.ok == (damage == "intact")


def test_an_intact_chain_is_walked_in_ceil_count_over_limit_batches(db: Engine) -> None:
    report, batches = batched(db, 5)
    assert report == audit.VerifyReport(True, COUNT, None, "")
    assert batches == 5  # 23 records, 5 a batch; the last batch also checks the head


def test_an_empty_log_verifies_in_one_batch(engine: Engine) -> None:
    metadata.create_all(engine)
    assert batched(engine, 10) == (audit.VerifyReport(True, 0, None, ""), 1)


def test_records_appended_during_the_walk_are_not_damage(db: Engine) -> None:
    """The walk ends at the head as first seen; later appends move the head on."""
    with db.begin() as conn:
        walk = begin_verify(conn)
        walk = verify_batch(conn, walk, limit=10)
    with db.begin() as conn:
        append(conn, AuditEvent(at=T0 + 100, actor="system", action="x", subject="y", outcome="ok"))
    while not walk.done:
        with db.begin() as conn:
            walk = verify_batch(conn, walk, limit=10)
    assert walk.report == audit.VerifyReport(True, COUNT, None, "")


def test_a_finished_walk_stays_finished(db: Engine) -> None:
    report, _ = batched(db, 100)
    with db.begin() as conn:
        walk = begin_verify(conn)
        done = verify_batch(conn, walk, limit=100)
        assert verify_batch(conn, done) is done
    assert done.report == report


def test_the_batch_size_must_be_positive(db: Engine) -> None:
    with db.begin() as conn, pytest.raises(ValueError, match="at least 1"):
        verify_batch(conn, begin_verify(conn), limit=0)
