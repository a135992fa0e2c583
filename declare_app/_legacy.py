"""Opening data from the old system (issue 14): ``ssgate declare import-legacy FILE``.

One table (CSV in UTF-8 or GB18030, or the first sheet of an .xlsx — read by the batch
import's own reader, :mod:`declare_app._batch`, with its size, zip-bomb and formula
checks), one header row, then one record per line.  The ``record`` column says what the
line is; the other columns carry the core-system names of DOMAIN §2.1 where it has
one, and plain names where it has none (documented in ``docs/legacy-import.md``):

========== ===================================================================
record     columns (required; *optional*)
========== ===================================================================
person     aac001 aac002 aac003 aac004 aac006 staff_kind; *aac049*
enrolment  aac001 aab001 aae140 aac030 base; *end_month* *aac031*
contribution aac001 aab001 aae140 aae003 base employer employee; *to_account* *paid_on*
account    aac001; balance_date + balance and/or deemed_months
========== ===================================================================

Validation gives one result per line (its number in the file and every problem), and
the import is all or nothing: a file with any refused line writes nothing, as the
batch import does.  Accepted, everything is written in one transaction: persons,
enrolments (each with its contribution plan, so the ledger's monthly close continues
an open one), the contribution history as paid lines (they credit the pension account
as paid lines always have), and the account rows (``legacy_accounts``).

Messages name line numbers, columns and codes, never a person's number or name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from declare_app._batch import (
    _OLE2_MAGIC,
    _XLSX_MAGIC,
    MAX_CELL_CHARS,
    MAX_FILE_BYTES,
    MAX_LINES,
    BatchFileError,
    _blank,
    _clean_header,
    _csv_rows,
    _Formula,
    _text,
    _xlsx_rows,
)
from declare_app._contributions import Insurance
from declare_app._identifiers import IdentifierError
from declare_app._person_id import Gender, parse_person_id
from declare_app._retirement import YearMonth
from declare_app._schema import (
    contribution_plans,
    contributions,
    enrolments,
    legacy_accounts,
    persons,
    units,
)

RECORDS: Final = ("person", "enrolment", "contribution", "account")

# column -> (meaning, records that use it)
COLUMNS: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "record": ("person | enrolment | contribution | account", RECORDS),
    "aac001": ("个人编号", RECORDS),
    "aac002": ("公民身份号码", ("person",)),
    "aac003": ("姓名", ("person",)),
    "aac004": ("性别 1 男 / 2 女", ("person",)),
    "aac006": ("出生日期 YYYY-MM-DD", ("person",)),
    "staff_kind": ("人员身份 A 干部 / B 工人", ("person",)),
    "aac049": ("首次参保时间 YYYY-MM", ("person",)),
    "aab001": ("单位编号 (a registered unit)", ("enrolment", "contribution")),
    "aae140": ("险种类型 110/210/310/410/510", ("enrolment", "contribution")),
    "aac030": ("本次参保时间 YYYY-MM", ("enrolment",)),
    "end_month": ("last month contributed YYYY-MM (empty: still contributing)", ("enrolment",)),
    "aac031": ("个人缴费状态 1/2/3", ("enrolment",)),
    "base": ("缴费基数, yuan", ("enrolment", "contribution")),
    "aae003": ("费款所属期 YYYY-MM", ("contribution",)),
    "employer": ("unit part, yuan", ("contribution",)),
    "employee": ("individual part, yuan", ("contribution",)),
    "to_account": ("划入个人账户, yuan (110; default the individual part)", ("contribution",)),
    "paid_on": ("到账日期 YYYY-MM-DD", ("contribution",)),
    "balance_date": ("balance at this year end, YYYY-12-31", ("account",)),
    "balance": ("养老个人帐户累计储存额 at balance_date, yuan", ("account",)),
    "deemed_months": ("视同缴费月数", ("account",)),
}
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "person": ("aac001", "aac002", "aac003", "aac004", "aac006", "staff_kind"),
    "enrolment": ("aac001", "aab001", "aae140", "aac030", "base"),
    "contribution": ("aac001", "aab001", "aae140", "aae003", "base", "employer", "employee"),
    "account": ("aac001",),
}
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_PERSON_NUMBER = re.compile(r"[0-9A-Za-z]{1,20}")
_UNIT = re.compile(r"\d{8}")
_MONEY = re.compile(r"\d{1,12}(\.\d{1,2})?")
_CHUNK = 500


@dataclass
class LegacyLine:
    """One record of the file and what validation found wrong with it."""

    number: int
    record: str
    values: dict[str, str]
    problems: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class LegacyImport:
    """The outcome: every line's result; ``written`` only when all were accepted."""

    lines: tuple[LegacyLine, ...]
    written: bool
    counts: Mapping[str, int]

    @property
    def refused(self) -> int:
        return sum(1 for line in self.lines if not line.accepted)


