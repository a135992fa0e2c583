"""``ssgate declare close-month YYYY-MM``, ``ssgate declare rates YYYY-MM | --install
FILE`` and ``ssgate declare import-legacy FILE`` (issue 14).

The monthly close books every enrolled person's 应缴 of the month in one transaction
(idempotent: a month closed already is reported, not closed again); ``rates`` prints
the figures in force in a month (and that year's 记账利率), their sources and whether
they were verified, or installs a checked rates file as the live one (``ssgate init``
installs none); ``import-legacy`` loads the old system's opening data all or nothing
(:mod:`declare_app._legacy`).  Output names months, regions, line numbers, counts and
amounts, never a person.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import exc as sa_exc

import audit
import declare_app
from declare_app import (
    CloseResult,
    LedgerError,
    RatesNotInForce,
    YearMonth,
    close_month,
    figures_in_force,
)
from declare_app._china_time import CHINA_TIME
from declare_app._ledger import interest_in_force
from declare_app._pension_account import PENSION_TABLES_FILE, default_pension_tables
from ssgate._app import App, operator_name
from ssgate._state import PUBLIC_MODE, StateDir, atomic_write

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


MAX_RATES_FILE_BYTES = 1024 * 1024


def cmd_rates(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """Print the figures in force in the month for every configured region, or (with
    ``--install FILE``) check FILE and make it the live rates file."""
    if args.install is not None:
        if args.month is not None:
            raise DeclareCommandError(EXIT_USAGE, "give a month or --install FILE, not both")
        return _install_rates(state, Path(args.install), out)
    if args.month is None:
        raise DeclareCommandError(
            EXIT_USAGE, "give a month (YYYY-MM) to print, or --install FILE to install figures"
        )
    app = App(state)
    month: YearMonth = args.month
    try:
        table = app.rate_table  # reads the file only: no database
    finally:
        app.close()
    if args.region is not None and args.region not in table.regions:
        raise DeclareCommandError(
            EXIT_REFUSED,
            f"region {args.region} has no figures in {table.source}: "
            f"add the {month.year} figures there (ssgate declare rates --install FILE)",
        )
    regions = sorted(table.regions) if args.region is None else [args.region]
    missing = 0
    out.write(f"figures in force in {month_text(month)} ({table.source})\n")
    if not regions:
        out.write("\nno region has any figures\n")
        missing += 1
    for region in regions:
        name = table.regions[region].name
        out.write(f"\nregion {region}{f' {name}' if name else ''}\n")
        for f in figures_in_force(table, region, month):
            missing += _print_figure(f, out)
    interest = interest_in_force(
        default_pension_tables(), month.year, source=f"declare_app/{PENSION_TABLES_FILE}"
    )
    out.write("\npension account (national since 2016)\n")
    if not interest.in_force:  # not a refusal: the statement answers without interest
        out.write(f"  {interest.what}: {interest.missing}\n")
    else:
        _print_figure(interest, out)
    if missing:
        raise DeclareCommandError(
            EXIT_REFUSED,
            f"{missing} figure(s) not in force in {month_text(month)}: "
            f"add the {month.year} figures to {table.source} "
            "(ssgate declare rates --install FILE)",
        )
    return EXIT_OK


def _print_figure(f: declare_app.FigureInForce, out: TextIO) -> int:
    if not f.in_force:
        out.write(f"  {f.what}: {f.missing}\n")
        return 1
    flag = "verified" if f.verified else "NOT VERIFIED"
    out.write(f"  {f.what}: {f.values}\n")
    out.write(f"      {f.period}; {flag}; source: {f.source or '(none given)'}\n")
    return 0


def _install_rates(state: StateDir, source: Path, out: TextIO) -> int:
    """Check *source* as the service will read it, then replace the live rates file
    atomically; audited as ``declare.rates-install``.  A running ``serve`` reads the
    file at start: restart it to use the new figures."""
    try:
        data = source.read_bytes()
    except OSError as e:
        raise DeclareCommandError(EXIT_USAGE, f"{source}: cannot read ({e.strerror})") from None
    if len(data) > MAX_RATES_FILE_BYTES:
        raise DeclareCommandError(EXIT_USAGE, f"{source}: larger than 1 MiB; not a rates file")
    try:
        text = data.decode("utf-8")
        table = declare_app.load_rates_toml(text, source=str(source))
    except UnicodeDecodeError:
        raise DeclareCommandError(EXIT_USAGE, f"{source}: not UTF-8 text") from None
    except declare_app.RatesConfigError as e:
        raise DeclareCommandError(EXIT_USAGE, str(e)) from None
    if not table.regions:
        raise DeclareCommandError(EXIT_USAGE, f"{source}: no [region.CODE] figures in it")
    app = App(state)
    try:
        target = state.path / app.config.declare.rates_file
        atomic_write(target, data, mode=PUBLIC_MODE)
        unverified = sum(_unverified(r) for r in table.regions.values())
        with app.engine.begin() as conn:
            audit.append(
                conn,
                audit.AuditEvent(
                    at=app.clock(),
                    actor=operator_name(),
                    action="declare.rates-install",
                    subject=target.name,
                    outcome="ok",
                    details={
                        "regions": ",".join(sorted(table.regions)),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "unverified": unverified,
                    },
                ),
            )
    finally:
        app.close()
    out.write(
        f"installed {source} as {target}: regions {', '.join(sorted(table.regions))}"
        f"{f'; {unverified} figure(s) NOT VERIFIED' if unverified else ''}\n"
        "a running 'ssgate serve' reads the file at start: restart it to use these figures\n"
    )
    return EXIT_OK


def _unverified(region: declare_app.RegionRates) -> int:
    entries: list[declare_app.Rates | declare_app.BaseLimits | declare_app.WorkInjuryRates] = [
        *(r for by_type in region.rates.values() for r in by_type),
        *region.base_limits,
        *region.work_injury,
    ]
    return sum(1 for e in entries if not e.verified)


class _RollBack(Exception):
    """Ends the import's transaction without writing."""


