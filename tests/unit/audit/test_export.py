"""Exports: JSON lines read back exactly, CSV quotes per RFC 4180, syslog is RFC 5424."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

import pytest

from audit import GENESIS_HASH, AuditEvent, AuditRecord, export_csv, export_jsonl, export_syslog
from audit._chain import event_hash

AWKWARD = 'comma, "quote", back\\slash ]bracket[\nnew line\r\n and 中文 \u2028 sep'


def chain(*events: AuditEvent) -> list[AuditRecord]:
    records = []
    prev = GENESIS_HASH
    for seq, e in enumerate(events, start=1):
        h = event_hash(seq, e, prev)
        records.append(AuditRecord(seq=seq, event=e, prev_hash=prev, hash=h))
        prev = h
    return records


RECORDS = chain(
    AuditEvent(
        at=1_700_000_000.123456,
        actor="33068212345678@sxlss",
        action="login",
        subject="33068212345678@sxlss",
        outcome="ok",
        unit="12345678",
        session_id="s-1",
        details={"ip": "192.0.2.7", "attempt": 1, "ratio": 0.1, "otp_ok": True, "none": None},
    ),
    AuditEvent(
        at=1_700_000_001.0,
        actor="=cmd|' /C calc'!A0",
        action="declare.submit",
        subject="-2+3",
        outcome="refused",
        reason=AWKWARD,
        details={"note": AWKWARD},
    ),
    AuditEvent(
        at=0.30000000000000004,
        actor="officer",
        action="session.kill",
        subject="s-1",
        outcome="failed",
        reason="@SUM(1)",
    ),
)


# -- JSON lines -----------------------------------------------------------------------


def test_jsonl_is_one_line_per_record_that_parses_back_to_the_exact_values() -> None:
    lines = list(export_jsonl(RECORDS))
    assert len(lines) == len(RECORDS)
    for line, record in zip(lines, RECORDS, strict=True):
        assert line.endswith("\n")
        assert len(line.splitlines()) == 1, "no raw line break may survive inside a value"
        data = json.loads(line)
        e = record.event
        assert data["seq"] == record.seq
        assert data["at"] == e.at  # the exact double, as hashed
        assert (data["actor"], data["action"], data["subject"], data["outcome"]) == (
            e.actor,
            e.action,
            e.subject,
            e.outcome,
        )
        assert (data["reason"], data["unit"], data["session_id"]) == (
            e.reason,
            e.unit,
            e.session_id,
        )
        assert data["details"] == dict(e.details)
        assert (data["prev_hash"], data["hash"]) == (record.prev_hash, record.hash)


def test_jsonl_keeps_chinese_text_readable() -> None:
    assert "中文" in "".join(export_jsonl(RECORDS))


def test_jsonl_records_can_be_rehashed_by_an_outside_verifier() -> None:
    prev = GENESIS_HASH
    for line in export_jsonl(RECORDS):
        data = json.loads(line)
        fields = {k: data[k] for k in ("at", "actor", "action", "subject", "outcome")}
        e = AuditEvent(
            **fields,
            reason=data["reason"],
            unit=data["unit"],
            session_id=data["session_id"],
            details=data["details"],
        )
        assert data["prev_hash"] == prev
        assert event_hash(data["seq"], e, prev) == data["hash"]
        prev = data["hash"]


def test_jsonl_time_is_rfc3339_utc() -> None:
    first = json.loads(next(export_jsonl(RECORDS)))
    assert first["time"] == "2023-11-14T22:13:20.123456Z"


def test_exports_are_lazy_and_accept_any_iterable() -> None:
    def one_by_one() -> Iterator[AuditRecord]:
        yield from RECORDS

    assert len(list(export_jsonl(one_by_one()))) == 3
    assert len(list(export_csv(one_by_one()))) == 4
    assert len(list(export_syslog(one_by_one(), "gw1"))) == 3
    assert list(export_jsonl([])) == []


# -- CSV ------------------------------------------------------------------------------


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_starts_with_a_header_and_has_one_row_per_record() -> None:
    chunks = list(export_csv(RECORDS))
    rows = read_csv("".join(chunks))
    assert rows[0] == [
        "seq",
        "time",
        "at",
        "actor",
        "action",
        "subject",
        "outcome",
        "reason",
        "unit",
        "session_id",
        "details",
        "prev_hash",
        "hash",
    ]
    assert len(rows) == 1 + len(RECORDS)
    assert len(chunks) == 1 + len(RECORDS)
    assert all(chunk.endswith("\r\n") for chunk in chunks)


def test_csv_quotes_commas_quotes_and_newlines_so_they_read_back_unchanged() -> None:
    header, _, row = read_csv("".join(export_csv(RECORDS)))[:3]
    second = dict(zip(header, row, strict=True))
    assert second["reason"] == AWKWARD
    assert json.loads(second["details"]) == {"note": AWKWARD}
    raw = "".join(export_csv(RECORDS))
    assert '"comma, ""quote"", back\\slash' in raw


def test_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas() -> None:
    header, *body = read_csv("".join(export_csv(RECORDS)))
    rows = [dict(zip(header, row, strict=True)) for row in body]
    assert rows[1]["actor"] == "'=cmd|' /C calc'!A0"
    assert rows[1]["subject"] == "'-2+3"
    assert rows[2]["reason"] == "'@SUM(1)"
    assert rows[0]["actor"] == "33068212345678@sxlss"  # ordinary text is left alone
    assert rows[0]["at"] == "1700000000.123456"
    assert rows[2]["at"] == "0.30000000000000004"


# -- syslog (RFC 5424) ----------------------------------------------------------------

# HEADER SP STRUCTURED-DATA SP MSG, RFC 5424 section 6.
RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 "
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) "
    r"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) "
    r"(?P<sd>\[.*\]) "
    r"\ufeff(?P<msg>[^\n]*)\n\Z",
    re.DOTALL,
)


def parse_sd(sd: str) -> tuple[str, dict[str, str]]:
    """A strict reader for one SD-ELEMENT, undoing RFC 5424 6.3.3 escapes."""
    assert sd[0] == "["
    pos = sd.index(" ")
    sd_id = sd[1:pos]
    params: dict[str, str] = {}
    while sd[pos] == " ":
        eq = sd.index("=", pos)
        name = sd[pos + 1 : eq]
        assert re.fullmatch(r"[!-~]{1,32}", name) and not set(name) & set('= ]"'), name
        assert sd[eq + 1] == '"'
        i = eq + 2
        value = []
        while sd[i] != '"':
            if sd[i] == "\\" and sd[i + 1] in '"\\]':
                value.append(sd[i + 1])
                i += 2
            else:
                assert sd[i] != "]", "an unescaped ] inside a PARAM-VALUE"
                value.append(sd[i])
                i += 1
        params[name] = "".join(value)
        pos = i + 1
    assert sd[pos:] == "]", "exactly one SD-ELEMENT"
    return sd_id, params


def test_syslog_lines_are_rfc5424_shaped() -> None:
    lines = list(export_syslog(RECORDS, hostname="gw1.example.net"))
    assert len(lines) == len(RECORDS)
    for line in lines:
        m = RFC5424.match(line)
        assert m, line
        assert m["host"] == "gw1.example.net"
        assert m["app"] == "ssgate"
        assert m["procid"] == "-"
    first = RFC5424.match(lines[0])
    assert first is not None
    assert first["ts"] == "2023-11-14T22:13:20.123456Z"
    assert first["msgid"] == "login"
    assert first["msg"] == "33068212345678@sxlss login 33068212345678@sxlss: ok"


def test_syslog_priority_is_log_audit_facility_with_severity_from_the_outcome() -> None:
    pris = [int(m["pri"]) for m in map(RFC5424.match, export_syslog(RECORDS, "gw1")) if m]
    assert pris == [13 * 8 + 6, 13 * 8 + 4, 13 * 8 + 3]
    custom = RFC5424.match(next(export_syslog(RECORDS, "gw1", facility=10)))
    assert custom is not None
    assert int(custom["pri"]) == 10 * 8 + 6


def test_syslog_structured_data_escapes_bracket_quote_and_backslash() -> None:
    line = list(export_syslog(RECORDS, "gw1"))[1]
    m = RFC5424.match(line)
    assert m is not None
    assert "\\]bracket[" in m["sd"] and '\\"quote\\"' in m["sd"] and "back\\\\slash" in m["sd"]
    sd_id, params = parse_sd(m["sd"])
    assert sd_id == "ssgate@32473"
    # Line breaks are written visibly (the record stays one line); all else reads back.
    assert params["reason"] == AWKWARD.replace("\n", "\\n").replace("\r", "\\r").replace(
        "\u2028", "\\u2028"
    )
    assert params["actor"] == "=cmd|' /C calc'!A0"
    assert params["at"] == "1700000001.0"
    assert params["seq"] == "2"
    assert params["hash"] == RECORDS[1].hash
    assert params["prev_hash"] == RECORDS[0].hash


def test_syslog_structured_data_carries_the_details_as_canonical_json() -> None:
    m = RFC5424.match(next(export_syslog(RECORDS, "gw1")))
    assert m is not None
    _, params = parse_sd(m["sd"])
    assert json.loads(params["details"]) == dict(RECORDS[0].event.details)
    assert params["session_id"] == "s-1"
    assert params["unit"] == "12345678"


def test_syslog_message_with_line_breaks_stays_on_one_line() -> None:
    for line in export_syslog(RECORDS, "gw1"):
        assert line.count("\n") == 1 and line.endswith("\n")
        assert "\r" not in line and "\u2028" not in line


def test_syslog_msgid_is_nil_when_the_action_does_not_fit() -> None:
    e = AuditEvent(at=1.0, actor="a", action="x" * 33, subject="s", outcome="ok")
    m = RFC5424.match(next(export_syslog(chain(e), "gw1")))
    assert m is not None
    assert m["msgid"] == "-"


@pytest.mark.parametrize("hostname", ["", "has space", "bad\nhost", "主机", "x" * 256])
def test_syslog_refuses_a_hostname_rfc5424_does_not_allow(hostname: str) -> None:
    with pytest.raises(ValueError, match="hostname"):
        export_syslog(RECORDS, hostname)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"app_name": "a b"}, "app_name"),
        ({"app_name": "x" * 49}, "app_name"),
        ({"facility": 24}, "facility"),
        ({"sd_id": "bad=id@1"}, "SD-ID"),
        ({"sd_id": "x" * 33}, "SD-ID"),
    ],
)
def test_syslog_refuses_other_invalid_header_parts(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        export_syslog(RECORDS, "gw1", **kwargs)  # type: ignore[arg-type]
