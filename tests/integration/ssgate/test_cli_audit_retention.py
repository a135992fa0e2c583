"""``ssgate audit archive | checkpoint | verify [--checkpoints DIR]`` through the real
command on a real state directory, on SQLite and PostgreSQL — issue 12's acceptance 4
(200 days of events, 180-day retention: archive, verify across archives and database,
an edited archived line and a deleted archive named) and 5 (a consistent rewrite of the
database chain passes ``verify`` and fails ``verify --checkpoints`` naming the first
checkpoint it contradicts)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

import audit
from audit._schema import audit_events
from audit.testing import rewrite_chain
from ssgate import cli
from ssgate._app import App
from ssgate._init import init_state
from ssgate._state import StateDir

DAY = 86400.0
NOW = time.time()  # the command's clock is the real one; the events are placed around it
START = NOW - 200 * DAY
PER_DAY = 3


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return "" if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def state(tmp_path: Path, database_url: str) -> Path:
    """A state directory made 200 days ago (its own init events are that old too)."""
    path = tmp_path / "state"
    init_state(
        path,
        hostname="localhost",
        database_url=database_url,
        clock=lambda: START - 60,
        actor="os:test",
    )
    return path


def ssgate(state: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    capsys.readouterr()
    code = cli.main(["--state", str(state), *argv], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def synthetic_days(state: Path, days: int = 200) -> None:
    """PER_DAY events a day in its first hours, the oldest 200 days ago, the newest
    today: the 180-day cutoff (now, a few seconds after NOW) falls clear of them."""
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            for day in range(days):
                for i in range(PER_DAY):
                    audit.append(
                        conn,
                        audit.AuditEvent(
                            at=START + day * DAY + (i + 1) * 3600.25,
                            actor="33068212345678@sxlss",
                            action=("login", "declare.submit", "session.end")[i],
                            subject=f"33068212345678@sxlss day {day}",
                            outcome="ok",
                            unit="12345678",
                            details={"day": day, "peer": "192.0.2.7:40000"},
                        ),
                    )
    finally:
        app.close()


def db_range(state: Path) -> tuple[int, int]:
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            lo, hi = conn.execute(
                select(func.min(audit_events.c.seq), func.max(audit_events.c.seq))
            ).one()
    finally:
        app.close()
    return int(lo), int(hi)


# -- acceptance 4 -----------------------------------------------------------------------


def test_acceptance_4_archive_then_verify_across_archives_and_database(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic_days(state)
    total = 2 + 200 * PER_DAY  # init's two events and the synthetic ones

    code, out, err = ssgate(state, "audit", "archive", capsys=capsys)
    assert code == 0, err
    # Days 0..19 are older than 180 days; day 20's events are an hour or more younger
    # than the cutoff: init's 2 events + 20 days.
    archived = 2 + 20 * PER_DAY
    archive = state / "audit-archive" / f"audit-{1:012d}-{archived:012d}.jsonl.gz"
    assert f"archived audit records 1 to {archived} ({archived} records" in out
    assert str(archive) in out
    assert db_range(state) == (archived + 1, total)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    code, out, err = ssgate(state, "audit", "verify", capsys=capsys)
    assert (code, err) == (0, "")
    assert out == (
        f"audit log intact: {total} records verified ({archived} in 1 archive file(s), "
        f"{total - archived} in the database)\n"
    )

    code, out, _ = ssgate(state, "audit", "archive", capsys=capsys)
    assert code == 0 and out.startswith("nothing to archive: no audit record older than 180 days")

    # One edited archived line: verify exits 1 naming the file and the record.
    original = archive.read_bytes()
    lines = gzip.decompress(original).decode("utf-8").splitlines(keepends=True)
    record = json.loads(lines[29])
    record["subject"] = "33068299999999@sxlss"
    lines[29] = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    archive.write_bytes(gzip.compress("".join(lines).encode("utf-8")))
    code, out, err = ssgate(state, "audit", "verify", capsys=capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"ssgate: audit log NOT intact: archive {archive}, record 30 was altered: its hash "
        "does not match its contents\n"
    )

    archive.write_bytes(original)
    assert ssgate(state, "audit", "verify", capsys=capsys)[0] == 0

    # A deleted archive file is reported with the records it held.
    archive.unlink()
    code, out, err = ssgate(state, "audit", "verify", capsys=capsys)
    assert code == 1
    assert f"archive file {archive} (records 1 to {archived}, archived on node" in err
    assert "is missing" in err and "Traceback" not in err


def test_a_deleted_catalogued_archive_leaves_a_gap_before_the_database(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Archive file, manifest and catalogue row all gone: the database's first record
    no longer follows anything, and verify names the records missing."""
    synthetic_days(state)
    assert ssgate(state, "audit", "archive", capsys=capsys)[0] == 0
    archived = 2 + 20 * PER_DAY
    shutil.rmtree(state / "audit-archive")
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            conn.execute(audit._schema.audit_archives.delete())
    finally:
        app.close()
    code, _, err = ssgate(state, "audit", "verify", capsys=capsys)
    assert code == 1
    assert f"audit records 1 to {archived} are missing (records start at {archived + 1})" in err


