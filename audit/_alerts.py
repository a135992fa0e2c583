"""Alert rules: pure functions from audit records and thresholds to findings.

Nothing here reads a database or a clock.  The evaluator (:mod:`audit._alert_store`)
hands each rule the records it needs and says which of them are new (``seq`` after
its cursor); a rule only *anchors* findings at new records, so a window already
judged is never judged again, while older records still count inside a window.

A finding carries a ``dedupe_key``: while an alert with that key is open, a repeat
finding only moves its ``last_seen`` and adds evidence, so an attack that goes on
for an hour is one alert, not thousands.

The rules (names are the ``rule`` column; thresholds in :class:`AlertThresholds`):

``brute-force``      ≥ N failed logins of one account within W;
``spraying``         failed logins of ≥ K distinct accounts (and ≥ F failures) from
                     one source host within W;
``two-addresses``    one account live from two different hosts at once;
``unusual-hour``     a login at an hour (Beijing time) the account never used, after
                     ≥ 20 earlier logins;
``revoked-cert``     a login presenting a revoked certificate or for a cancelled
                     account, or a TLS handshake the gateway refused because the
                     CRL lists the certificate (``tls.refused``, ``cert-revoked``);
``bulk-export``      a staff export of ≥ R rows or of the whole log;
``id-probing``       a unit's queries naming ≥ P distinct persons who are not its own
                     within W.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, TypeVar

from audit._events import AuditRecord

# Severities, lowest first; the pages sort and filter by them.
SEVERITIES: Final = ("low", "medium", "high")

RULES: Final = (
    "brute-force",
    "spraying",
    "two-addresses",
    "unusual-hour",
    "revoked-cert",
    "bulk-export",
    "id-probing",
)

# Logins of the channel (``login``, source in details ``peer`` as host:port) and of
# the staff console (``console.login``, source in details ``source``).
LOGIN_ACTIONS: Final = frozenset({"login", "console.login"})
SESSION_ACTIONS: Final = frozenset({"login", "login.resume", "session.end", "session.detach"})
EXPORT_ACTION: Final = "audit.export"
QUERY_PREFIX: Final = "declare.query."
PREVIEW_ACTION: Final = "declare.preview"  # not written by declare_app yet

# Refusals that are not a guess at a password: a stale form, a timeout, our own error.
NOT_GUESSES: Final = frozenset(
    {
        "auth-timeout",
        "internal-error",
        "server-error",
        "csrf-token",
        "cross-origin",
        "directory-unavailable",
    }
)
REVOKED_REASONS: Final = frozenset({"cert-revoked", "account-cancelled"})
# The gateway's record of a TLS handshake it refused (a revoked certificate only).
TLS_REFUSED_ACTION: Final = "tls.refused"
REVOKED_CERT_ACTIONS: Final = frozenset({"login", "login.resume", TLS_REFUSED_ACTION})
# details["view"] values meaning "the whole log, unfiltered".
WHOLE_LOG_VIEWS: Final = frozenset({"all", "whole", "whole-log", "everything"})

# Evidence lists keep at most this many entries each (the newest): enough to follow.
MAX_EVIDENCE: Final = 200

CHINA_OFFSET_SECONDS: Final = 8 * 3600  # Asia/Shanghai, no DST since 1991


@dataclass(frozen=True)
class AlertThresholds:
    """``[alerts]`` in ``ssgate.toml``; every window in seconds."""

    brute_force_failures: int = 10
    brute_force_window_seconds: float = 900.0
    spray_accounts: int = 3
    spray_failures: int = 10
    spray_window_seconds: float = 900.0
    # How far back a session's login may lie and still be live (the policy's longest
    # lifetime, 12 h by default).
    session_lookback_seconds: float = 43200.0
    unusual_hour_min_logins: int = 20
    export_rows: int = 10000
    probe_persons: int = 10
    probe_window_seconds: float = 3600.0

    @property
    def window_seconds(self) -> float:
        """The look-back the windowed rules need before the first new record."""
        return max(
            self.brute_force_window_seconds,
            self.spray_window_seconds,
            self.probe_window_seconds,
        )


@dataclass(frozen=True)
class Evidence:
    """What an officer follows from an alert: audit records, sessions, accounts,
    source hosts (each sorted, unique, at most :data:`MAX_EVIDENCE`)."""

    seqs: tuple[int, ...] = ()
    session_ids: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        records: Iterable[AuditRecord],
        *,
        accounts: Iterable[str] = (),
        sources: Iterable[str] = (),
    ) -> Evidence:
        listed = list(records)
        return cls(
            seqs=_capped(r.seq for r in listed),
            session_ids=_capped(r.event.session_id for r in listed if r.event.session_id),
            accounts=_capped(accounts),
            sources=_capped(sources),
        )

    def merged(self, other: Evidence) -> Evidence:
        return Evidence(
            seqs=_capped((*self.seqs, *other.seqs)),
            session_ids=_capped((*self.session_ids, *other.session_ids)),
            accounts=_capped((*self.accounts, *other.accounts)),
            sources=_capped((*self.sources, *other.sources)),
        )

    def as_json(self) -> dict[str, list[int] | list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, value: object) -> Evidence:
        """Evidence as stored; anything unreadable is left out, never raised."""
        if not isinstance(value, Mapping):
            return cls()
        seqs = value.get("seqs", ())
        texts = {
            name: tuple(str(x) for x in value.get(name, ()) if isinstance(x, str))
            for name in ("session_ids", "accounts", "sources")
        }
        return cls(
            seqs=tuple(x for x in seqs if isinstance(x, int) and not isinstance(x, bool)),
            **texts,
        )


_T = TypeVar("_T", int, str)


def _capped(values: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(sorted(set(values))[-MAX_EVIDENCE:])


@dataclass(frozen=True)
class AlertFinding:
    """One rule's verdict: raise (or refresh) the alert with ``dedupe_key``."""

    rule: str
    severity: str
    dedupe_key: str
    summary: str  # one line in Chinese, no personal data beyond account/unit/source
    first_seen: float
    last_seen: float
    account: str = ""
    source: str = ""
    unit: str = ""
    evidence: Evidence = field(default_factory=Evidence)