# -- reading ---------------------------------------------------------------------------


def parse_legacy(data: bytes) -> tuple[LegacyLine, ...]:
    """The records of a file; :class:`BatchFileError` refuses the whole file."""
    if len(data) > MAX_FILE_BYTES:
        raise BatchFileError("too-large", f"file over {MAX_FILE_BYTES // 1024 // 1024} MiB")
    if not data.strip():
        raise BatchFileError("no-lines", "the file is empty")
    if data.startswith(_OLE2_MAGIC):
        raise BatchFileError("bad-file", "an old .xls file: save it as .xlsx or CSV")
    rows = _xlsx_rows(data) if data.startswith(_XLSX_MAGIC) else _csv_rows(data)
    return _records(rows)


def _records(rows: Iterator[tuple[int, list[Any]]]) -> tuple[LegacyLine, ...]:
    header: list[str | None] | None = None
    out: list[LegacyLine] = []
    for number, cells in rows:
        if all(_blank(c) for c in cells):
            continue
        if header is None:
            header = _header(cells)
            continue
        if len(out) >= MAX_LINES * 10:
            raise BatchFileError("too-many-lines", f"more than {MAX_LINES * 10} records")
        out.append(_record(number, header, cells))
    if header is None or not out:
        raise BatchFileError("no-lines", "no record after the header")
    return tuple(out)


def _header(cells: list[Any]) -> list[str | None]:
    header: list[str | None] = []
    for cell in cells:
        name = _clean_header(_text(cell, None)).lower()
        if not name:
            header.append(None)
            continue
        if name not in COLUMNS:
            raise BatchFileError("bad-header", f"unknown column {name[:30]!r} in the header")
        if name in header:
            raise BatchFileError("bad-header", f"column {name!r} appears twice in the header")
        header.append(name)
    if "record" not in header or "aac001" not in header:
        raise BatchFileError("bad-header", "the header needs the columns record and aac001")
    return header


def _record(number: int, header: list[str | None], cells: list[Any]) -> LegacyLine:
    values: dict[str, str] = {}
    problems: list[str] = []
    for index, cell in enumerate(cells):
        name = header[index] if index < len(header) else None
        if name is None:
            if not _blank(cell):
                problems.append(f"column {index + 1} has a value but no header")
            continue
        if isinstance(cell, _Formula):
            problems.append(f"{name} is a formula: paste values only")
            continue
        text = _text(cell, name)
        if len(text) > MAX_CELL_CHARS:
            problems.append(f"{name} is longer than {MAX_CELL_CHARS} characters")
        elif text:
            values[name] = text
    record = values.pop("record", "").lower()
    if record not in RECORDS:
        problems.append(f"record must be one of {', '.join(RECORDS)}")
    else:
        missing = [c for c in _REQUIRED[record] if c not in values]
        if missing:
            problems.append(f"{', '.join(missing)} required for a {record} record")
        extra = sorted(c for c in values if record not in COLUMNS[c][1])
        if extra:
            problems.append(f"{', '.join(extra)} not used by a {record} record")
    return LegacyLine(number, record, values, problems)


