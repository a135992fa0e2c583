"""``ssgate backup`` and ``ssgate restore`` on real state directories, SQLite and
PostgreSQL (issue 13, acceptance 7 at the command level): backup → wipe → restore,
then the audit chain verifies and a staff member logs in with password and one-time
code — which needs the restored TOTP key to open the restored sealed secret.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import stat
import tarfile
import time
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import text

import auth
from ssgate import cli
from ssgate._app import App
from ssgate._db import make_engine
from ssgate._serve import make_authenticator
from ssgate._state import StateDir

PASSWORD = "Correct-Horse-9-battery"


def ssgate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def populated(state: Path, tmp: Path, *, database_url: str = "") -> str:
    """``init`` plus one staff member; the member's TOTP secret."""
    extra = ("--database-url", database_url) if database_url else ()
    code, out = ssgate("--state", str(state), "init", "--hostname", "localhost", *extra)
    assert code == 0, out
    pw = tmp / "pw"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    code, out = ssgate(
        "--state", str(state), "staff", "add", "root", "--role", "admin",
        "--password-file", str(pw), "--out", str(tmp / "otp"),
    )  # fmt: skip
    assert code == 0, out
    uri = (tmp / "otp" / "otpauth.txt").read_text(encoding="utf-8").strip()
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


def staff_login(state: Path, secret: str) -> str:
    """A console login's check, as ``serve`` builds it, on the restored directory."""
    app = App(StateDir(state))
    try:
        now = time.time()
        outcome = make_authenticator(app).authenticate(
            "root", PASSWORD, auth.current_code(secret, now), source="127.0.0.1", now=now,
            kind="staff",
        )  # fmt: skip
        return outcome.reason
    finally:
        app.close()


def test_sqlite_backup_wipe_restore_keeps_the_chain_and_the_logins(tmp_path: Path) -> None:
    state = tmp_path / "state"
    secret = populated(state, tmp_path)
    archive = tmp_path / "backups" / "ssgate.tar.gz"
    archive.parent.mkdir()

    code, out = ssgate("--state", str(state), "backup", "--out", str(archive))
    assert code == 0, out
    assert "holds every key" in out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert [p.name for p in archive.parent.iterdir()] == ["ssgate.tar.gz"]  # no temp left
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "MANIFEST.json"
    assert "database/ssgate.db" in names
    for key in ("state/ssgate.toml", "state/ca-key.pem", "state/totp.key", "state/crl.pem"):
        assert key in names
    assert not any(n.endswith(("-wal", "-shm", ".sock")) for n in names)

    shutil.rmtree(state)  # the wipe

    code, out = ssgate("--state", str(state), "restore", str(archive))
    assert code == 0, out
    assert "audit log intact" in out
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "ssgate.db").stat().st_mode) == 0o600
    code, out = ssgate("--state", str(state), "audit", "verify")
    assert code == 0 and "audit log intact" in out, out
    code, out = ssgate("--state", str(state), "audit", "actions", "--format", "json")
    actions = [json.loads(line)["action"] for line in out.splitlines()]
    assert "ops.backup" in actions and actions[-1] == "ops.restore"
    code, out = ssgate("--state", str(state), "staff", "list")
    assert code == 0 and "root" in out
    assert staff_login(state, secret) == "ok"


