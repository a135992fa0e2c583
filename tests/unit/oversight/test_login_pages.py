"""The officers' login pages, in memory: the real console (staff login, roles, CSRF,
audit log) on SQLite with the real carriers' workflow behind the unlock, driven over
HTTP by :class:`ConsoleClient`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

import audit
import auth
import oversight
from auth._store import record_source_failure, reserve_attempt
from provisioning.testing import MemoryUnits, RecordingSessions, make_provisioner
from ssgate._console.testing import Reply
from tests.unit.oversight.conftest import ConsoleWorld, staffed

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z = 08:00 in Beijing
PASSWORD = "Correct-Horse-9-battery"
ACCOUNT = "33068212345678@sxlss"
OTHER = "33068287654321@sxlss"
POLICY = auth.LockoutPolicy()


class World(ConsoleWorld):
    def attempt(
        self, at: float, account: str, peer: str, *, outcome: str = "refused", reason: str = ""
    ) -> None:
        with self.engine.begin() as conn:
            audit.append(
                conn,
                audit.AuditEvent(
                    at=at,
                    actor=f"channel:{account}",
                    action="login",
                    subject=account,
                    outcome=outcome,
                    reason=reason or ("" if outcome == "ok" else "bad-password"),
                    details={"peer": peer, "certificate": "0A"},
                ),
            )

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions={action})]

    def lock(self, account: str, *, hard: bool = False) -> None:
        with self.engine.begin() as conn:
            for _ in range(POLICY.threshold):
                assert reserve_attempt(conn, account, policy=POLICY, now=self.clock.seconds())
            if hard:
                conn.execute(
                    text("UPDATE credentials SET hard_locked = 1 WHERE principal = :p"),
                    {"p": account},
                )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    members = [("olga", "officer"), ("alice", "auditor"), ("adam", "admin")]
    with staffed(tmp_path / "logins.db", members, now=NOW) as db:
        provisioner = make_provisioner(
            db.engine,
            clock=db.clock.seconds,
            units=MemoryUnits(
                {"12345678": ("approved", "330682"), "87654321": ("approved", "330682")}
            ),
            sessions=RecordingSessions(),
            hasher=db.hasher,
            box=db.box,
        )
        provisioner.open(ACCOUNT)
        provisioner.open(OTHER)
        site = db.site(policy=POLICY, provisioner=provisioner)
        yield World(db.engine, db.clock, db.secrets, site)


def table_rows(reply: Reply, table_id: str) -> list[list[str]]:
    """The cells of table *table_id*'s body, as text."""
    match = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', reply.text, re.S)
    assert match is not None, f"no table {table_id}"
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S)
    ]


def sprayed(world: World) -> None:
    """A sprayer at 192.0.2.7 tries both accounts; one IPv6 host fails on A's OTP;
    A logs in from 198.51.100.1."""
    for i in range(6):
        world.attempt(NOW + i, (ACCOUNT, OTHER)[i % 2], f"192.0.2.7:{50000 + i}")
    world.attempt(NOW + 10, ACCOUNT, "2001:db8::1:443", reason="bad-otp")
    world.attempt(NOW + 20, ACCOUNT, "198.51.100.1:1000", outcome="ok")


# -- the list ------------------------------------------------------------------------------


def test_the_list_shows_every_attempt_with_its_reason_in_chinese_and_its_code(world: World) -> None:
    sprayed(world)
    page = world.login("olga").get("/logins?kind=channel")
    assert page.status == 200
    rows = table_rows(page, "logins")
    assert len(rows) == 8
    newest, v6 = rows[0], rows[1]
    assert newest[:5] == [
        "2026-01-01 08:00:20 +08:00",
        "专网登录",
        ACCOUNT,
        "198.51.100.1:1000",
        "成功",
    ]
    assert v6[3:6] == ["2001:db8::1:443", "拒绝", "动态口令错误（bad-otp）"]


