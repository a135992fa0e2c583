"""The contribution ledger on the shared database (issue 14): thin store functions
around the arithmetic of :mod:`declare_app._ledger`.

* :func:`record_applied` — called by the approval, in the apply's transaction: turns
  what the declaration did to the enrolments into plan changes, then books an
  adjustment (补缴/退费) for every closed month whose 应缴 the change alters.
* :func:`close_month` — the monthly close: every plan covering the month becomes one
  ``contributions`` line per person, unit and insurance type, all in the caller's one
  transaction; a month closed already is left as it is (idempotent).

Blocking functions on the caller's ``Connection``; callers run them off the reactor.
Log lines and errors name months, units and counts, never a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from declare_app._bulk import insert_rows
from declare_app._contributions import Insurance, Rates, RateTable
from declare_app._ledger import (
    NOTHING,
    Due,
    PlanSegment,
    adjustment,
    base_in,
    month_due,
    month_text,
    parse_month,
    plan_rebase,
    plan_start,
    plan_stop,
    rates_in_force,
)
from declare_app._retirement import YearMonth
from declare_app._rules._master import next_number
from declare_app._schema import (
    contribution_adjustments,
    contribution_plans,
    contributions,
    enrolments,
    ledger_months,
    persons,
    unit_profiles,
    units,
)
from declare_app.interfaces import DeclarationType

_ADDS = frozenset({DeclarationType.PERSON_ADD, DeclarationType.INSURANCE_ADD})
_REDUCES = frozenset({DeclarationType.PERSON_REDUCE, DeclarationType.INSURANCE_REDUCE})


def _fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def _yuan(fen: int) -> Decimal:
    return (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class PlanKey:
    """One plan: a person's contributions to one insurance type in one unit."""

    person_number: str
    unit_code: str
    insurance: Insurance


# -- the unit's figures ---------------------------------------------------------------


@dataclass(frozen=True)
class _UnitRates:
    region: str
    risk_class: int | None


def _unit_rates(conn: Connection, unit_code: str) -> _UnitRates:
    row = conn.execute(
        select(units.c.region, unit_profiles.c.injury_risk_class)
        .select_from(units.outerjoin(unit_profiles, unit_profiles.c.unit_code == units.c.code))
        .where(units.c.code == unit_code)
    ).one()
    return _UnitRates(row.region, row.injury_risk_class)


class _RateCache:
    """Rates looked up once per region, insurance, risk class and month."""

    def __init__(self, table: RateTable) -> None:
        self._table = table
        self._found: dict[tuple[str, Insurance, int | None, YearMonth], Rates] = {}

    def get(self, unit: _UnitRates, insurance: Insurance, month: YearMonth) -> Rates:
        risk = unit.risk_class if insurance is Insurance.WORK_INJURY else None
        key = (unit.region, insurance, risk, month)
        found = self._found.get(key)
        if found is None:
            found = rates_in_force(
                self._table,
                unit.region,
                insurance,
                month,
                risk_class=unit.risk_class,
            )
            self._found[key] = found
        return found


def _serialise_with_closes(conn: Connection) -> None:
    """Take the ledger's lock until the transaction ends.

    A close reads the plans, an approval changes them and reads which months are
    closed: run side by side on two nodes, the close could miss the change and the
    approval miss the close, and the month would stay wrong with no adjustment.  Both
    bump one counter row first (an UPDATE locks it; SQLite's BEGIN IMMEDIATE already
    serialises writers), so one waits for the other and then reads what it wrote."""
    next_number(conn, "ledger")


# -- approval -------------------------------------------------------------------------

_IN_CHUNK = 500  # values per IN (...) list: well inside every driver's limits


@dataclass(frozen=True)
class _Intent:
    """What an applied declaration does to one plan, from which month on."""

    key: PlanKey
    since: YearMonth  # the first month whose 应缴 the change may alter
    change: Callable[[tuple[PlanSegment, ...]], tuple[PlanSegment, ...]]