def test_restore_refuses_a_non_empty_directory_unless_forced_and_keeps_the_old(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    populated(state, tmp_path)
    archive = tmp_path / "a.tar.gz"
    assert ssgate("--state", str(state), "backup", "--out", str(archive))[0] == 0
    code, _ = ssgate("--state", str(state), "restore", str(archive))
    assert code == 1
    code, out = ssgate("--state", str(state), "restore", "--force", str(archive))
    assert code == 0, out
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.before-restore-")]
    assert len(aside) == 1 and (aside[0] / "ssgate.toml").is_file()


def test_restore_refuses_while_a_node_runs_on_the_directory(tmp_path: Path) -> None:
    from twisted.python.lockfile import FilesystemLock

    state = tmp_path / "state"
    populated(state, tmp_path)
    archive = tmp_path / "a.tar.gz"
    assert ssgate("--state", str(state), "backup", "--out", str(archive))[0] == 0
    lock = FilesystemLock(str(state / "declare.sock.lock"))  # what serve's socket holds
    assert lock.lock()
    try:
        code, _ = ssgate("--state", str(state), "restore", "--force", str(archive))
        assert code == 1
    finally:
        lock.unlock()


def test_a_damaged_or_foreign_archive_is_refused_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    populated(state, tmp_path)
    archive = tmp_path / "a.tar.gz"
    assert ssgate("--state", str(state), "backup", "--out", str(archive))[0] == 0

    # One byte of the CA key changed, the manifest left as it was.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "state/ca-key.pem":
                data = data[:-2] + b"X\n"
            dst.addfile(info, io.BytesIO(data))
    target = tmp_path / "restored"
    code, _ = ssgate("--state", str(target), "restore", str(damaged))
    assert code == 2
    assert "does not match the manifest" in capsys.readouterr().err
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored")]

    # A member that would land outside the state directory.
    escaping = tmp_path / "escaping.tar.gz"
    manifest = json.dumps(
        {"format": "ssgate-backup 1", "members": {"state/../x": {"size": 1, "sha256": ""}}}
    ).encode()
    with tarfile.open(escaping, "w:gz") as dst:
        for name, data in (("MANIFEST.json", manifest), ("state/../x", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    code, _ = ssgate("--state", str(target), "restore", str(escaping))
    assert code == 2
    assert "unexpected member" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not target.exists()

    code, _ = ssgate("--state", str(target), "restore", "/etc/hostname")
    assert code == 2


@pytest.mark.postgres
def test_postgresql_backup_wipe_restore_keeps_the_chain_and_the_logins(
    tmp_path: Path, pg_url: str
) -> None:
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump not installed")
    state = tmp_path / "state"
    secret = populated(state, tmp_path, database_url=pg_url)
    archive = tmp_path / "pg.tar.gz"
    code, out = ssgate("--state", str(state), "backup", "--out", str(archive))
    assert code == 0, out
    assert "postgresql database" in out
    with tarfile.open(archive) as tar:
        assert "database/ssgate.pgdump" in tar.getnames()

    # The wipe: every table of the schema, and the state directory.
    schema = urllib.parse.unquote(pg_url.rsplit("search_path%3D", 1)[1])
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    shutil.rmtree(state)

    code, out = ssgate("--state", str(state), "restore", str(archive))
    assert code == 0, out
    code, out = ssgate("--state", str(state), "audit", "verify")
    assert code == 0 and "audit log intact" in out, out
    assert staff_login(state, secret) == "ok"

    # The database now holds ssgate's tables: a second restore elsewhere is refused…
    code, _ = ssgate("--state", str(tmp_path / "again"), "restore", str(archive))
    assert code == 1
    # …unless it names another, empty database.
    other = "ssgate_restore_" + secrets.token_hex(4)
    other_url = pg_url.replace("/test?", f"/{other}?")
    admin = make_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {other}"))
    try:
        code, out = ssgate(
            "--state", str(tmp_path / "again"), "restore", str(archive),
            "--database-url", other_url,
        )  # fmt: skip
        assert code == 0, out
        assert other_url in (tmp_path / "again" / "ssgate.toml").read_text(encoding="utf-8")
        assert staff_login(tmp_path / "again", secret) == "ok"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {other} WITH (FORCE)"))
        admin.engine.dispose()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            '[database]\n# where\nurl = ""\n\n[accounts]\n',
            '[database]\n# where\nurl = "U"\n\n[accounts]\n',
        ),
        ("[database]\n\n[accounts]\n", '[database]\nurl = "U"\n\n[accounts]\n'),
        ('[gateway]\nurl = "x"\n', '[gateway]\nurl = "x"\n\n[database]\nurl = "U"\n'),
    ],
)
def test_database_url_is_written_into_the_database_section_only(
    tmp_path: Path, before: str, after: str
) -> None:
    from ssgate._backup import _set_database_url

    url = "postgresql+psycopg://ssgate@db2.example/ssgate"
    (tmp_path / "ssgate.toml").write_text(before, encoding="utf-8")
    _set_database_url(StateDir(tmp_path), url)
    assert (tmp_path / "ssgate.toml").read_text(encoding="utf-8") == after.replace("U", url)


def test_an_sqlite_file_named_by_database_url_is_restored_where_it_was(tmp_path: Path) -> None:
    """database.url = sqlite:///PATH outside the state directory: the copy goes back to
    PATH (refused while a file is there); a rates file outside is named, not archived."""
    state = tmp_path / "state"
    elsewhere = tmp_path / "db" / "ssgate.db"
    elsewhere.parent.mkdir()
    secret = populated(state, tmp_path, database_url=f"sqlite:///{elsewhere}")
    rates = tmp_path / "rates.toml"
    shutil.move(state / "rates.toml", rates)
    config = state / "ssgate.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'rates_file = "rates.toml"', f'rates_file = "{rates}"'
        ),
        encoding="utf-8",
    )
    archive = tmp_path / "a.tar.gz"
    code, out = ssgate("--state", str(state), "backup", "--out", str(archive))
    assert code == 0, out
    assert f"not in the archive (outside the state directory): {rates}" in out

    shutil.rmtree(state)
    code, _ = ssgate("--state", str(state), "restore", str(archive))
    assert code == 1  # the database file is still there
    assert not state.exists()
    elsewhere.unlink()
    code, out = ssgate("--state", str(state), "restore", str(archive))
    assert code == 0, out
    assert elsewhere.is_file() and not (state / "ssgate.db").exists()
    code, out = ssgate("--state", str(state), "audit", "verify")
    assert code == 0, out
    assert staff_login(state, secret) == "ok"