# -- checking one value ----------------------------------------------------------------


def _month(line: LegacyLine, name: str) -> YearMonth | None:
    text = line.values.get(name)
    if text is None:
        return None
    m = _MONTH.fullmatch(text)
    if m is None or not 1 <= int(m[2]) <= 12 or not 1950 <= int(m[1]) <= 2200:
        line.problems.append(f"{name} {text!r} is not a month YYYY-MM")
        return None
    return YearMonth(int(m[1]), int(m[2]))


def _day(line: LegacyLine, name: str) -> date | None:
    text = line.values.get(name)
    if text is None:
        return None
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        line.problems.append(f"{name} {text!r} is not a date YYYY-MM-DD")
        return None


def _fen(line: LegacyLine, name: str) -> int | None:
    text = line.values.get(name)
    if text is None:
        return None
    try:
        if not _MONEY.fullmatch(text):
            raise InvalidOperation
        return int(Decimal(text) * 100)
    except InvalidOperation:
        line.problems.append(f"{name} {text!r} is not an amount in yuan (up to 2 decimals)")
        return None


def _insurance(line: LegacyLine) -> Insurance | None:
    try:
        return Insurance(line.values.get("aae140", ""))
    except ValueError:
        line.problems.append("aae140 must be 110, 210, 310, 410 or 510")
        return None


def _text_of(month: YearMonth) -> str:
    return f"{month.year:04d}-{month.month:02d}"


# -- validation against the file and the database -------------------------------------


@dataclass
class _Plan:
    """What an accepted file writes, built while checking."""

    persons: list[dict[str, Any]] = field(default_factory=list)
    enrolments: list[dict[str, Any]] = field(default_factory=list)
    contributions: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)


def _existing(conn: Connection, column: Any, values: Sequence[str]) -> set[str]:
    found: set[str] = set()
    wanted = sorted(set(values))
    for i in range(0, len(wanted), _CHUNK):
        found.update(
            conn.execute(select(column).where(column.in_(wanted[i : i + _CHUNK]))).scalars()
        )
    return found


def _check_persons(
    conn: Connection,
    lines: Sequence[LegacyLine],
    plan: _Plan,
    person_numbers: list[str],
    *,
    today: date,
    now: float,
) -> set[str]:
    """Check the person records; the 个人编号 known afterwards (database and file)."""
    known = _existing(conn, persons.c.person_number, person_numbers)
    rows: dict[int, dict[str, Any]] = {}
    for line in lines:
        number = line.values.get("aac001", "")
        if number and not _PERSON_NUMBER.fullmatch(number):
            line.problems.append("aac001 must be 1-20 letters or digits")
        if line.record == "person" and line.accepted:
            row = _person(line, today=today, now=now)
            if row is not None:
                rows[line.number] = row
    # ID numbers as stored (a 15-digit one upgraded), so a duplicate is found either way
    ids_known = _existing(conn, persons.c.id_number, [r["id_number"] for r in rows.values()])
    in_file: set[str] = set()
    ids_in_file: set[str] = set()
    for line in lines:
        if line.record != "person":
            continue
        number = line.values.get("aac001", "")
        if number in known or number in in_file:
            line.problems.append("aac001 is already a person (in the database or above)")
        in_file.add(number)
        found = rows.get(line.number)
        if found is None:
            continue
        if found["id_number"] in ids_known or found["id_number"] in ids_in_file:
            line.problems.append("aac002 is already a person (in the database or above)")
        ids_in_file.add(found["id_number"])
        if line.accepted:
            plan.persons.append(found)
    return known | in_file