def record_applied(
    conn: Connection,
    *,
    type: DeclarationType,
    declaration_id: str,
    unit_code: str,
    payload: Mapping[str, Any],
    rates: RateTable,
    now: float,
) -> int:
    """Update the plans the applied declaration changed, then reconcile the closed
    months it reaches; returns the number of adjustment rows booked.

    Called after the type's rules applied it, in the same transaction: the enrolments
    opened or closed by *declaration_id* say what changed; a 年度缴费基数申报's lines
    say whose base changes from which month.  Raises :class:`RatesNotInForce` when a
    start month or a closed month the plan now covers has no rates in force (the
    approval is then refused and nothing is written).  A batch of any size takes a
    few statements per 500 persons, not a few per line."""
    if type in _ADDS:
        intents = _started(conn, declaration_id)
    elif type in _REDUCES:
        intents = _stopped(conn, declaration_id)
    elif type is DeclarationType.ANNUAL_BASE:
        intents = _rebased(conn, unit_code, payload)
    else:
        return 0
    if not intents:
        return 0
    _serialise_with_closes(conn)
    unit = _unit_rates(conn, unit_code)
    cache = _RateCache(rates)
    before = _plans(conn, unit_code, {i.key.person_number for i in intents})
    plans = {key: segments for key, (_, segments) in before.items()}
    for intent in intents:
        plans[intent.key] = intent.change(plans.get(intent.key, ()))
        if type in _ADDS:  # a start month without rates is refused now, not at the close
            cache.get(unit, intent.key.insurance, intent.since)
    changed = {i.key for i in intents}
    _replace_plans(
        conn,
        [row_id for key in changed if key in before for row_id in before[key][0]],
        {key: plans[key] for key in changed},
        declaration_id=declaration_id,
        now=now,
    )
    return _reconcile(conn, intents, plans, unit, cache, declaration_id=declaration_id, now=now)


def _started(conn: Connection, declaration_id: str) -> list[_Intent]:
    e = enrolments.c
    return [
        _Intent(
            PlanKey(row.person_number, row.unit_code, Insurance(row.insurance)),
            parse_month(row.start_month),
            partial(plan_start, start=parse_month(row.start_month), base=_yuan(row.base_fen)),
        )
        for row in conn.execute(
            select(e.person_number, e.unit_code, e.insurance, e.start_month, e.base_fen)
            .where(e.opened_by == declaration_id)
            .order_by(e.id)
        )
    ]


def _stopped(conn: Connection, declaration_id: str) -> list[_Intent]:
    e = enrolments.c
    return [
        _Intent(
            PlanKey(row.person_number, row.unit_code, Insurance(row.insurance)),
            parse_month(row.end_month).plus_months(1),
            partial(plan_stop, last=parse_month(row.end_month)),
        )
        for row in conn.execute(
            select(e.person_number, e.unit_code, e.insurance, e.end_month)
            .where(e.closed_by == declaration_id)
            .order_by(e.id)
        )
    ]


def annual_base_start(payload: Mapping[str, Any]) -> YearMonth:
    """The month a 年度缴费基数申报 takes effect: its ``from_month``, else January."""
    given = payload.get("from_month")
    if isinstance(given, str) and given:
        return parse_month(given)
    return YearMonth(int(payload["year"]), 1)


def _rebased(conn: Connection, unit_code: str, payload: Mapping[str, Any]) -> list[_Intent]:
    """Every open enrolment in the unit of each line's person is re-based."""
    start = annual_base_start(payload)
    bases = {line["id_number"]: Decimal(line["base"]) for line in payload.get("lines") or ()}
    e, p = enrolments.c, persons.c
    wanted = sorted(bases)
    out = []
    for i in range(0, len(wanted), _IN_CHUNK):
        for row in conn.execute(
            select(p.id_number, e.person_number, e.insurance)
            .select_from(enrolments.join(persons, p.person_number == e.person_number))
            .where(
                p.id_number.in_(wanted[i : i + _IN_CHUNK]),
                e.unit_code == unit_code,
                e.status == "1",
            )
            .order_by(e.id)
        ):
            out.append(
                _Intent(
                    PlanKey(row.person_number, unit_code, Insurance(row.insurance)),
                    start,
                    partial(plan_rebase, start=start, base=bases[row.id_number]),
                )
            )
    return out


def _plans(
    conn: Connection, unit_code: str, person_numbers: Iterable[str]
) -> dict[PlanKey, tuple[list[int], tuple[PlanSegment, ...]]]:
    """The plans of these persons in the unit: row ids and segments per key."""
    p = contribution_plans.c
    ids: dict[PlanKey, list[int]] = {}
    segments: dict[PlanKey, list[PlanSegment]] = {}
    wanted = sorted(set(person_numbers))
    for i in range(0, len(wanted), _IN_CHUNK):
        for r in conn.execute(
            select(p.id, p.person_number, p.insurance, p.from_month, p.until_month, p.base_fen)
            .where(p.unit_code == unit_code, p.person_number.in_(wanted[i : i + _IN_CHUNK]))
            .order_by(p.from_month)
        ):
            key = PlanKey(r.person_number, unit_code, Insurance(r.insurance))
            ids.setdefault(key, []).append(r.id)
            segments.setdefault(key, []).append(
                PlanSegment(
                    parse_month(r.from_month),
                    None if r.until_month is None else parse_month(r.until_month),
                    _yuan(r.base_fen),
                )
            )
    return {key: (ids[key], tuple(segments[key])) for key in ids}


