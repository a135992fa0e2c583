"""The logins view's queries on SQLite and PostgreSQL: the row query with every
filter and keyset paging, the source address cut out of the details in SQL (IPv6
kept whole, the IPv4-mapped form matched), and the failures grouped by account and by
source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

import audit
from oversight import LoginFilters, failures_by_account, failures_by_source, login_rows
from oversight._logins import failure_totals

T0 = 1_767_225_600.0
A = "33068212345678@sxlss"
B = "33068287654321@sxlss"
C = "33068200000001@sxlss"


def login(
    conn: Any,
    at: float,
    account: str,
    peer: str,
    *,
    outcome: str = "refused",
    reason: str = "bad-password",
    action: str = "login",
) -> None:
    audit.append(
        conn,
        audit.AuditEvent(
            at=at,
            actor=f"channel:{account}",
            action=action,
            subject=account,
            outcome=outcome,
            reason="" if outcome == "ok" else reason,
            details={"peer": peer, "certificate": "0A"},
        ),
    )


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    audit.metadata.create_all(engine)
    with engine.begin() as conn:
        # A sprayer at 192.0.2.7 tries three accounts; 2001:db8::1 tries A only;
        # 2001:db8::1:5 (a different host whose peers start with "2001:db8::1:") once.
        for i, account in enumerate([A, B, C, A, B, C]):
            login(conn, T0 + i, account, f"192.0.2.7:{50000 + i}")
        login(conn, T0 + 10, A, "2001:db8::1:443", reason="bad-otp")
        login(conn, T0 + 11, A, "2001:db8::1:444", reason="bad-otp")
        login(conn, T0 + 12, B, "2001:db8::1:5:443")
        login(conn, T0 + 13, A, "::ffff:192.0.2.7:40000")
        login(conn, T0 + 14, A, "198.51.100.1:1000", outcome="ok")
        login(conn, T0 + 15, A, "198.51.100.1:1001", outcome="ok", action="login.resume")
        audit.append(
            conn,
            audit.AuditEvent(
                at=T0 + 16,
                actor="staff:olga",
                action="console.login",
                subject="olga",
                outcome="refused",
                reason="bad-otp",
                details={"source": "192.0.2.7", "role": None},
            ),
        )
        # Not a login: never listed.
        audit.append(
            conn,
            audit.AuditEvent(
                at=T0 + 17,
                actor="x",
                action="session.end",
                subject=A,
                outcome="ok",
                details={"peer": "192.0.2.7:1"},
            ),
        )
    yield engine


def rows(db: Engine, f: LoginFilters, before: int | None = None, limit: int = 100) -> list[Any]:
    with db.begin() as conn:
        return login_rows(conn, f, before, limit)


def test_every_login_attempt_is_listed_newest_first(db: Engine) -> None:
    found = rows(db, LoginFilters())
    assert [r.seq for r in found] == list(range(13, 0, -1))
    assert found[0].action == "console.login" and found[0].source == "192.0.2.7"
    assert found[-1].peer == "192.0.2.7:50000" and found[-1].source == "192.0.2.7"


def test_source_matches_the_host_exactly_ipv6_included(db: Engine) -> None:
    v6 = rows(db, LoginFilters(source="2001:db8::1"))
    assert [r.peer for r in v6] == ["2001:db8::1:444", "2001:db8::1:443"]
    assert [r.source for r in rows(db, LoginFilters(source="2001:db8::1:5"))] == ["2001:db8::1:5"]


def test_an_ipv4_source_also_matches_its_mapped_form_and_the_console(db: Engine) -> None:
    found = rows(db, LoginFilters(source="192.0.2.7"))
    assert len(found) == 8  # six sprayed, one mapped, one console login
    assert {r.source for r in found} == {"192.0.2.7", "::ffff:192.0.2.7"}
    channel = rows(db, LoginFilters(source="192.0.2.7", kind="channel"))
    assert len(channel) == 7


def test_filters_combine(db: Engine) -> None:
    f = LoginFilters(account=A, outcome="refused", reason="bad-otp", since=T0 + 10, until=T0 + 11)
    assert [r.peer for r in rows(db, f)] == ["2001:db8::1:443"]
    assert [r.action for r in rows(db, LoginFilters(outcome="ok"))] == ["login.resume", "login"]
    assert [r.account for r in rows(db, LoginFilters(kind="console"))] == ["olga"]


def test_keyset_pages_cover_every_row_once(db: Engine) -> None:
    seen: list[int] = []
    before = None
    while True:
        page = rows(db, LoginFilters(), before, limit=4)
        seen += [r.seq for r in page]
        if len(page) < 4:
            break
        before = page[-1].seq
    assert seen == list(range(13, 0, -1))


def test_failures_grouped_by_source_count_accounts_per_source(db: Engine) -> None:
    with db.begin() as conn:
        groups = failures_by_source(conn, since=T0, until=T0 + 100, kind="channel")
    by = {g.key: (g.attempts, g.others, g.first_at, g.last_at) for g in groups}
    assert by == {
        "192.0.2.7": (6, 3, T0, T0 + 5),
        "2001:db8::1": (2, 1, T0 + 10, T0 + 11),
        "2001:db8::1:5": (1, 1, T0 + 12, T0 + 12),
        "::ffff:192.0.2.7": (1, 1, T0 + 13, T0 + 13),
    }
    assert groups[0].key == "192.0.2.7"  # most attempts first


def test_failures_grouped_by_account_count_sources_per_account(db: Engine) -> None:
    with db.begin() as conn:
        groups = failures_by_account(conn, since=T0, until=T0 + 100)
        window = failures_by_account(conn, since=T0 + 10, until=T0 + 12)
        totals = failure_totals(conn, since=T0, until=T0 + 100)
    by = {g.key: (g.attempts, g.others) for g in groups}
    # A: 2 sprayed + 2 from 2001:db8::1 + 1 mapped; sources 192.0.2.7, 2001:db8::1, mapped
    assert by == {A: (5, 3), B: (3, 2), C: (2, 1), "olga": (1, 1)}
    assert [(g.key, g.attempts) for g in window] == [(A, 2)]
    assert totals == (13, 11)


def test_a_tampered_non_json_details_row_does_not_break_the_queries(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(text("UPDATE audit_events SET details = 'not json' WHERE seq = 1"))
    found = rows(db, LoginFilters(source="192.0.2.7"))
    assert 1 not in [r.seq for r in found]
    with db.begin() as conn:
        assert failures_by_source(conn, since=T0, until=T0 + 100)
    assert rows(db, LoginFilters())[-1].peer == ""
