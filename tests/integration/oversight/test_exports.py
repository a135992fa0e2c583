"""The officers' exports and actions view, in memory: the real console on SQLite and
PostgreSQL with the real audit log and session registry, driven over HTTP by
:class:`ConsoleClient`.

An export holds exactly the rows its list shows with the same filters (all pages),
CSV starts with the UTF-8 byte order mark, every time carries its offset, and the
export is in the audit log (before its first byte, and again with its row count).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import gateway
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from gateway import _sessions
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z = 08:00 in Beijing
PASSWORD = "Correct-Horse-9-battery"
ACCOUNT = "33068212345678@sxlss"
OTHER = "33068287654321@sxlss"
BOM = "\ufeff"


@dataclass
class World:
    engine: Engine
    clock: MemoryReactorClock
    secrets: dict[str, str]
    site: Any

    def login(self, name: str = "olga") -> ConsoleClient:
        c = ConsoleClient(self.site, clock=self.clock)
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        assert c.login(name, PASSWORD, code).status == 303
        self.clock.advance(30)
        return c

    def session(
        self, n: int, *, at: float, account: str = ACCOUNT, peer: str = "192.0.2.7:1"
    ) -> None:
        with self.engine.begin() as conn:
            assert _sessions.start_session(
                conn,
                session_id=f"{n:032x}",
                account=account,
                unit_code=account[6:14],
                peer=peer,
                cert_serial="0A",
                node="node-a",
                now=at,
                max_concurrent=10_000,
            )

    def event(self, action: str, *, at: float = NOW, **fields: Any) -> int:
        values: dict[str, Any] = {"actor": "gateway", "subject": ACCOUNT, "outcome": "ok"}
        values.update(fields)
        with self.engine.begin() as conn:
            return audit.append(conn, audit.AuditEvent(at=at, action=action, **values)).seq

    def exports(self) -> list[audit.AuditRecord]:
        with self.engine.begin() as conn:
            return audit.query(conn, actions={"audit.export"})


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    """The console on SQLite, and again on PostgreSQL (conftest's ``engine``)."""
    for metadata in (auth.metadata, audit.metadata, certs_metadata, gateway.metadata):
        metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    with engine.begin() as conn:
        members = [("olga", "officer"), ("alice", "auditor")]
        secrets = enrol_staff(conn, members, password=PASSWORD, hasher=hasher, box=box, now=NOW)
    clock = MemoryReactorClock()
    clock.advance(NOW + 3600)
    site = console_site(
        login_form_key=bytes(range(32)),
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        workflow=None,
        clock=clock,
        secure=False,
        refusal_delay=0,
    )
    yield World(engine, clock, secrets, site)


def csv_rows(reply: Reply) -> list[dict[str, str]]:
    text = reply.body.decode("utf-8")
    assert text.startswith(BOM)  # Excel reads UTF-8 only with it
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


def jsonl_rows(reply: Reply) -> list[dict[str, Any]]:
    return [json.loads(line) for line in reply.body.decode("utf-8").splitlines()]


def all_pages(client: ConsoleClient, path: str, pattern: str) -> list[str]:
    """What a list shows over all its pages, following its 下一页 links."""
    seen: list[str] = []
    while True:
        reply = client.get(path)
        assert reply.status == 200, reply.text
        seen += re.findall(pattern, reply.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', reply.text)
        if found is None:
            return seen
        path = unescape(found.group(1))


def has_offset(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() is not None


# -- sessions ---------------------------------------------------------------------------


def test_a_session_export_holds_every_row_the_filtered_list_shows(world: World) -> None:
    for n in range(130):
        world.session(n, at=NOW + n, account=ACCOUNT if n % 3 else OTHER)
    client = world.login()
    query = "unit=12345678&since=2026-01-01T08:00"
    shown = all_pages(client, f"/sessions?{query}", r'<a href="/sessions/([0-9a-f]{32})">')
    reply = client.get(f"/sessions/export.csv?{query}")
    assert reply.status == 200
    assert reply.header("content-type") == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="sessions-\d{8}-\d{6}\.csv"',
        reply.header("content-disposition") or "",
    )
    rows = csv_rows(reply)
    assert [r["id"] for r in rows] == shown and len(shown) == 86
    assert all(has_offset(r["started_at"]) and has_offset(r["last_seen_at"]) for r in rows)
    assert rows[0]["started_at"].endswith("+08:00") and rows[0]["ended_at"] == ""
    jsonl = jsonl_rows(client.get(f"/sessions/export.jsonl?{query}"))
    assert [r["id"] for r in jsonl] == shown
    assert jsonl[0]["ended_at"] is None and isinstance(jsonl[0]["bytes_in"], int)


def test_the_live_list_exports_its_open_sessions(world: World) -> None:
    now = world.clock.seconds()
    world.session(1, at=now - 20)
    world.session(2, at=now - 10)
    with world.engine.begin() as conn:
        _sessions.end_session(
            conn, f"{1:032x}", reason="client-quit", now=now - 5, bytes_in=0, bytes_out=0
        )
    client = world.login()
    page = client.get("/sessions/live")
    assert 'href="/sessions/live/export.csv"' in page.text
    shown = re.findall(r'<a href="/sessions/([0-9a-f]{32})">', page.text)
    rows = csv_rows(client.get("/sessions/live/export.csv"))
    assert [r["id"] for r in rows] == shown == [f"{2:032x}"]


def test_an_export_is_audited_before_its_first_byte_and_with_its_row_count(world: World) -> None:
    for n in range(3):
        world.session(n, at=NOW + n)
    client = world.login()
    reply = client.get("/sessions/export.jsonl?source=192.0.2.7")
    assert len(jsonl_rows(reply)) == 3
    start, end = world.exports()
    assert (start.event.actor, start.event.subject, start.event.outcome) == (
        "staff:olga",
        "sessions",
        "ok",
    )
    assert dict(start.event.details) == {
        "view": "sessions",
        "format": "jsonl",
        "stage": "start",
        "filter_source": "192.0.2.7",
        "source": "127.0.0.1",
    }
    assert dict(end.event.details) == {
        "view": "sessions",
        "format": "jsonl",
        "stage": "end",
        "rows": 3,
        "complete": True,
    }
    assert start.event.session_id == end.event.session_id != ""  # the console session


def test_a_bad_filter_exports_nothing_and_shows_the_list_with_the_error(world: World) -> None:
    client = world.login()
    reply = client.get("/sessions/export.csv?unit=12")
    assert reply.status == 400 and "单位编号应为 8 位数字" in reply.text
    assert world.exports() == []


def test_only_officers_may_export(world: World) -> None:
    reply = world.login("alice").get("/events/export.csv")
    assert reply.status == 403
    assert world.exports() == []


# -- the actions view -------------------------------------------------------------------


def test_the_account_filter_finds_what_it_was_subject_of_and_what_it_did(world: World) -> None:
    provisioned = world.event("provision.open", actor="staff:carl", subject=ACCOUNT)
    declared = world.event("declare.submit", actor=f"channel:{ACCOUNT}", subject="D-1")
    world.event("declare.submit", actor=f"channel:{OTHER}", subject="D-2")
    client = world.login()
    seqs = all_pages(client, f"/events?account={ACCOUNT}", r"<tr>\s*<td>(\d+)</td>")
    assert [int(s) for s in seqs] == [declared, provisioned]


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("action=login", ["login.resume", "login"]),
        ("outcome=refused", ["login"]),
        ("source=198.51.100.9", ["login.resume"]),
        ("session=s-1", ["declare.submit"]),
        ("unit=87654321", ["declare.submit"]),
        ("since=2026-01-01T08:01&until=2026-01-01T08:02", ["login.resume"]),
    ],
)
def test_each_filter_of_the_actions_view_narrows_it(
    world: World, query: str, wanted: list[str]
) -> None:
    world.event("login", outcome="refused", reason="bad-password", details={"peer": "192.0.2.7:5"})
    world.event("login.resume", at=NOW + 60, details={"peer": "198.51.100.9:6"})
    world.event("declare.submit", at=NOW + 120, unit="87654321", session_id="s-1")
    reply = world.login().get(f"/events?{query}")
    assert reply.status == 200, reply.text
    actions = re.findall(r"<td>(login(?:\.resume)?|declare\.submit)</td>", reply.text)
    assert actions == wanted  # newest first


