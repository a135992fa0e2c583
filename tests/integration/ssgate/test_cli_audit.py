"""``ssgate audit …`` for the officer (issue 11, acceptance 1 and 4; issue 10's "the
same filters and formats in ``ssgate audit``"): run in process with ``main([...],
out=…)`` on a real state directory and its SQLite database.

``--account`` finds what the account did (actor ``channel:A``) as well as what was
done to it; times are read and shown in the display zone with the offset; JSON and
CSV carry ISO 8601 with an offset in every time field; the sessions table shows the
peer, the node and the kill note.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import audit
from gateway import _sessions
from ssgate import cli
from ssgate._db import make_engine

ACCOUNT = "33068212345678@sxlss"
OTHER = "33068287654321@sxlss"
CST = timezone(timedelta(hours=8))
KILLED = "0123456789abcdef" * 2
NOW = time.time()  # set again when the state is filled: see ``state``


def ssgate(state: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(["--state", str(state), *argv], out=out), out.getvalue()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One initialised state directory with a few events and sessions in its log.

    The times are relative to when the module's tests start, not to when it was
    imported: in a long run, collection is minutes earlier, and ``audit live`` would
    rightly no longer count a session last heard from then."""
    global NOW  # noqa: PLW0603 - the module's tests read it; see the docstring
    NOW = time.time()
    path = tmp_path_factory.mktemp("cli-audit") / "state"
    assert ssgate(path, "init", "--hostname", "localhost")[0] == 0
    engine = make_engine(f"sqlite:///{path}/ssgate.db")
    _fill(engine)
    engine.dispose()
    yield path


def _fill(engine: Engine) -> None:
    def event(action: str, at: float, **fields: Any) -> None:
        values: dict[str, Any] = {"actor": "gateway", "subject": ACCOUNT, "outcome": "ok"}
        values.update(fields)
        audit.append(conn, audit.AuditEvent(at=at, action=action, **values))

    with engine.begin() as conn:
        event("provision.open", NOW - 7200, actor="staff:carl", unit="12345678")
        event(
            "login",
            NOW - 3600,
            actor=f"channel:{ACCOUNT}",
            unit="12345678",
            details={"peer": "192.0.2.7:50000"},
        )
        event(
            "declare.submit", NOW - 30, actor=f"channel:{ACCOUNT}", subject="D-1", unit="12345678"
        )
        event("declare.submit", NOW - 20, actor=f"channel:{OTHER}", subject="D-2", unit="87654321")
        event("login", NOW - 10, actor=f"channel:{OTHER}", subject=OTHER, outcome="refused")
        for sid, account, peer, node in (
            (KILLED, ACCOUNT, "192.0.2.7:50000", "node-a"),
            ("f" * 32, OTHER, "198.51.100.9:4000", "node-b"),
        ):
            assert _sessions.start_session(
                conn,
                session_id=sid,
                account=account,
                unit_code=account[6:14],
                peer=peer,
                cert_serial="0A",
                node=node,
                now=NOW - 60,
                max_concurrent=10,
            )
        _sessions.kill_session(
            conn, KILLED, note="工单 7：可疑来源", actor="officer:olga", now=NOW - 5
        )