def _replace_plans(
    conn: Connection,
    old_ids: list[int],
    plans: Mapping[PlanKey, tuple[PlanSegment, ...]],
    *,
    declaration_id: str,
    now: float,
) -> None:
    for i in range(0, len(old_ids), _IN_CHUNK):
        conn.execute(
            delete(contribution_plans).where(
                contribution_plans.c.id.in_(old_ids[i : i + _IN_CHUNK])
            )
        )
    rows = [
        {
            "person_number": key.person_number,
            "unit_code": key.unit_code,
            "insurance": key.insurance.value,
            "from_month": month_text(s.start),
            "until_month": None if s.end is None else month_text(s.end),
            "base_fen": _fen(s.base),
            "declaration_id": declaration_id,
            "updated_at": now,
        }
        for key, segments in plans.items()
        for s in segments
    ]
    insert_rows(conn, contribution_plans, rows)  # COPY on PostgreSQL (a batch: thousands)


def _reconcile(
    conn: Connection,
    intents: list[_Intent],
    plans: Mapping[PlanKey, tuple[PlanSegment, ...]],
    unit: _UnitRates,
    cache: _RateCache,
    *,
    declaration_id: str,
    now: float,
) -> int:
    """Book ``owed − booked`` for every closed month each changed plan reaches."""
    since: dict[PlanKey, YearMonth] = {}
    for intent in intents:
        since[intent.key] = min(since.get(intent.key, intent.since), intent.since)
    earliest = month_text(min(since.values()))
    closed = list(
        conn.execute(
            select(ledger_months.c.month)
            .where(ledger_months.c.month >= earliest)
            .order_by(ledger_months.c.month)
        ).scalars()
    )
    if not closed:
        return 0
    unit_code = next(iter(since)).unit_code
    booked = _booked(conn, unit_code, {k.person_number for k in since}, closed)
    rows = []
    for key, first in since.items():
        for text in closed:
            month = parse_month(text)
            if month < first:
                continue
            base = base_in(plans[key], month)
            owed = (
                NOTHING if base is None else month_due(base, cache.get(unit, key.insurance, month))
            )
            found = adjustment(owed, booked.get((key.person_number, key.insurance.value, text), []))
            if found is not None:
                rows.append(
                    {
                        "person_number": key.person_number,
                        "unit_code": key.unit_code,
                        "insurance": key.insurance.value,
                        "month": text,
                        "kind": found.kind,
                        "base_fen": _fen(found.base),
                        "employer_fen": _fen(found.employer),
                        "employee_fen": _fen(found.employee),
                        "to_account_fen": _fen(found.to_account),
                        "declaration_id": declaration_id,
                        "booked_at": now,
                    }
                )
    if rows:
        conn.execute(insert(contribution_adjustments), rows)
    return len(rows)


def _booked(
    conn: Connection, unit_code: str, person_numbers: Iterable[str], months: list[str]
) -> dict[tuple[str, str, str], list[Due]]:
    """The lines and adjustments the ledger holds in the unit for these persons and
    months, per (person, insurance, month)."""
    booked: dict[tuple[str, str, str], list[Due]] = {}
    wanted = sorted(set(person_numbers))
    for table in (contributions, contribution_adjustments):
        c = table.c
        for i in range(0, len(wanted), _IN_CHUNK):
            for r in conn.execute(
                select(
                    c.person_number,
                    c.insurance,
                    c.month,
                    c.base_fen,
                    c.employer_fen,
                    c.employee_fen,
                    c.to_account_fen,
                ).where(
                    c.unit_code == unit_code,
                    c.person_number.in_(wanted[i : i + _IN_CHUNK]),
                    c.month.in_(months),
                )
            ):
                booked.setdefault((r.person_number, r.insurance, r.month), []).append(
                    Due(
                        _yuan(r.base_fen),
                        _yuan(r.employer_fen),
                        _yuan(r.employee_fen),
                        _yuan(r.to_account_fen),
                    )
                )
    return booked


# -- the monthly close ----------------------------------------------------------------


class LedgerError(Exception):
    """A close refused; the message says why (no personal data)."""


