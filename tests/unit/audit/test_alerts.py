"""The alert rules, pure: fixed audit records in, findings out (audit._alerts)."""

from __future__ import annotations

from typing import Any

import pytest

from audit import AlertThresholds, AuditEvent, AuditRecord, find_alerts, host_of
from audit._alerts import (
    brute_force,
    bulk_export,
    id_probing,
    local_hour,
    revoked_certificate,
    spraying,
    two_addresses,
    unusual_hour,
)

T0 = 1_767_225_600.0  # 2026-01-01 08:00 Beijing
A, B, C = "33068212345678@sxlss", "33068287654321@sxlss", "33068211112222@sxlss"
LIMITS = AlertThresholds()


class Log:
    """Records numbered from 1, as the chain numbers them."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def add(
        self, action: str, subject: str, *, at: float, outcome: str = "ok", **kw: Any
    ) -> AuditRecord:
        event = AuditEvent(
            at=at,
            actor=kw.pop("actor", f"channel:{subject}"),
            action=action,
            subject=subject,
            outcome=outcome,
            **kw,
        )
        record = AuditRecord(seq=len(self.records) + 1, event=event, prev_hash="", hash="")
        self.records.append(record)
        return record

    def fail(
        self,
        account: str,
        peer: str = "203.0.113.9:40000",
        *,
        at: float,
        reason: str = "bad-password",
    ) -> AuditRecord:
        return self.add(
            "login",
            account,
            at=at,
            outcome="refused",
            reason=reason,
            details={"peer": peer, "certificate": "0A"},
        )

    def login(self, account: str, sid: str, peer: str, *, at: float) -> AuditRecord:
        return self.add(
            "login",
            account,
            at=at,
            session_id=sid,
            unit="12345678",
            details={"peer": peer, "certificate": "0A"},
        )


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("203.0.113.7:51000", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1:51000", "2001:db8::1"),  # as the gateway writes an IPv6 peer
        ("2001:db8:0:0::1:4000", "2001:db8::1"),  # the last group is the port
        ("::ffff:198.51.100.4:443", "198.51.100.4"),
        ("198.51.100.4", ""),  # no port: not a peer
        ("198.51.100.4:x", ""),
        ("unknown", ""),
        ("local", ""),
        ("", ""),
        (None, ""),
        ("[2001:db8::1", ""),
    ],
)
def test_host_of_reads_the_host_of_a_peer_ipv6_aware(peer: object, host: str) -> None:
    assert host_of(peer) == host


def test_local_hour_is_beijing_time() -> None:
    assert local_hour(T0) == 8
    assert local_hour(T0 + 16 * 3600) == 0


# -- 1. brute force ----------------------------------------------------------------------


def test_ten_failures_of_one_account_within_the_window_are_one_brute_force_alert() -> None:
    log = Log()
    for i in range(12):
        log.fail(A, at=T0 + i * 10)
    [f] = brute_force(log.records, after_seq=0, thresholds=LIMITS)
    assert (f.rule, f.severity, f.dedupe_key, f.account) == (
        "brute-force",
        "high",
        f"brute-force:{A}",
        A,
    )
    assert f.source == "203.0.113.9"
    assert (f.first_seen, f.last_seen) == (T0, T0 + 110)
    assert f.evidence.seqs == tuple(range(1, 13))
    assert f.evidence.sources == ("203.0.113.9",)


def test_nine_failures_or_failures_spread_wider_than_the_window_raise_nothing() -> None:
    log = Log()
    for i in range(9):
        log.fail(A, at=T0 + i)
    assert brute_force(log.records, after_seq=0, thresholds=LIMITS) == []
    spread = Log()
    for i in range(20):
        spread.fail(A, at=T0 + i * 100)  # 9 per 900 s at most
    assert brute_force(spread.records, after_seq=0, thresholds=LIMITS) == []


def test_a_window_already_judged_is_not_judged_again_but_old_failures_still_count() -> None:
    log = Log()
    for i in range(9):
        log.fail(A, at=T0 + i)
    assert brute_force(log.records, after_seq=9, thresholds=LIMITS) == []
    log.fail(A, at=T0 + 20)
    [f] = brute_force(log.records, after_seq=9, thresholds=LIMITS)
    assert len(f.evidence.seqs) == 10


def test_refusals_that_are_not_guesses_do_not_count() -> None:
    log = Log()
    for i in range(10):
        log.fail(A, at=T0 + i, reason="auth-timeout")
    for i in range(10):
        log.add(
            "login",
            A,
            at=T0 + i,
            outcome="refused",
            reason="csrf-token",
            details={"source": "192.0.2.1"},
        )
    assert find_alerts(log.records, after_seq=0, thresholds=LIMITS) == []


def test_console_logins_count_too_with_their_source_field() -> None:
    log = Log()
    for i in range(10):
        log.add(
            "console.login",
            "olga",
            at=T0 + i,
            outcome="refused",
            reason="bad-password",
            actor="staff:olga",
            details={"source": "2001:db8::5"},
        )
    [f] = brute_force(log.records, after_seq=0, thresholds=LIMITS)
    assert (f.account, f.source) == ("olga", "2001:db8::5")


# -- 2. spraying -------------------------------------------------------------------------


def test_failures_over_three_accounts_from_one_host_are_spraying_naming_host_and_accounts() -> None:
    log = Log()
    for i in range(30):
        log.fail((A, B, C)[i % 3], peer=f"198.51.100.4:{50000 + i}", at=T0 + i)
    [f] = spraying(log.records, after_seq=0, thresholds=LIMITS)
    assert (f.rule, f.dedupe_key, f.source, f.account) == (
        "spraying",
        "spraying:198.51.100.4",
        "198.51.100.4",
        "",
    )
    assert f.evidence.accounts == tuple(sorted((A, B, C)))
    assert "3 个账号" in f.summary and "30 次" in f.summary


def test_two_accounts_or_few_failures_or_different_hosts_are_not_spraying() -> None:
    two = Log()
    for i in range(20):
        two.fail((A, B)[i % 2], at=T0 + i)
    assert spraying(two.records, after_seq=0, thresholds=LIMITS) == []
    few = Log()
    for i, account in enumerate((A, B, C)):
        few.fail(account, at=T0 + i)
    assert spraying(few.records, after_seq=0, thresholds=LIMITS) == []
    spread = Log()
    for i in range(30):
        spread.fail((A, B, C)[i % 3], peer=f"198.51.100.{i}:1", at=T0 + i)
    assert spraying(spread.records, after_seq=0, thresholds=LIMITS) == []


def test_ipv6_peers_with_different_ports_are_one_source() -> None:
    log = Log()
    for i in range(10):
        log.fail((A, B, C)[i % 3], peer=f"2001:db8::7:{4000 + i}", at=T0 + i)
    [f] = spraying(log.records, after_seq=0, thresholds=LIMITS)
    assert f.source == "2001:db8::7"


# -- 3. one account live from two addresses ----------------------------------------------


def test_a_second_login_from_another_host_while_the_first_is_live_is_an_alert() -> None:
    log = Log()
    log.login(A, "s1", "203.0.113.7:1000", at=T0)
    log.login(A, "s2", "198.51.100.4:2000", at=T0 + 60)
    [f] = two_addresses(log.records, after_seq=0, thresholds=LIMITS)
    assert (f.rule, f.account, f.dedupe_key) == ("two-addresses", A, f"two-addresses:{A}")
    assert f.evidence.session_ids == ("s1", "s2")
    assert f.evidence.sources == ("198.51.100.4", "203.0.113.7")
    assert (f.first_seen, f.last_seen) == (T0, T0 + 60)


def test_sessions_that_ended_or_detached_or_share_a_host_are_not_an_alert() -> None:
    log = Log()
    log.login(A, "s1", "203.0.113.7:1000", at=T0)
    log.add(
        "session.end",
        A,
        at=T0 + 10,
        session_id="s1",
        reason="client-quit",
        details={"peer": "203.0.113.7:1000"},
    )
    log.login(A, "s2", "198.51.100.4:2000", at=T0 + 60)
    log.add(
        "session.detach",
        A,
        at=T0 + 70,
        session_id="s2",
        reason="network-lost",
        details={"peer": "198.51.100.4:2000"},
    )
    log.add("login.resume", A, at=T0 + 80, session_id="s2", details={"peer": "192.0.2.8:3000"})
    log.login(A, "s3", "192.0.2.8:3001", at=T0 + 90)  # same host as the resumed s2
    log.login(B, "s4", "203.0.113.7:1001", at=T0 + 95)  # another account
    assert two_addresses(log.records, after_seq=0, thresholds=LIMITS) == []


def test_a_resume_from_a_new_host_while_another_session_is_live_is_an_alert() -> None:
    log = Log()
    log.login(A, "s1", "203.0.113.7:1000", at=T0)
    log.login(A, "s2", "203.0.113.7:1001", at=T0 + 5)
    log.add(
        "session.detach",
        A,
        at=T0 + 6,
        session_id="s2",
        reason="network-lost",
        details={"peer": "203.0.113.7:1001"},
    )
    log.add("login.resume", A, at=T0 + 9, session_id="s2", details={"peer": "198.51.100.4:9"})
    [f] = two_addresses(log.records, after_seq=3, thresholds=LIMITS)
    assert f.evidence.session_ids == ("s1", "s2")


# -- 4. an hour never used -----------------------------------------------------------------


def test_a_login_at_an_hour_never_used_after_twenty_logins_is_a_low_alert() -> None:
    earlier = {A: [T0 + d * 86400 for d in range(20)]}  # always at 08:xx
    log = Log()
    log.login(A, "s1", "203.0.113.7:1", at=T0 + 30 * 86400 + 3600)  # 09:00 — new: alert
    log.login(A, "s2", "203.0.113.7:1", at=T0 + 31 * 86400 + 3600)  # 09:00 again: used now
    [f] = unusual_hour(log.records, earlier, thresholds=LIMITS)
    assert (f.rule, f.severity, f.dedupe_key) == ("unusual-hour", "low", f"unusual-hour:{A}:09")
    assert f.evidence.seqs == (1,)


def test_no_hour_alert_before_twenty_logins_or_at_a_known_hour() -> None:
    log = Log()
    log.login(A, "s1", "203.0.113.7:1", at=T0 + 3 * 3600)
    assert unusual_hour(log.records, {A: [T0] * 19}, thresholds=LIMITS) == []
    known = Log()
    known.login(A, "s1", "203.0.113.7:1", at=T0 + 40 * 86400)
    assert unusual_hour(known.records, {A: [T0] * 20}, thresholds=LIMITS) == []


# -- 5. revoked or cancelled certificate ---------------------------------------------------


def test_a_login_refused_for_a_revoked_certificate_is_an_alert_per_certificate() -> None:
    log = Log()
    log.fail(A, at=T0, reason="cert-revoked")
    log.fail(A, at=T0 + 5, reason="cert-revoked")
    log.fail(B, at=T0 + 6, reason="account-cancelled")
    log.fail(C, at=T0 + 7, reason="bad-password")
    found = revoked_certificate(log.records, after_seq=0)
    assert sorted((f.dedupe_key, len(f.evidence.seqs)) for f in found) == [
        (f"revoked-cert:{A}:0A", 2),
        (f"revoked-cert:{B}:0A", 1),
    ]


# -- 6. bulk export ------------------------------------------------------------------------


def test_exports_of_many_rows_or_the_whole_log_are_bulk_and_small_ones_not() -> None:
    log = Log()
    staff = {"actor": "staff:olga"}
    log.add("audit.export", "logins", at=T0, details={"rows": 10000, "view": "logins"}, **staff)
    log.add("audit.export", "logins", at=T0, details={"rows": 25, "view": "logins"}, **staff)
    log.add("audit.export", "all", at=T0, details={"view": "all"}, **staff)
    log.add("audit.export", "x", at=T0, outcome="refused", details={"rows": 10**6}, **staff)
    found = bulk_export(log.records, after_seq=0, thresholds=LIMITS)
    assert [f.evidence.seqs for f in found] == [(1,), (3,)]
    assert found[0].account == "staff:olga" and found[0].severity == "medium"


# -- 7. a unit probing ID numbers ------------------------------------------------------------


def _probe(log: Log, i: int, *, unit: str = "12345678", found: bool = False) -> None:
    masked = f"330682********{i:04d}"
    if found:
        log.add(
            "declare.query.person-payments",
            A,
            at=T0 + i,
            unit=unit,
            details={"id_number": masked, "rows": 3},
        )
    else:
        log.add(
            "declare.query.person-payments",
            A,
            at=T0 + i,
            unit=unit,
            outcome="refused",
            reason="not-found: 该人员不存在",
            details={"id_number": masked},
        )


def test_queries_naming_ten_persons_not_of_the_unit_are_probing() -> None:
    log = Log()
    for i in range(10):
        _probe(log, i)
    [f] = id_probing(log.records, after_seq=0, thresholds=LIMITS)
    assert (f.rule, f.unit, f.account, f.dedupe_key) == (
        "id-probing",
        "12345678",
        A,
        "id-probing:12345678",
    )


def test_queries_that_find_the_units_own_persons_or_repeat_one_person_are_not_probing() -> None:
    log = Log()
    for i in range(20):
        _probe(log, i, found=True)
    for _ in range(20):
        _probe(log, 99)
    assert id_probing(log.records, after_seq=0, thresholds=LIMITS) == []


# -- all together --------------------------------------------------------------------------


def test_find_alerts_merges_repeats_into_one_finding_per_key() -> None:
    log = Log()
    for i in range(30):
        log.fail((A, B, C)[i % 3], peer="198.51.100.4:1", at=T0 + i)
    found = find_alerts(log.records, after_seq=0, thresholds=LIMITS)
    keys = sorted(f.dedupe_key for f in found)
    assert keys == sorted(
        [f"brute-force:{A}", f"brute-force:{B}", f"brute-force:{C}", "spraying:198.51.100.4"]
    )


def test_a_session_the_registry_ended_without_an_event_is_not_live_after_its_end() -> None:
    """Its node died: another node reaped it (``node-lost``) and no ``session.end``
    was written; a login from elsewhere after that is not two addresses at once."""
    log = Log()
    log.login(A, "s1", "203.0.113.7:1000", at=T0)
    log.login(A, "s2", "198.51.100.4:2000", at=T0 + 600)
    ended = {"s1": T0 + 300}
    assert two_addresses(log.records, after_seq=1, thresholds=LIMITS, ended_at=ended) == []
    still = {"s1": T0 + 900}  # ended after the second login: they overlapped
    assert len(two_addresses(log.records, after_seq=1, thresholds=LIMITS, ended_at=still)) == 1


def test_previews_naming_persons_not_of_the_unit_count_once_declare_app_records_them() -> None:
    """``declare.preview`` with ``own`` false (the event declare_app does not write
    yet) counts like a refused query; a preview of the unit's own person does not."""
    log = Log()
    for i in range(6):
        _probe(log, i)
    for i in range(6, 10):
        log.add(
            "declare.preview",
            A,
            at=T0 + i,
            unit="12345678",
            details={"type": "person-add", "id_number": f"330682********{i:04d}", "own": False},
        )
    for i in range(10, 20):
        log.add(
            "declare.preview",
            A,
            at=T0 + i,
            unit="12345678",
            details={"type": "person-add", "id_number": f"330682********{i:04d}", "own": True},
        )
    [f] = id_probing(log.records, after_seq=0, thresholds=LIMITS)
    assert len(f.evidence.seqs) == 10


def test_a_long_attack_is_one_finding_per_key_with_the_newest_evidence_capped() -> None:
    log = Log()
    for i in range(5000):
        log.fail((A, B, C)[i % 3], at=T0 + i * 0.1)
    found = find_alerts(log.records, after_seq=0, thresholds=LIMITS)
    assert sorted(f.rule for f in found) == ["brute-force"] * 3 + ["spraying"]
    spray = next(f for f in found if f.rule == "spraying")
    assert spray.evidence.seqs == tuple(range(4801, 5001))  # the newest 200
    assert (spray.first_seen, spray.last_seen) == (T0, T0 + 499.9)


def test_two_bursts_far_apart_keep_only_the_records_of_the_windows_that_met_the_threshold() -> None:
    log = Log()
    for i in range(10):
        log.fail(A, at=T0 + i)
    log.fail(A, at=T0 + 5000)  # alone: in no window of ten
    for i in range(10):
        log.fail(A, at=T0 + 10_000 + i)
    [f] = brute_force(log.records, after_seq=0, thresholds=LIMITS)
    assert 11 not in f.evidence.seqs and len(f.evidence.seqs) == 20