# -- small readers -----------------------------------------------------------------------


def host_of(peer: object) -> str:
    """The host of a ``host:port`` peer as the gateway writes it — an IPv6 host is not
    bracketed there (``2001:db8::1:51000``), so the port is always after the last
    colon; ``[2001:db8::1]:443`` is read too — normalised (an IPv4-mapped IPv6 address
    as IPv4); ``""`` when there is no port or the host is not an IP address."""
    if not isinstance(peer, str):
        return ""
    host, colon, port = peer.strip().rpartition(":")
    if not colon or not port.isdigit():
        return ""
    return address_of(host.removeprefix("[").removesuffix("]"))


def address_of(text: object) -> str:
    """An IP address (no port) normalised, or ``""``."""
    if not isinstance(text, str):
        return ""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def source_of(record: AuditRecord) -> str:
    """Where a record came from: the channel's ``peer`` (host:port) or the console's
    ``source`` (an address)."""
    details = record.event.details
    if "peer" in details:
        return host_of(details["peer"])
    return address_of(details.get("source"))


def local_hour(at: float) -> int:
    """The hour of day in Beijing time."""
    return int((at + CHINA_OFFSET_SECONDS) // 3600) % 24


def is_failed_login(record: AuditRecord) -> bool:
    e = record.event
    return e.action in LOGIN_ACTIONS and e.outcome != "ok" and e.reason not in NOT_GUESSES


def is_ok_login(record: AuditRecord) -> bool:
    return record.event.action == "login" and record.event.outcome == "ok"


@dataclass(frozen=True)
class _Hot:
    """The windows of one group that met a rule's threshold."""

    records: list[AuditRecord]  # every record inside any of them, oldest first
    last: AuditRecord  # the newest record that closed one
    count: int  # the most records in one of them
    distinct: int  # the most distinct values in one of them


def _hot_windows(
    items: Sequence[AuditRecord],
    *,
    after_seq: int,
    seconds: float,
    distinct: Callable[[AuditRecord], str],
    enough: Callable[[int, int], bool],
) -> _Hot | None:
    """Slide a window of *seconds* over *items* in time order; each window ending at a
    new record (``seq > after_seq``) is judged by ``enough(records, distinct values)``.

    One pass with running counts, so a long attack costs time in proportion to its
    records, not their square.
    """
    ordered = sorted(items, key=lambda r: (r.event.at, r.seq))
    counts: Counter[str] = Counter()
    start = 0
    ranges: list[tuple[int, int]] = []
    last: AuditRecord | None = None
    most = most_distinct = 0
    for end, anchor in enumerate(ordered):
        counts[distinct(anchor)] += 1
        while ordered[start].event.at <= anchor.event.at - seconds:
            gone = distinct(ordered[start])
            counts[gone] -= 1
            if not counts[gone]:
                del counts[gone]
            start += 1
        size = end + 1 - start
        if anchor.seq <= after_seq or not enough(size, len(counts)):
            continue
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], end + 1)
        else:
            ranges.append((start, end + 1))
        last = anchor
        most, most_distinct = max(most, size), max(most_distinct, len(counts))
    if last is None:
        return None
    inside = [r for lo, hi in ranges for r in ordered[lo:hi]]
    return _Hot(inside, last, most, most_distinct)