def test_filters_by_source_account_outcome_reason_and_beijing_time(world: World) -> None:
    sprayed(world)
    c = world.login("olga")
    assert len(table_rows(c.get("/logins?source=192.0.2.7"), "logins")) == 6
    by_account = table_rows(c.get(f"/logins?account={ACCOUNT}&outcome=not-ok"), "logins")
    assert [r[3] for r in by_account] == [
        "2001:db8::1:443",
        "192.0.2.7:50004",
        "192.0.2.7:50002",
        "192.0.2.7:50000",
    ]
    assert len(table_rows(c.get("/logins?reason=bad-otp"), "logins")) == 1
    window = c.get(
        "/logins?"
        + urlencode(
            {"since": "2026-01-01T08:00:02", "until": "2026-01-01 08:00:04", "kind": "channel"}
        )
    )
    assert [r[0] for r in table_rows(window, "logins")] == [
        "2026-01-01 08:00:03 +08:00",
        "2026-01-01 08:00:02 +08:00",
    ]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("source=192.0.2.7:50000", "source", "来源地址应为 IPv4 或 IPv6 地址（不含端口）"),
        ("since=yesterday", "since", "时间格式应为 2026-01-01T08:00（北京时间）"),
        ("since=2026-01-02T00:00&until=2026-01-01T00:00", "until", "结束时间应晚于开始时间"),
        ("outcome=maybe", "outcome", "请从列表中选择结果"),
        ("kind=ldap", "kind", "请从列表中选择登录类型"),
        ("account=%27%3B--", "account", "账号格式不正确"),
        ("reason=%3Cscript%3E", "reason", "原因代码格式不正确"),
        ("before=0", "before", "翻页位置无效，请从第一页开始"),
        ("before=99999999999999999999", "before", "翻页位置无效，请从第一页开始"),
    ],
)
def test_bad_filters_are_a_chinese_field_error_not_a_500(
    world: World, query: str, field: str, message: str
) -> None:
    page = world.login("olga").get(f"/logins?{query}")
    assert page.status == 400
    assert f'<li id="error-{field}">{message}</li>' in page.text
    assert "<script>" not in page.text


def test_pages_follow_seq_newest_first_without_gaps_or_repeats(world: World) -> None:
    for i in range(120):
        world.attempt(NOW + i, ACCOUNT, f"192.0.2.{i % 5}:1000")
    c = world.login("olga")
    seen: list[str] = []
    path = "/logins?kind=channel&source=192.0.2.3"
    pages = 0
    while path:
        page = c.get(unescape(path))
        assert page.status == 200
        seen += [r[-1] for r in table_rows(page, "logins")]
        pages += 1
        match = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        path = match.group(1) if match else ""
        if pages > 1:
            assert "第一页（最新）" in page.text
    assert pages == 1  # 24 rows from that host: one page
    assert len(seen) == 24 and seen == sorted(seen, key=int, reverse=True)
    all_seqs: list[int] = []
    path = "/logins?kind=channel"
    while path:
        page = c.get(unescape(path))
        all_seqs += [int(r[-1]) for r in table_rows(page, "logins")]
        match = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        path = match.group(1) if match else ""
    with world.engine.begin() as conn:
        logins = audit.query(conn, actions={"login"}, newest_first=True)
    assert all_seqs == [r.seq for r in logins] and len(all_seqs) == 120


# -- failures ------------------------------------------------------------------------------


def test_failures_are_grouped_by_account_and_by_source_with_links_to_the_list(
    world: World,
) -> None:
    sprayed(world)
    c = world.login("olga")
    page = c.get("/logins/failures?kind=channel")
    assert page.status == 200
    by_source = table_rows(page, "by-source")
    assert by_source[0][:3] == ["192.0.2.7", "6", "2"]
    assert by_source[1][:3] == ["2001:db8::1", "1", "1"]
    by_account = table_rows(page, "by-account")
    assert [r[:3] for r in by_account] == [[ACCOUNT, "4", "2"], [OTHER, "3", "1"]]
    link = re.search(r'<a href="(/logins\?[^"]*source=192.0.2.7[^"]*)">', page.text)
    assert link is not None
    listed = c.get(unescape(link.group(1)))
    assert len(table_rows(listed, "logins")) == 6  # the same attempts the group counted


def test_failures_default_to_the_last_24_hours(world: World) -> None:
    world.attempt(NOW - 86_400, ACCOUNT, "192.0.2.9:1")  # 25 h before the clock
    world.attempt(NOW + 100, ACCOUNT, "192.0.2.8:1")
    page = world.login("olga").get("/logins/failures")
    assert [r[0] for r in table_rows(page, "by-source")] == ["192.0.2.8"]


def test_a_bad_failures_range_is_a_field_error(world: World) -> None:
    page = world.login("olga").get("/logins/failures?since=2026-13-01T00:00")
    assert page.status == 400
    assert "时间格式应为" in page.text


# -- locked accounts and the unlock --------------------------------------------------------


