"""The officers' session pages, in memory: the real console (staff login, roles, CSRF,
audit log) on SQLite with the real gateway session registry behind
``gateway.SessionRegistryView``, driven over HTTP by :class:`ConsoleClient`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

import audit
import gateway
from gateway import _sessions
from ssgate._console.testing import Reply
from tests.unit.oversight.conftest import ConsoleWorld, staffed
from web._time import parse_local, shown

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z = 08:00 in Beijing
PASSWORD = "Correct-Horse-9-battery"
ACCOUNT = "33068212345678@sxlss"
OTHER = "33068287654321@sxlss"


class World(ConsoleWorld):
    def session(
        self,
        sid: str,
        *,
        at: float,
        account: str = ACCOUNT,
        unit: str = "12345678",
        peer: str = "192.0.2.7:50123",
        node: str = "node-a",
        ended: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            assert _sessions.start_session(
                conn,
                session_id=sid,
                account=account,
                unit_code=unit,
                peer=peer,
                cert_serial="0A1B",
                node=node,
                now=at,
                max_concurrent=10_000,
            )
            if ended is not None:
                _sessions.end_session(conn, sid, reason=ended, now=at + 60, bytes_in=5, bytes_out=7)

    def event(self, action: str, *, at: float, **fields: Any) -> None:
        values: dict[str, Any] = {
            "actor": f"channel:{ACCOUNT}",
            "subject": ACCOUNT,
            "outcome": "ok",
        }
        values.update(fields)
        with self.engine.begin() as conn:
            audit.append(conn, audit.AuditEvent(at=at, action=action, **values))

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions={action})]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    members = [("olga", "officer"), ("alice", "auditor"), ("carl", "carrier")]
    with staffed(tmp_path / "officer.db", members, now=NOW) as db:
        site = db.site()
        yield World(db.engine, db.clock, db.secrets, site)


def session_ids(reply: Reply) -> list[str]:
    """The sessions a list page links to, in page order."""
    return re.findall(r'<a href="/sessions/([0-9a-z]+)">时间线</a>', reply.text)


def sid(n: int) -> str:
    return f"{n:032x}"


# -- the list ------------------------------------------------------------------------------


def test_the_list_shows_sessions_newest_first_with_their_facts(world: World) -> None:
    world.session(sid(1), at=NOW, ended="officer-kill")
    world.session(sid(2), at=NOW + 10)
    reply = world.login("olga").get("/sessions")
    assert reply.status == 200, reply.text
    assert session_ids(reply) == [sid(2), sid(1)]
    text = reply.text
    assert "2026-01-01 08:00:00 +08:00" in text  # Beijing time, with its offset
    assert "安全员终止" in text and "在线" in text and "192.0.2.7:50123" in text
    assert "<script" not in text and "style=" not in text


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("unit=87654321", [3]),
        (f"account={OTHER}", [3]),
        ("source=198.51.100.9", [2]),
        ("node=node-b", [2]),
        ("reason=idle-timeout", [1]),
        ("since=2026-01-01T08:00&until=2026-01-01T08:01", [1]),
        ("unit=12345678&source=192.0.2.7", [1]),
    ],
)
def test_each_filter_narrows_the_list(world: World, query: str, wanted: list[int]) -> None:
    world.session(sid(1), at=NOW, ended="idle-timeout")
    world.session(sid(2), at=NOW + 120, peer="198.51.100.9:4000", node="node-b")
    world.session(sid(3), at=NOW + 240, account=OTHER, unit="87654321", peer="192.0.2.70:1")
    reply = world.login("olga").get(f"/sessions?{query}")
    assert reply.status == 200, reply.text
    assert session_ids(reply) == [sid(n) for n in wanted]


def test_the_source_filter_matches_the_address_not_a_longer_one(world: World) -> None:
    world.session(sid(1), at=NOW, peer="192.0.2.7:1")
    world.session(sid(2), at=NOW + 1, peer="192.0.2.70:1")
    assert session_ids(world.login("olga").get("/sessions?source=192.0.2.7")) == [sid(1)]


def test_pages_follow_by_keyset_without_gaps_or_repeats(world: World) -> None:
    for n in range(120):
        # pairs share a start time: the id breaks the tie, so none is lost between pages
        world.session(sid(n), at=NOW + n // 2)
    client = world.login("olga")
    seen: list[str] = []
    path = "/sessions?unit=12345678"
    for _ in range(5):
        reply = client.get(path)
        assert reply.status == 200
        seen += session_ids(reply)
        found = re.search(r'<a href="([^"]+)" rel="next">', reply.text)
        if found is None:
            break
        path = unescape(found.group(1))
        assert "unit=12345678" in path and "before=" in path  # the filters are kept
    assert len(seen) == 120 and len(set(seen)) == 120
    assert seen == sorted(seen, key=lambda s: (int(s, 16) // 2, int(s, 16)), reverse=True)


@pytest.mark.parametrize(
    "query",
    [
        "unit=1234",
        "account=a%20b",
        "source=999.1.1.1",
        "since=yesterday",
        "since=2026-01-02T08:00&until=2026-01-01T08:00",
        "reason=made-up",
        "before=not-a-cursor",
        "node=a%20b",
    ],
)
def test_a_bad_filter_is_a_400_page_naming_it_never_a_500(world: World, query: str) -> None:
    world.session(sid(1), at=NOW)
    reply = world.login("olga").get(f"/sessions?{query}")
    assert reply.status == 400, reply.text
    assert "筛选条件有误" in reply.text and session_ids(reply) == []


def test_beijing_time_in_and_out() -> None:
    assert parse_local("2026-01-01T08:00") == NOW
    assert parse_local("2026-01-01 08:00:30") == NOW + 30
    assert shown(NOW, seconds=True, offset=True) == "2026-01-01 08:00:00 +08:00"
    for bad in ("2026-01-01T08:00+00:00", "2026-01-01", "08:00"):
        with pytest.raises(ValueError):
            parse_local(bad)


def test_other_roles_are_refused_admin_is_not(world: World) -> None:
    world.session(sid(1), at=NOW)
    for name in ("alice", "carl"):
        client = world.login(name)
        for path in ("/sessions", "/sessions/live", f"/sessions/{sid(1)}"):
            assert client.get(path).status == 403, (name, path)
        assert "会话审计" not in client.get("/").text  # not in their navigation
    assert "会话审计" in world.login("olga").get("/").text


# -- the timeline --------------------------------------------------------------------------


def test_the_timeline_has_logins_actions_and_the_end_of_that_session_only(world: World) -> None:
    s = sid(7)
    peer = "192.0.2.7:50123"
    world.event("login", at=NOW - 30, outcome="refused", reason="bad-otp", details={"peer": peer})
    world.event(
        "login",
        at=NOW - 20,
        outcome="refused",
        reason="bad-password",
        details={"peer": "203.0.113.1:9"},
    )  # another connection
    world.session(s, at=NOW, peer=peer)
    world.event("login", at=NOW, session_id=s, unit="12345678", details={"peer": peer})
    world.event("declare.submit", at=NOW + 5, session_id=s, subject="d0001", unit="12345678")
    world.event("declare.query.contributions", at=NOW + 6, session_id=s, subject="12345678")
    world.event("declare.password-change", at=NOW + 7, session_id=s)
    world.event("declare.submit", at=NOW + 8, session_id=sid(8), subject="d-other")
    world.event(
        "stream.refused",
        at=NOW + 9,
        session_id=s,
        outcome="refused",
        reason="service-denied",
        details={"service": "admin"},
    )
    with world.engine.begin() as conn:
        _sessions.end_session(
            conn,
            s,
            reason="idle-timeout",
            now=NOW + 900,
            bytes_in=10,
            bytes_out=20,
            streams_opened=3,
        )
    reply = world.login("olga").get(f"/sessions/{s}")
    assert reply.status == 200, reply.text
    rows = re.findall(r'<tr class="event outcome-(\w+)">(.*?)</tr>', reply.text, re.S)
    steps = [re.sub(r"<[^>]+>|\s+", " ", body).split()[3] for _, body in rows]
    assert steps == [
        "登录",
        "登录",
        "提交申报",
        "查询（contributions）",
        "修改密码",
        "拒绝数据流",
        "会话结束（会话记录）",
    ]
    assert [o for o, _ in rows][:2] == ["refused", "ok"]
    assert "动态口令错误" in reply.text and "bad-otp" in reply.text
    assert "d-other" not in reply.text and "bad-password" not in reply.text
    assert "空闲超时（idle-timeout）" in reply.text  # gateway.REASON_WORDS, with the code
    assert "无权使用该服务" in reply.text
    assert re.search(r"打开的数据流</th><td>3<", reply.text)


def test_an_unknown_session_is_a_404_page(world: World) -> None:
    client = world.login("olga")
    for path in (f"/sessions/{sid(99)}", f"/sessions/{sid(99)}/terminate"):
        reply = client.get(path)
        assert reply.status == 404 and "会话不存在" in reply.text
    assert client.get("/sessions/a%2Fb").status in (400, 404)


# -- live sessions and terminating one ---------------------------------------------------------


def test_the_live_page_lists_open_sessions_with_a_terminate_link(world: World) -> None:
    now = world.clock.seconds()
    world.session(sid(1), at=now, ended="client-quit")
    world.session(sid(2), at=now + 1)
    world.session(sid(3), at=now - 600)  # its node stopped reporting: not live
    reply = world.login("olga").get("/sessions/live?unit=12345678")
    assert reply.status == 200
    assert session_ids(reply) == [sid(2)]
    assert f'href="/sessions/{sid(2)}/terminate"' in reply.text


def test_terminate_needs_a_reason_then_asks_the_node_and_audits_who_and_why(
    world: World,
) -> None:
    s = sid(5)
    world.session(s, at=NOW)
    client = world.login("olga")
    form = client.get(f"/sessions/{s}/terminate")
    assert form.status == 200 and 'name="reason"' in form.text and "required" in form.text
    empty = client.post(f"/sessions/{s}/terminate", {"csrf_token": form.csrf_token()})
    assert empty.status == 400 and "请填写终止原因" in empty.text
    with world.engine.begin() as conn:
        assert _sessions.get_session(conn, s).kill_requested_at is None  # type: ignore[union-attr]

    done = client.post(
        f"/sessions/{s}/terminate", {"csrf_token": form.csrf_token(), "reason": "工单 42：异常访问"}
    )
    assert (done.status, done.location) == (303, f"/sessions/{s}?done=kill")
    with world.engine.begin() as conn:
        record = _sessions.get_session(conn, s)
        # what the node holding the session polls for every second
        assert _sessions.sessions_to_end(conn, [s]) == {s: "officer-kill"}
    assert record is not None and record.kill_actor == "staff:olga"
    assert record.kill_note == "工单 42：异常访问" and record.kill_reason == "officer-kill"
    [event] = world.events("session.kill")
    assert (event.actor, event.subject, event.outcome, event.session_id, event.unit) == (
        "staff:olga",
        s,
        "ok",
        s,
        "12345678",
    )
    assert event.details["note"] == "工单 42：异常访问"
    page = client.get(done.location)
    assert "已发出终止指令" in page.text and "安全员终止会话" in page.text
    assert 'id="terminate"' not in page.text  # no second kill offered

    again = client.post(
        f"/sessions/{s}/terminate", {"csrf_token": form.csrf_token(), "reason": "x"}
    )
    assert again.status == 409 and "已结束或已在终止中" in again.text
    assert [e.outcome for e in world.events("session.kill")] == ["ok", "refused"]


def test_terminate_without_the_csrf_token_does_nothing(world: World) -> None:
    world.session(sid(5), at=NOW)
    client = world.login("olga")
    reply = client.post(f"/sessions/{sid(5)}/terminate", {"reason": "x"})
    assert reply.status == 403
    assert world.events("session.kill") == []


def test_a_long_or_control_character_reason_is_refused(world: World) -> None:
    world.session(sid(5), at=NOW)
    client = world.login("olga")
    token = client.get(f"/sessions/{sid(5)}/terminate").csrf_token()
    for note, message in (("x" * 501, "不能超过 500 字"), ("a\x07b", "控制字符")):
        reply = client.post(f"/sessions/{sid(5)}/terminate", {"csrf_token": token, "reason": note})
        assert reply.status == 400 and message in reply.text
    assert world.events("session.kill") == []


def test_the_command_line_and_the_page_kill_through_the_same_function(world: World) -> None:
    """``ssgate audit kill`` calls ``gateway.kill_session``; so does the page (through
    ``SessionRegistryView.kill``): one request, one event, same shape."""
    world.session(sid(1), at=NOW)
    with world.engine.begin() as conn:
        record = gateway.kill_session(conn, sid(1), note="n", actor="os:root", now=NOW + 5)
        assert record is not None and record.kill_actor == "os:root"
        assert gateway.kill_session(conn, sid(1), note="n", actor="os:root", now=NOW + 6) is None
    assert [(e.action, e.outcome, e.reason) for e in world.events("session.kill")] == [
        ("session.kill", "ok", ""),
        ("session.kill", "refused", "not-live"),
    ]


def test_the_timeline_page_shows_the_tls_handshake_factors_and_each_stream(world: World) -> None:
    s = sid(11)
    peer = "192.0.2.7:50123"
    tls = {
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS_AES_128_GCM_SHA256",
        "certificate": "0a1b",
        "certificate_subject": f"CN={ACCOUNT}",
    }
    factors = {"factor_certificate": "ok", "factor_password": "ok", "factor_code": "ok"}
    world.session(s, at=NOW, peer=peer)
    world.event("login", at=NOW, session_id=s, details={"peer": peer, **tls, **factors})
    world.event(
        "stream.end",
        at=NOW + 4,
        session_id=s,
        reason="finished",
        details={
            "peer": peer,
            "stream": 1,
            "service": "declare",
            "bytes_in": 812,
            "bytes_out": 40960,
            "duration_ms": 1500,
        },
    )
    reply = world.login("olga").get(f"/sessions/{s}")
    assert reply.status == 200, reply.text
    text = unescape(reply.text)
    tls_table = re.search(r'<table class="list" id="tls">(.*?)</table>', text, re.S)
    assert tls_table is not None
    assert "TLSv1.3" in tls_table[1] and "TLS_AES_128_GCM_SHA256" in tls_table[1]
    assert f"CN={ACCOUNT}" in tls_table[1]
    [row] = re.findall(r'<tr class="stream">(.*?)</tr>', text, re.S)
    cells = [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert cells[1:] == [
        ["1"],
        ["declare"],
        ["812"],
        ["40960"],
        ["1.5", "秒"],
        ["正常结束", "finished"],
    ]
    assert "证书：通过 · 密码：通过 · 动态口令：通过" in text
    assert "declare · 上行 812 B · 下行 40.0 KiB · 1.5 秒 · 正常结束" in text
