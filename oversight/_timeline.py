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

The gateway records no per-stream rows (service, bytes, duration): the session's
totals (bytes each way, streams opened) come from its record and are shown as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    "session.detach": "网络中断（可恢复）",
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

# Outcome codes of a login, by factor; the gateway's reason codes come from the
# registry (``SessionRegistry.reasons``).
AUTH_REASONS: Mapping[str, str] = {
    "unknown-account": "账号不存在",
    "bad-password": "密码错误",
    "bad-otp": "动态口令错误",
    "otp-reused": "动态口令已使用过（重放）",
    "empty-password": "未输入密码",
    "locked": "账号已锁定",
    "throttled": "来源地址失败过多，已限流",
    "account-suspended": "账号已暂停",
    "account-cancelled": "账号已注销",
    "cert-mismatch": "客户端证书与账号不符",
    "source-denied": "来源地址不在允许范围内",
    "too-many-sessions": "在线会话数已达上限",
    "not-live": "会话不在线",
}

OUTCOMES: Mapping[str, str] = {"ok": "成功", "refused": "拒绝", "failed": "失败"}


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


@dataclass(frozen=True)
class Timeline:
    session: SessionRow
    entries: Sequence[TimelineEntry]
    truncated: bool


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


def _entry(record: audit.AuditRecord) -> TimelineEntry:
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
    entries = [_entry(r) for r in ordered]
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
    return Timeline(session, entries, truncated)
