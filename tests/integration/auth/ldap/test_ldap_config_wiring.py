"""[directory] backend = "ldap" end to end in one process: 'ssgate init', 'ssgate staff
add' (no password asked for, stored in clear or printed), and the Authenticator that
'ssgate serve' builds, logging the new staff member in against a real slapd."""

from __future__ import annotations

import io
import urllib.parse
from pathlib import Path

import pytest

import auth
from ssgate import cli
from ssgate._app import App
from ssgate._serve import ServeError, make_authenticator
from ssgate._state import StateDir

from .conftest import STAFF_PASSWORDS, USER_DN, Slapd

NAME = "zhang.wei"


def _ssgate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def _state(tmp_path: Path, directory: str) -> Path:
    state = tmp_path / "state"
    code, _ = _ssgate("--state", str(state), "init", "--hostname", "localhost")
    assert code == 0
    with (state / "ssgate.toml").open("a", encoding="utf-8") as f:
        f.write("\n[directory]\n" + directory)
    return state


def test_staff_add_and_serve_s_authenticator_use_the_directory(
    tmp_path: Path, slapd: Slapd, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ldap-ca.pem").write_bytes(slapd.ca.read_bytes())
    state = _state(
        tmp_path,
        f'backend = "ldap"\nurl = "{slapd.url}"\nstart_tls = true\n'
        f'ca_file = "{tmp_path / "ldap-ca.pem"}"\nuser_dn = "{USER_DN}"\ntimeout_seconds = 3\n',
    )
    code, text = _ssgate("--state", str(state), "staff", "add", NAME, "--role", "auditor")
    assert code == 0, text
    assert "none stored; checked by the LDAP directory as uid=zhang.wei,ou=staff" in text
    assert "initial password" not in text
    uri = next(line.split()[-1] for line in text.splitlines() if line.startswith("TOTP URI"))
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]

    pw = tmp_path / "pw"
    pw.write_text("Some-Password-1\n")
    code = cli.main(["--state", str(state), "staff", "add", "li.na", "--role", "auditor",
                     "--password-file", str(pw)])  # fmt: skip
    assert code == 2
    assert "kept in the LDAP directory" in capsys.readouterr().err

    app = App(StateDir(state))
    try:
        authenticator = make_authenticator(app)
        assert "LdapPasswords" in repr(authenticator)
        now = app.clock()
        outcome = authenticator.authenticate(
            NAME,
            STAFF_PASSWORDS[NAME],
            auth.current_code(secret, now),
            source="127.0.0.1",
            now=now,
            kind="staff",
        )
        assert outcome.ok, outcome
    finally:
        app.close()


def test_a_missing_ca_file_stops_serve_with_its_name(tmp_path: Path) -> None:
    state = _state(
        tmp_path,
        f'backend = "ldap"\nurl = "ldaps://127.0.0.1:1"\nca_file = "nope.pem"\n'
        f'user_dn = "{USER_DN}"\n',
    )
    app = App(StateDir(state))
    try:
        with pytest.raises(ServeError, match=r"directory.ca_file .*nope.pem: no such file"):
            make_authenticator(app)
    finally:
        app.close()


def test_the_sql_default_builds_the_authenticator_as_before(tmp_path: Path) -> None:
    state = _state(tmp_path, "")
    app = App(StateDir(state))
    try:
        assert "SqlPasswords" in repr(make_authenticator(app))
        assert make_authenticator(app).stores_passwords("staff")
    finally:
        app.close()