def cmd_import_legacy(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """Validate the old system's file line by line and write it all, or nothing;
    audited as ``declare.import-legacy`` (counts, the file's hash; no person)."""
    from declare_app._batch import BatchFileError
    from declare_app._legacy import import_legacy, parse_legacy

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DeclareCommandError(EXIT_USAGE, f"{path}: cannot read ({e.strerror})") from None
    try:
        lines = parse_legacy(data)
    except BatchFileError as e:
        raise DeclareCommandError(EXIT_USAGE, f"{path}: {e.message}") from None
    app = App(state)
    digest = hashlib.sha256(data).hexdigest()
    try:
        now = app.clock()
        today = datetime.fromtimestamp(now, CHINA_TIME).date()
        actor = operator_name()
        try:
            with app.engine.begin() as conn:
                result = import_legacy(
                    conn, lines, today=today, now=now, import_id=digest[:32], actor=actor
                )
                write = result.written and not args.dry_run
                if not write:
                    raise _RollBack  # a dry run, or a refused line: nothing stays
        except _RollBack:
            pass
        except sa_exc.IntegrityError:  # an approval wrote the same person or line meanwhile
            raise DeclareCommandError(
                EXIT_REFUSED,
                f"{path}: conflicts with data written meanwhile; nothing was imported, "
                "run it again to see which lines",
            ) from None
        if write or not result.written:
            with app.engine.begin() as conn:
                audit.append(
                    conn,
                    audit.AuditEvent(
                        at=now,
                        actor=actor,
                        action="declare.import-legacy",
                        subject=digest[:32],
                        outcome="ok" if write else "refused",
                        reason="" if write else f"{result.refused} line(s) refused",
                        details={"lines": len(lines), **result.counts},
                    ),
                )
    finally:
        app.close()
    for line in result.lines:
        if line.accepted:
            if args.verbose:
                out.write(f"line {line.number} ({line.record}): accepted\n")
            continue
        out.write(f"line {line.number} ({line.record or '?'}): refused: ")
        out.write("; ".join(line.problems) + "\n")
    counts = ", ".join(f"{n} {k}" for k, n in result.counts.items())
    if not result.written:
        raise DeclareCommandError(
            EXIT_REFUSED,
            f"{path}: {result.refused} of {len(lines)} line(s) refused; nothing was imported",
        )
    verb = "checked (--dry-run, nothing written)" if args.dry_run else "imported"
    out.write(f"{path}: {len(lines)} lines {verb}: {counts}\n")
    return EXIT_OK


def run_declare(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, StateDir, TextIO], int]] = {
        "close-month": cmd_close_month,
        "rates": cmd_rates,
        "import-legacy": cmd_import_legacy,
    }
    return handlers[args.declare_command](args, state, out)


def add_declare_parser(
    add: Callable[..., argparse.ArgumentParser],
    cmd_declare: Callable[[argparse.Namespace, StateDir, TextIO], int],
) -> None:
    """``ssgate declare …``: *add* is the CLI's sub-command factory, *cmd_declare* the
    command that calls :func:`run_declare`."""
    declare = add(
        "declare",
        "the contribution ledger: monthly close, rates in force, legacy opening data",
        cmd_declare,
    )
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
        "print the rates, base limits and 记账利率 in force in a month, with sources "
        "(or --install FILE: make checked figures the live ones)",
        cmd_declare,
        ds,
    )
    p.add_argument("month", metavar="YYYY-MM", type=_month, nargs="?")
    p.add_argument("--region", metavar="CODE", help="one region only (default: every region)")
    p.add_argument(
        "--install",
        metavar="FILE",
        help="check FILE (the rates file's TOML shape) and make it the live rates file",
    )
    p = add(
        "import-legacy",
        "load the old system's persons, enrolments, contribution history, account "
        "balances and 视同缴费 months (CSV or .xlsx; docs/legacy-import.md), all or nothing",
        cmd_declare,
        ds,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="check every line, write nothing")
    p.add_argument("--verbose", action="store_true", help="list accepted lines too")
