"""A session's timeline: everything the log knows about one channel session, in order.

One store function (``session_timeline(conn, registry, session_id)``, run on the
database pool) gathers:

* the login attempts on the connection that opened the session: refused ``login``
  events of the account from the same ``host:port`` in the login window before the
  session started (a refused attempt has no session yet, so it is found by account,
  peer and time), and the successful one;
* every audit event carrying the session id: resumes, refused streams, declaration
  actions, queries, the password change, the officer's kill, the end;
* the end as the session record has it, when no ``session.end`` event says it (a
  detached session killed or reaped ends without one).

Each entry carries a one-line ``summary`` in Chinese of what its details say:

* a ``login`` or ``login.resume``: each factor's outcome (certificate, password,
  one-time code — the officer's view; the employer only ever heard "auth-failed") and
  the TLS handshake (protocol version, cipher, client certificate serial and subject);
* a ``stream.end`` (one per stream, written by the gateway when the stream is gone):
  service, bytes each way, duration and how it ended (in the registry's words for
  the gateway's codes, ``SessionRegistry.reasons``: one table of words for every
  page).

:class:`Timeline` also gathers the streams (:class:`StreamRow`) for the page's stream
table, the TLS facts of the login that opened the session, and how many streams the
gateway counted without itemising them (past its per-connection budget).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import Connection

import audit

from .interfaces import SessionRegistry, SessionRow

# The longest login a gateway allows (``auth_timeout_seconds`` is at most 600).
LOGIN_WINDOW_SECONDS = 600.0
MAX_EVENTS = 1000  # a timeline longer than this is cut, and says so
MAX_LOGIN_ATTEMPTS = 50

ACTIONS: Mapping[str, str] = {
    "login": "登录",
    "login.resume": "恢复会话",
    "stream.refused": "拒绝数据流",
    "stream.end": "数据流结束",
    "session.detach": "网络中断（可恢复）",
    "session.move": "节点停止服务，会话迁往其他节点",
    "session.end": "会话结束",
    "session.kill": "安全员终止会话",
    "declare.create": "新建申报",
    "declare.update": "修改申报",
    "declare.submit": "提交申报",
    "declare.withdraw": "撤回申报",
    "declare.resubmit": "重新提交申报",
    "declare.import": "批量导入申报",
    "declare.view": "查看申报",
    "declare.list": "查看申报列表",
    "declare.password-change": "修改密码",
}

_NO_WORDS: Mapping[str, str] = MappingProxyType({})

OUTCOMES: Mapping[str, str] = {"ok": "成功", "refused": "拒绝", "failed": "失败"}

# The factors of a login, as the gateway records them (``factor_<name>`` details).
FACTORS: Sequence[tuple[str, str]] = (
    ("certificate", "证书"),
    ("password", "密码"),
    ("code", "动态口令"),
)
FACTOR_OUTCOMES: Mapping[str, str] = {
    "ok": "通过",
    "wrong": "错误",
    "revoked": "已吊销",
    "reused": "重复使用",
    "empty": "未填写",
    "not-checked": "未检查",
}


@dataclass(frozen=True)
class TimelineEntry:
    at: float
    seq: int | None  # the audit record; None for what only the session record says
    action: str
    what: str
    outcome: str
    reason: str
    actor: str
    subject: str
    details: Sequence[tuple[str, str]]
    summary: str = ""  # one line in Chinese of what the details say (logins, streams)


@dataclass(frozen=True)
class StreamRow:
    """One stream of the session, from its ``stream.end`` event."""

    ended_at: float
    stream: int
    service: str
    bytes_in: int  # from the unit to the service
    bytes_out: int  # from the service to the unit
    duration_ms: int
    end: str  # the code (``finished``, …)
    end_text: str

    @property
    def duration_text(self) -> str:
        return duration_text(self.duration_ms)


@dataclass(frozen=True)
class TlsFacts:
    """The TLS handshake of the login that opened the session (its ``login`` event)."""

    version: str
    cipher: str
    certificate_serial: str
    certificate_subject: str


@dataclass(frozen=True)
class Timeline:
    session: SessionRow
    entries: Sequence[TimelineEntry]
    truncated: bool
    streams: Sequence[StreamRow] = field(default=())
    tls: TlsFacts | None = None
    streams_not_itemised: int = 0


def byte_text(n: int) -> str:
    """A byte count for people: ``512 B``, ``4.9 KiB``, ``1.2 MiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def duration_text(ms: int) -> str:
    """A duration for people: ``0.35 秒``, ``12.0 秒``, ``3 分 05 秒``, ``1 时 02 分``."""
    if ms < 1000:
        return f"{ms / 1000:.2f} 秒"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} 秒"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} 分 {whole % 60:02d} 秒"
    return f"{whole // 3600} 时 {whole % 3600 // 60:02d} 分"


def _int_detail(details: Mapping[str, object], key: str) -> int:
    value = details.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str_detail(details: Mapping[str, object], key: str) -> str:
    value = details.get(key)
    return value if isinstance(value, str) else ""


