"""Issue #2 acceptance, through the real ``ssgate`` command and the real ``openssl``."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import stat
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]
ACCOUNT = "33068212345678@sxlss"
PASSWORD = "Correct-Horse-42-battery"
P12_PASS = "p12-Pass-phrase-9"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def state(tmp_path: Path, run: Run) -> Path:
    run("init", "--hostname", "gw.example.test", check_rc=0)
    return tmp_path / "state"


@pytest.fixture
def approved_unit(state: Path, run: Run) -> str:
    run("units", "register", "12345678", "--name", "上虞示范", "--region", "330682", check_rc=0)
    run("units", "approve", "12345678", check_rc=0)
    return "12345678"


@pytest.fixture
def secrets_files(tmp_path: Path) -> tuple[Path, Path]:
    pw, p12 = tmp_path / "pw.txt", tmp_path / "p12.txt"
    pw.write_text(PASSWORD + "\n")
    p12.write_text(P12_PASS + "\n")
    return pw, p12


def _open(
    run: Run, tmp_path: Path, files: tuple[Path, Path], rc: int = 0
) -> subprocess.CompletedProcess[str]:
    return run(
        "provision",
        "open",
        ACCOUNT,
        "--out",
        str(tmp_path / "bundle"),
        "--password-file",
        str(files[0]),
        "--p12-password-file",
        str(files[1]),
        check_rc=rc,
    )


def test_init_creates_the_state_directory_with_safe_modes(state: Path) -> None:
    assert _mode(state) == 0o700
    for secret in (
        "ssgate.toml",
        "ca-key.pem",
        "server-key.pem",
        "totp.key",
        "identity.key",
        "resume.key",
        "ssgate.db",
    ):
        assert _mode(state / secret) == 0o600, secret
    for public in ("ca.pem", "server.pem", "crl.pem", "rates.toml"):
        assert _mode(state / public) == 0o644, public
    text = subprocess.run(
        ["openssl", "x509", "-in", str(state / "server.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:gw.example.test" in text


def test_init_installs_no_figures_and_a_month_without_them_is_refused(
    state: Path, run: Run
) -> None:
    """``ssgate init`` writes the rates file the configuration names with no figure in
    it (issue 14: no demo figures as live ones), so ``declare rates`` refuses a month
    naming the year and the file; ``--install`` of a checked file makes it live."""
    from declare_app._ledger import rates_template

    assert (state / "rates.toml").read_text(encoding="utf-8") == rates_template()
    result = run("declare", "rates", "2026-07", check_rc=1)
    assert "add the 2026 figures to" in result.stderr and "rates.toml" in result.stderr


def test_a_second_init_exits_1_and_changes_nothing(state: Path, run: Run) -> None:
    before = _snapshot(state)
    result = run("init", check_rc=1)
    assert "already exists" in result.stderr
    assert _snapshot(state) == before


def test_open_writes_a_complete_bundle_that_openssl_accepts(
    state: Path, approved_unit: str, run: Run, tmp_path: Path, secrets_files: tuple[Path, Path]
) -> None:
    _open(run, tmp_path, secrets_files)
    bundle = tmp_path / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "ca.pem",
        "client.p12",
        "otp-qr.png",
        "otp-qr.svg",
        "otpauth.txt",
        "profile.toml",
    ]
    cert = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(bundle / "client.p12"),
            "-passin",
            f"pass:{P12_PASS}",
            "-nokeys",
            "-clcerts",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "client.pem").write_text(cert)
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle / "ca.pem"), str(tmp_path / "client.pem")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    subject = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(tmp_path / "client.pem"),
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ACCOUNT in subject
    wrong = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(bundle / "client.p12"),
            "-passin",
            "pass:wrong",
            "-nokeys",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0
    uri = urllib.parse.urlparse((bundle / "otpauth.txt").read_text().strip())
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    secret = urllib.parse.parse_qs(uri.query)["secret"][0]
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) * 8 >= 160
    assert (bundle / "otp-qr.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (bundle / "otp-qr.svg").read_bytes()
    assert "ca_fingerprint_sha256" in (bundle / "profile.toml").read_text()


def test_open_is_refused_for_unregistered_and_unapproved_units(
    state: Path, run: Run, tmp_path: Path, secrets_files: tuple[Path, Path]
) -> None:
    result = _open(run, tmp_path, secrets_files, rc=1)
    assert "not registered" in result.stderr
    run("units", "register", "12345678", "--name", "上虞示范", "--region", "330682", check_rc=0)
    result = _open(run, tmp_path, secrets_files, rc=1)
    assert "not approved" in result.stderr
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        ("3306821234567@sxlss", "14 digits"),
        ("33068212345678@@sxlss", "@"),
        ("３３０６８２１２３４５６７８@sxlss", "digits"),
        ("33068212345678@nosuch", "realm"),
    ],
)
def test_malformed_accounts_exit_2_with_a_message(
    state: Path, run: Run, tmp_path: Path, account: str, problem: str
) -> None:
    result = run("provision", "open", account, "--out", str(tmp_path / "b"), check_rc=2)
    assert problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cancel_revokes_the_certificate_into_the_crl(
    state: Path, approved_unit: str, run: Run, tmp_path: Path, secrets_files: tuple[Path, Path]
) -> None:
    opened = _open(run, tmp_path, secrets_files)
    serial = next(
        line.split("serial")[1].strip()
        for line in opened.stdout.splitlines()
        if line.startswith("certificate:")
    )
    run("provision", "cancel", ACCOUNT, "--reason", "unit closed", check_rc=0)
    crl = run("pki", "crl", check_rc=0).stdout
    assert f"serial {serial}" in crl
    text = subprocess.run(
        ["openssl", "crl", "-in", str(state / "crl.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert serial.upper().lstrip("0") in text.replace(":", "").upper()
    show = run("provision", "show", ACCOUNT, check_rc=0).stdout
    assert "status:    cancelled" in show
    assert "revoked" in show
    again = run("provision", "resume", ACCOUNT, check_rc=1)
    assert "cancel" in again.stderr


def test_no_secret_is_stored_or_logged_in_clear(
    state: Path, approved_unit: str, run: Run, tmp_path: Path, secrets_files: tuple[Path, Path]
) -> None:
    _open(run, tmp_path, secrets_files)
    run("provision", "reset-password", ACCOUNT, check_rc=0)
    uri = (tmp_path / "bundle" / "otpauth.txt").read_text()
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri.strip()).query)["secret"][0]
    exported = run("audit", "export", "--format", "jsonl", check_rc=0).stdout
    stored = b"".join(p.read_bytes() for p in state.iterdir() if p.name.startswith("ssgate.db"))
    for needle in (PASSWORD, P12_PASS, secret):
        assert needle.encode() not in stored
        assert needle not in exported


def test_audit_verify_names_an_edited_deleted_or_swapped_row(
    state: Path, approved_unit: str, run: Run, tmp_path: Path, secrets_files: tuple[Path, Path]
) -> None:
    _open(run, tmp_path, secrets_files)
    run("provision", "suspend", ACCOUNT, check_rc=0)
    run("provision", "resume", ACCOUNT, check_rc=0)
    assert "intact" in run("audit", "verify", check_rc=0).stdout
    db = state / "ssgate.db"
    pristine = db.read_bytes()

    def tamper(sql: str) -> str:
        db.write_bytes(pristine)
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        conn = sqlite3.connect(db)
        try:
            conn.executescript(sql)
            conn.commit()
        finally:
            conn.close()
        return run("audit", "verify", check_rc=1).stderr

    assert "record 4" in tamper("UPDATE audit_events SET subject = 'someone-else' WHERE seq = 4;")
    assert "record 4" in tamper("DELETE FROM audit_events WHERE seq = 4;")
    swapped = tamper(
        "UPDATE audit_events SET action = CASE seq WHEN 3 THEN (SELECT action FROM audit_events WHERE seq = 5)"
        " ELSE (SELECT action FROM audit_events WHERE seq = 3) END WHERE seq IN (3, 5);"
    )
    assert "record 3" in swapped


def test_staff_are_enrolled_with_password_and_totp(state: Path, run: Run, tmp_path: Path) -> None:
    result = run(
        "staff", "add", "wang.li", "--role", "auditor", "--out", str(tmp_path / "otp"), check_rc=0
    )
    assert "otpauth://totp/" in result.stdout
    assert (tmp_path / "otp" / "otp-qr.png").exists()
    assert run("staff", "add", "wang.li", "--role", "auditor", check_rc=1).returncode == 1
    # A name that breaks the rule is bad input (ARCHITECTURE §5: exit 2), not a refusal.
    assert run("staff", "add", "Bad Name", "--role", "auditor").returncode == 2


def test_commands_on_a_missing_state_directory_say_to_run_init(run: Run, tmp_path: Path) -> None:
    result = run("provision", "list", state=tmp_path / "nowhere", check_rc=1)
    assert "ssgate init" in result.stderr


def test_serve_on_a_missing_state_directory_says_to_run_init(run: Run, tmp_path: Path) -> None:
    result = run("serve", state=tmp_path / "nowhere", check_rc=1)
    assert "ssgate init" in result.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(state: Path) -> None:
    """``ssgate audit export --format jsonl | head -1`` (here ``| true``, whose end of
    the pipe is closed before ssgate writes): exit 0, nothing on stderr."""
    from tests.e2e.conftest import SSGATE

    script = f'"{SSGATE}" --state "{state}" audit export --format jsonl | true; echo "${{PIPESTATUS[0]}}"'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "0", (done.stdout, done.stderr)
    assert done.stderr == ""
    head = subprocess.run(
        ["bash", "-c", f'"{SSGATE}" --state "{state}" audit export --format jsonl | head -1'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert head.returncode == 0 and head.stderr == ""
    assert head.stdout.startswith("{")


def test_unlock_and_the_reasons_of_resets_go_to_the_audit_log(
    state: Path, approved_unit: str, run: Run, tmp_path: Path, secrets_files: tuple[Path, Path]
) -> None:
    """The command line runs the workflows the console pages run, reason included."""
    _open(run, tmp_path, secrets_files)
    refused = run("provision", "unlock", ACCOUNT, "--reason", "ticket 7", check_rc=1)
    assert "not locked" in refused.stderr
    run("provision", "reset-password", ACCOUNT, "--reason", "ticket 8", check_rc=0)
    actions = run("audit", "actions", "--account", ACCOUNT, "--format", "json", check_rc=0).stdout
    # A refusal records the refusal's code as its reason; a done action the operator's.
    assert '"reason":"not-locked"' in actions and '"reason":"ticket 8"' in actions
