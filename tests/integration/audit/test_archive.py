"""Retention on SQLite and PostgreSQL: the oldest records move into gzip JSON Lines
archives with manifests, the database part links to the last archive, and
``verify_with_archives`` checks the one chain across both, naming the first bad file
or record."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

import audit
from audit import (
    GENESIS_HASH,
    ArchiveError,
    AuditEvent,
    append,
    archive_batch,
    archived_base,
    list_archives,
    query,
    verify,
    verify_with_archives,
)
from audit._schema import audit_events, metadata

DAY = 86400.0
T0 = 1_780_000_000.0  # the first record's time
NOW = T0 + 200 * DAY
CUTOFF = NOW - 180 * DAY  # 180-day retention


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    yield engine


@pytest.fixture
def arch(tmp_path: Path) -> Path:
    """The archive directory (created by the first run), apart from the SQLite file."""
    return tmp_path / "audit-archive"


def event(day: int, i: int = 0) -> AuditEvent:
    return AuditEvent(
        at=T0 + day * DAY + i * 60.5,
        actor="33068212345678@sxlss",
        action=("login", "declare.submit", "session.end")[i % 3],
        subject=f"subject {day}-{i}",
        outcome="ok",
        reason="中文 and \u2028 a line separator" if i == 1 else "",
        details={"day": day, "i": i, "ratio": day / 7, "none": None},
    )


def fill_days(engine: Engine, days: int = 200, per_day: int = 2) -> None:
    """*per_day* events on each of *days* days from T0: 200 days of synthetic events."""
    with engine.begin() as conn:
        for day in range(days):
            for i in range(per_day):
                append(conn, event(day, i))


def archive(engine: Engine, directory: Path, **kwargs: object) -> list[audit.ArchiveManifest]:
    done = []
    while True:
        with engine.begin() as conn:
            manifest = archive_batch(
                conn,
                directory,
                before=CUTOFF,
                now=NOW,
                node="node-a",
                **kwargs,  # type: ignore[arg-type]
            )
        if manifest is None:
            return done
        done.append(manifest)


def whole(engine: Engine, directory: Path) -> audit.ChainReport:
    with engine.begin() as conn:
        return verify_with_archives(conn, directory)


def rows(engine: Engine) -> tuple[int, int, int]:
    with engine.begin() as conn:
        lo, hi, n = conn.execute(
            select(func.min(audit_events.c.seq), func.max(audit_events.c.seq), func.count())
        ).one()
    return lo, hi, n


def test_records_older_than_the_cutoff_move_into_one_archive_and_the_chain_verifies(
    db: Engine, arch: Path
) -> None:
    fill_days(db)
    [manifest] = archive(db, arch)
    # Days 0..19 are older than 180 days before day 200: 20 days of 2 events.
    assert (manifest.first_seq, manifest.last_seq, manifest.count) == (1, 40, 40)
    assert manifest.prev_hash == GENESIS_HASH
    assert manifest.file == "audit-000000000001-000000000040.jsonl.gz"
    assert rows(db) == (41, 400, 360)
    with db.begin() as conn:
        assert archived_base(conn) == (40, manifest.last_hash)
        assert list_archives(conn) == [manifest]
        first_in_db = query(conn, limit=1)[0]
    assert first_in_db.prev_hash == manifest.last_hash
    report = whole(db, arch)
    assert report.ok, report.problem
    assert (report.archived, report.files, report.checked) == (40, 1, 400)
    with db.begin() as conn:  # the database part alone verifies too, from its base
        assert verify(conn) == audit.VerifyReport(True, 360, None, "")


def test_the_archive_is_gzip_json_lines_as_export_jsonl_writes_and_the_manifest_matches(
    db: Engine, arch: Path
) -> None:
    fill_days(db, 30)
    with db.begin() as conn:
        expected = "".join(audit.export_jsonl(query(conn, until=CUTOFF)))
    [manifest] = archive(db, arch)
    data = (arch / manifest.file).read_bytes()
    assert gzip.decompress(data).decode("utf-8") == expected
    import hashlib

    assert hashlib.sha256(data).hexdigest() == manifest.sha256
    stored = json.loads((arch / manifest.manifest_file).read_text())
    assert stored["first_seq"] == 1 and stored["last_seq"] == 40 and stored["count"] == 40
    assert stored["last_hash"] == manifest.last_hash and stored["sha256"] == manifest.sha256
    assert oct((arch / manifest.file).stat().st_mode & 0o777) == "0o600"


def test_a_limit_splits_the_move_into_files_each_in_its_own_transaction(
    db: Engine, arch: Path
) -> None:
    fill_days(db, 30)
    done = archive(db, arch, limit=15)
    assert [(m.first_seq, m.last_seq) for m in done] == [(1, 15), (16, 30), (31, 40)]
    assert [m.prev_hash for m in done[1:]] == [m.last_hash for m in done[:-1]]
    assert whole(db, arch).ok


def test_nothing_old_enough_moves_nothing(db: Engine, arch: Path) -> None:
    with db.begin() as conn:
        append(conn, event(190))
    assert archive(db, arch) == []
    assert rows(db) == (1, 1, 1)
    assert whole(db, arch).ok


def test_only_a_prefix_moves_an_old_record_after_a_young_one_stays(db: Engine, arch: Path) -> None:
    """A node with a slow clock wrote an 'old' record after a young one: it stays, so
    the database part is one unbroken stretch of the chain."""
    with db.begin() as conn:
        append(conn, event(1))
        append(conn, event(190))
        append(conn, event(2))
    [manifest] = archive(db, arch)
    assert (manifest.first_seq, manifest.last_seq) == (1, 1)
    assert rows(db) == (2, 3, 2)


def test_when_every_record_is_archived_appends_continue_the_chain(db: Engine, arch: Path) -> None:
    fill_days(db, 10)
    [manifest] = archive(db, arch)
    assert rows(db) == (None, None, 0)
    assert whole(db, arch).ok
    with db.begin() as conn:
        record = append(conn, event(199))
    assert (record.seq, record.prev_hash) == (21, manifest.last_hash)
    report = whole(db, arch)
    assert report.ok and report.checked == 21


def test_a_later_run_continues_from_the_last_archive(db: Engine, arch: Path) -> None:
    fill_days(db)
    with db.begin() as conn:
        first = archive_batch(conn, arch, before=CUTOFF - 10 * DAY, now=NOW, node="n")
    assert first is not None and first.last_seq == 20
    [second] = archive(db, arch)
    assert (second.first_seq, second.last_seq, second.prev_hash) == (21, 40, first.last_hash)
    assert whole(db, arch).files == 2


# -- what verify finds ----------------------------------------------------------------


def _edit_line(path: Path, seq: int, change: dict[str, object]) -> None:
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines(keepends=True)
    for n, line in enumerate(lines):
        value = json.loads(line)
        if value["seq"] == seq:
            value.update(change)
            lines[n] = json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
    path.write_bytes(gzip.compress("".join(lines).encode("utf-8")))


def test_an_edited_archived_line_is_named_by_file_and_seq(db: Engine, arch: Path) -> None:
    fill_days(db)
    [manifest] = archive(db, arch, limit=25)[:1]
    _edit_line(arch / manifest.file, 7, {"subject": "someone else"})
    report = whole(db, arch)
    assert not report.ok
    assert manifest.file in report.problem
    assert "record 7 was altered" in report.problem


def test_a_removed_archived_line_is_named(db: Engine, arch: Path) -> None:
    fill_days(db)
    [manifest] = archive(db, arch)
    path = arch / manifest.file
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines[:9] + lines[10:])))
    report = whole(db, arch)
    assert not report.ok
    assert "audit record 10 is missing" in report.problem and manifest.file in report.problem


def test_a_recompressed_archive_with_intact_records_fails_its_sha256(
    db: Engine, arch: Path
) -> None:
    fill_days(db)
    [manifest] = archive(db, arch)
    path = arch / manifest.file
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1))
    report = whole(db, arch)
    assert not report.ok and "SHA-256" in report.problem and manifest.file in report.problem


def test_a_truncated_archive_file_is_reported_not_raised(db: Engine, arch: Path) -> None:
    fill_days(db)
    [manifest] = archive(db, arch)
    path = arch / manifest.file
    path.write_bytes(path.read_bytes()[:100])
    report = whole(db, arch)
    assert not report.ok and "cannot be read" in report.problem


def test_a_deleted_archive_file_is_reported_with_its_records(db: Engine, arch: Path) -> None:
    fill_days(db)
    done = archive(db, arch, limit=15)
    (arch / done[1].file).unlink()
    report = whole(db, arch)
    assert not report.ok
    assert f"archive file {arch / done[1].file} (records 16 to 30" in report.problem
    assert "is missing" in report.problem


def test_a_deleted_archive_and_its_catalogue_row_leave_a_gap_between_archives(
    db: Engine, arch: Path
) -> None:
    fill_days(db)
    done = archive(db, arch, limit=15)
    (arch / done[1].file).unlink()
    with db.begin() as conn:
        conn.execute(text("DELETE FROM audit_archives WHERE first_seq = 16"))
    report = whole(db, arch)
    assert not report.ok
    assert "audit records 16 to 30 are missing: no archive holds them" in report.problem


def test_the_last_archive_deleted_with_its_row_leaves_a_gap_before_the_database(
    db: Engine, arch: Path
) -> None:
    fill_days(db)
    done = archive(db, arch, limit=15)
    (arch / done[-1].file).unlink()
    with db.begin() as conn:
        conn.execute(text("DELETE FROM audit_archives WHERE first_seq = 31"))
    report = whole(db, arch)
    assert not report.ok
    assert "audit records 31 to 40 are missing" in report.problem
    assert report.database is not None and report.database.first_bad_seq == 31


def test_a_manifest_that_disagrees_with_the_catalogue_is_reported(db: Engine, arch: Path) -> None:
    fill_days(db)
    [manifest] = archive(db, arch)
    path = arch / manifest.manifest_file
    stored = json.loads(path.read_text())
    stored["count"] = 39
    path.write_text(json.dumps(stored))
    report = whole(db, arch)
    assert not report.ok and "disagrees with the database's catalogue" in report.problem


def test_a_record_put_back_into_the_archived_part_is_reported(db: Engine, arch: Path) -> None:
    fill_days(db, 30)
    archive(db, arch)
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, at, actor, action, subject, outcome, reason, "
                "unit, session_id, details, prev_hash, hash) VALUES (5, 1, 'a', 'b', 'c', 'ok', "
                "'', '', '', '{}', :h, :h)"
            ),
            {"h": "0" * 64},
        )
    report = whole(db, arch)
    assert not report.ok and "audit record 5 is in the database although" in report.problem


# -- crash safety and refusals --------------------------------------------------------


def test_files_of_a_run_that_did_not_commit_are_replaced_by_the_next_run(
    db: Engine, arch: Path
) -> None:
    fill_days(db, 30)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), db.begin() as conn:
        archive_batch(conn, arch, before=CUTOFF, now=NOW, node="n", limit=5)
        raise Crash  # the transaction rolls back after the files were written
    assert sorted(p.name for p in arch.iterdir()) == [
        "audit-000000000001-000000000005.jsonl.gz",
        "audit-000000000001-000000000005.manifest.json",
    ]
    assert rows(db) == (1, 60, 60)  # nothing deleted
    assert whole(db, arch).ok  # the leftover is not catalogued: ignored
    [manifest] = archive(db, arch)
    assert (manifest.first_seq, manifest.last_seq) == (1, 40)
    assert sorted(p.name for p in arch.iterdir()) == [
        manifest.file,
        manifest.manifest_file,
    ]
    assert whole(db, arch).ok


def test_a_damaged_record_refuses_archiving_and_nothing_moves(db: Engine, arch: Path) -> None:
    fill_days(db, 30)
    with db.begin() as conn:
        conn.execute(text("UPDATE audit_events SET subject = 'edited' WHERE seq = 12"))
    with pytest.raises(ArchiveError, match="audit record 12 was altered"):
        archive(db, arch)
    assert rows(db) == (1, 60, 60)
    with db.begin() as conn:
        assert list_archives(conn) == []
    assert not any(p.name.startswith("audit-") for p in arch.iterdir())


@pytest.mark.postgres
def test_on_postgresql_one_archiver_at_a_time_while_appends_go_on(
    pg_engine: Engine, arch: Path
) -> None:
    """A second archiver waits for the first (advisory lock; here it gives up at once
    instead of waiting), and an append is not held up by an archive run."""
    from sqlalchemy.exc import OperationalError

    metadata.create_all(pg_engine)
    fill_days(pg_engine, 30)
    with pg_engine.begin() as first:
        assert archive_batch(first, arch, before=CUTOFF, now=NOW, node="a", limit=5) is not None
        with pg_engine.begin() as writer:
            writer.execute(text("SET LOCAL lock_timeout = '5s'"))
            append(writer, event(199))  # commits while the archive run is open
        with pytest.raises(OperationalError, match="lock"), pg_engine.begin() as second:
            second.execute(text("SET LOCAL lock_timeout = '10ms'"))
            archive_batch(second, arch, before=CUTOFF, now=NOW, node="b")
    assert [m.last_seq for m in archive(pg_engine, arch)] == [40]
    assert whole(pg_engine, arch).ok


def test_the_consoles_batched_verifier_starts_after_the_archived_part(
    db: Engine, arch: Path
) -> None:
    """After retention moved the oldest records out, the integrity page's batched walk
    (``begin_verify`` + ``verify_batch``) starts where ``verify`` does: intact, counting
    the database's records only, and a record put back below the base is named."""
    fill_days(db)
    archive(db, arch)
    with db.begin() as conn:
        plain = audit.verify(conn)
        walk = audit.begin_verify(conn)
    assert plain.ok and walk.base > 0 and walk.total == plain.checked
    while not walk.done:
        with db.begin() as conn:
            walk = audit.verify_batch(conn, walk, limit=7)
    assert walk.report is not None and walk.report.ok
    assert walk.report.checked == plain.checked