def _json(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _local(ts: float, fmt: str = "%Y-%m-%dT%H:%M:%S") -> str:
    return datetime.fromtimestamp(ts, CST).strftime(fmt)


# -- audit actions ----------------------------------------------------------------------


def test_account_lists_what_was_done_to_it_and_what_it_did_itself(state: Path) -> None:
    code, out = ssgate(state, "audit", "actions", "--account", ACCOUNT, "--format", "json")
    assert code == 0
    assert [(e["actor"], e["action"]) for e in _json(out)] == [
        ("staff:carl", "provision.open"),
        (f"channel:{ACCOUNT}", "login"),
        (f"channel:{ACCOUNT}", "declare.submit"),
    ]


def test_unit_source_outcome_and_session_filters(state: Path) -> None:
    def actions(*argv: str) -> list[str]:
        code, out = ssgate(state, "audit", "actions", *argv, "--format", "json")
        assert code == 0, out
        return [e["subject"] for e in _json(out)]

    assert actions("--unit", "87654321") == ["D-2"]
    assert actions("--source", "192.0.2.7") == [ACCOUNT]
    assert actions("--outcome", "refused") == [OTHER]
    assert actions("--action", "declare") == ["D-1", "D-2"]
    code, out = ssgate(state, "audit", "logins", "--format", "json")
    assert code == 0
    assert [e["action"] for e in _json(out)] == ["login", "login"]


def test_since_without_an_offset_is_local_time_and_finds_the_last_minute(state: Path) -> None:
    since = _local(NOW - 60)  # what an officer in Beijing types, no offset
    code, out = ssgate(state, "audit", "actions", "--since", since, "--format", "json")
    assert code == 0
    found = _json(out)
    assert {"D-1", "D-2", OTHER} <= {e["subject"] for e in found}
    assert all(datetime.fromisoformat(e["time"]).timestamp() >= int(NOW - 60) for e in found)
    assert "provision.open" not in {e["action"] for e in found}  # two hours ago
    utc = datetime.fromtimestamp(NOW - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ssgate(state, "audit", "actions", "--since", utc, "--format", "json")[1] == out


def test_every_time_field_of_json_and_csv_has_an_offset_and_none_is_an_epoch(state: Path) -> None:
    _, out = ssgate(state, "audit", "actions", "--format", "json")
    rows = _json(out)
    assert rows and all(
        datetime.fromisoformat(r["time"]).utcoffset() == timedelta(hours=8) for r in rows
    )
    assert all(not isinstance(v, float) for r in rows for v in r.values())
    _, text = ssgate(state, "audit", "actions", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["time"] for r in table] == [r["time"] for r in rows]
    _, sessions = ssgate(state, "audit", "sessions", "--format", "json")
    for s in _json(sessions):
        for name in ("started_at", "last_seen_at", "ended_at", "kill_requested_at"):
            assert s[name] is None or datetime.fromisoformat(s[name]).utcoffset() is not None
        assert not any(isinstance(v, float) for v in s.values())


def test_the_table_shows_local_time_with_its_offset(state: Path) -> None:
    _, out = ssgate(state, "audit", "actions", "--account", ACCOUNT)
    assert _local(NOW - 30, "%Y-%m-%d %H:%M:%S") + " +08:00" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["actions", "--since", "yesterday"], "--since 'yesterday'"),
        (["actions", "--source", "1.2.3"], "--source '1.2.3'"),
        (["logins", "--action", "declare"], "--action 'declare'"),
        (["sessions", "--reason", "made-up"], "--reason 'made-up'"),
        (["sessions", "--until", "2026-13-01"], "--until '2026-13-01'"),
    ],
)
def test_a_bad_filter_is_exit_2_naming_it(
    state: Path, argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ssgate(state, "audit", *argv)[0] == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_every_filter_has_a_help_line_and_the_time_format_is_explained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("actions", "logins", "sessions", "live"):
        with pytest.raises(SystemExit):
            cli.main(["audit", command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for option in ("--account A ", "--unit U ", "--since T ", "--until T ", "--source IP "):
            after = text.split(option, 1)[1]
            assert not after.startswith("--"), (command, option)  # a help text follows
        assert "ISO 8601" in text and "Asia/Shanghai" in text and "Z" in text


# -- sessions -------------------------------------------------------------------------


def test_the_sessions_table_shows_peer_node_and_the_kill_note(state: Path) -> None:
    code, out = ssgate(state, "audit", "sessions")
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith(KILLED))
    assert "192.0.2.7:50000" in line and "node-a" in line
    assert "officer:olga: 工单 7：可疑来源" in line and "+08:00" in line
    _, live = ssgate(state, "audit", "live")
    assert "工单 7" in live and "node-b" in live


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["--source", "198.51.100.9"], ["f" * 32]),
        (["--node", "node-a"], [KILLED]),
        (["--account", OTHER], ["f" * 32]),
        (["--unit", "12345678"], [KILLED]),
        (["--reason", "officer-kill"], []),  # asked for, not ended yet
    ],
)
def test_sessions_take_the_consoles_filters(
    state: Path, argv: list[str], wanted: list[str]
) -> None:
    code, out = ssgate(state, "audit", "sessions", *argv, "--format", "json")
    assert code == 0
    assert [s["id"] for s in _json(out)] == wanted


# -- the display zone ---------------------------------------------------------------------


def test_display_time_zone_is_configurable_and_checked(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "utc-state"
    subprocess.run(["cp", "-a", str(state), str(other)], check=True)
    config = other / "ssgate.toml"
    text = config.read_text()
    assert 'time_zone = "Asia/Shanghai"' in text  # written by init, with its comment
    config.write_text(text.replace('time_zone = "Asia/Shanghai"', 'time_zone = "UTC"'))
    _, out = ssgate(other, "audit", "actions", "--account", ACCOUNT)
    stamp = datetime.fromtimestamp(NOW - 30, UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"{stamp} +00:00" in out
    since = datetime.fromtimestamp(NOW - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _, found = ssgate(other, "audit", "actions", "--since", since, "--format", "json")
    assert "D-1" in found and "provision.open" not in found
    config.write_text(text.replace('time_zone = "Asia/Shanghai"', 'time_zone = "Mars/Olympus"'))
    assert ssgate(other, "audit", "actions")[0] == 2
    err = capsys.readouterr().err
    assert "display.time_zone = 'Mars/Olympus' is invalid" in err and "IANA" in err


# -- a closed pipe -------------------------------------------------------------------------


def test_export_into_head_ends_quietly(state: Path, tmp_path: Path) -> None:
    """Acceptance 4 of issue 11: ``ssgate audit export --format jsonl | head -1``."""
    big = tmp_path / "big-state"
    subprocess.run(["cp", "-a", str(state), str(big)], check=True)
    engine = make_engine(f"sqlite:///{big}/ssgate.db")
    with engine.begin() as conn:
        for n in range(3000):  # more than a pipe buffer holds
            audit.append(
                conn,
                audit.AuditEvent(
                    at=NOW, actor="gateway", action="bulk", subject=str(n), outcome="ok"
                ),
            )
    engine.dispose()
    script = Path(sys.executable).parent / "ssgate"
    result = subprocess.run(
        [
            "bash",
            "-c",
            f"set -o pipefail; '{script}' --state '{big}' audit export --format jsonl | head -1",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SSGATE_DEBUG": ""},
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["seq"] == 1
