"""``ssgate persons enrol|reset-password`` on a real state directory (migrated SQLite):
the account opens for a person the declaration service knows, the initial password
is shown once, the TOTP QR codes are written like the channel's bundle, the event is
audited with the OS user as actor, and the ID number appears in no audit event."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import audit
from ssgate import cli
from ssgate._app import App, operator_name
from ssgate._state import StateDir

from .conftest import ID_A, ID_C, declare_persons


def _ssgate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("cli-persons") / "state"
    code, text = _ssgate("--state", str(state), "init", "--hostname", "localhost")
    assert code == 0, text
    app = App(StateDir(state))
    try:
        declare_persons(app.engine)
    finally:
        app.close()
    return state


def _events(state: Path) -> list[audit.AuditEvent]:
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            return [r.event for r in audit.query(conn)]
    finally:
        app.close()


def test_enrol_writes_the_otp_files_shows_the_password_once_and_audits_without_the_id(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "otp"
    code, text = _ssgate("--state", str(state), "persons", "enrol", ID_A, "--out", str(out))
    assert code == 0, text
    assert "initial password:" in text and "330682********1233" in text
    assert ID_A not in text
    assert sorted(p.name for p in out.iterdir()) == ["otp-qr.png", "otp-qr.svg", "otpauth.txt"]
    assert (out / "otp-qr.png").stat().st_mode & 0o077 == 0
    [event] = [e for e in _events(state) if e.action == "person.enrol" and e.outcome == "ok"]
    assert event.actor == operator_name()
    assert event.subject.startswith("person:p")
    capsys.readouterr()
    assert _ssgate("--state", str(state), "persons", "enrol", ID_A)[0] == 1
    assert "already has a portal account" in capsys.readouterr().err
    code, text = _ssgate("--state", str(state), "persons", "reset-password", ID_A)
    assert code == 0, text
    assert "initial password:" in text
    every = _events(state)
    assert any(e.action == "person.reset-password" and e.outcome == "ok" for e in every)
    assert not any(ID_A in repr(e) for e in every)


def test_bad_and_unknown_id_numbers_are_one_line_refusals(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ssgate("--state", str(state), "persons", "enrol", "12345")[0] == 2
    assert "18-character" in capsys.readouterr().err
    # Valid shape, not in the persons table.
    assert _ssgate("--state", str(state), "persons", "enrol", "110105194912310021")[0] == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no insured person" in err and "110105194912310021" not in err
    assert _ssgate("--state", str(state), "persons", "reset-password", ID_C)[0] == 1
    assert "no portal account" in capsys.readouterr().err
    assert not any("110105194912310021" in repr(e) for e in _events(state))
