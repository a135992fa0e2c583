"""Exports of audit records: JSON lines, CSV and RFC 5424 syslog.

Each function is lazy: it takes any iterable of records and yields one string per
record (CSV: the header first), each ending with its line terminator, ready for
``file.writelines``.  JSON lines is the exact form (``at`` as the float that was
hashed, ``details`` as an object, both hashes), from which the chain can be checked
again; CSV is for spreadsheets; syslog ships records off the host, which also anchors
the chain outside the database.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from audit._chain import canonical_details
from audit._events import AuditRecord

FIELDS: Final = (
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
)


def _iso_time(at: float) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-22T08:00:00.000000Z``."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_dict(record: AuditRecord) -> dict[str, Any]:
    """A record as :data:`FIELDS` name it, as JSON lines carry it."""
    event = record.event
    return {
        "seq": record.seq,
        "time": _iso_time(event.at),
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "outcome": event.outcome,
        "reason": event.reason,
        "unit": event.unit,
        "session_id": event.session_id,
        "details": dict(event.details),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


# -- JSON lines -----------------------------------------------------------------------

# json.dumps leaves these unescaped with ensure_ascii=False, yet str.splitlines() and
# some log shippers break lines on them.  They can only occur inside JSON strings here,
# where the \\u form is equally valid.
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def export_jsonl(records: Iterable[AuditRecord]) -> Iterator[str]:
    """One JSON object per record and line, UTF-8 text kept readable (not \\u-escaped)."""
    for record in records:
        line = json.dumps(
            record_dict(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        yield line.translate(_JSON_LINE_BREAKS) + "\n"


# -- CSV ------------------------------------------------------------------------------

# A spreadsheet runs a cell starting with one of these as a formula; an attacker who
# controls a subject or a reason (a login name, say) could otherwise plant one for the
# officer to open.  OWASP: prefix such cells with an apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: str) -> str:
    """*value* as a CSV cell no spreadsheet runs as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


_cell = spreadsheet_cell


def export_csv(records: Iterable[AuditRecord]) -> Iterator[str]:
    """RFC 4180 CSV with a header row; each yielded string is one record (CRLF-ended).

    Commas, quotes and line breaks inside a value are quoted as RFC 4180 says.  Text
    cells that a spreadsheet would evaluate as a formula are prefixed with ``'``, so
    use JSON lines when the exact values matter.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def flush(row: list[str]) -> str:
        writer.writerow(row)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield flush(list(FIELDS))
    for record in records:
        event = record.event
        yield flush(
            [
                str(record.seq),
                _iso_time(event.at),
                repr(event.at),
                _cell(event.actor),
                _cell(event.action),
                _cell(event.subject),
                event.outcome,
                _cell(event.reason),
                _cell(event.unit),
                _cell(event.session_id),
                canonical_details(event.details),
                record.prev_hash,
                record.hash,
            ]
        )


# -- syslog (RFC 5424) ----------------------------------------------------------------

FACILITY_LOG_AUDIT = 13  # RFC 5424 table 1: "log audit"
# Private SD-IDs are NAME@<IANA private enterprise number>.  32473 is the number IANA
# reserves for documentation (RFC 5612): an operator with its own number passes sd_id.
DEFAULT_SD_ID = "ssgate@32473"

_SEVERITY = {"ok": 6, "refused": 4, "failed": 3}  # informational, warning, error
_BOM = "\ufeff"  # RFC 5424 6.4: a UTF-8 MSG starts with the byte order mark
_NILVALUE = "-"


def _control_escapes() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]:
        table[code] = f"\\u{code:04x}"
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    return table


# Line breaks and other controls would split a record or corrupt a terminal; RFC 5424
# defines no escape for them, so they are written visibly and the record stays one line.
_CONTROLS = _control_escapes()


def _sd_value(value: str) -> str:
    """PARAM-VALUE escaping (RFC 5424 6.3.3): backslash, quote and ] get a backslash."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return escaped.translate(_CONTROLS)


def _printusascii(value: str, what: str, limit: int) -> str:
    if not 1 <= len(value) <= limit or not all(33 <= ord(c) <= 126 for c in value):
        raise ValueError(
            f"syslog {what} must be 1 to {limit} printable ASCII characters without "
            f"spaces, got {value!r}"
        )
    return value


def _sd_name(value: str, what: str) -> str:
    _printusascii(value, what, 32)
    if any(c in '= ]"' for c in value):
        raise ValueError(f"syslog {what} must not contain '=', ']' or '\"', got {value!r}")
    return value


def export_syslog(
    records: Iterable[AuditRecord],
    hostname: str,
    app_name: str = "ssgate",
    *,
    facility: int = FACILITY_LOG_AUDIT,
    sd_id: str = DEFAULT_SD_ID,
) -> Iterator[str]:
    """One RFC 5424 message per record and line, every field in structured data.

    ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [sd_id seq=… at=… … hash=…] BOM msg``
    with severity from the outcome (ok: informational, refused: warning, failed:
    error), MSGID the action when it fits, and a short human sentence as MSG.  Each
    line ends with ``\\n`` (RFC 6587 non-transparent framing, or a file).  The
    structured data carries ``at`` exactly and both hashes, so a receiver can re-check
    the chain.  Raises ``ValueError`` for a hostname, app name, facility or SD-ID that
    RFC 5424 does not allow.
    """
    host = _printusascii(hostname, "hostname", 255)
    app = _printusascii(app_name, "app_name", 48)
    sd_name = _sd_name(sd_id, "SD-ID")
    if isinstance(facility, bool) or not isinstance(facility, int) or not 0 <= facility <= 23:
        raise ValueError(f"syslog facility must be 0 to 23, got {facility!r}")
    return _syslog_lines(records, host, app, facility, sd_name)


def _syslog_lines(
    records: Iterable[AuditRecord], host: str, app: str, facility: int, sd_name: str
) -> Iterator[str]:
    for record in records:
        event = record.event
        pri = facility * 8 + _SEVERITY[event.outcome]
        try:
            msgid = _printusascii(event.action, "MSGID", 32)
        except ValueError:
            msgid = _NILVALUE
        params = {
            "seq": str(record.seq),
            "at": repr(event.at),
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "outcome": event.outcome,
            "reason": event.reason,
            "unit": event.unit,
            "session_id": event.session_id,
            "details": canonical_details(event.details),
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        }
        sd = " ".join(f'{name}="{_sd_value(value)}"' for name, value in params.items())
        message = f"{event.actor} {event.action} {event.subject}: {event.outcome}"
        if event.reason:
            message += f" ({event.reason})"
        yield (
            f"<{pri}>1 {_iso_time(event.at)} {host} {app} {_NILVALUE} {msgid} "
            f"[{sd_name} {sd}] {_BOM}{message.translate(_CONTROLS)}\n"
        )