def _merge(findings: list[AlertFinding]) -> list[AlertFinding]:
    """One finding per dedupe key: earliest first_seen, latest last_seen, all evidence."""
    by_key: dict[str, AlertFinding] = {}
    for f in findings:
        seen = by_key.get(f.dedupe_key)
        if seen is None:
            by_key[f.dedupe_key] = f
            continue
        by_key[f.dedupe_key] = AlertFinding(
            rule=f.rule,
            severity=max(seen.severity, f.severity, key=SEVERITIES.index),
            dedupe_key=f.dedupe_key,
            summary=f.summary,
            first_seen=min(seen.first_seen, f.first_seen),
            last_seen=max(seen.last_seen, f.last_seen),
            account=f.account,
            source=f.source,
            unit=f.unit,
            evidence=seen.evidence.merged(f.evidence),
        )
    return list(by_key.values())


# -- the rules ---------------------------------------------------------------------------


def brute_force(
    records: Sequence[AuditRecord], *, after_seq: int, thresholds: AlertThresholds
) -> list[AlertFinding]:
    """≥ N failed logins of one account within W, anchored at a new failure."""
    failures: dict[str, list[AuditRecord]] = defaultdict(list)
    for r in records:
        if is_failed_login(r) and r.event.subject != "-":
            failures[r.event.subject].append(r)
    found: list[AlertFinding] = []
    n, w = thresholds.brute_force_failures, thresholds.brute_force_window_seconds
    for account, tries in failures.items():
        hot = _hot_windows(
            tries,
            after_seq=after_seq,
            seconds=w,
            distinct=lambda r: r.event.subject,
            enough=lambda size, _: size >= n,
        )
        if hot is None:
            continue
        sources = {s for s in map(source_of, hot.records) if s}
        found.append(
            AlertFinding(
                rule="brute-force",
                severity="high",
                dedupe_key=f"brute-force:{account}",
                summary=f"账号 {account} 在 {w / 60:g} 分钟内登录失败 {hot.count} 次",
                first_seen=hot.records[0].event.at,
                last_seen=hot.last.event.at,
                account=account,
                source=min(sources) if len(sources) == 1 else "",
                unit=hot.last.event.unit,
                evidence=Evidence.of(hot.records, accounts=[account], sources=sources),
            )
        )
    return found