def test_locked_shows_the_cause_since_and_until_and_throttled_sources(world: World) -> None:
    world.lock(ACCOUNT)
    world.lock(OTHER, hard=True)
    with world.engine.begin() as conn:
        for _ in range(POLICY.source_max_failures):
            record_source_failure(
                conn,
                "192.0.2.7",
                now=world.clock.seconds(),
                window_seconds=POLICY.source_window_seconds,
            )
    page = world.login("olga").get("/logins/locked")
    rows = {r[0]: r for r in table_rows(page, "locked-accounts")}
    assert rows[ACCOUNT][1] == "连续失败达到阈值（threshold），第 1 次锁定"
    assert rows[ACCOUNT][2] == "2026-01-01 09:00:00 +08:00"
    assert rows[ACCOUNT][3] == "2026-01-01 09:01:00 +08:00"  # base lock: 60 s
    assert rows[OTHER][1].startswith("失败次数达到上限（hard-cap）")
    assert rows[OTHER][3] == "须人工解除"
    sources = table_rows(page, "throttled-sources")
    assert sources == [
        ["192.0.2.7", "30", "2026-01-01 09:00:00 +08:00", "2026-01-01 09:15:00 +08:00"]
    ]


def test_unlock_needs_a_reason_then_runs_the_carriers_workflow_audited_with_the_staff_name(
    world: World,
) -> None:
    world.lock(ACCOUNT, hard=True)
    c = world.login("olga")
    path = f"/logins/locked/{ACCOUNT}/unlock"
    form = c.get(path)
    assert form.status == 200 and "确认解除锁定" in form.text
    empty = c.submit(path, path, {"reason": ""})
    assert empty.status == 400 and "请填写解除锁定的原因" in empty.text
    with world.engine.begin() as conn:
        still = auth.get_credential_state(conn, ACCOUNT)
    assert still is not None and still.hard_locked
    done = c.submit(path, path, {"reason": "单位来电核实为本人输错密码"})
    assert (done.status, done.location) == (303, "/logins/locked?done=unlock")
    with world.engine.begin() as conn:
        state = auth.get_credential_state(conn, ACCOUNT)
    assert state is not None and not state.hard_locked and state.consecutive_failures == 0
    [event] = world.events("provision.unlock")
    assert (event.actor, event.subject, event.outcome) == ("staff:olga", ACCOUNT, "ok")
    assert event.reason == "单位来电核实为本人输错密码"
    again = c.submit(path, path, {"reason": "再试一次"})
    assert again.status == 409 and "该账号当前没有被锁定" in again.text
    refused = world.events("provision.unlock")[-1]
    assert (refused.actor, refused.outcome, refused.reason) == (
        "staff:olga",
        "refused",
        "not-locked",
    )


def test_unlocking_an_unknown_account_is_a_404_page(world: World) -> None:
    c = world.login("olga")
    assert c.get("/logins/locked/33068299999999@sxlss/unlock").status == 404


@pytest.mark.parametrize(
    "path", ["/logins", "/logins/failures", "/logins/locked", f"/logins/locked/{ACCOUNT}/unlock"]
)
def test_an_auditor_is_refused_and_the_refusal_audited(world: World, path: str) -> None:
    c = world.login("alice")
    assert c.get(path).status == 403
    assert world.events("console.forbidden")[-1].actor == "staff:alice"


def test_an_auditor_cannot_unlock_and_nothing_changes(world: World) -> None:
    world.lock(ACCOUNT, hard=True)
    c = world.login("alice")
    token = c.get("/").csrf_token()
    reply = c.post(f"/logins/locked/{ACCOUNT}/unlock", {"csrf_token": token, "reason": "x"})
    assert reply.status == 403
    assert world.events("provision.unlock") == []


def test_an_admin_sees_the_officers_pages(world: World) -> None:
    assert world.login("adam").get("/logins").status == 200


def test_a_failures_range_longer_than_a_month_is_refused(world: World) -> None:
    page = world.login("olga").get("/logins/failures?since=2025-01-01T00:00")
    assert page.status == 400
    assert "统计范围最长 31 天" in page.text


def test_the_reason_choices_are_login_reasons_and_gateway_codes_read_as_words(
    world: World,
) -> None:
    world.attempt(NOW, ACCOUNT, "192.0.2.7:1", reason="auth-timeout")
    page = world.login("olga").get("/logins")
    assert '<option value="auth-timeout">登录超时（auth-timeout）</option>' in page.text
    assert 'value="idle-timeout"' not in page.text  # ends sessions, never a login
    assert "<td>登录超时（auth-timeout）</td>" in page.text


def test_an_export_reads_the_lists_query_string_as_the_view_does() -> None:
    filters, before, errors = oversight.parse_login_filters(
        {"source": "2001:DB8::0:1", "outcome": "not-ok", "since": "2026-01-01T08:00", "before": "9"}
    )
    assert errors == {}
    assert (filters.source, filters.outcome, filters.since, before) == (
        "2001:db8::1",
        "not-ok",
        NOW,
        9,
    )
    _, _, bad = oversight.parse_login_filters({"source": "nowhere"})
    assert bad == {"source": "来源地址应为 IPv4 或 IPv6 地址（不含端口）"}
