"""Staff console sessions end to end: real ``ssgate serve`` processes on one PostgreSQL.

A staff member logs in to the console of serve #1 over HTTPS (trusting only the
state's CA); the same cookie works after serve #1 restarts and on serve #2, a second
node sharing the database and a copy of the state directory (its keys and
certificates); ``ssgate staff disable`` and a logout on one node end the session on
both.  Both serves bind port 0 for the gateway and the console and the test reads the
console's port from the banner, so nothing here picks a free port and releases it.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import ssl
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyotp
import pytest

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Proc, Run

pytestmark = [pytest.mark.slow]

SSGATE = shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"
PASSWORD = "Correct-Horse-9-battery"
COOKIE = "__Host-ssgate-console"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A blocking HTTPS client with a cookie jar, trusting only the state's CA."""

    def __init__(self, ca_file: Path) -> None:
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.cookies: dict[str, str] = {}

    def request(
        self, port: int, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """(status, Location, body) — cookies the answer sets are kept."""
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=self.context, timeout=20)
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
            set_cookies = response.headers.get_all("Set-Cookie") or []
        finally:
            conn.close()
        for line in set_cookies:
            pair, *attrs = [p.strip() for p in line.split(";")]
            name, _, value = pair.partition("=")
            if not value or "max-age=0" in (a.lower() for a in attrs):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response.status, response.getheader("Location") or "", text

    def home(self, port: int) -> tuple[int, str]:
        status, location, _ = self.request(port, "GET", "/")
        return status, location

    def log_in(self, form_port: int, post_port: int, name: str, code: str) -> None:
        """Load the login form from one node and send it to another (or the same)."""
        _, _, page = self.request(form_port, "GET", "/login")
        match = _CSRF.search(page)
        assert match is not None, page
        status, location, text = self.request(
            post_port,
            "POST",
            "/login",
            {"csrf_token": match.group(1), "name": name, "password": PASSWORD, "otp": code},
        )
        assert (status, location) == (303, "/"), text

    def log_out(self, port: int) -> None:
        _, _, page = self.request(port, "GET", "/")
        match = _CSRF.search(page)
        assert match is not None, page
        status, location, _ = self.request(port, "POST", "/logout", {"csrf_token": match.group(1)})
        assert (status, location) == (303, "/login")

    def same_cookie(self) -> Browser:
        """Another client holding this one's cookies (as after a copy between nodes)."""
        other = Browser.__new__(Browser)
        other.context = self.context
        other.cookies = dict(self.cookies)
        return other


def _configure_for_port_0(state: Path) -> None:
    config = state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    for default in (
        'listen = "tcp:8443"',
        'listen = "tcp:8444:interface=127.0.0.1"',
        'listen = "tcp:8445:interface=127.0.0.1"',  # [ops]
    ):
        assert default in text
        text = text.replace(default, 'listen = "tcp:0:interface=127.0.0.1"')
    config.write_text(text, encoding="utf-8")


def _add_staff(run: Run, state: Path, tmp: Path, name: str, role: str) -> pyotp.TOTP:
    password_file = tmp / f"{name}.password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    out = tmp / f"{name}-otp"
    run(
        "staff",
        "add",
        name,
        "--role",
        role,
        "--password-file",
        str(password_file),
        "--out",
        str(out),
        state=state,
        check_rc=0,
    )
    uri = (out / "otpauth.txt").read_text(encoding="utf-8").strip()
    return pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])


def _serve(spawn: Callable[..., Proc], state: Path) -> tuple[Proc, int]:
    proc = spawn([SSGATE, "--state", str(state), "serve"])
    port = int(proc.wait_for(r"staff console on https://127\.0\.0\.1:(\d+)/").group(1))
    proc.wait_for(r"Ctrl-C stops")
    return proc, port