def test_the_actions_export_equals_the_view_and_leaves_out_its_own_audit_event(
    world: World,
) -> None:
    for n in range(120):
        world.event("login" if n % 2 else "declare.submit", at=NOW + n, details={"n": n})
    client = world.login()
    seqs = all_pages(client, "/events?action=login", r"<tr>\s*<td>(\d+)</td>")
    assert len(seqs) == 60  # the officer's console.login is not a login sub-action
    csv_reply = client.get("/events/export.csv?action=login")
    rows = csv_rows(csv_reply)
    assert [r["seq"] for r in rows] == seqs
    assert all(r["time"].endswith("+08:00") and has_offset(r["time"]) for r in rows)
    assert "at" not in rows[0]  # no epoch float in a view's export
    jsonl = jsonl_rows(client.get("/events/export.jsonl?action=audit"))
    assert [r["details"]["stage"] for r in jsonl] == ["end", "start"]  # the CSV's, not its own


def test_a_formula_in_a_cell_is_not_run_by_a_spreadsheet(world: World) -> None:
    world.event("login", subject="=HYPERLINK(1)")
    rows = csv_rows(world.login().get("/events/export.csv?action=login"))
    assert "'=HYPERLINK(1)" in [r["subject"] for r in rows]


@pytest.mark.parametrize("query", ["outcome=maybe", "source=1.2.3", "action=A%20B", "before=x"])
def test_a_bad_filter_of_the_actions_view_is_a_400_naming_it(world: World, query: str) -> None:
    reply = world.login().get(f"/events?{query}")
    assert reply.status == 400 and "筛选条件有误" in reply.text