def spraying(
    records: Sequence[AuditRecord], *, after_seq: int, thresholds: AlertThresholds
) -> list[AlertFinding]:
    """Failed logins of ≥ K distinct accounts (and ≥ F failures) from one source host
    within W, anchored at a new failure."""
    by_source: dict[str, list[AuditRecord]] = defaultdict(list)
    for r in records:
        source = source_of(r)
        if is_failed_login(r) and source:
            by_source[source].append(r)
    found: list[AlertFinding] = []
    w = thresholds.spray_window_seconds
    for source, tries in by_source.items():
        hot = _hot_windows(
            tries,
            after_seq=after_seq,
            seconds=w,
            distinct=lambda r: r.event.subject,
            enough=lambda size, accounts: (
                accounts >= thresholds.spray_accounts and size >= thresholds.spray_failures
            ),
        )
        if hot is None:
            continue
        accounts = {r.event.subject for r in hot.records}
        found.append(
            AlertFinding(
                rule="spraying",
                severity="high",
                dedupe_key=f"spraying:{source}",
                summary=(
                    f"来源 {source} 在 {w / 60:g} 分钟内对 {hot.distinct} 个账号"
                    f"登录失败 {hot.count} 次"
                ),
                first_seen=hot.records[0].event.at,
                last_seen=hot.last.event.at,
                source=source,
                evidence=Evidence.of(hot.records, accounts=accounts, sources=[source]),
            )
        )
    return found


def two_addresses(
    records: Sequence[AuditRecord],
    *,
    after_seq: int,
    thresholds: AlertThresholds,
    ended_at: Mapping[str, float] | None = None,
) -> list[AlertFinding]:
    """One account live from two hosts at once.

    *records* are the session events (:data:`SESSION_ACTIONS`) of the accounts
    concerned, from far enough back (``session_lookback_seconds``) to hold the logins
    of every session still live.  A session is live from its ``login`` (ok) or
    ``login.resume`` (ok, possibly from a new host) until ``session.end`` or
    ``session.detach``.  At each new live-making event, every other live session of
    the account on another host is a finding.

    *ended_at* is when the session registry ended sessions, by id: a session whose
    end left no audit event (its node died and another reaped it) is not live after
    that time.
    """
    ends = ended_at or {}
    live: dict[str, dict[str, tuple[str, AuditRecord]]] = defaultdict(dict)
    found: list[AlertFinding] = []
    for r in sorted(records, key=lambda r: r.seq):
        e = r.event
        sid = e.session_id
        if not sid or e.action not in SESSION_ACTIONS:
            continue
        sessions = live[e.subject]
        if e.action in ("session.end", "session.detach"):
            sessions.pop(sid, None)
            continue
        if e.outcome != "ok":
            continue
        host = source_of(r)
        sessions[sid] = (host, r)
        if r.seq <= after_seq or not host:
            continue
        others = {
            s: (h, o)
            for s, (h, o) in sessions.items()
            if s != sid and h and h != host and ends.get(s, e.at + 1) > e.at
        }
        if not others:
            continue
        hosts = {host, *(h for h, _ in others.values())}
        started = min(o.event.at for _, o in others.values())
        found.append(
            AlertFinding(
                rule="two-addresses",
                severity="high",
                dedupe_key=f"two-addresses:{e.subject}",
                summary=f"账号 {e.subject} 同时从 {len(hosts)} 个地址在线",
                first_seen=started,
                last_seen=e.at,
                account=e.subject,
                unit=e.unit,
                evidence=Evidence.of(
                    [r, *(o for _, o in others.values())], accounts=[e.subject], sources=hosts
                ),
            )
        )
    return _merge(found)


