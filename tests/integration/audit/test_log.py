"""The stored chain on SQLite and PostgreSQL: append, tamper detection, rollback, query."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

import audit._log
from audit import (
    GENESIS_HASH,
    AuditChainError,
    AuditEvent,
    AuditEventError,
    AuditRecord,
    append,
    query,
    verify,
)
from audit._chain import event_hash
from audit._schema import metadata

T0 = 1_700_000_000.0
COUNT = 12


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    yield engine


def sample(i: int) -> AuditEvent:
    """Event number *i* (1-based): fields vary so every filter has something to select."""
    return AuditEvent(
        at=T0 + i + 0.1,
        actor=f"3306821234567{i % 2}@sxlss" if i % 3 else "officer-王",
        action=("login", "declare.submit", "session.end")[i % 3],
        subject=f"subject-{i}",
        outcome=("ok", "refused", "failed")[i % 3],
        reason="" if i % 3 == 0 else f'reason {i}, with "quotes" and 中文',
        unit=f"1234567{i % 2}",
        session_id=f"s-{i % 4}",
        details={"i": i, "ratio": i / 7, "flag": i % 2 == 0, "none": None, "ip": "192.0.2.7"},
    )


def fill(engine: Engine, count: int = COUNT) -> list[AuditRecord]:
    with engine.begin() as conn:
        return [append(conn, sample(i)) for i in range(1, count + 1)]


def run_verify(engine: Engine) -> audit.VerifyReport:
    with engine.begin() as conn:
        return verify(conn)


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


# -- append ---------------------------------------------------------------------------


def test_an_empty_log_verifies(db: Engine) -> None:
    assert run_verify(db) == audit.VerifyReport(ok=True, checked=0, first_bad_seq=None, problem="")


def test_append_numbers_records_from_one_and_links_each_to_the_previous(db: Engine) -> None:
    records = fill(db)
    assert [r.seq for r in records] == list(range(1, COUNT + 1))
    assert records[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash
    for r in records:
        assert r.hash == event_hash(r.seq, r.event, r.prev_hash)


def test_append_refuses_anything_but_an_audit_event(db: Engine) -> None:
    with db.begin() as conn, pytest.raises(AuditEventError, match="AuditEvent"):
        append(conn, {"action": "login"})  # type: ignore[arg-type]


def test_an_intact_chain_verifies_and_counts_every_record(db: Engine) -> None:
    fill(db)
    assert run_verify(db) == audit.VerifyReport(
        ok=True, checked=COUNT, first_bad_seq=None, problem=""
    )


def test_appends_in_separate_transactions_continue_the_same_chain(db: Engine) -> None:
    first = fill(db, 3)
    with db.begin() as conn:
        more = append(conn, sample(4))
    assert more.seq == 4
    assert more.prev_hash == first[-1].hash
    assert run_verify(db).ok


def test_an_append_in_a_rolled_back_transaction_leaves_no_trace(db: Engine) -> None:
    fill(db, 3)

    class ActionFailed(Exception):
        pass

    with pytest.raises(ActionFailed), db.begin() as conn:
        append(conn, sample(4))
        raise ActionFailed
    with db.begin() as conn:
        assert [r.seq for r in query(conn)] == [1, 2, 3]
        head = conn.execute(text("SELECT last_seq FROM audit_head WHERE id = 1")).scalar_one()
    assert head == 3
    assert run_verify(db) == audit.VerifyReport(True, 3, None, "")
    with db.begin() as conn:
        assert append(conn, sample(5)).seq == 4
    assert run_verify(db).ok


@pytest.mark.parametrize(
    "at",
    [
        0.1 + 0.2,
        1_700_000_000.123456789,
        1_763_798_400.000001,
        2.0**33 + 0.5**19,
        5e-324,
        0.0,
        253_402_300_799.99997,
    ],
)
def test_at_reads_back_as_the_exact_double_so_the_hash_still_matches(db: Engine, at: float) -> None:
    with db.begin() as conn:
        append(conn, AuditEvent(at=at, actor="a", action="b", subject="c", outcome="ok"))
    with db.begin() as conn:
        (record,) = query(conn)
    assert record.event.at == at
    assert repr(record.event.at) == repr(at)
    assert run_verify(db).ok


# -- tampering ------------------------------------------------------------------------

EDITS = {
    "at": 1_700_000_007.5,
    "actor": "someone-else",
    "action": "logout",
    "subject": "subject-x",
    "outcome": "failed",
    "reason": "edited",
    "unit": "87654321",
    "session_id": "s-forged",
    "details": '{"i":7}',
    "prev_hash": "f" * 64,
    "hash": "e" * 64,
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_editing_any_column_of_a_record_is_reported_naming_that_record(
    db: Engine, column: str
) -> None:
    fill(db)
    sql(db, f"UPDATE audit_events SET {column} = :v WHERE seq = 7", v=EDITS[column])
    report = run_verify(db)
    assert report.ok is False
    assert report.first_bad_seq == 7
    assert report.checked == 6
    assert report.problem == "audit record 7 was altered: its hash does not match its contents"


def test_reformatting_the_details_json_without_changing_its_meaning_is_detected(
    db: Engine,
) -> None:
    records = fill(db)
    pretty = json.dumps(dict(records[4].event.details), indent=1)
    sql(db, "UPDATE audit_events SET details = :v WHERE seq = 5", v=pretty)
    report = run_verify(db)
    assert (report.ok, report.first_bad_seq) == (False, 5)


def test_deleting_a_middle_record_is_reported_naming_it(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_events WHERE seq = 8")
    report = run_verify(db)
    assert report == audit.VerifyReport(
        ok=False,
        checked=7,
        first_bad_seq=8,
        problem="audit record 8 is missing (records jump from 7 to 9)",
    )


def test_deleting_several_middle_records_names_the_range(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_events WHERE seq IN (8, 9, 10)")
    report = run_verify(db)
    assert report.first_bad_seq == 8
    assert report.problem == "audit records 8 to 10 are missing (records jump from 7 to 11)"


def test_deleting_the_first_record_is_reported(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_events WHERE seq = 1")
    report = run_verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, 0, 1)
    assert report.problem == "audit record 1 is missing (records start at 2)"


def test_deleting_the_last_record_is_detected_through_the_head(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_events WHERE seq = :s", s=COUNT)
    report = run_verify(db)
    assert report == audit.VerifyReport(
        ok=False,
        checked=COUNT - 1,
        first_bad_seq=COUNT,
        problem=(
            f"audit record {COUNT} is missing (the chain head says the log ends at {COUNT} "
            f"but it ends at {COUNT - 1})"
        ),
    )


def test_deleting_every_record_is_detected_through_the_head(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_events")
    report = run_verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, 0, 1)
    assert report.problem == (
        f"audit records 1 to {COUNT} are missing (the chain head says the log ends at "
        f"{COUNT} but it is empty)"
    )


def test_moving_the_head_back_to_hide_the_newest_records_is_detected(db: Engine) -> None:
    records = fill(db)
    sql(
        db,
        "UPDATE audit_head SET last_seq = 10, last_hash = :h WHERE id = 1",
        h=records[9].hash,
    )
    report = run_verify(db)
    assert (report.ok, report.first_bad_seq) == (False, 11)
    assert report.problem.startswith("audit record 11 lies beyond the chain head")


def test_a_head_whose_hash_was_changed_is_detected(db: Engine) -> None:
    fill(db)
    sql(db, "UPDATE audit_head SET last_hash = :h WHERE id = 1", h="d" * 64)
    report = run_verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, COUNT, COUNT)
    assert report.problem == (
        f"audit record {COUNT} does not match the chain head: the head holds a different "
        "hash for it"
    )


def test_a_deleted_head_is_reported_and_blocks_further_appends(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_head")
    report = run_verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, COUNT, None)
    assert "head (table audit_head) is missing" in report.problem
    with pytest.raises(AuditChainError, match="head"), db.begin() as conn:
        append(conn, sample(99))
    assert "head (table audit_head) is missing" in run_verify(db).problem


CONTENT = "at, actor, action, subject, outcome, reason, unit, session_id, details"


@pytest.mark.parametrize(
    "columns",
    [CONTENT, f"{CONTENT}, prev_hash, hash"],
    ids=["payload-only", "payload-and-hashes"],
)
def test_swapping_the_contents_of_two_records_is_reported_at_the_first(
    db: Engine, columns: str
) -> None:
    fill(db)
    names = [c.strip() for c in columns.split(",")]
    with db.begin() as conn:
        rows = {
            seq: conn.execute(
                text(f"SELECT {columns} FROM audit_events WHERE seq = :s"), {"s": seq}
            ).one()
            for seq in (4, 9)
        }
        assignments = ", ".join(f"{n} = :{n}" for n in names)
        for seq, other in ((4, 9), (9, 4)):
            conn.execute(
                text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq"),
                {**dict(zip(names, rows[other], strict=True)), "seq": seq},
            )
    report = run_verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, 3, 4)
    assert report.problem == "audit record 4 was altered: its hash does not match its contents"


def test_renumbering_a_record_into_a_gap_is_reported(db: Engine) -> None:
    fill(db)
    sql(db, "DELETE FROM audit_events WHERE seq = 6")
    sql(db, "UPDATE audit_events SET seq = 6 WHERE seq = 7")
    report = run_verify(db)
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert report.problem == "audit record 6 was altered: its hash does not match its contents"


def test_changing_prev_hash_is_reported_naming_the_record(db: Engine) -> None:
    records = fill(db)
    sql(db, "UPDATE audit_events SET prev_hash = :h WHERE seq = 5", h=records[2].hash)
    report = run_verify(db)
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert "audit record 5" in report.problem


def test_relinking_a_record_with_a_recomputed_hash_breaks_the_link_at_that_record(
    db: Engine,
) -> None:
    """Even a forger who re-hashes the row cannot hide that it points at the wrong record."""
    records = fill(db)
    forged_prev = records[2].hash
    forged_hash = event_hash(5, records[4].event, forged_prev)
    sql(
        db,
        "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = 5",
        p=forged_prev,
        h=forged_hash,
    )
    report = run_verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, 4, 5)
    assert report.problem == (
        "audit record 5 is not linked to record 4: its prev_hash is not the hash of record 4"
    )


def test_an_edited_record_rehashed_by_the_forger_breaks_the_link_to_the_next(
    db: Engine,
) -> None:
    records = fill(db)
    forged = AuditEvent(
        at=records[4].event.at, actor="innocent", action="login", subject="x", outcome="ok"
    )
    sql(
        db,
        "UPDATE audit_events SET actor = 'innocent', action = 'login', subject = 'x', "
        "outcome = 'ok', reason = '', unit = '', session_id = '', details = '{}', "
        "hash = :h WHERE seq = 5",
        h=event_hash(5, forged, records[3].hash),
    )
    report = run_verify(db)
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert report.problem.startswith("audit record 6 is not linked to record 5")


def test_verify_reads_in_chunks_and_finds_damage_past_a_chunk_boundary(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit._log, "VERIFY_CHUNK", 5)
    fill(db)
    assert run_verify(db) == audit.VerifyReport(True, COUNT, None, "")
    sql(db, "DELETE FROM audit_events WHERE seq = 11")
    assert run_verify(db).problem == "audit record 11 is missing (records jump from 10 to 12)"


def test_verify_does_not_stumble_over_a_chunk_that_ends_exactly_at_the_head(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit._log, "VERIFY_CHUNK", 4)
    fill(db)  # 12 records: three full chunks, then an empty read
    assert run_verify(db) == audit.VerifyReport(True, COUNT, None, "")


# -- query ----------------------------------------------------------------------------


def test_query_returns_plain_records_equal_to_what_append_returned(db: Engine) -> None:
    records = fill(db)
    with db.begin() as conn:
        found = query(conn)
    assert found == records
    assert all(type(r) is AuditRecord and type(r.event) is AuditEvent for r in found)


def seqs(engine: Engine, **filters: Any) -> list[int]:
    with engine.begin() as conn:
        return [r.seq for r in query(conn, **filters)]


def test_query_filters_by_each_field(db: Engine) -> None:
    fill(db)
    assert seqs(db, actions=["login"]) == [3, 6, 9, 12]
    assert seqs(db, actions={"declare.submit", "session.end"}) == [1, 2, 4, 5, 7, 8, 10, 11]
    assert seqs(db, subject="subject-5") == [5]
    assert seqs(db, unit="12345670") == [2, 4, 6, 8, 10, 12]
    assert seqs(db, session_id="s-1") == [1, 5, 9]
    assert seqs(db, actor="officer-王") == [3, 6, 9, 12]
    assert seqs(db, outcome="refused") == [1, 4, 7, 10]
    assert seqs(db, actions=["login"], unit="12345671") == [3, 9]


def test_query_time_window_includes_since_and_excludes_until(db: Engine) -> None:
    fill(db)
    assert seqs(db, since=T0 + 3.1, until=T0 + 6.1) == [3, 4, 5]
    assert seqs(db, since=T0 + 11.1) == [11, 12]
    assert seqs(db, until=T0 + 2.1) == [1]


def test_query_limit_and_newest_first(db: Engine) -> None:
    fill(db)
    assert seqs(db, limit=3) == [1, 2, 3]
    assert seqs(db, limit=3, newest_first=True) == [12, 11, 10]
    assert seqs(db, newest_first=True) == list(range(COUNT, 0, -1))
    assert seqs(db, limit=0) == []


def test_query_with_no_actions_listed_matches_nothing(db: Engine) -> None:
    fill(db)
    assert seqs(db, actions=[]) == []


@pytest.mark.parametrize(
    ("filters", "match"),
    [({"actions": "login"}, "collection"), ({"limit": -1}, "limit"), ({"limit": True}, "limit")],
)
def test_query_refuses_filters_that_would_silently_mean_something_else(
    db: Engine, filters: dict[str, Any], match: str
) -> None:
    with db.begin() as conn, pytest.raises(AuditEventError, match=match):
        query(conn, **filters)


def test_query_reports_a_row_that_cannot_be_read_back(db: Engine) -> None:
    fill(db, 2)
    sql(db, "UPDATE audit_events SET details = 'not json' WHERE seq = 2")
    with db.begin() as conn, pytest.raises(AuditChainError, match="audit record 2"):
        query(conn)


def test_a_refused_append_leaves_the_missing_head_missing_even_if_the_caller_commits(
    db: Engine,
) -> None:
    fill(db, 3)
    sql(db, "DELETE FROM audit_head")
    # pytest.raises swallows the error inside the transaction, which then commits
    with db.begin() as conn, pytest.raises(AuditChainError):
        append(conn, sample(4))
    with db.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_head")).scalar_one() == 0
    report = run_verify(db)
    assert (report.ok, report.checked) == (False, 3)
    assert "head (table audit_head) is missing" in report.problem


def test_verify_reports_rather_than_crashes_on_values_of_the_wrong_type(
    sqlite_engine: Engine,
) -> None:
    """SQLite keeps whatever a tamperer writes, whatever the declared column type."""
    metadata.create_all(sqlite_engine)
    fill(sqlite_engine, 4)
    sql(sqlite_engine, "UPDATE audit_events SET actor = x'00ff' WHERE seq = 2")
    report = run_verify(sqlite_engine)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert report.problem == "audit record 2 was altered: its actor holds bytes, not text"
    sql(sqlite_engine, "UPDATE audit_events SET at = 'yesterday' WHERE seq = 1")
    assert run_verify(sqlite_engine).problem == (
        "audit record 1 was altered: its at holds str, not a number"
    )
    sql(sqlite_engine, "UPDATE audit_events SET seq = 'four' WHERE seq = 4")
    sql(sqlite_engine, "UPDATE audit_head SET last_seq = 3 WHERE id = 1")
    sql(sqlite_engine, "DELETE FROM audit_events WHERE seq IN (1, 2)")
    sql(sqlite_engine, "DELETE FROM audit_head")
    report = run_verify(sqlite_engine)
    assert report.ok is False
    assert report.problem == "audit records 1 to 2 are missing (records start at 3)"
    sql(sqlite_engine, "DELETE FROM audit_events WHERE seq = 3")
    report = run_verify(sqlite_engine)
    assert (report.ok, report.first_bad_seq) == (False, None)
    assert report.problem == (
        "an audit record's sequence number was altered to 'four', not an integer"
    )