# -- the logins views -------------------------------------------------------------------


def _logins(world: World, n: int) -> None:
    """*n* channel logins: every third refused, from three hosts (one an IPv6 host
    whose text begins like another's), over two accounts."""
    peers = ("192.0.2.7:40001", "2001:db8::1:50123", "2001:db8::1:5:443")
    for i in range(n):
        refused = i % 3 == 0
        world.event(
            "login",
            at=NOW + i,
            subject=ACCOUNT if i % 2 else OTHER,
            outcome="refused" if refused else "ok",
            reason="bad-password" if refused else "",
            details={"peer": peers[i % 3], "certificate": "0A"},
        )


LOGIN_SEQ = r"<td>(\d+)</td>\s*</tr>"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "source=2001:db8::1",
        "outcome=not-ok&kind=channel",
        f"account={ACCOUNT}&source=192.0.2.7",
    ],
)
def test_a_logins_export_holds_every_row_the_filtered_list_shows(world: World, query: str) -> None:
    _logins(world, 140)
    client = world.login()
    page = client.get(f"/logins?{query}")
    link = re.search(r'href="(/logins/export\.csv[^"]*)"', page.text)
    assert link is not None and parse_qs(urlsplit(unescape(link.group(1))).query) == parse_qs(query)
    shown = all_pages(client, f"/logins?{query}", LOGIN_SEQ)
    assert len(shown) > 0
    rows = csv_rows(client.get(f"/logins/export.csv?{query}"))
    assert [r["seq"] for r in rows] == shown
    assert all(r["time"].endswith("+08:00") and has_offset(r["time"]) for r in rows)
    jsonl = jsonl_rows(client.get(f"/logins/export.jsonl?{query}"))
    assert [str(r["seq"]) for r in jsonl] == shown
    if "source=2001" in query:  # the host exactly, not 2001:db8::1:5's peers
        assert {r["peer"] for r in jsonl} == {"2001:db8::1:50123"}