def unusual_hour(
    new_logins: Sequence[AuditRecord],
    earlier: Mapping[str, Sequence[float]],
    *,
    thresholds: AlertThresholds,
) -> list[AlertFinding]:
    """A successful login at an hour (Beijing time) the account never logged in at,
    when it has ≥ ``unusual_hour_min_logins`` earlier logins.

    *new_logins* are the new ``login`` (ok) records in seq order; *earlier* the
    times of each account's logins before them.  A new login counts as earlier for
    the ones after it.
    """
    history = {account: list(times) for account, times in earlier.items()}
    found: list[AlertFinding] = []
    for r in sorted(new_logins, key=lambda r: r.seq):
        if not is_ok_login(r):
            continue
        account = r.event.subject
        times = history.setdefault(account, [])
        hour = local_hour(r.event.at)
        if len(times) >= thresholds.unusual_hour_min_logins and hour not in {
            local_hour(t) for t in times
        }:
            source = source_of(r)
            found.append(
                AlertFinding(
                    rule="unusual-hour",
                    severity="low",
                    dedupe_key=f"unusual-hour:{account}:{hour:02d}",
                    summary=(
                        f"账号 {account} 在从未使用过的时段（北京时间 {hour:02d} 时）登录，"
                        f"此前共登录 {len(times)} 次"
                    ),
                    first_seen=r.event.at,
                    last_seen=r.event.at,
                    account=account,
                    source=source,
                    unit=r.event.unit,
                    evidence=Evidence.of(
                        [r], accounts=[account], sources=[source] if source else []
                    ),
                )
            )
        times.append(r.event.at)
    return _merge(found)


def revoked_certificate(records: Sequence[AuditRecord], *, after_seq: int) -> list[AlertFinding]:
    """A login refused because the certificate presented is revoked (``cert-revoked``,
    the gateway's check against the certificate store) or its account cancelled; or
    a TLS connection refused because the CRL lists its certificate (``tls.refused``:
    the handshake never reached a login; the account is the certificate's, ``-``
    when the gateway could not tell)."""
    found: list[AlertFinding] = []
    for r in records:
        e = r.event
        if r.seq <= after_seq or e.action not in REVOKED_CERT_ACTIONS:
            continue
        if e.outcome == "ok" or e.reason not in REVOKED_REASONS:
            continue
        serial = str(e.details.get("certificate") or "")
        source = source_of(r)
        what = "已吊销的证书" if e.reason == "cert-revoked" else "已注销账号的证书"
        known = [e.subject] if e.subject != "-" else []
        if e.action == TLS_REFUSED_ACTION:
            owner = f"，签发给账号 {e.subject}" if known else ""
            summary = (
                f"有人以{what}（序列号 {serial or '未知'}{owner}）连接网关，TLS 握手时即被拒绝"
            )
        else:
            summary = f"有人以{what}（序列号 {serial or '未知'}）尝试登录账号 {e.subject}"
        found.append(
            AlertFinding(
                rule="revoked-cert",
                severity="high",
                dedupe_key=f"revoked-cert:{e.subject}:{serial}",
                summary=summary,
                first_seen=e.at,
                last_seen=e.at,
                account=known[0] if known else "",
                source=source,
                unit=e.unit,
                evidence=Evidence.of([r], accounts=known, sources=[source] if source else []),
            )
        )
    return _merge(found)


def bulk_export(
    records: Sequence[AuditRecord], *, after_seq: int, thresholds: AlertThresholds
) -> list[AlertFinding]:
    """A staff export (``audit.export``, ok) of ≥ ``export_rows`` rows, or of the
    whole log (details ``view`` in :data:`WHOLE_LOG_VIEWS` or ``whole`` true)."""
    found: list[AlertFinding] = []
    for r in records:
        e = r.event
        if r.seq <= after_seq or e.action != EXPORT_ACTION or e.outcome != "ok":
            continue
        rows = e.details.get("rows")
        counted = isinstance(rows, int) and not isinstance(rows, bool)
        whole = e.details.get("whole") is True or e.details.get("view") in WHOLE_LOG_VIEWS
        if not whole and not (counted and rows >= thresholds.export_rows):  # type: ignore[operator]
            continue
        size = ("全部日志，" if whole else "") + (f"{rows} 行" if counted else "行数未知")
        found.append(
            AlertFinding(
                rule="bulk-export",
                severity="medium",
                dedupe_key=f"bulk-export:{r.seq}",
                summary=f"工作人员 {e.actor} 批量导出审计记录（{size}）",
                first_seen=e.at,
                last_seen=e.at,
                account=e.actor,
                source=source_of(r),
                evidence=Evidence.of([r], accounts=[e.actor]),
            )
        )
    return found