def test_retention_below_180_days_is_a_config_error_naming_the_law(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = state / "ssgate.toml"
    config.write_text(
        config.read_text().replace("retention_days = 180", "retention_days = 90"),
        encoding="utf-8",
    )
    code, out, err = ssgate(state, "audit", "archive", capsys=capsys)
    assert (code, out) == (2, "")
    assert "audit.retention_days = 90 is invalid" in err
    assert "网络安全法" in err and "Art. 21" in err


# -- acceptance 5 -----------------------------------------------------------------------


def test_acceptance_5_a_consistent_rewrite_fails_only_verify_with_checkpoints(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic_days(state, days=10)  # all old: the first checkpoint signs record 32
    code, out, err = ssgate(state, "audit", "checkpoint", capsys=capsys)
    assert code == 0, err
    [first] = audit.checkpoint_files(state / "checkpoints")
    assert "checkpoint of audit record 32 (hash " in out and str(first) in out
    assert "recorded as audit record 33 (audit.checkpoint)" in out
    key_id = out.split("signed with audit key ")[1][:16]
    assert stat.S_IMODE((state / "audit.key").stat().st_mode) == 0o600

    synthetic_days(state, days=2)  # records 34..39
    assert ssgate(state, "audit", "checkpoint", capsys=capsys)[0] == 0  # signs record 39
    second = audit.checkpoint_files(state / "checkpoints")[1]

    code, out, err = ssgate(
        state, "audit", "verify", "--checkpoints", str(state / "checkpoints"), capsys=capsys
    )
    assert (code, err) == (0, "")
    assert f"checkpoints: 2 in {state / 'checkpoints'} agree with the chain" in out
    assert key_id in out

    # The tamperer edits record 35 and recomputes every later hash and the head.
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            rewrite_chain(conn, 35, subject="33068299999999@sxlss")
    finally:
        app.close()
    code, out, err = ssgate(state, "audit", "verify", capsys=capsys)
    assert (code, err) == (0, ""), "the chain alone cannot tell"

    code, out, err = ssgate(
        state, "audit", "verify", "--checkpoints", str(state / "checkpoints"), capsys=capsys
    )
    assert code == 1
    assert err.startswith(
        f"ssgate: audit log contradicts a signed checkpoint: checkpoint {second}: the chain "
        "holds a different hash for record 39"
    )
    assert str(first) not in err  # the first checkpoint (record 32) still agrees


def test_verify_checkpoints_takes_a_pinned_key_id_and_refuses_bad_input(
    state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert ssgate(state, "audit", "checkpoint", capsys=capsys)[0] == 0
    directory = str(state / "checkpoints")
    code, _, err = ssgate(
        state, "audit", "verify", "--checkpoints", directory, "--key-id", "0" * 16, capsys=capsys
    )
    assert code == 1 and f"not the pinned key {'0' * 16}" in err
    code, _, err = ssgate(
        state, "audit", "verify", "--checkpoints", str(tmp_path / "nowhere"), capsys=capsys
    )
    assert code == 2 and "no such directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = ssgate(
        state, "audit", "verify", "--checkpoints", str(tmp_path / "empty"), capsys=capsys
    )
    assert code == 2 and "no checkpoint files" in err


def test_a_state_directory_without_an_audit_key_gets_one_on_first_use(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (state / "audit.key").unlink()
    (state / "audit-key.pub.pem").unlink()
    code, _, err = ssgate(state, "audit", "checkpoint", capsys=capsys)
    assert code == 0, err
    assert stat.S_IMODE((state / "audit.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "audit-key.pub.pem").stat().st_mode) == 0o644
    assert (state / "audit-key.pub.pem").read_bytes() == (
        state / "checkpoints" / "audit-key.pub.pem"
    ).read_bytes()


def test_archive_dir_may_name_a_directory_every_node_shares(
    state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shared = tmp_path / "shared-archive"
    config = state / "ssgate.toml"
    config.write_text(
        config.read_text().replace('archive_dir = ""', f'archive_dir = "{shared}"'),
        encoding="utf-8",
    )
    synthetic_days(state, days=30)
    code, out, err = ssgate(state, "audit", "archive", capsys=capsys)
    assert code == 0, err
    assert str(shared / f"audit-{1:012d}-{2 + 20 * PER_DAY:012d}.jsonl.gz") in out
    assert not (state / "audit-archive").exists()
    assert ssgate(state, "audit", "verify", capsys=capsys)[0] == 0