def validate_legacy(
    conn: Connection,
    lines: Sequence[LegacyLine],
    *,
    today: date,
    now: float,
    import_id: str,
    actor: str,
) -> _Plan:
    """Check every line (appending to its ``problems``) and build what to write."""
    plan = _Plan()
    person_numbers = [ln.values["aac001"] for ln in lines if "aac001" in ln.values]
    persons_here = _check_persons(conn, lines, plan, person_numbers, today=today, now=now)
    unit_codes = _existing(conn, units.c.code, [ln.values.get("aab001", "") for ln in lines])
    accounts_known = _existing(conn, legacy_accounts.c.person_number, person_numbers)
    current = YearMonth.of(today)
    open_here: dict[tuple[str, str], list[tuple[YearMonth, YearMonth | None]]] = {}
    lines_here: set[tuple[str, str, str, str]] = set()
    accounts_here: set[str] = set()
    for line in lines:
        if line.record == "person" or not line.accepted:
            continue
        number = line.values["aac001"]
        if number not in persons_here:
            line.problems.append("aac001 is no person in the database nor in a person record")
        if line.record in ("enrolment", "contribution"):
            unit = line.values.get("aab001", "")
            if not _UNIT.fullmatch(unit) or unit not in unit_codes:
                line.problems.append("aab001 is not a registered unit (ssgate units register)")
        if line.record == "enrolment":
            _enrolment(line, plan, open_here, now=now, import_id=import_id)
        elif line.record == "contribution":
            _contribution(line, plan, lines_here, current=current)
        elif line.record == "account":
            if number in accounts_known or number in accounts_here:
                line.problems.append("aac001 already has an account record (imported before?)")
            accounts_here.add(number)
            _account(line, plan, now=now, import_id=import_id, actor=actor)
    _check_open_enrolments(conn, lines, plan)
    _check_existing_lines(conn, lines, plan)
    return plan


def _person(line: LegacyLine, *, today: date, now: float) -> dict[str, Any] | None:
    v = line.values
    gender = {"1": Gender.MALE, "2": Gender.FEMALE}.get(v["aac004"])
    if gender is None:
        line.problems.append("aac004 must be 1 (男) or 2 (女)")
    birth = _day(line, "aac006")
    try:
        pid = parse_person_id(
            v["aac002"], today=today, declared_gender=gender, declared_birth_date=birth
        )
    except IdentifierError as e:
        line.problems.append(
            "aac002: " + "; ".join(f.rule for f in e.findings if f.severity == "error")
        )
        return None
    if v["staff_kind"] not in ("A", "B"):
        line.problems.append("staff_kind must be A (干部) or B (工人)")
    if len(v["aac003"]) > 100:
        line.problems.append("aac003 is longer than 100 characters")
    first = _month(line, "aac049")
    if not line.accepted or gender is None:
        return None
    return {
        "person_number": v["aac001"],
        "id_number": pid.number,
        "id_type": "01",
        "name": v["aac003"],
        "gender": v["aac004"],
        "birth_date": pid.birth_date,
        "staff_kind": v["staff_kind"],
        "first_insured_month": None if first is None else _text_of(first),
        "created_at": now,
        "updated_at": now,
    }


def _enrolment(
    line: LegacyLine,
    plan: _Plan,
    open_here: dict[tuple[str, str], list[tuple[YearMonth, YearMonth | None]]],
    *,
    now: float,
    import_id: str,
) -> None:
    v = line.values
    insurance = _insurance(line)
    start = _month(line, "aac030")
    end = _month(line, "end_month")
    base = _fen(line, "base")
    status = v.get("aac031", "1" if "end_month" not in v else "3")
    if status not in ("1", "2", "3"):
        line.problems.append("aac031 must be 1 (参保缴费), 2 (暂停) or 3 (终止)")
    elif (status == "1") != ("end_month" not in v):
        line.problems.append("aac031 1 needs no end_month; 2 or 3 need one")
    if start is not None and end is not None and end < start:
        line.problems.append("end_month is before aac030")
    if not line.accepted or insurance is None or start is None or base is None:
        return
    key = (v["aac001"], insurance.value)
    for other_start, other_end in open_here.get(key, []):
        if (end is None or other_start <= end) and (other_end is None or start <= other_end):
            line.problems.append("overlaps another enrolment of the person in aae140 above")
            return
    open_here.setdefault(key, []).append((start, end))
    plan.enrolments.append(
        {
            "person_number": v["aac001"],
            "unit_code": v["aab001"],
            "insurance": insurance.value,
            "status": status,
            "start_month": _text_of(start),
            "end_month": None if end is None else _text_of(end),
            "base_fen": base,
            "updated_at": now,
            "_line": line.number,
            "_import": import_id,
        }
    )


