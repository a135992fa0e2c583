"""The officers' alert pages, in memory: the real console (staff login, roles, CSRF,
audit log) on SQLite, alerts raised by the real evaluator from real audit records,
driven over HTTP by :class:`ConsoleClient`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

import audit
from ssgate._console.testing import Reply
from tests.unit.oversight.conftest import ConsoleWorld, staffed

NOW = 1_767_225_600.0  # 2026-01-01 08:00 in Beijing
PASSWORD = "Correct-Horse-9-battery"
ACCOUNTS = ("33068212345678@sxlss", "33068287654321@sxlss", "33068211112222@sxlss")


class World(ConsoleWorld):
    def attack(
        self, host: str = "198.51.100.4", *, at: float = NOW, accounts: tuple[str, ...] = ACCOUNTS
    ) -> None:
        """30 wrong logins over three accounts from *host*, then an evaluation."""
        with self.engine.begin() as conn:
            for i in range(30):
                account = accounts[i % 3]
                audit.append(
                    conn,
                    audit.AuditEvent(
                        at=at + i,
                        actor=f"channel:{account}",
                        action="login",
                        subject=account,
                        outcome="refused",
                        reason="bad-password",
                        session_id=f"{i:032x}",
                        details={"peer": f"{host}:{40000 + i}"},
                    ),
                )
        with self.engine.begin() as conn:
            audit.evaluate_alerts(conn, audit.AlertThresholds(), now=at + 60)

    def alerts(self) -> list[audit.AlertRow]:
        with self.engine.begin() as conn:
            return audit.list_alerts(conn, limit=1000)

    def events(self, *actions: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions=set(actions))]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    members = [("olga", "officer"), ("adam", "admin"), ("alice", "auditor"), ("carl", "carrier")]
    with staffed(tmp_path / "alerts.db", members, now=NOW) as db:
        site = db.site()
        yield World(db.engine, db.clock, db.secrets, site)


def alert_ids(reply: Reply) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/alerts/([0-9]+)">详情</a>', reply.text)]


def test_the_list_shows_alerts_newest_first_with_severity_rule_and_state(world: World) -> None:
    world.attack()
    reply = world.login("olga").get("/alerts")
    assert reply.status == 200, reply.text
    stored = world.alerts()
    assert alert_ids(reply) == [a.id for a in stored] and len(stored) == 4
    text = unescape(reply.text)
    assert "密码喷洒：同一来源尝试多个账号" in text and "暴力破解" in text
    assert "高" in text and "新告警" in text and "2026-01-01 08:00:29 +08:00" in text
    assert '<a href="/alerts" aria-current' in reply.text or 'href="/alerts"' in reply.text  # nav
    assert "<script" not in reply.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?rule=spraying", {"spraying"}),
        ("?rule=brute-force&severity=high&state=new", {"brute-force"}),
    ],
)
def test_the_list_filters_by_rule_severity_and_state(
    world: World, query: str, expected: set[str]
) -> None:
    world.attack()
    reply = world.login("olga").get("/alerts" + query)
    rules = {a.rule for a in world.alerts() if a.id in alert_ids(reply)}
    assert reply.status == 200 and rules == expected
    assert world.login("olga").get("/alerts?state=closed").text.count("详情") == 0


@pytest.mark.parametrize(
    "query", ["?state=open", "?severity=urgent", "?rule=x", "?before=abc", "?before=0"]
)
def test_a_bad_filter_is_a_400_page_naming_it_not_an_error(world: World, query: str) -> None:
    world.attack()
    reply = world.login("olga").get("/alerts" + query)
    assert reply.status == 400
    assert "筛选条件有误" in reply.text and alert_ids(reply) == []


def test_pages_of_fifty_by_keyset(world: World) -> None:
    for n in range(14):  # 4 alerts per attack on its own accounts: 56 alerts
        accounts = tuple(f"330682{n:04d}{k:04d}@sxlss" for k in range(3))
        world.attack(host=f"192.0.2.{n + 1}", at=NOW + n * 10_000, accounts=accounts)
    client = world.login("olga")
    first = client.get("/alerts")
    assert len(alert_ids(first)) == 50
    link = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert link is not None
    second = client.get(unescape(link.group(1)))
    assert len(alert_ids(second)) == 6
    assert set(alert_ids(first)).isdisjoint(alert_ids(second))
    assert 'rel="next"' not in second.text


def test_the_detail_links_its_evidence_to_sessions_and_logins(world: World) -> None:
    world.attack()
    spray = next(a for a in world.alerts() if a.rule == "spraying")
    reply = world.login("olga").get(f"/alerts/{spray.id}")
    assert reply.status == 200, reply.text
    page = unescape(reply.text)
    assert "/sessions?source=198.51.100.4" in page and "/logins?source=198.51.100.4" in page
    for account in ACCOUNTS:
        assert f"/sessions?account={account.replace('@', '%40')}" in page
        assert f"/logins?account={account.replace('@', '%40')}" in page
    assert f"/sessions/{0:032x}" in page  # a session id of the evidence
    assert "审计日志序号" in page and "确认告警" in page and "关闭告警" in page


@pytest.mark.parametrize("path", ["/alerts/999", "/alerts/abc", "/alerts/0", "/alerts/999/close"])
def test_an_unknown_or_malformed_id_is_a_404_page(world: World, path: str) -> None:
    reply = world.login("olga").get(path)
    assert reply.status == 404 and "没有该编号的告警" in reply.text


def test_acknowledge_then_close_with_notes_are_audited_with_the_officer(world: World) -> None:
    world.attack()
    alert = world.alerts()[0]
    client = world.login("olga")
    form = client.get(f"/alerts/{alert.id}/acknowledge")
    assert form.status == 200 and 'name="note"' in form.text
    done = client.post(
        f"/alerts/{alert.id}/acknowledge",
        {"csrf_token": form.csrf_token(), "note": "已电话联系单位"},
    )
    assert (done.status, done.location) == (303, f"/alerts/{alert.id}?done=acknowledge")
    assert "已确认该告警" in client.get(done.location or "").text
    form = client.get(f"/alerts/{alert.id}/close")
    done = client.post(
        f"/alerts/{alert.id}/close",
        {"csrf_token": form.csrf_token(), "note": "误报：单位换了办公网络"},
    )
    assert done.status == 303
    closed = next(a for a in world.alerts() if a.id == alert.id)
    assert (closed.state, closed.note, closed.changed_by) == (
        "closed",
        "误报：单位换了办公网络",
        "staff:olga",
    )
    events = world.events("alert.acknowledge", "alert.close")
    assert [(e.action, e.actor, e.outcome, e.details["note"]) for e in events] == [
        ("alert.acknowledge", "staff:olga", "ok", "已电话联系单位"),
        ("alert.close", "staff:olga", "ok", "误报：单位换了办公网络"),
    ]
    assert all(e.session_id for e in events)  # the console session that did it


def test_a_note_is_required_and_a_second_close_is_refused_and_audited(world: World) -> None:
    world.attack()
    alert = world.alerts()[0]
    client = world.login("olga")
    token = client.get(f"/alerts/{alert.id}/close").csrf_token()
    empty = client.post(f"/alerts/{alert.id}/close", {"csrf_token": token, "note": "  "})
    assert empty.status == 400 and "请填写处理说明" in empty.text
    assert world.alerts()[0].state == "new"
    assert (
        client.post(f"/alerts/{alert.id}/close", {"csrf_token": token, "note": "处理完毕"}).status
        == 303
    )
    again = client.post(f"/alerts/{alert.id}/close", {"csrf_token": token, "note": "再关一次"})
    assert again.status == 409 and "该告警已关闭" in again.text
    ack = client.get(f"/alerts/{alert.id}/acknowledge")
    assert ack.status == 409 and 'name="note"' not in ack.text
    refused = [e for e in world.events("alert.close") if e.outcome == "refused"]
    assert [e.reason for e in refused] == ["already-closed"]


def test_a_post_without_the_csrf_token_changes_nothing(world: World) -> None:
    world.attack()
    alert = world.alerts()[0]
    reply = world.login("olga").post(f"/alerts/{alert.id}/close", {"note": "x"})
    assert reply.status == 403 and world.alerts()[0].state == "new"


@pytest.mark.parametrize("name", ["alice", "carl"])
def test_other_roles_are_refused_and_the_refusal_is_audited(world: World, name: str) -> None:
    world.attack()
    client = world.login(name)
    assert client.get("/alerts").status == 403
    assert "安全告警" not in client.get("/").text  # no nav entry either
    [refusal] = world.events("console.forbidden")
    assert refusal.actor == f"staff:{name}" and refusal.reason == "role"


def test_admin_sees_the_alerts_and_the_nav_entry(world: World) -> None:
    world.attack()
    client = world.login("adam")
    assert client.get("/alerts").status == 200
    assert 'href="/alerts"' in client.get("/").text