@dataclass(frozen=True)
class CloseResult:
    month: str
    already_closed: bool
    lines: int
    units: int
    employer: Decimal
    employee: Decimal

    @property
    def total(self) -> Decimal:
        return self.employer + self.employee


def close_month(
    conn: Connection,
    month: YearMonth,
    *,
    rates: RateTable,
    current: YearMonth,
    actor: str,
    now: float,
) -> CloseResult:
    """Close *month* (费款所属期): one ``contributions`` line (status ``due``) per plan
    covering it, in the caller's transaction.  A month closed already is reported as
    such and left untouched; a month after *current* is refused; a month without
    rates in force for some line is refused (:class:`RatesNotInForce`) before
    anything is written."""
    text = month_text(month)
    if month > current:
        raise LedgerError(f"{text} has not begun yet (this month is {month_text(current)})")
    _serialise_with_closes(conn)
    done = conn.execute(select(ledger_months).where(ledger_months.c.month == text)).first()
    if done is not None:
        return _summary(conn, text, already=True)
    p = contribution_plans.c
    plans = conn.execute(
        select(p.person_number, p.unit_code, p.insurance, p.base_fen)
        .where(
            p.from_month <= text,
            or_(p.until_month.is_(None), p.until_month >= text),
        )
        .order_by(p.unit_code, p.person_number, p.insurance)
    ).all()
    c = contributions.c
    existing = {
        (r.person_number, r.unit_code, r.insurance)
        for r in conn.execute(
            select(c.person_number, c.unit_code, c.insurance).where(c.month == text)
        )
    }
    cache = _RateCache(rates)
    unit_rates: dict[str, _UnitRates] = {}
    rows = []
    for plan in plans:
        if (plan.person_number, plan.unit_code, plan.insurance) in existing:
            continue  # a line loaded before the ledger (the demo's history) stays as it is
        unit = unit_rates.get(plan.unit_code)
        if unit is None:
            unit = unit_rates[plan.unit_code] = _unit_rates(conn, plan.unit_code)
        due = month_due(_yuan(plan.base_fen), cache.get(unit, Insurance(plan.insurance), month))
        rows.append(
            {
                "person_number": plan.person_number,
                "unit_code": plan.unit_code,
                "insurance": plan.insurance,
                "month": text,
                "base_fen": plan.base_fen,
                "employer_fen": _fen(due.employer),
                "employee_fen": _fen(due.employee),
                "to_account_fen": _fen(due.to_account),
                "status": "due",
                "paid_on": None,
            }
        )
    # The month's row first: a second node closing the same month at once fails on
    # its primary key and writes nothing.
    conn.execute(
        insert(ledger_months).values(month=text, closed_at=now, closed_by=actor, lines=len(rows))
    )
    if rows:
        conn.execute(insert(contributions), rows)
    return _summary(conn, text, already=False)


def _summary(conn: Connection, text: str, *, already: bool) -> CloseResult:
    c = contributions.c
    row = conn.execute(
        select(
            func.count().label("lines"),
            func.count(func.distinct(c.unit_code)).label("units"),
            func.coalesce(func.sum(c.employer_fen), 0).label("employer"),
            func.coalesce(func.sum(c.employee_fen), 0).label("employee"),
        ).where(c.month == text)
    ).one()
    return CloseResult(
        month=text,
        already_closed=already,
        lines=int(row.lines),
        units=int(row.units),
        employer=_yuan(row.employer),
        employee=_yuan(row.employee),
    )


def credited_condition() -> Any:
    """SQL condition on ``contributions``: the line has credited the pension account —
    paid (到账, lines from before the ledger) or in a closed month (记账 at the close)."""
    c = contributions.c
    return or_(
        c.status == "paid",
        c.month.in_(select(ledger_months.c.month).scalar_subquery()),
    )


def account_adjustments(conn: Connection, person_number: str) -> dict[str, Decimal]:
    """The person's pension-account adjustments (every unit), month → amount."""
    a = contribution_adjustments.c
    return {
        r.month: _yuan(r.amount)
        for r in conn.execute(
            select(a.month, func.sum(a.to_account_fen).label("amount"))
            .where(
                and_(
                    a.person_number == person_number,
                    a.insurance == Insurance.PENSION.value,
                )
            )
            .group_by(a.month)
        )
    }


__all__ = [
    "CloseResult",
    "LedgerError",
    "PlanKey",
    "account_adjustments",
    "close_month",
    "credited_condition",
    "record_applied",
]