def _contribution(
    line: LegacyLine, plan: _Plan, lines_here: set[tuple[str, str, str, str]], *, current: YearMonth
) -> None:
    v = line.values
    insurance = _insurance(line)
    month = _month(line, "aae003")
    base, employer, employee = _fen(line, "base"), _fen(line, "employer"), _fen(line, "employee")
    to_account = _fen(line, "to_account")
    paid_on = _day(line, "paid_on")
    if month is not None and month >= current:
        line.problems.append("aae003 is not a past month: the ledger books it")
    if insurance is not None and insurance is not Insurance.PENSION and to_account:
        line.problems.append("to_account applies to pension (110) only")
    if insurance is not None and not insurance.employee_pays and employee:
        line.problems.append(f"employee must be 0: employees pay no {insurance.value}")
    if not line.accepted or insurance is None or month is None:
        return
    key = (v["aac001"], v["aab001"], insurance.value, _text_of(month))
    if key in lines_here:
        line.problems.append("the same person, unit, aae140 and aae003 appear above")
        return
    lines_here.add(key)
    if to_account is None:
        to_account = employee if insurance is Insurance.PENSION else 0
    plan.contributions.append(
        {
            "person_number": v["aac001"],
            "unit_code": v["aab001"],
            "insurance": insurance.value,
            "month": _text_of(month),
            "base_fen": base,
            "employer_fen": employer,
            "employee_fen": employee,
            "to_account_fen": to_account,
            "status": "paid",
            "paid_on": paid_on,
            "_line": line.number,
        }
    )


def _account(line: LegacyLine, plan: _Plan, *, now: float, import_id: str, actor: str) -> None:
    v = line.values
    on = _day(line, "balance_date")
    balance = _fen(line, "balance")
    if ("balance_date" in v) != ("balance" in v):
        line.problems.append("balance_date and balance go together")
    if on is not None and (on.month, on.day) != (12, 31):
        line.problems.append("balance_date must be a year end (YYYY-12-31): interest is yearly")
    deemed: int | None = None
    if "deemed_months" in v:
        text = v["deemed_months"]
        if not (text.isascii() and text.isdigit() and int(text) <= 1200):
            line.problems.append("deemed_months must be a whole number of months, 0-1200")
        else:
            deemed = int(text)
    if "balance" not in v and "deemed_months" not in v:
        line.problems.append("an account record needs balance_date + balance, or deemed_months")
    if not line.accepted:
        return
    plan.accounts.append(
        {
            "person_number": v["aac001"],
            "balance_date": on,
            "balance_fen": balance,
            "deemed_months": deemed,
            "import_id": import_id,
            "imported_at": now,
            "imported_by": actor,
        }
    )


def _check_open_enrolments(conn: Connection, lines: Sequence[LegacyLine], plan: _Plan) -> None:
    """At most one open enrolment per person and insurance type in the pool (V-DUP-01)."""
    opening = [r for r in plan.enrolments if r["end_month"] is None]
    e = enrolments.c
    found: set[tuple[str, str]] = set()
    wanted = sorted({r["person_number"] for r in opening})
    for i in range(0, len(wanted), _CHUNK):
        found.update(
            (r.person_number, r.insurance)
            for r in conn.execute(
                select(e.person_number, e.insurance).where(
                    e.person_number.in_(wanted[i : i + _CHUNK]), e.status == "1"
                )
            )
        )
    by_number = {ln.number: ln for ln in lines}
    for r in opening:
        if (r["person_number"], r["insurance"]) in found:
            by_number[r["_line"]].problems.append(
                "the person already has an open enrolment in aae140 in the database"
            )


