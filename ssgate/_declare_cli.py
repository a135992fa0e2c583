"""``ssgate declare close-month YYYY-MM`` and ``ssgate declare rates YYYY-MM`` (issue 14).

The monthly close books every enrolled person's 应缴 of the month in one transaction
(idempotent: a month closed already is reported, not closed again); ``rates`` prints
the figures in force in a month, their sources and whether they were verified.
Output names months, regions, counts and amounts, never a person.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from sqlalchemy import exc as sa_exc

import audit
from declare_app import (
    CloseResult,
    LedgerError,
    RatesNotInForce,
    YearMonth,
    close_month,
    figures_in_force,
)
from declare_app._china_time import CHINA_TIME
from ssgate._app import App, operator_name
from ssgate._state import StateDir

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_text(month: YearMonth) -> str:
    return f"{month.year:04d}-{month.month:02d}"


class DeclareCommandError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _month(text: str) -> YearMonth:
    m = _MONTH.fullmatch(text)
    if m is None or not 1 <= int(m[2]) <= 12 or not 1990 <= int(m[1]) <= 2200:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a month; write it as YYYY-MM, e.g. 2026-07"
        )
    return YearMonth(int(m[1]), int(m[2]))


def cmd_close_month(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """Close the month: one ledger line per person, unit and insurance type; the close
    and its refusals are audited as ``declare.close-month``."""
    app = App(state)
    try:
        result = _close(app, args.month)
    finally:
        app.close()
    verb = "was closed already" if result.already_closed else "closed"
    out.write(
        f"{result.month} {verb}: {result.lines} lines in {result.units} units, "
        f"unit part {result.employer:.2f}, individual part {result.employee:.2f}, "
        f"total {result.total:.2f}\n"
    )
    return EXIT_OK


def _close(app: App, month: YearMonth) -> CloseResult:
    rates = app.rate_table
    now = app.clock()
    current = YearMonth.of(datetime.fromtimestamp(now, CHINA_TIME).date())
    actor = operator_name()

    def event(outcome: str, reason: str = "", **details: audit.DetailValue) -> audit.AuditEvent:
        return audit.AuditEvent(
            at=now,
            actor=actor,
            action="declare.close-month",
            subject=month_text(month),
            outcome=outcome,
            reason=reason[:1000],
            details=details,
        )

    try:
        with app.engine.begin() as conn:
            result = close_month(conn, month, rates=rates, current=current, actor=actor, now=now)
            if not result.already_closed:
                audit.append(conn, event("ok", lines=result.lines, units=result.units))
            return result
    except (RatesNotInForce, LedgerError) as e:
        with app.engine.begin() as conn:
            audit.append(conn, event("refused", str(e)))
        raise DeclareCommandError(EXIT_REFUSED, f"{month_text(month)} not closed: {e}") from None
    except sa_exc.IntegrityError:
        raise DeclareCommandError(
            EXIT_REFUSED, f"{month_text(month)} was being closed by another node; run it again"
        ) from None


def cmd_rates(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """Print the figures in force in the month for every configured region."""
    app = App(state)
    month: YearMonth = args.month
    try:
        table = app.rate_table  # reads the file only: no database
    finally:
        app.close()
    regions = sorted(table.regions) if args.region is None else [args.region]
    if args.region is not None and args.region not in table.regions:
        raise DeclareCommandError(
            EXIT_USAGE, f"region {args.region} is not configured in {table.source}"
        )
    missing = 0
    out.write(f"figures in force in {month_text(month)} ({table.source})\n")
    for region in regions:
        name = table.regions[region].name
        out.write(f"\nregion {region}{f' {name}' if name else ''}\n")
        for f in figures_in_force(table, region, month):
            if not f.in_force:
                missing += 1
                out.write(f"  {f.what}: {f.missing}\n")
                continue
            flag = "verified" if f.verified else "NOT VERIFIED"
            out.write(f"  {f.what}: {f.values}\n")
            out.write(f"      {f.period}; {flag}; source: {f.source or '(none given)'}\n")
    if missing:
        raise DeclareCommandError(
            EXIT_REFUSED,
            f"{missing} figure(s) not in force in {month_text(month)}: "
            f"add the {month.year} figures to {table.source}",
        )
    return EXIT_OK


def run_declare(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, StateDir, TextIO], int]] = {
        "close-month": cmd_close_month,
        "rates": cmd_rates,
    }
    return handlers[args.declare_command](args, state, out)


def add_declare_parser(
    add: Callable[..., argparse.ArgumentParser],
    cmd_declare: Callable[[argparse.Namespace, StateDir, TextIO], int],
) -> None:
    """``ssgate declare …``: *add* is the CLI's sub-command factory, *cmd_declare* the
    command that calls :func:`run_declare`."""
    declare = add("declare", "the contribution ledger: monthly close, rates in force", cmd_declare)
    ds = declare.add_subparsers(
        dest="declare_command", metavar="ACTION", required=True, parser_class=type(declare)
    )
    p = add(
        "close-month",
        "close a 费款所属期: book every enrolled person's contributions of the month "
        "(idempotent; later changes become 补缴/退费 adjustments)",
        cmd_declare,
        ds,
    )
    p.add_argument("month", metavar="YYYY-MM", type=_month)
    p = add(
        "rates",
        "print the rates and base limits in force in a month, with sources",
        cmd_declare,
        ds,
    )
    p.add_argument("month", metavar="YYYY-MM", type=_month)
    p.add_argument("--region", metavar="CODE", help="one region only (default: every region)")