def _audit(run: Run, state: Path) -> list[dict[str, Any]]:
    result = run("audit", "actions", "--format", "json", state=state, check_rc=0)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_a_console_session_outlives_a_restart_works_on_a_second_node_and_ends_on_both(
    run: Run, spawn: Callable[..., Proc], tmp_path: Path, pg_url: str
) -> None:
    state1, state2 = tmp_path / "state", tmp_path / "state2"
    run("init", "--hostname", "localhost", "--database-url", pg_url, state=state1, check_rc=0)
    alice = _add_staff(run, state1, tmp_path, "alice", "auditor")
    bob = _add_staff(run, state1, tmp_path, "bob", "carrier")
    shutil.copytree(state1, state2)  # a second node: same keys, certificates, database
    _configure_for_port_0(state1)
    _configure_for_port_0(state2)

    serve1, port1 = _serve(spawn, state1)
    _, port2 = _serve(spawn, state2)

    # alice logs in on node 1; the cookie works on node 2 as well.
    a = Browser(state1 / "ca.pem")
    a.log_in(port1, port1, "alice", alice.now())
    assert COOKIE in a.cookies
    assert a.home(port1) == (200, "")
    assert a.same_cookie().home(port2) == (200, "")

    # bob's login form comes from node 2 and is sent to node 1 (one key for all nodes).
    b = Browser(state1 / "ca.pem")
    b.log_in(port2, port1, "bob", bob.now())
    assert b.home(port2) == (200, "")

    # node 1 restarts: nobody is logged out.
    serve1.stop()
    serve1, port1 = _serve(spawn, state1)
    assert a.home(port1) == (200, "")
    assert b.home(port1) == (200, "")

    # 'ssgate staff disable bob' ends bob's session on both nodes at once, not alice's.
    disabled = run("staff", "disable", "bob", state=state2, check_rc=0)
    assert "bob is now disabled; 1 console session(s) ended" in disabled.stdout
    assert b.same_cookie().home(port2) == (303, "/login")
    assert b.home(port1) == (303, "/login")
    assert a.home(port2) == (200, "")
    # enabling bob again does not bring the ended session back
    run("staff", "enable", "bob", state=state1, check_rc=0)
    assert b.home(port1) == (303, "/login")

    # alice logs out on node 2: her cookie is dead on node 1 too.
    stale = a.same_cookie()
    a.log_out(port2)
    assert COOKIE not in a.cookies
    assert stale.home(port1) == (303, "/login")
    assert stale.home(port2) == (303, "/login")

    events = _audit(run, state1)
    logins = [e for e in events if e["action"] == "console.login" and e["outcome"] == "ok"]
    refs = {e["subject"]: e["session_id"] for e in logins}
    assert set(refs) == {"alice", "bob"}
    [end] = [e for e in events if e["action"] == "console.session-end"]
    assert (end["subject"], end["reason"], end["session_id"]) == (
        "bob",
        "staff-disabled",
        refs["bob"],
    )
    [logout] = [e for e in events if e["action"] == "console.logout"]
    assert logout["session_id"] == refs["alice"]
    [disable] = [e for e in events if e["action"] == "staff.disable"]
    assert disable["actor"].startswith("os:") and disable["details"]["console_sessions"] == 1


def test_staff_list_disable_and_enable_on_the_command_line(run: Run, tmp_path: Path) -> None:
    """Exit 0 when done, 1 when refused (with the reason audited), 2 for bad input; one
    line on stderr each time."""
    run("init", "--hostname", "localhost", check_rc=0)
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    run(
        "staff",
        "add",
        "wang.li",
        "--role",
        "auditor",
        "--password-file",
        str(password_file),
        check_rc=0,
    )
    run(
        "staff",
        "add",
        "li.na",
        "--role",
        "officer",
        "--password-file",
        str(password_file),
        check_rc=0,
    )

    listed = run("staff", "list", check_rc=0).stdout.splitlines()
    assert listed[0].split() == ["NAME", "ROLE", "STATUS", "LOCKOUT", "CREATED"]
    assert [line.split()[:3] for line in listed[1:]] == [
        ["li.na", "officer", "active"],
        ["wang.li", "auditor", "active"],
    ]
    done = run("staff", "disable", "wang.li", check_rc=0)
    assert done.stdout == "staff wang.li is now disabled; 0 console session(s) ended\n"
    assert "wang.li  auditor  disabled" in run("staff", "list", check_rc=0).stdout

    refusals = {
        ("disable", "wang.li"): "ssgate: staff member wang.li is already disabled\n",
        ("disable", "nobody"): "ssgate: staff member nobody does not exist\n",
        ("enable", "li.na"): "ssgate: staff member li.na is already active\n",
    }
    for args, message in refusals.items():
        assert run("staff", *args, check_rc=1).stderr == message
    bad = run("staff", "disable", "Bad Name", check_rc=2).stderr
    assert bad.startswith("ssgate: staff name 'Bad Name'") and bad.count("\n") == 1
    assert "NAME" in run("staff", "enable", check_rc=2).stderr  # missing argument

    assert run("staff", "enable", "wang.li", check_rc=0).stdout == (
        "staff wang.li is now active (role auditor)\n"
    )
    events = [e for e in _audit(run, tmp_path / "state") if e["action"].startswith("staff.")]
    assert [(e["action"], e["subject"], e["outcome"], e["reason"]) for e in events] == [
        ("staff.add", "wang.li", "ok", ""),
        ("staff.add", "li.na", "ok", ""),
        ("staff.disable", "wang.li", "ok", ""),
        ("staff.disable", "wang.li", "refused", "bad-transition"),
        ("staff.disable", "nobody", "refused", "unknown-staff"),
        ("staff.enable", "li.na", "refused", "bad-transition"),
        ("staff.enable", "wang.li", "ok", ""),
    ]
    assert all(e["actor"].startswith("os:") for e in events)