def _check_existing_lines(conn: Connection, lines: Sequence[LegacyLine], plan: _Plan) -> None:
    """A contribution line the ledger holds already is refused, not overwritten."""
    c = contributions.c
    found: set[tuple[str, str, str, str]] = set()
    wanted = sorted({r["person_number"] for r in plan.contributions})
    for i in range(0, len(wanted), _CHUNK):
        found.update(
            (r.person_number, r.unit_code, r.insurance, r.month)
            for r in conn.execute(
                select(c.person_number, c.unit_code, c.insurance, c.month).where(
                    c.person_number.in_(wanted[i : i + _CHUNK])
                )
            )
        )
    by_number = {ln.number: ln for ln in lines}
    for r in plan.contributions:
        if (r["person_number"], r["unit_code"], r["insurance"], r["month"]) in found:
            by_number[r["_line"]].problems.append(
                "the ledger holds this person's aae140 line of aae003 already (imported before?)"
            )


# -- the import ------------------------------------------------------------------------


def import_legacy(
    conn: Connection,
    lines: Sequence[LegacyLine],
    *,
    today: date,
    now: float,
    import_id: str,
    actor: str,
) -> LegacyImport:
    """Validate every line; write everything in the caller's transaction only when
    every line is accepted (else nothing).  Each imported enrolment gets its
    contribution plan (from ``aac030`` to ``end_month``, on ``base``)."""
    plan = validate_legacy(conn, lines, today=today, now=now, import_id=import_id, actor=actor)
    counts = {
        "persons": len(plan.persons),
        "enrolments": len(plan.enrolments),
        "contributions": len(plan.contributions),
        "accounts": len(plan.accounts),
    }
    if any(not line.accepted for line in lines):
        return LegacyImport(tuple(lines), False, counts)
    if plan.persons:
        conn.execute(insert(persons), plan.persons)
    if plan.enrolments:
        conn.execute(
            insert(enrolments),
            [{k: v for k, v in r.items() if not k.startswith("_")} for r in plan.enrolments],
        )
        conn.execute(
            insert(contribution_plans),
            [
                {
                    "person_number": r["person_number"],
                    "unit_code": r["unit_code"],
                    "insurance": r["insurance"],
                    "from_month": r["start_month"],
                    "until_month": r["end_month"],
                    "base_fen": r["base_fen"],
                    "declaration_id": None,
                    "updated_at": now,
                }
                for r in plan.enrolments
            ],
        )
    if plan.contributions:
        conn.execute(
            insert(contributions),
            [{k: v for k, v in r.items() if not k.startswith("_")} for r in plan.contributions],
        )
    if plan.accounts:
        conn.execute(insert(legacy_accounts), plan.accounts)
    return LegacyImport(tuple(lines), True, counts)


@dataclass(frozen=True)
class LegacyOpening:
    """A person's imported account: the balance at a year end and the deemed months."""

    year: int | None  # the balance's year: the statement of year + 1 opens with it
    balance_fen: int | None
    deemed_months: int | None


def legacy_opening(conn: Connection, person_number: str) -> LegacyOpening | None:
    """The person's imported account row, if any."""
    a = legacy_accounts.c
    row = conn.execute(
        select(a.balance_date, a.balance_fen, a.deemed_months).where(
            a.person_number == person_number
        )
    ).first()
    if row is None:
        return None
    return LegacyOpening(
        None if row.balance_date is None else row.balance_date.year,
        row.balance_fen,
        row.deemed_months,
    )