def test_a_logins_export_ignores_the_page_cursor_and_is_audited(world: World) -> None:
    _logins(world, 60)
    client = world.login()
    everything = all_pages(client, "/logins?kind=channel", LOGIN_SEQ)
    rows = jsonl_rows(client.get(f"/logins/export.jsonl?kind=channel&before={everything[10]}"))
    assert [str(r["seq"]) for r in rows] == everything  # every page, not from the cursor
    start, end = world.exports()
    assert dict(start.event.details) == {
        "view": "logins",
        "format": "jsonl",
        "stage": "start",
        "filter_kind": "channel",
        "source": "127.0.0.1",
    }
    assert end.event.details["rows"] == 60 and end.event.details["complete"] is True


def test_a_bad_logins_filter_exports_nothing(world: World) -> None:
    reply = world.login().get("/logins/export.csv?source=2001:db8::1:50123:1")
    assert reply.status == 400 and "来源地址" in reply.text
    assert world.exports() == []


def test_the_failures_export_holds_both_tables_of_the_page(world: World) -> None:
    _logins(world, 90)
    client = world.login()
    span = "since=2026-01-01T07:00:00&until=2026-01-01T10:00:00"
    page = client.get(f"/logins/failures?{span}")
    assert page.status == 200
    link = re.search(r'href="(/logins/failures/export\.csv\?[^"]+)"', page.text)
    assert link is not None and "since=" in link.group(1)
    tables = {
        name: re.findall(r'<td><a href="[^"]+">([^<]+)</a></td>\s*<td>(\d+)</td>', table)
        for name, table in re.findall(
            r'<table class="list" id="by-(account|source)">(.*?)</table>', page.text, re.S
        )
    }
    rows = csv_rows(client.get(unescape(link.group(1))))
    for grouping in ("account", "source"):
        exported = [(r["key"], r["attempts"]) for r in rows if r["grouping"] == grouping]
        assert exported == tables[grouping] and exported
    assert all(has_offset(r["first_at"]) and has_offset(r["last_at"]) for r in rows)
    jsonl = jsonl_rows(client.get(f"/logins/failures/export.jsonl?{span}"))
    assert sum(r["attempts"] for r in jsonl if r["grouping"] == "account") == 30
    views = [(r.event.subject, r.event.details["stage"]) for r in world.exports()]
    assert views == [("logins-failures", "start"), ("logins-failures", "end")] * 2


# -- alerts -----------------------------------------------------------------------------


def test_the_alerts_export_holds_every_alert_the_filtered_list_shows(world: World) -> None:
    from sqlalchemy import insert

    from audit._schema import alerts

    with world.engine.begin() as conn:
        for n in range(1, 121):
            conn.execute(
                insert(alerts).values(
                    rule="spraying" if n % 2 else "brute-force",
                    severity="high",
                    dedupe_key=f"k:{n}",
                    summary=f"alert {n}",
                    account="",
                    source="192.0.2.7",
                    unit="",
                    first_seen=NOW + n,
                    last_seen=NOW + n,
                    occurrences=1,
                    evidence='{"seqs":[1,2]}',
                    state="new",
                    created_at=NOW + n,
                )
            )
    client = world.login()
    shown = all_pages(client, "/alerts?rule=spraying", r'<a href="/alerts/(\d+)">')
    assert len(shown) == 60
    rows = csv_rows(client.get("/alerts/export.csv?rule=spraying"))
    assert [r["id"] for r in rows] == shown
    assert json.loads(rows[0]["evidence"])["seqs"] == [1, 2]
    assert has_offset(rows[0]["first_seen"]) and rows[0]["changed_at"] == ""
    jsonl = jsonl_rows(client.get("/alerts/export.jsonl?rule=spraying"))
    assert [str(r["id"]) for r in jsonl] == shown