def factors_text(details: Mapping[str, object]) -> str:
    """``证书：通过 · 密码：错误 · 动态口令：未检查``, or "" if the event has none."""
    parts = []
    for name, label in FACTORS:
        outcome = _str_detail(details, f"factor_{name}")
        if outcome:
            parts.append(f"{label}：{FACTOR_OUTCOMES.get(outcome, outcome)}")
    return " · ".join(parts)


def tls_text(details: Mapping[str, object]) -> str:
    """``TLSv1.3 · TLS_AES_256_GCM_SHA384 · 证书 0a1b（CN=…）``, or "" without TLS facts."""
    parts = [_str_detail(details, "tls_version"), _str_detail(details, "tls_cipher")]
    serial = _str_detail(details, "certificate")
    subject = _str_detail(details, "certificate_subject")
    if serial or subject:
        parts.append(f"证书 {serial or '—'}" + (f"（{subject}）" if subject else ""))
    return " · ".join(p for p in parts if p)


def _stream_row(e: audit.AuditEvent, words: Mapping[str, str]) -> StreamRow:
    d = e.details
    return StreamRow(
        ended_at=e.at,
        stream=_int_detail(d, "stream"),
        service=_str_detail(d, "service") or "—",
        bytes_in=_int_detail(d, "bytes_in"),
        bytes_out=_int_detail(d, "bytes_out"),
        duration_ms=_int_detail(d, "duration_ms"),
        end=e.reason,
        end_text=words.get(e.reason, e.reason),
    )


def summary_text(e: audit.AuditEvent, words: Mapping[str, str] = _NO_WORDS) -> str:
    """The one line an entry shows above its raw details (see the module docstring);
    *words* are the reason codes in Chinese (``SessionRegistry.reasons``)."""
    if e.action == "stream.end":
        row = _stream_row(e, words)
        return (
            f"{row.service} · 上行 {byte_text(row.bytes_in)} · 下行 {byte_text(row.bytes_out)}"
            f" · {row.duration_text} · {row.end_text}"
        )
    if e.action in ("login", "login.resume"):
        return " ｜ ".join(t for t in (factors_text(e.details), tls_text(e.details)) if t)
    return ""


def action_text(action: str) -> str:
    if action in ACTIONS:
        return ACTIONS[action]
    if action.startswith("declare.query."):
        return f"查询（{action.removeprefix('declare.query.')}）"
    return action


def _detail_text(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _entry(record: audit.AuditRecord, words: Mapping[str, str]) -> TimelineEntry:
    e = record.event
    return TimelineEntry(
        at=e.at,
        seq=record.seq,
        action=e.action,
        what=action_text(e.action),
        outcome=e.outcome,
        reason=e.reason,
        actor=e.actor,
        subject=e.subject,
        details=tuple((k, _detail_text(v)) for k, v in sorted(e.details.items())),
        summary=summary_text(e, words),
    )


def session_timeline(
    conn: Connection, registry: SessionRegistry, session_id: str
) -> Timeline | None:
    """The timeline of *session_id* (see the module docstring); None if no such
    session."""
    session = registry.get(conn, session_id)
    if session is None:
        return None
    records = {r.seq: r for r in audit.query(conn, session_id=session_id, limit=MAX_EVENTS + 1)}
    truncated = len(records) > MAX_EVENTS
    attempts = audit.query(
        conn,
        actions={"login"},
        subject=session.account,
        since=session.started_at - LOGIN_WINDOW_SECONDS,
        until=session.started_at + 1.0,
        limit=MAX_LOGIN_ATTEMPTS,
        newest_first=True,
    )
    for r in attempts:
        if r.event.session_id in ("", session_id) and r.event.details.get("peer") == session.peer:
            records.setdefault(r.seq, r)
    ordered = sorted(records.values(), key=lambda r: r.seq)[:MAX_EVENTS]
    words = registry.reasons()
    entries = [_entry(r, words) for r in ordered]
    if session.ended_at is not None and not any(e.action == "session.end" for e in entries):
        entries.append(
            TimelineEntry(
                at=session.ended_at,
                seq=None,
                action="session.end",
                what="会话结束（会话记录）",
                outcome="ok",
                reason=session.end_reason or "",
                actor="system",
                subject=session.account,
                details=(),
            )
        )
    entries.sort(key=lambda e: (e.at, e.seq or 0))
    streams = [_stream_row(r.event, words) for r in ordered if r.event.action == "stream.end"]
    opening = [
        r.event
        for r in ordered
        if r.event.action == "login" and r.event.outcome == "ok" and r.event.session_id
    ]
    tls = None
    if opening:
        d = opening[0].details
        tls = TlsFacts(
            version=_str_detail(d, "tls_version"),
            cipher=_str_detail(d, "tls_cipher"),
            certificate_serial=_str_detail(d, "certificate"),
            certificate_subject=_str_detail(d, "certificate_subject"),
        )
    not_itemised = sum(
        _int_detail(r.event.details, "streams_not_itemised")
        for r in ordered
        if r.event.action in ("session.end", "session.detach")
    )
    return Timeline(session, entries, truncated, streams, tls, not_itemised)
