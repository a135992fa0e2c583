"""Issue 10, acceptance 4: an export streams, through the real console of a real
``ssgate serve`` process.

The log holds 100,000 events more than ``init`` wrote.  An officer logs in over
HTTPS and downloads the actions view as CSV and as JSON Lines: every event arrives,
and the serve process's peak resident memory (``VmHWM`` in ``/proc/PID/status``,
read from outside) stays within 50 MB of its resident size before the exports.  A
narrower filter's exports hold exactly the rows its pages show.  No timing is
asserted; the process is simply measured after it has done the work.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
import shutil
import ssl
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp
import pytest
from sqlalchemy import insert, select, update

import audit
from audit._chain import canonical_details, event_hash
from audit._schema import HEAD_ID, audit_events, audit_head
from ssgate._db import make_engine

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Proc, Run

pytestmark = [pytest.mark.slow]

SSGATE = shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"
PASSWORD = "Correct-Horse-9-battery"
EVENTS = 100_000
LIMIT = 50 * 1024 * 1024
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _add_events(database: Path, count: int) -> None:
    """*count* chained events after what is there, inserted in bulk (appending one by
    one would take minutes); every 1,000th has session ``s-7``."""
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        seq, prev = conn.execute(
            select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == HEAD_ID)
        ).one()
        rows: list[dict[str, object]] = []
        for n in range(count):
            seq += 1
            event = audit.AuditEvent(
                at=1_767_225_600.0 + n,
                actor="channel:33068212345678@sxlss",
                action="declare.query",
                subject=f"Q-{n}",
                outcome="ok",
                unit="12345678",
                session_id="s-7" if n % 1000 == 7 else f"s-{n % 97}x",
                details={"peer": "192.0.2.7:50000", "n": n},
            )
            record_hash = event_hash(seq, event, prev)
            rows.append(
                {
                    "seq": seq,
                    "at": event.at,
                    "actor": event.actor,
                    "action": event.action,
                    "subject": event.subject,
                    "outcome": event.outcome,
                    "reason": event.reason,
                    "unit": event.unit,
                    "session_id": event.session_id,
                    "details": canonical_details(event.details),
                    "prev_hash": prev,
                    "hash": record_hash,
                }
            )
            prev = record_hash
            if len(rows) == 5000:
                conn.execute(insert(audit_events), rows)
                rows = []
        if rows:
            conn.execute(insert(audit_events), rows)
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == HEAD_ID)
            .values(last_seq=seq, last_hash=prev)
        )
    engine.dispose()


class Officer:
    """A blocking HTTPS client with the console cookie, trusting only the state's CA."""

    def __init__(self, ca_file: Path, port: int) -> None:
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.port = port
        self.cookies: dict[str, str] = {}

    def _send(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        for line in response.headers.get_all("Set-Cookie") or []:
            name, _, value = line.split(";")[0].strip().partition("=")
            if value:
                self.cookies[name] = value
        return conn, response

    def get(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        conn, response = self._send("POST" if form is not None else "GET", path, form)
        try:
            return response.status, response.read().decode("utf-8")
        finally:
            conn.close()

    def download_lines(self, path: str, keep: bool) -> tuple[int, list[str]]:
        """Read a download piece by piece: (lines, the lines when *keep*) — the test
        process never holds a 100,000-row body either."""
        conn, response = self._send("GET", path)
        assert response.status == 200
        count, kept, rest = 0, [], b""
        try:
            while piece := response.read(65536):
                lines = (rest + piece).split(b"\n")
                rest = lines.pop()
                count += len(lines)
                if keep:
                    kept += [line.decode("utf-8") for line in lines]
        finally:
            conn.close()
        assert rest == b""
        return count, kept


def _memory(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1)) * 1024


def _officer(run: Run, state: Path, tmp: Path) -> pyotp.TOTP:
    password_file = tmp / "olga.password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    out = tmp / "olga-otp"
    run("staff", "add", "olga", "--role", "officer", "--password-file", str(password_file),
        "--out", str(out), state=state, check_rc=0)  # fmt: skip
    uri = (out / "otpauth.txt").read_text(encoding="utf-8").strip()
    return pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])


def test_an_export_of_100000_events_streams_within_50_mb(
    run: Run, spawn: Callable[..., Proc], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run("init", "--hostname", "localhost", state=state, check_rc=0)
    config = state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    for default in (
        'listen = "tcp:8443"',
        'listen = "tcp:8444:interface=127.0.0.1"',
        'listen = "tcp:8445:interface=127.0.0.1"',  # [ops]
    ):
        text = text.replace(default, 'listen = "tcp:0:interface=127.0.0.1"')
    config.write_text(text, encoding="utf-8")
    totp = _officer(run, state, tmp_path)
    _add_events(state / "ssgate.db", EVENTS)

    serve = spawn([SSGATE, "--state", str(state), "serve"])
    port = int(serve.wait_for(r"staff console on https://127\.0\.0\.1:(\d+)/").group(1))
    serve.wait_for(r"Ctrl-C stops")
    officer = Officer(state / "ca.pem", port)
    _, page = officer.get("/login")
    token = _CSRF.search(page)
    assert token is not None
    form = {"csrf_token": token.group(1), "name": "olga", "password": PASSWORD, "otp": totp.now()}
    status, _ = officer.get("/login", form)
    assert status == 303

    # The narrow filter first (it also warms every code path the big exports use):
    # its downloads hold exactly what its pages show.
    shown: list[str] = []
    path = "/events?session=s-7"
    while path:
        status, page = officer.get(path)
        assert status == 200
        shown += re.findall(r"<tr>\s*<td>(\d+)</td>", page)
        found = re.search(r'<a href="([^"]+)" rel="next">', page)
        path = found.group(1).replace("&amp;", "&") if found else ""
    assert len(shown) == EVENTS // 1000
    _, csv_lines = officer.download_lines("/events/export.csv?session=s-7", keep=True)
    rows = list(csv.DictReader(io.StringIO("\n".join(csv_lines).lstrip("\ufeff"))))
    assert [r["seq"] for r in rows] == shown
    _, jsonl_lines = officer.download_lines("/events/export.jsonl?session=s-7", keep=True)
    assert [str(json.loads(line)["seq"]) for line in jsonl_lines] == shown

    pid = serve.popen.pid
    before = _memory(pid, "VmRSS")
    csv_count, _ = officer.download_lines("/events/export.csv?action=declare", keep=False)
    jsonl_count, _ = officer.download_lines("/events/export.jsonl?action=declare", keep=False)
    peak = _memory(pid, "VmHWM")
    assert (csv_count, jsonl_count) == (EVENTS + 1, EVENTS)  # CSV has its header line
    assert peak - before <= LIMIT, f"peak {peak - before} bytes over the start"

    result = run("audit", "actions", "--action", "audit.export", "--format", "json",
                 state=state, check_rc=0)  # fmt: skip
    ends = [json.loads(line)["details"] for line in result.stdout.splitlines()]
    ends = [d for d in ends if d["stage"] == "end"]
    assert [(d["format"], d["rows"], d["complete"]) for d in ends][-2:] == [
        ("csv", EVENTS, True),
        ("jsonl", EVENTS, True),
    ]
