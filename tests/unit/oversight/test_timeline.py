"""The timeline's reading of the gateway's records: streams (service, bytes, duration,
how each ended), the TLS handshake and each login factor's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import audit
import gateway
from gateway import REASON_WORDS, _sessions
from oversight._timeline import (
    byte_text,
    duration_text,
    factors_text,
    session_timeline,
    summary_text,
    tls_text,
)
from ssgate._db import make_engine

NOW = 1_767_225_600.0
ACCOUNT = "33068212345678@sxlss"
SID = "ab" * 16
PEER = "192.0.2.7:50123"
TLS = {
    "tls_version": "TLSv1.3",
    "tls_cipher": "TLS_AES_256_GCM_SHA384",
    "certificate": "0a1b",
    "certificate_subject": f"CN={ACCOUNT},O=ssgate",
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/timeline.db")
    for metadata in (audit.metadata, gateway.metadata):
        metadata.create_all(engine)
    yield engine
    engine.dispose()


def event(action: str, *, at: float, **fields: Any) -> audit.AuditEvent:
    values: dict[str, Any] = {
        "actor": f"channel:{ACCOUNT}",
        "subject": ACCOUNT,
        "outcome": "ok",
    }
    values.update(fields)
    return audit.AuditEvent(at=at, action=action, **values)


def stream_end(at: float, stream: int, how: str, **details: Any) -> audit.AuditEvent:
    return event(
        "stream.end",
        at=at,
        reason=how,
        session_id=SID,
        details={"peer": PEER, "stream": stream, "service": "declare", **details},
    )


def test_byte_and_duration_texts_are_for_people() -> None:
    assert [byte_text(n) for n in (0, 1023, 5000, 3 * 1024 * 1024)] == [
        "0 B",
        "1023 B",
        "4.9 KiB",
        "3.0 MiB",
    ]
    assert [duration_text(ms) for ms in (350, 12_040, 185_000, 3_720_000)] == [
        "0.35 秒",
        "12.0 秒",
        "3 分 05 秒",
        "1 时 02 分",
    ]


def test_a_login_names_each_factors_outcome_and_the_tls_facts() -> None:
    details = {"factor_certificate": "ok", "factor_password": "ok", "factor_code": "reused"}
    assert factors_text(details) == "证书：通过 · 密码：通过 · 动态口令：重复使用"
    assert tls_text(TLS) == (
        f"TLSv1.3 · TLS_AES_256_GCM_SHA384 · 证书 0a1b（CN={ACCOUNT},O=ssgate）"
    )
    e = event("login", at=NOW, outcome="refused", reason="otp-reused", details={**details, **TLS})
    assert summary_text(e) == f"{factors_text(details)} ｜ {tls_text(TLS)}"
    # An event written before the gateway recorded factors has nothing to summarise.
    assert summary_text(event("login", at=NOW, details={"peer": PEER})) == ""


def test_a_stream_end_says_service_bytes_duration_and_how_it_ended() -> None:
    e = stream_end(NOW, 1, "client-cancelled", bytes_in=512, bytes_out=5000, duration_ms=2500)
    assert (
        summary_text(e, REASON_WORDS) == "declare · 上行 512 B · 下行 4.9 KiB · 2.5 秒 · 单位端取消"
    )
    assert summary_text(e).endswith(" · client-cancelled")  # no words: the code


def test_the_timeline_gathers_streams_tls_and_streams_not_itemised(engine: Engine) -> None:
    with engine.begin() as conn:
        _sessions.start_session(
            conn,
            session_id=SID,
            account=ACCOUNT,
            unit_code="12345678",
            peer=PEER,
            cert_serial="0a1b",
            node="n",
            now=NOW,
            max_concurrent=5,
        )
        for e in (
            event(
                "login",
                at=NOW - 10,
                outcome="refused",
                reason="bad-password",
                details={"peer": PEER, "factor_password": "wrong", **TLS},
            ),
            event(
                "login",
                at=NOW,
                session_id=SID,
                details={"peer": PEER, "factor_password": "ok", **TLS},
            ),
            stream_end(NOW + 3, 1, "finished", bytes_in=18, bytes_out=5000, duration_ms=2000),
            stream_end(NOW + 9, 3, "session-ended", bytes_in=3, bytes_out=0, duration_ms=10),
            event(
                "session.end",
                at=NOW + 9,
                reason="officer-kill",
                session_id=SID,
                details={"streams_not_itemised": 7},
            ),
        ):
            audit.append(conn, e)
        timeline = session_timeline(conn, gateway.SessionRegistryView(), SID)
    assert timeline is not None
    assert [
        (s.stream, s.bytes_in, s.bytes_out, s.duration_text, s.end_text) for s in timeline.streams
    ] == [
        (1, 18, 5000, "2.0 秒", "正常结束"),
        (3, 3, 0, "0.01 秒", "随会话结束"),
    ]
    assert timeline.tls is not None
    assert (timeline.tls.version, timeline.tls.cipher, timeline.tls.certificate_serial) == (
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        "0a1b",
    )
    assert timeline.streams_not_itemised == 7
    summaries = [(e.action, e.summary) for e in timeline.entries]
    assert summaries[0][1].startswith("密码：错误 ｜ TLSv1.3")  # the refused attempt
    assert ("stream.end", "declare · 上行 18 B · 下行 4.9 KiB · 2.0 秒 · 正常结束") in summaries
    assert [e.what for e in timeline.entries].count("数据流结束") == 2