def is_probe(record: AuditRecord) -> bool:
    """A unit's query or preview naming a person (masked ID number in details
    ``id_number``) who is not its own.

    Queries: refused ``not-found`` (``person-payments`` and ``account-statement`` find
    only persons ever enrolled in the unit); a filtered list answered with no rows is
    not counted, as the person may be the unit's own under another filter.  Previews
    (``declare.preview`` with details ``own`` false) are counted once declare_app
    records them: today it does not audit previews at all.
    """
    e = record.event
    if not e.unit or not isinstance(e.details.get("id_number"), str):
        return False
    if e.action == PREVIEW_ACTION:
        return e.details.get("own") is False
    return (
        e.action.startswith(QUERY_PREFIX)
        and e.outcome == "refused"
        and e.reason.startswith("not-found")
    )


def id_probing(
    records: Sequence[AuditRecord], *, after_seq: int, thresholds: AlertThresholds
) -> list[AlertFinding]:
    """≥ P distinct persons (masked ID numbers) a unit's queries named and did not
    find among its own within W, anchored at a new such query."""
    by_unit: dict[str, list[AuditRecord]] = defaultdict(list)
    for r in records:
        if is_probe(r):
            by_unit[r.event.unit].append(r)
    found: list[AlertFinding] = []
    w = thresholds.probe_window_seconds
    for unit, probes in by_unit.items():
        hot = _hot_windows(
            probes,
            after_seq=after_seq,
            seconds=w,
            distinct=lambda r: str(r.event.details["id_number"]),
            enough=lambda _, persons: persons >= thresholds.probe_persons,
        )
        if hot is None:
            continue
        accounts = {r.event.actor.removeprefix("channel:") for r in hot.records}
        found.append(
            AlertFinding(
                rule="id-probing",
                severity="high",
                dedupe_key=f"id-probing:{unit}",
                summary=(
                    f"单位 {unit} 在 {w / 60:g} 分钟内查询了 {hot.distinct} 名不属于本单位的人员"
                ),
                first_seen=hot.records[0].event.at,
                last_seen=hot.last.event.at,
                account=min(accounts) if len(accounts) == 1 else "",
                unit=unit,
                evidence=Evidence.of(hot.records, accounts=accounts),
            )
        )
    return found


def find_alerts(
    recent: Sequence[AuditRecord],
    *,
    after_seq: int,
    thresholds: AlertThresholds,
    sessions: Sequence[AuditRecord] = (),
    ended_at: Mapping[str, float] | None = None,
    earlier_logins: Mapping[str, Sequence[float]] | None = None,
) -> list[AlertFinding]:
    """Every rule over one evaluation's records.

    *recent*: the records from ``thresholds.window_seconds`` before the first new one
    up to the newest (new ones have ``seq > after_seq``); *sessions*: the session
    events of the accounts with a new login or resume, from
    ``session_lookback_seconds`` back, and *ended_at* when the registry ended any of
    them; *earlier_logins*: for each account with a new login, the times of its logins
    up to *after_seq*.
    """
    new = [r for r in recent if r.seq > after_seq]
    return [
        *brute_force(recent, after_seq=after_seq, thresholds=thresholds),
        *spraying(recent, after_seq=after_seq, thresholds=thresholds),
        *two_addresses(sessions, after_seq=after_seq, thresholds=thresholds, ended_at=ended_at),
        *unusual_hour(
            [r for r in new if is_ok_login(r)], earlier_logins or {}, thresholds=thresholds
        ),
        *revoked_certificate(new, after_seq=after_seq),
        *bulk_export(new, after_seq=after_seq, thresholds=thresholds),
        *id_probing(recent, after_seq=after_seq, thresholds=thresholds),
    ]
