"""The ``ssgate`` command (ARCHITECTURE §5).

Exit status: 0 ok, 1 operation refused or failed (the message says why), 2 bad usage
or input.  Every error is one line on stderr; a traceback is shown only with
``SSGATE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, NoReturn, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

import audit
import auth
import certs
import declare_app
import oversight
import provisioning
import staffing
from ssgate import __version__
from ssgate._app import App
from ssgate._config import ConfigError
from ssgate._db import DatabaseURLError
from ssgate._init import InitInputError, InitRefused
from ssgate._state import AUDIT_PUBLIC_KEY, StateDir, StateError, resolve_state_dir

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# Error classes by exit status: input problems are 2, refusals and failures 1.
_USAGE_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DatabaseURLError,
    InitInputError,
    auth.AccountNameError,
    declare_app.UnitInputError,
    provisioning.ProvisioningInputError,
)
_REFUSALS: tuple[type[BaseException], ...] = (
    InitRefused,
    StateError,
    declare_app.UnitError,
    provisioning.ProvisioningRefused,
    provisioning.BundleError,
    certs.CertificateError,
    auth.AuthStoreError,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"ssgate: error: {message}\n")


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _read_secret_file(path: str, what: str) -> str:
    """The first line of a password file; never echoed back in messages."""
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline().rstrip("\r\n")
    except OSError as e:
        raise CliError(EXIT_USAGE, f"cannot read {what} file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(EXIT_USAGE, f"{what} file {path} is not UTF-8 text") from None
    if not line:
        raise CliError(EXIT_USAGE, f"{what} file {path} is empty (the first line is used)")
    return line


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


# -- commands ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._app import operator_name
    from ssgate._init import init_state

    if getattr(args, "join", None):
        return cmd_init_join(args, state, out)

    init_state(
        state.path,
        hostname=args.hostname,
        database_url=args.database_url or "",
        clock=time.time,
        actor=operator_name(),
    )
    out.write(
        f"initialised {state.path}: configuration {state.config_path.name}, CA, server "
        f"certificate for {args.hostname}, keys and database\n"
        "next: register and approve a unit (ssgate units …), then open its account "
        "(ssgate provision open …)\n"
    )
    return EXIT_OK


@contextlib.contextmanager
def _node_export_errors() -> Iterator[None]:
    """``node export``'s and ``init --join``'s errors as the command's: bad input exits
    as a usage error (2), a refusal as refused (1)."""
    from ssgate._nodes import NodeExportError, NodeExportInputError

    try:
        yield
    except NodeExportInputError as e:
        raise CliError(EXIT_USAGE, str(e)) from None
    except NodeExportError as e:
        raise CliError(EXIT_REFUSED, str(e)) from None


def cmd_init_join(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """``ssgate init --join FILE``: a new node's state directory from a node export."""
    import getpass

    from ssgate._app import operator_name
    from ssgate._nodes import join_node, read_passphrase

    with _node_export_errors():
        passphrase = read_passphrase(args.passphrase_file, confirm=False, prompt=getpass.getpass)
        join_node(state.path, Path(args.join), passphrase, now=time.time(), actor=operator_name())
    out.write(
        f"joined: {state.path} has the CA, keys and configuration of the exporting node and "
        "uses the same database; 'ssgate serve' starts this node under its own name "
        "(host:pid)\n"
    )
    return EXIT_OK


def cmd_node_export(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """``ssgate node export --out FILE``: keys and configuration, passphrase-sealed."""
    import getpass

    from ssgate._app import operator_name
    from ssgate._nodes import export_node, read_passphrase

    state.require()
    with _node_export_errors():
        passphrase = read_passphrase(args.passphrase_file, confirm=True, prompt=getpass.getpass)
        count = export_node(
            state, Path(args.out), passphrase, now=time.time(), actor=operator_name()
        )
    out.write(
        f"exported {count} files (configuration, CA and keys) to {args.out}, sealed with the "
        "passphrase (mode 0600; it holds every key: move it to the new host and delete it); "
        "there: ssgate init --join FILE\n"
    )
    return EXIT_OK


def cmd_node_policy(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """``ssgate node policy [--replace]``: this file's [policy] against the shared one."""
    from ssgate._app import operator_name
    from ssgate._config import policy_differences, policy_document
    from ssgate._nodes import replace_policy, stored_policy

    app = App(state)
    try:
        ours = policy_document(app.config.policy)
        with app.engine.begin() as conn:
            if args.replace:
                changed = replace_policy(
                    conn, app.config.policy, now=app.clock(), actor=operator_name()
                )
                out.write(
                    "this file's [policy] is now the one every node shares"
                    + (f"; changed: {', '.join(changed)}" if changed else " (it was already)")
                    + "\nrestart the other nodes with the same [policy] to apply it there\n"
                )
                return EXIT_OK
            stored = stored_policy(conn)
        if stored is None:
            out.write("no policy stored yet: the first node to start stores its own\n")
            return EXIT_OK
        differing = policy_differences(ours, stored)
        if not differing:
            out.write("this file's [policy] is the one every node shares\n")
            return EXIT_OK
        out.write("this file's [policy] differs from the shared one at:\n")
        for key in differing:
            out.write(f"  {key}: here {ours.get(key)!r}, shared {stored.get(key)!r}\n")
        out.write("'ssgate node policy --replace' makes this file's the shared one\n")
        return EXIT_REFUSED
    finally:
        app.close()


def cmd_node_list(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """``ssgate node list``: every node sharing the database, as the registry has it."""
    from ssgate._nodes import LOST_AFTER_SECONDS, NodeRecord, list_nodes

    app = App(state)
    try:
        now = app.clock()
        zone = app.config.display.zone
        with app.engine.begin() as conn:
            records = list_nodes(conn)
    finally:
        app.close()

    def status(r: NodeRecord) -> str:
        if r.stopped_at is not None:
            return "lost" if r.stop_reason == "lost" else "stopped"  # lost: reaped by others
        if now - r.last_heartbeat_at > LOST_AFTER_SECONDS:
            return "silent"  # about to be reaped: its sessions become node-lost
        return "draining" if r.draining else "running"

    if args.json:
        for r in records:
            row = {
                "name": r.name,
                "host": r.host,
                "pid": r.pid,
                "version": r.version,
                "status": status(r),
                "started_at": audit.iso_time(r.started_at, zone),
                "last_heartbeat_at": audit.iso_time(r.last_heartbeat_at, zone),
            }
            out.write(_json_dump(row) + "\n")
        return EXIT_OK
    if not records:
        out.write("no node has started on this database yet\n")
        return EXIT_OK
    rows = [
        (
            r.name,
            r.host,
            str(r.pid),
            status(r),
            _local_time(r.started_at, zone),
            _local_time(r.last_heartbeat_at, zone),
            r.version,
        )
        for r in records
    ]
    _table(rows, ("NODE", "HOST", "PID", "STATUS", "STARTED", "LAST HEARD", "VERSION"), out)
    return EXIT_OK


def _node_export_parsers(add: Callable[..., _Parser], node_sub: Any) -> None:
    """``node export``, ``node list`` and ``node policy`` (issue 13)."""
    p = add(
        "export",
        "write this node's configuration, CA and keys, sealed with a passphrase (scrypt, "
        "AES-256-GCM), for 'ssgate init --join FILE' on a new host; never the database, "
        "sockets or locks",
        cmd_node_export,
        node_sub,
    )
    p.add_argument("--out", metavar="FILE", required=True, help="the export file to write")
    p.add_argument(
        "--passphrase-file",
        metavar="F",
        help="read the passphrase from the first line of F (default: ask, without echo)",
    )
    p = add(
        "list",
        "every gateway node on this database: running, draining, silent (no heartbeat for "
        "15 s), lost (the others ended its sessions as node-lost) or stopped",
        cmd_node_list,
        node_sub,
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p = add(
        "policy",
        "compare this file's [policy] with the one every node shares (in the database)",
        cmd_node_policy,
        node_sub,
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="make this file's [policy] the one every node shares (audited)",
    )


def cmd_demo(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._demo import current_demo_code, run_demo
    from ssgate._serve import ServeError

    if args.code:
        state.require()
        code = current_demo_code(state, auditor=args.auditor)
        if code is None:
            raise CliError(EXIT_REFUSED, "the demo is not loaded here; run 'ssgate demo' first")
        out.write(code + "\n")
        return EXIT_OK
    try:
        return run_demo(state, out, serve=not args.no_serve)
    except ServeError as e:
        raise CliError(EXIT_REFUSED, str(e)) from None


def cmd_serve(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._serve import ServeError, run_serve

    state.require()
    try:
        return run_serve(state, out, workers=args.workers)
    except ServeError as e:
        raise CliError(EXIT_REFUSED, str(e)) from None


def cmd_node_drain(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """Ask the node on this state directory to drain (SIGTERM to the lock's holder)."""
    from ssgate._drain import NodeNotRunning, request_drain

    state.require()
    try:
        pid, exited = request_drain(state.path, wait_seconds=args.wait)
    except NodeNotRunning as e:
        raise CliError(EXIT_REFUSED, str(e)) from None
    if exited:
        out.write(f"node (process {pid}) drained and exited\n")
    elif args.wait is not None:
        raise CliError(EXIT_REFUSED, f"node (process {pid}) still running after {args.wait:g} s")
    else:
        out.write(f"node (process {pid}) is draining: clients move to other nodes\n")
    return EXIT_OK


def _node_drain_parser(
    add: Callable[..., _Parser], actions: argparse._SubParsersAction[_Parser]
) -> None:
    p = add(
        "drain",
        "ask the node running on this state directory to drain: clients move to another "
        "node without a new login, open streams get [gateway] drain_seconds, then it exits",
        cmd_node_drain,
        actions,
    )
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        default=None,
        help="wait up to SECONDS for the node to exit (exit status 1 if it has not)",
    )


def cmd_connect(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._connect import run_connect

    return run_connect(
        profile_path=args.profile,
        listen=args.listen,
        password_file=args.password_file,
        otp=args.otp,
        p12_password_file=args.p12_password_file,
        out=out,
    )


def cmd_units(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    app = App(state)
    try:
        if args.units_command == "list":
            with app.engine.begin() as conn:
                rows = declare_app.list_units(conn, status=args.status)
            _table(
                [
                    [
                        u.code,
                        u.region,
                        u.status,
                        u.credit_code or "-",
                        _fmt_time(u.approved_at),
                        u.name,
                    ]
                    for u in rows
                ],
                ["CODE", "REGION", "STATUS", "CREDIT CODE", "APPROVED", "NAME"],
                out,
            )
            return EXIT_OK
        return _units_change(app, args, out)
    finally:
        app.close()


def _units_change(app: App, args: argparse.Namespace, out: TextIO) -> int:
    from ssgate._app import operator_name

    actor, now = operator_name(), app.clock()
    code = args.code
    action = f"units.{args.units_command}"
    warnings: list[declare_app.Finding] = []
    try:
        with app.engine.begin() as conn:
            if args.units_command == "register":
                warnings = declare_app.validate_registration(
                    code,
                    name=args.name,
                    region=args.region,
                    credit_code=args.credit_code,
                    regions=app.config.accounts.regions,
                )
                unit = declare_app.register_unit(
                    conn,
                    code,
                    name=args.name,
                    region=args.region,
                    credit_code=args.credit_code,
                    actor=actor,
                    now=now,
                    injury_risk_class=args.injury_risk_class,
                )
            else:
                declare_app.validate_unit_code(code)
                unit = declare_app.approve_unit(conn, code, actor=actor, now=now)
            audit.append(
                conn,
                audit.AuditEvent(
                    at=now,
                    actor=actor,
                    action=action,
                    subject=code,
                    outcome="ok",
                    unit=code,
                    details={"region": unit.region},
                ),
            )
    except declare_app.UnitError as e:
        with app.engine.begin() as conn:
            audit.append(
                conn,
                audit.AuditEvent(
                    at=now,
                    actor=actor,
                    action=action,
                    subject=code[:64],
                    outcome="refused",
                    reason="bad-input" if isinstance(e, declare_app.UnitInputError) else "refused",
                ),
            )
        raise
    for w in warnings:
        out.write(f"warning: credit code {w.rule}: {w.message}\n")
    verb = "registered" if args.units_command == "register" else "approved for online service"
    out.write(f"unit {unit.code} ({unit.name}, region {unit.region}) {verb}\n")
    return EXIT_OK


def _print_issued(issued: provisioning.Issued, out: TextIO) -> None:
    out.write(f"account:          {issued.account}\n")
    if issued.password:
        out.write(f"initial password: {issued.password}   (shown once; give it to the unit)\n")
    if issued.p12_passphrase:
        out.write(f"client.p12 pass:  {issued.p12_passphrase}   (shown once)\n")
    if issued.otp_uri:
        out.write(f"TOTP URI:         {issued.otp_uri}\n")
    if issued.certificate_serial:
        out.write(f"certificate:      serial {issued.certificate_serial}\n")
    if issued.bundle_dir:
        files = ", ".join(sorted(p.name for p in issued.bundle_dir.iterdir()))
        out.write(f"bundle:           {issued.bundle_dir}/ ({files})\n")


def cmd_provision(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    app = App(state)
    try:
        return _provision(app, args, out)
    finally:
        app.close()


def _provision(app: App, args: argparse.Namespace, out: TextIO) -> int:
    command = args.provision_command
    if command == "list":
        p = app.provisioner()
        rows = p.list(status=args.status)
        _table(
            [
                [r.name, r.unit_code, r.status, _fmt_time(r.created_at), _fmt_time(r.updated_at)]
                for r in rows
            ],
            ["ACCOUNT", "UNIT", "STATUS", "CREATED", "UPDATED"],
            out,
        )
        return EXIT_OK
    password = (
        _read_secret_file(args.password_file, "password")
        if getattr(args, "password_file", None)
        else None
    )
    p12 = (
        _read_secret_file(args.p12_password_file, "PKCS#12 passphrase")
        if getattr(args, "p12_password_file", None)
        else None
    )
    p = app.provisioner()
    reason = getattr(args, "reason", None) or ""
    if command == "open":
        issued = p.open(
            args.account, Path(args.out), password=password, p12_passphrase=p12, reason=reason
        )
        _print_issued(issued, out)
    elif command in ("suspend", "resume", "cancel"):
        record = getattr(p, command)(args.account, reason=reason)
        out.write(f"account {record.name} is now {record.status}\n")
    elif command == "reset-password":
        _print_issued(p.reset_password(args.account, password=password, reason=reason), out)
        out.write("lockout cleared\n")
    elif command == "reset-otp":
        otp_out = Path(args.out) if args.out else None
        _print_issued(p.reset_otp(args.account, out=otp_out, reason=reason), out)
    elif command == "reissue-cert":
        issued = p.reissue_cert(args.account, Path(args.out), p12_passphrase=p12, reason=reason)
        _print_issued(issued, out)
    elif command == "unlock":
        state = p.unlock(args.account, reason=reason)
        out.write(
            f"account {state.principal} unlocked "
            f"({state.consecutive_failures} consecutive failures now)\n"
        )
    elif command == "show":
        _show_account(p.show(args.account), out)
    return EXIT_OK


def _show_account(view: provisioning.AccountView, out: TextIO) -> None:
    a = view.account
    out.write(f"account:   {a.name}\n")
    out.write(f"status:    {a.status}{f' ({a.status_reason})' if a.status_reason else ''}\n")
    out.write(
        f"unit:      {a.unit_code} (region {a.region}; unit status {view.unit_status or 'unregistered'})\n"
    )
    out.write(f"created:   {_fmt_time(a.created_at)}\nupdated:   {_fmt_time(a.updated_at)}\n")
    c = view.credential
    if c is not None:
        locked = (
            "hard-locked until a carrier reset"
            if c.hard_locked
            else (
                f"locked until {_fmt_time(c.locked_until_at)}"
                if c.locked_until_at
                else "not locked"
            )
        )
        out.write(
            f"lockout:   {locked}; {c.consecutive_failures} consecutive failures, "
            f"{c.total_failures} since last reset\n"
        )
    for cert in view.certificates:
        # "<serial> valid until T", "<serial> revoked T (reason), would have expired T":
        # the status word once, then the date that matters for it.
        if cert.revoked_at:
            state = (
                f"revoked {_fmt_time(cert.revoked_at)} ({cert.revocation_reason}), "
                f"would have expired {_fmt_time(cert.not_after_at)}"
            )
        elif cert.status == "valid":
            state = f"valid until {_fmt_time(cert.not_after_at)}"
        else:
            state = f"{cert.status}, not after {_fmt_time(cert.not_after_at)}"
        out.write(f"cert:      {cert.serial} {state}\n")


def cmd_staff(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    app = App(state)
    try:
        return _staff(app, args, out)
    except staffing.StaffInputError as e:
        raise CliError(EXIT_USAGE, str(e)) from None
    except staffing.StaffRefused as e:
        raise CliError(EXIT_REFUSED, str(e)) from None
    finally:
        app.close()


def _staff(app: App, args: argparse.Namespace, out: TextIO) -> int:
    """``ssgate staff …``: one call of the workflow the console's staff pages make."""
    command = args.staff_command
    if command == "add":
        return _staff_add(app, args, out)
    admin = app.staff_admin()
    reason = getattr(args, "reason", None) or ""
    now = app.clock()
    if command == "list":
        _table(
            [
                [
                    v.name,
                    v.record.role,
                    v.record.status,
                    _staff_lockout(v, now, short=True),
                    _fmt_time(v.record.created_at),
                ]
                for v in admin.list()
            ],
            ["NAME", "ROLE", "STATUS", "LOCKOUT", "CREATED"],
            out,
        )
    elif command == "show":
        view = admin.show(args.name)
        r = view.record
        out.write(f"staff:     {r.name}\nrole:      {r.role}\nstatus:    {r.status}\n")
        out.write(f"lockout:   {_staff_lockout(view, now, short=False)}\n")
        if view.credential is not None and not admin.settings.passwords_in_directory:
            out.write(f"password:  set {_fmt_time(view.credential.password_changed_at)}\n")
        out.write(f"created:   {_fmt_time(r.created_at)}\n")
    elif command == "disable":
        change = admin.disable(args.name, reason=reason)
        out.write(
            f"staff {change.record.name} is now disabled; "
            f"{change.sessions_ended} console session(s) ended\n"
        )
    elif command == "enable":
        change = admin.enable(args.name, reason=reason)
        out.write(f"staff {change.record.name} is now active (role {change.record.role})\n")
    elif command == "unlock":
        after = admin.unlock(args.name, reason=reason)
        out.write(
            f"staff {after.principal} unlocked: failure counters and locks cleared; "
            "they can log in to the console now\n"
        )
    elif command == "reset-password":
        password = _read_secret_file(args.password_file, "password") if args.password_file else None
        issued = admin.reset_password(args.name, password=password, reason=reason)
        _print_staff_issued(issued, out)
        out.write("lockout cleared\n")
    elif command == "reset-otp":
        issued = admin.reset_otp(args.name, out=Path(args.out) if args.out else None, reason=reason)
        _print_staff_issued(issued, out)
    return EXIT_OK


def _staff_lockout(view: staffing.StaffView, now: float, *, short: bool) -> str:
    c = view.credential
    if c is None:
        return "-"
    if c.hard_locked:
        text = "hard-locked" if short else "hard-locked until unlocked (ssgate staff unlock)"
    elif c.locked_until_at is not None and c.locked_until_at > now:
        text = f"locked until {_fmt_time(c.locked_until_at)}"
    else:
        text = "no"
    if short:
        return text
    return f"{text}; {c.consecutive_failures} consecutive failures, {c.total_failures} in all"


def _print_staff_issued(issued: staffing.StaffIssued, out: TextIO) -> None:
    out.write(f"staff:            {issued.name} (role {issued.role})\n")
    if issued.password:
        out.write(
            f"initial password: {issued.password}   (shown once; give it to the staff member)\n"
        )
    if issued.otp_uri:
        out.write(
            "TOTP:             give the QR code or this URI to the staff member (shown once)\n"
        )
        out.write(f"TOTP URI:         {issued.otp_uri}\n")
    if issued.bundle_dir:
        files = ", ".join(sorted(p.name for p in issued.bundle_dir.iterdir()))
        out.write(f"OTP files:        {issued.bundle_dir}/ ({files})\n")
    if issued.sessions_ended:
        out.write(f"console sessions: {issued.sessions_ended} ended\n")


def _staff_add(app: App, args: argparse.Namespace, out: TextIO) -> int:
    directory = app.config.directory
    password = _read_secret_file(args.password_file, "password") if args.password_file else None
    issued = app.staff_admin().add(
        args.name,
        args.role,
        password=password,
        out=Path(args.out) if args.out else None,
        reason=args.reason or "",
    )
    out.write(f"staff {args.name} added with role {args.role}\n")
    _print_staff_issued(issued, out)
    if directory.backend == "ldap":
        dn = auth.user_dn_for(directory.user_dn, args.name)
        out.write(f"password:         none stored; checked by the LDAP directory as {dn}\n")
    return EXIT_OK


def cmd_persons(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    """``ssgate persons enrol|reset-password ID_NUMBER``: the agency counter opens or
    resets an insured person's portal account (audited with the OS user as actor)."""
    import portal
    from ssgate._portal import person_counter

    app = App(state)
    try:
        counter = person_counter(app)
        if args.persons_command == "enrol":
            issued = counter.enrol(
                args.id_number, out=Path(args.out) if args.out else None, reason=args.reason or ""
            )
            out.write(f"portal account opened for {issued.masked_id} ({issued.principal})\n")
        else:
            issued = counter.reset_password(args.id_number, reason=args.reason or "")
            out.write(f"portal password reset for {issued.masked_id} ({issued.principal})\n")
            if issued.sessions_ended:
                out.write(f"portal sessions:  {issued.sessions_ended} ended\n")
        out.write(
            f"initial password: {issued.password}   (shown once; the person must change it "
            "at the first login)\n"
        )
        if issued.otp_uri:
            out.write(f"TOTP URI:         {issued.otp_uri}\n")
        if issued.bundle_dir:
            names = ", ".join(sorted(p.name for p in issued.bundle_dir.iterdir()))
            out.write(f"OTP files:        {issued.bundle_dir}/ ({names})\n")
        return EXIT_OK
    except portal.PersonInputError as e:
        raise CliError(EXIT_USAGE, str(e)) from None
    except portal.PersonRefused as e:
        raise CliError(EXIT_REFUSED, str(e)) from None
    finally:
        app.close()


def _persons_parser(add: Callable[..., _Parser]) -> None:
    persons = add(
        "persons",
        "agency counter: open or reset an insured person's portal account (audited with "
        "the OS user as actor; the ID number is never logged)",
        cmd_persons,
    )
    ps = persons.add_subparsers(
        dest="persons_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = add(
        "enrol",
        "open the portal account of a person known to the declaration service: initial "
        "password shown once, TOTP QR codes written to --out",
        cmd_persons,
        ps,
    )
    p.add_argument("id_number", metavar="ID_NUMBER")
    p.add_argument("--out", metavar="DIR", help="new directory for otpauth.txt, otp-qr.png/.svg")
    p.add_argument("--reason", help="recorded in the audit log")
    p = add(
        "reset-password",
        "give a new initial password (shown once); clears the lockout, ends portal sessions",
        cmd_persons,
        ps,
    )
    p.add_argument("id_number", metavar="ID_NUMBER")
    p.add_argument("--reason", help="recorded in the audit log")


def cmd_audit(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    app = App(state)
    try:
        return _audit(app, args, out)
    finally:
        app.close()


def _parse_when(text: str | None, flag: str, zone: tzinfo) -> float | None:
    """An ISO 8601 date or time; without an offset it is read in the display zone."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            EXIT_USAGE,
            f"{flag} {text!r}: use an ISO 8601 date or time, e.g. 2026-11-23, "
            f"2026-11-23T08:00 (in {zone}) or 2026-11-23T08:00+08:00 / …Z",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.timestamp()


def _local_time(ts: float | None, zone: tzinfo) -> str:
    """``2026-11-23 08:00:00 +08:00``: a time as people read it, offset shown."""
    if ts is None:
        return "-"
    stamp = datetime.fromtimestamp(ts, zone)
    offset = stamp.strftime("%z")
    return f"{stamp:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


def _event_filter(args: argparse.Namespace, zone: tzinfo) -> audit.EventFilter:
    action = getattr(args, "action", None)
    if args.audit_command == "logins":
        if action is not None and action != "login" and not action.startswith("login."):
            raise CliError(EXIT_USAGE, f"--action {action!r}: logins are login and login.*")
        action = action or "login"
    return audit.EventFilter(
        account=args.account,
        unit=args.unit,
        session_id=args.session,
        action=action,
        outcome=args.outcome,
        source=_source_host(args.source),
        since=_parse_when(args.since, "--since", zone),
        until=_parse_when(args.until, "--until", zone),
    )


def _source_host(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise CliError(EXIT_USAGE, f"--source {text!r}: give an IPv4 or IPv6 address") from None


def _audit(app: App, args: argparse.Namespace, out: TextIO) -> int:
    command = args.audit_command
    if command in _CHAIN_COMMANDS:
        return _CHAIN_COMMANDS[command](app, args, out)
    with app.engine.begin() as conn:
        if command == "export":
            # The exact, re-verifiable form: ``at`` as hashed, both hashes, UTC times.
            records = audit.iter_events(conn, audit.EventFilter())
            if args.format == "syslog":
                lines = audit.export_syslog(records, hostname=os.uname().nodename)
            elif args.format == "jsonl":
                lines = audit.export_jsonl(records)
            else:
                lines = audit.export_csv(records)
            for line in lines:
                out.write(line)
            return EXIT_OK
        zone = app.config.display.zone
        records = audit.iter_events(conn, _event_filter(args, zone))
        _write_events(records, args.format, zone, out)
    return EXIT_OK


def _write_events(
    records: Iterator[audit.AuditRecord], fmt: str, zone: tzinfo, out: TextIO
) -> None:
    if fmt == "table":
        _table(
            [
                [
                    str(r.seq),
                    _local_time(r.event.at, zone),
                    r.event.actor,
                    r.event.action,
                    r.event.subject,
                    r.event.outcome,
                    r.event.reason,
                    r.event.unit,
                    r.event.session_id[:12],
                ]
                for r in records
            ],
            ["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "OUTCOME", "REASON", "UNIT", "SESSION"],
            out,
        )
        return
    # json and csv: the view's form (ISO 8601 with offset, no epoch float), streamed.
    if fmt == "csv":
        out.write(oversight.csv_header(audit.VIEW_FIELDS, bom=False))
    for record in records:
        row = [audit.view_row(record, zone)]
        if fmt == "csv":
            out.write(oversight.csv_rows(audit.VIEW_FIELDS, row))
        else:
            out.write(oversight.jsonl_rows(row))


# -- audit verify | archive | checkpoint: the chain, its archives and checkpoints ---------


def _audit_verify(app: App, args: argparse.Namespace, out: TextIO) -> int:
    """The chain across the archives and the database, then (``--checkpoints``) each
    signed checkpoint against it."""
    checkpoints = _checkpoint_source(app, args) if args.checkpoints else None
    archive_dir = app.state.archive_dir(app.config)
    with _snapshot(app.engine) as conn:
        report = audit.verify_with_archives(conn, archive_dir)
        if not report.ok:
            raise CliError(EXIT_REFUSED, f"audit log NOT intact: {report.problem}")
        stored = report.database.checked if report.database else 0
        out.write(
            f"audit log intact: {report.checked} records verified ({report.archived} in "
            f"{report.files} archive file(s), {stored} in the database)\n"
        )
        if checkpoints is None:
            return EXIT_OK
        directory, public_key, key_source = checkpoints
        found = audit.verify_checkpoints(conn, directory, archive_dir, public_key)
    if not found.ok:
        raise CliError(EXIT_REFUSED, f"audit log contradicts a signed checkpoint: {found.problem}")
    out.write(
        f"checkpoints: {found.checked} in {directory} agree with the chain, signed by audit "
        f"key {found.key_id} ({key_source}); compare that key id with the one you pinned\n"
    )
    return EXIT_OK


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One transaction that sees one state of the database throughout: on PostgreSQL a
    daily archive run committing mid-walk would otherwise look like deleted records.
    (SQLite's transactions already begin IMMEDIATE, excluding every writer.)"""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")  # in place
        with conn.begin():
            yield conn


def _checkpoint_source(app: App, args: argparse.Namespace) -> tuple[Path, Ed25519PublicKey, Path]:
    """``--checkpoints DIR``: the directory, the public key (DIR's copy, else the state
    directory's) and where it came from; refused (exit 2) if unusable."""
    directory = Path(args.checkpoints)
    if not directory.is_dir():
        raise CliError(EXIT_USAGE, f"--checkpoints {directory}: no such directory")
    if not audit.checkpoint_files(directory):
        raise CliError(
            EXIT_USAGE, f"--checkpoints {directory}: no checkpoint files (checkpoint-*.json) in it"
        )
    source = directory / audit.PUBLIC_KEY_FILE
    if not source.is_file():
        source = app.state.path / AUDIT_PUBLIC_KEY
    try:
        public_key = audit.load_public_key(source.read_bytes(), str(source))
    except FileNotFoundError:
        raise CliError(
            EXIT_USAGE,
            f"--checkpoints {directory}: no public key ({audit.PUBLIC_KEY_FILE}) there or in "
            "the state directory",
        ) from None
    except (OSError, audit.CheckpointError) as e:
        raise CliError(EXIT_USAGE, f"{source}: cannot use it as the audit key: {e}") from None
    pinned = args.key_id
    if pinned and audit.key_id(public_key) != pinned.lower():
        raise CliError(
            EXIT_REFUSED,
            f"{source} holds audit key {audit.key_id(public_key)}, not the pinned key {pinned}",
        )
    return directory, public_key, source


def _audit_archive(app: App, args: argparse.Namespace, out: TextIO) -> int:
    """Move records older than ``[audit] retention_days`` into the archives."""
    import socket

    from ssgate._audit_daily import archive_old_records, retention_cutoff

    config = app.config.audit
    archive_dir = app.state.archive_dir(app.config)
    try:
        moved = archive_old_records(
            app.engine,
            archive_dir,
            config=config,
            clock=app.clock,
            node=socket.gethostname(),
        )
    except audit.ArchiveError as e:
        raise CliError(EXIT_REFUSED, str(e)) from None
    if not moved:
        cutoff = retention_cutoff(app.clock(), config)
        out.write(
            f"nothing to archive: no audit record older than {config.retention_days} days "
            f"(before {_fmt_time(cutoff)}) is in the database\n"
        )
        return EXIT_OK
    for m in moved:
        out.write(
            f"archived audit records {m.first_seq} to {m.last_seq} ({m.count} records, "
            f"{_fmt_time(m.first_at)} to {_fmt_time(m.last_at)}) to "
            f"{archive_dir / m.file}\n"
        )
    total = sum(m.count for m in moved)
    out.write(f"{total} records moved; the database now starts after record {moved[-1].last_seq}\n")
    return EXIT_OK


def _audit_checkpoint(app: App, args: argparse.Namespace, out: TextIO) -> int:
    """Sign the chain head now (as ``serve`` does daily)."""
    from ssgate._app import operator_name

    key = app.state.audit_signing_key()
    try:
        with app.engine.begin() as conn:
            taken = audit.take_checkpoint(
                conn, key, app.state.checkpoints_dir, now=app.clock(), actor=operator_name()
            )
    except OSError as e:
        raise CliError(EXIT_REFUSED, f"checkpoint cannot be written: {e}") from None
    except audit.AuditChainError as e:  # the head is gone: nothing honest to sign
        raise CliError(EXIT_REFUSED, str(e)) from None
    cp = taken.checkpoint
    out.write(
        f"checkpoint of audit record {cp.seq} (hash {cp.hash}) signed with audit key "
        f"{cp.key_id}: {taken.path}\n"
        f"recorded as audit record {taken.record.seq} ({audit.CHECKPOINT_ACTION})\n"
        f"public key: {app.state.path / AUDIT_PUBLIC_KEY} (pin its key id {cp.key_id})\n"
    )
    return EXIT_OK


_CHAIN_COMMANDS: dict[str, Callable[[App, argparse.Namespace, TextIO], int]] = {
    "verify": _audit_verify,
    "archive": _audit_archive,
    "checkpoint": _audit_checkpoint,
}


def _add_chain_commands(add: Callable[..., _Parser], aus: object) -> None:
    """``audit verify [--checkpoints DIR [--key-id ID]] | archive | checkpoint``."""
    p = add(
        "verify",
        "check the hash chain across the archives and the database; exit 1 naming the first "
        "bad record or file",
        cmd_audit,
        aus,
    )
    p.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="also check every signed checkpoint in DIR (e.g. STATE/checkpoints or a copy "
        "kept off the host): exit 1 naming the first the chain contradicts",
    )
    p.add_argument(
        "--key-id",
        metavar="ID",
        help="with --checkpoints: refuse unless the public key used is this pinned key id",
    )
    add(
        "archive",
        "move records older than [audit] retention_days into the archives now",
        cmd_audit,
        aus,
    )
    add(
        "checkpoint",
        "sign the chain head now, into STATE/checkpoints (and as an audit event)",
        cmd_audit,
        aus,
    )


def cmd_sessions(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    import gateway
    from ssgate._app import operator_name

    app = App(state)
    try:
        now = app.clock()
        with app.engine.begin() as conn:
            if args.audit_command == "kill":
                actor = operator_name()
                killed = gateway.kill_session(
                    conn, args.session_id, note=args.reason or "", actor=actor, now=now
                )
            else:
                zone = app.config.display.zone
                rows = _session_rows(conn, args, zone, now=now)
                _write_sessions(rows, args.format, zone, out)
                return EXIT_OK
    finally:
        app.close()
    # Refused outside the transaction: the refused kill's audit event is kept.
    if killed is None:
        raise CliError(
            EXIT_REFUSED, f"session {args.session_id} is not live (see 'ssgate audit live')"
        )
    out.write(f"session {killed.id} of {killed.account} will end within seconds\n")
    return EXIT_OK


# Sessions read per query: a long list streams out a batch at a time.
_SESSION_BATCH = 500


def _session_rows(
    conn: Connection, args: argparse.Namespace, zone: tzinfo, *, now: float
) -> Iterator[oversight.SessionRow]:
    """Every session the filters match, newest first, read by keyset in batches."""
    import gateway

    reasons = {r.slug for r in gateway.Reason}
    reason = getattr(args, "reason", None)
    if reason is not None and reason not in reasons:
        raise CliError(
            EXIT_USAGE,
            f"--reason {reason!r}: not an end reason; one of {', '.join(sorted(reasons))}",
        )
    filters = {
        "account": args.account,
        "unit": args.unit,
        "peer_host": _source_host(args.source),
        "node": args.node,
        "end_reason": reason,
        "since": _parse_when(args.since, "--since", zone),
        "until": _parse_when(args.until, "--until", zone),
    }
    live = args.audit_command == "live"
    before: tuple[float, str] | None = None
    while True:
        rows = gateway.search_sessions(
            conn, **filters, open_only=live, now=now, before=before, limit=_SESSION_BATCH
        )
        yield from rows
        if len(rows) < _SESSION_BATCH:
            return
        before = (rows[-1].started_at, rows[-1].id)


def _write_sessions(
    rows: Iterator[oversight.SessionRow], fmt: str, zone: tzinfo, out: TextIO
) -> None:
    if fmt == "table":
        _table(
            [
                [
                    r.id,
                    r.account,
                    r.status,
                    r.peer,
                    r.node,
                    _local_time(r.started_at, zone),
                    _local_time(r.ended_at, zone),
                    r.end_reason or "-",
                    _kill_text(r, zone),
                    str(r.bytes_in),
                    str(r.bytes_out),
                    str(r.streams_opened),
                ]
                for r in rows
            ],
            [
                "SESSION",
                "ACCOUNT",
                "STATUS",
                "PEER",
                "NODE",
                "STARTED",
                "ENDED",
                "END REASON",
                "KILL",
                "IN",
                "OUT",
                "STREAMS",
            ],
            out,
        )
        return
    if fmt == "csv":
        out.write(oversight.csv_header(oversight.SESSION_COLUMNS, bom=False))
    for r in rows:
        cells = [oversight.session_cells(r, zone)]
        if fmt == "csv":
            out.write(oversight.csv_rows(oversight.SESSION_COLUMNS, cells))
        else:
            out.write(oversight.jsonl_rows(cells))


def _kill_text(r: oversight.SessionRow, zone: tzinfo) -> str:
    """Who asked for a kill, when, and their note, in one table cell."""
    if r.kill_requested_at is None:
        return "-"
    note = " ".join((r.kill_note or "").split())  # one line, whatever was typed
    return f"{_local_time(r.kill_requested_at, zone)} {r.kill_actor or ''}: {note}".strip()


def cmd_pki(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    app = App(state)
    try:
        if args.pki_command == "list":
            with app.engine.begin() as conn:
                rows = certs.list_certificates(conn)
            _table(
                [[c.serial, c.kind, c.status, _fmt_time(c.not_after_at), c.subject] for c in rows],
                ["SERIAL", "KIND", "STATUS", "NOT AFTER", "SUBJECT"],
                out,
            )
            return EXIT_OK
        return _pki_crl(app, args, out)
    finally:
        app.close()


def _pki_crl(app: App, args: argparse.Namespace, out: TextIO) -> int:
    from datetime import timedelta

    from cryptography import x509

    from ssgate._app import operator_name

    if args.renew:
        with app.engine.begin() as conn:
            # Stored as the current CRL: every node reloads it within seconds.
            renewed = certs.sign_crl(
                conn,
                app.ca,
                now=datetime.fromtimestamp(app.clock(), UTC),
                next_update=timedelta(days=app.config.pki.crl_next_update_days),
            )
            audit.append(
                conn,
                audit.AuditEvent(
                    at=app.clock(),
                    actor=operator_name(),
                    action="pki.crl-renew",
                    subject="crl",
                    outcome="ok",
                ),
            )
        app.state.write_public("crl.pem", certs.crl_pem(renewed))
    # The database's copy is the one the gateways use (issue 13); crl.pem is this
    # host's copy, the only one before a node of this version first started.
    with app.engine.connect() as conn:
        stored = certs.current_crl(conn)
    source = "the database (every node uses it)"
    try:
        if stored is not None:
            pem = stored.pem
        else:
            source = str(app.state.crl_path)
            pem = app.state.crl_path.read_bytes()
        crl = x509.load_pem_x509_crl(pem)
    except (OSError, ValueError) as e:
        raise CliError(
            EXIT_REFUSED, f"{source}: no valid CRL ({e}); run 'ssgate pki crl --renew'"
        ) from None
    if args.pem:
        out.write(pem.decode())
        return EXIT_OK
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    out.write(f"CRL from:     {source}\n")
    out.write(f"CRL number:   {number}\n")
    out.write(f"this update:  {crl.last_update_utc:%Y-%m-%d %H:%M:%SZ}\n")
    next_update = crl.next_update_utc
    out.write(
        f"next update:  {next_update:%Y-%m-%d %H:%M:%SZ}" if next_update else "next update:  -"
    )
    if next_update and next_update.timestamp() < app.clock():
        out.write("  EXPIRED: every client is refused until 'ssgate pki crl --renew'")
    out.write(f"\nrevoked:      {len(crl)} certificate(s)\n")
    for revoked in crl:
        out.write(
            f"  serial {revoked.serial_number:x}  revoked {revoked.revocation_date_utc:%Y-%m-%d %H:%M:%SZ}\n"
        )
    return EXIT_OK


def cmd_declare(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._declare_cli import DeclareCommandError, run_declare

    try:
        return run_declare(args, state, out)
    except DeclareCommandError as e:
        raise CliError(e.code, str(e)) from None


def cmd_routes(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._routes import format_routes, route_tables

    out.write(format_routes(route_tables()))
    return 0


def cmd_db(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._db import make_engine
    from ssgate._schema import schema_status, upgrade

    config = state.load_config()
    engine = make_engine(state.database_url(config))
    try:
        before, head = schema_status(engine)
        if args.db_command == "upgrade":
            upgrade(engine)
            out.write(f"database schema: {before or 'empty'} -> {head}\n")
        else:
            out.write(f"database schema: {before or 'empty'} (newest {head})\n")
    finally:
        engine.dispose()
    return EXIT_OK


def cmd_backup(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._app import operator_name
    from ssgate._backup import BackupError, BackupInputError, backup

    try:
        done = backup(state, Path(args.out), actor=operator_name())
    except BackupInputError as e:
        raise CliError(EXIT_USAGE, str(e)) from None
    except BackupError as e:
        raise CliError(EXIT_REFUSED, str(e)) from None
    out.write(
        f"backup written to {done.path} (mode 0600; it holds every key: keep it as the state "
        f"directory is kept): {done.database} database, {done.files} state files, "
        f"audit log up to record {done.audit_records}\n"
    )
    for name in done.not_included:
        out.write(f"not in the archive (outside the state directory): {name}\n")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    from ssgate._app import operator_name
    from ssgate._backup import BackupError, BackupInputError, restore

    try:
        done = restore(
            Path(args.archive),
            state,
            force=args.force,
            actor=operator_name(),
            database_url=args.database_url or "",
        )
    except BackupInputError as e:
        raise CliError(EXIT_USAGE, str(e)) from None
    except BackupError as e:
        raise CliError(EXIT_REFUSED, str(e)) from None
    if done.moved_aside is not None:
        out.write(f"the previous state directory was moved to {done.moved_aside}\n")
    out.write(
        f"restored into {done.state}: {done.database} database, {done.files} state files; "
        f"audit log intact: {done.audit_records} records verified\n"
    )
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------

_STATE_HELP = "state directory (default: $SSGATE_STATE, else ./ssgate-state)"
_FORMATS = ["table", "json", "csv"]
_FORMAT_HELP = (
    "table (times in the display zone, offset shown), json (JSON lines) or csv; "
    "json and csv carry every time as ISO 8601 with its offset"
)
_TIME_HELP = (
    "Times (--since, --until) are ISO 8601: 2026-11-23, 2026-11-23T08:00 or "
    "'2026-11-23 08:00:30' are read in the display time zone ([display] time_zone in "
    "ssgate.toml, default Asia/Shanghai); 2026-11-23T00:00Z or …+08:00 give the offset."
)


def _time_filters(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--since",
        metavar="T",
        help=f"{what} at or after T (ISO 8601; without an offset: the display time zone)",
    )
    p.add_argument(
        "--until",
        metavar="T",
        help=f"{what} before T (ISO 8601; without an offset: the display time zone)",
    )


def _worker_count(value: str) -> int:
    if value.strip().isdigit() and 1 <= int(value) <= 256:
        return int(value)
    raise argparse.ArgumentTypeError(f"must be a number of processes from 1 to 256, not {value!r}")


def _risk_class(value: str) -> int:
    if value.strip() in {str(n) for n in range(1, 9)}:
        return int(value)
    raise argparse.ArgumentTypeError(f"must be an industry risk class 1 to 8, not {value!r}")


def _backup_parsers(add: Callable[..., _Parser]) -> None:
    secrets = (
        "The archive holds every secret of the installation (CA key, TOTP key, identity "
        "and resume keys, server key, configuration): it is written with mode 0600; keep "
        "it as the state directory is kept."
    )
    p = add(
        "backup",
        "write the database (a consistent online copy: SQLite backup API or pg_dump) and "
        "the state directory's keys and configuration to one archive",
        cmd_backup,
    )
    p.epilog = secrets
    p.add_argument("--out", required=True, metavar="FILE", help="the archive to write (atomic)")
    p = add(
        "restore",
        "restore an archive from 'ssgate backup' into --state (new or empty), then check "
        "the schema and the audit chain",
        cmd_restore,
    )
    p.epilog = secrets + (
        " A PostgreSQL archive is restored into the database its ssgate.toml names, "
        "which must hold no tables unless --force."
    )
    p.add_argument("archive", metavar="FILE", help="an archive written by 'ssgate backup'")
    p.add_argument(
        "--force",
        action="store_true",
        help="restore over a non-empty state directory (moved aside, never deleted) and "
        "replace the tables of a non-empty PostgreSQL database",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL archives: restore into this database (postgresql+psycopg://…) "
        "and write it into the restored ssgate.toml",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--state", metavar="DIR", default=argparse.SUPPRESS, help=_STATE_HELP)
    parser = _Parser(
        prog="ssgate",
        description="Secure dedicated network for social-insurance online declaration.",
        epilog="Exit status: 0 ok, 1 refused or failed, 2 bad usage or input.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"ssgate {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    def add(
        name: str,
        help: str,
        fn: Callable[..., int],
        parent: argparse._SubParsersAction[_Parser] = sub,
    ) -> _Parser:
        p = parent.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=fn)
        return p

    p = add(
        "init",
        "create the state directory: configuration, CA, server certificate, keys, database",
        cmd_init,
    )
    p.add_argument(
        "--hostname",
        default="localhost",
        help="the gateway's public DNS name or IP (server certificate, profiles)",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="postgresql+psycopg://… instead of SQLite in the state directory",
    )
    p.add_argument(
        "--join",
        metavar="FILE",
        help="a new node: the configuration, CA and keys from 'ssgate node export' (the "
        "database is the exporting node's; --hostname and --database-url do not apply)",
    )
    p.add_argument(
        "--passphrase-file",
        metavar="F",
        help="with --join: the export's passphrase, first line of F (default: ask)",
    )
    p = add(
        "demo",
        "init if needed, load demo data, print every login and the 'ssgate connect' "
        "command, then serve until Ctrl-C",
        cmd_demo,
    )
    p.add_argument("--no-serve", action="store_true", help="load and print, but do not serve")
    p.add_argument(
        "--code", action="store_true", help="print the demo account's current one-time code"
    )
    p.add_argument(
        "--auditor", action="store_true", help="with --code: the demo auditor's code instead"
    )
    p = add("serve", "run the gateway and the declare service until Ctrl-C / SIGTERM", cmd_serve)
    from ssgate._workers import default_workers

    p.add_argument(
        "--workers",
        type=_worker_count,
        default=default_workers(),
        metavar="N",
        help="worker processes sharing the listening sockets, each a node of its own "
        "(<[node] name>-<i>, or host:pid); this process binds the listeners, starts the "
        "workers, starts again one that dies (with a back-off) and on SIGTERM/SIGINT or "
        "'ssgate node drain' drains them all. 1: one process, no supervisor. Default: "
        "$SSGATE_WORKERS, else the number of cores (here %(default)s)",
    )
    from ssgate._connect import configure_parser

    p = add(
        "connect",
        "the employer's secure-channel client: dial the gateway, log in, "
        "serve the declaration pages on a loopback address / 单位端安全专网客户端",
        cmd_connect,
    )
    configure_parser(p)  # bilingual options, help and exit-status list

    units = add("units", "agency: register units and approve them for online service", cmd_units)
    us = units.add_subparsers(
        dest="units_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = add("register", "register a unit", cmd_units, us)
    p.add_argument("code", metavar="CODE", help="8-digit unit social-insurance code")
    p.add_argument("--name", required=True, help="the unit's registered name")
    p.add_argument("--region", required=True, help="6-digit region code, e.g. 330682")
    p.add_argument("--credit-code", metavar="USCC", help="18-character unified social credit code")
    p.add_argument(
        "--injury-risk-class",
        metavar="N",
        type=_risk_class,
        help="工伤行业风险类别 1-8 (人社部发〔2015〕71号); without it the unit cannot enrol "
        "anyone in work injury (410) until a 单位基本信息变更 sets it",
    )
    p = add("approve", "approve a registered unit for online service", cmd_units, us)
    p.add_argument("code", metavar="CODE")
    p = add("list", "list units", cmd_units, us)
    p.add_argument("--status", choices=["registered", "approved"])

    prov = add("provision", "carrier: channel accounts and enrolment bundles", cmd_provision)
    ps = prov.add_subparsers(
        dest="provision_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = add(
        "open",
        "open an account for an approved unit and write its bundle to --out",
        cmd_provision,
        ps,
    )
    p.add_argument("account", metavar="ACCOUNT", help="e.g. 33068212345678@sxlss")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="new directory for the enrolment bundle"
    )
    p.add_argument(
        "--password-file", metavar="F", help="initial password (first line); default: generated"
    )
    p.add_argument(
        "--p12-password-file",
        metavar="F",
        help="client.p12 passphrase (first line); default: generated",
    )
    p.add_argument("--reason", help="recorded in the audit log")
    for name, help in (
        ("suspend", "suspend an account (ends its sessions)"),
        ("resume", "resume a suspended account"),
        ("cancel", "cancel an account for good and revoke its certificate"),
    ):
        p = add(name, help, cmd_provision, ps)
        p.add_argument("account", metavar="ACCOUNT")
        p.add_argument("--reason", help="recorded in the audit log")
    p = add("reset-password", "set a new password and clear the lockout", cmd_provision, ps)
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--password-file", metavar="F")
    p.add_argument("--reason", help="recorded in the audit log")
    p = add("reset-otp", "issue a new TOTP secret", cmd_provision, ps)
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--out", metavar="DIR", help="new directory for otpauth.txt and the QR codes")
    p.add_argument("--reason", help="recorded in the audit log")
    p = add(
        "reissue-cert", "revoke the client certificate and issue a new bundle", cmd_provision, ps
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--p12-password-file", metavar="F")
    p.add_argument("--reason", help="recorded in the audit log")
    p = add(
        "unlock",
        "clear an account's lockout (failure counters, timed or hard lock)",
        cmd_provision,
        ps,
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--reason", help="recorded in the audit log")
    p = add("show", "show an account, its certificates and lockout state", cmd_provision, ps)
    p.add_argument("account", metavar="ACCOUNT")
    p = add("list", "list accounts", cmd_provision, ps)
    p.add_argument("--status", choices=["active", "suspended", "cancelled"])

    staff = add(
        "staff",
        "administrator: staff members of the console: enrol, list, show, unlock, reset, "
        "disable, enable (each audited with the OS user as actor)",
        cmd_staff,
    )
    ss = staff.add_subparsers(
        dest="staff_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    name_help = "the staff member's login name"
    reason_help = "why, recorded in the audit log"
    p = add(
        "add",
        "add a staff member with a role; the initial password and the TOTP enrolment are "
        'shown once: give them to the staff member (with [directory] backend = "ldap" no '
        "password is asked for, stored or printed: the directory checks it)",
        cmd_staff,
        ss,
    )
    p.add_argument("name", metavar="NAME", help=name_help)
    p.add_argument("--role", required=True, choices=["carrier", "auditor", "officer", "admin"])
    p.add_argument(
        "--password-file",
        metavar="F",
        help="initial password (default: generated and shown once); refused with an LDAP directory",
    )
    p.add_argument("--out", metavar="DIR", help="new directory for otpauth.txt and the QR codes")
    p.add_argument("--reason", help=reason_help)
    add("list", "list staff members: name, role, status, lockout", cmd_staff, ss)
    p = add("show", "show a staff member: role, status, lockout and failure counts", cmd_staff, ss)
    p.add_argument("name", metavar="NAME", help=name_help)
    p = add(
        "unlock",
        "clear a staff member's lockout (failure counters, timed or hard lock): "
        "the way back for someone who locked themselves out of the console",
        cmd_staff,
        ss,
    )
    p.add_argument("name", metavar="NAME", help=name_help)
    p.add_argument("--reason", help=reason_help)
    p = add(
        "reset-password",
        "set a new password (generated and shown once: give it to the staff member), clear "
        "the lockout and end their console sessions",
        cmd_staff,
        ss,
    )
    p.add_argument("name", metavar="NAME", help=name_help)
    p.add_argument(
        "--password-file", metavar="F", help="the new password (first line); default: generated"
    )
    p.add_argument("--reason", help=reason_help)
    p = add(
        "reset-otp",
        "issue a new TOTP secret (QR codes written to --out: give them to the staff member) "
        "and end their console sessions",
        cmd_staff,
        ss,
    )
    p.add_argument("name", metavar="NAME", help=name_help)
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="new directory for otpauth.txt and the QR codes",
    )
    p.add_argument("--reason", help=reason_help)
    p = add(
        "disable",
        "disable a staff member: no more logins, and their console sessions end at once "
        "on every node",
        cmd_staff,
        ss,
    )
    p.add_argument("name", metavar="NAME", help=name_help)
    p.add_argument("--reason", help=reason_help)
    p = add(
        "enable",
        "let a disabled staff member log in again (sessions ended by the disable stay ended)",
        cmd_staff,
        ss,
    )
    p.add_argument("name", metavar="NAME", help=name_help)
    p.add_argument("--reason", help=reason_help)

    aud = add("audit", "security officer: review and verify the audit log", cmd_audit)
    aud.epilog = _TIME_HELP
    aus = aud.add_subparsers(
        dest="audit_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    for name, help in (
        ("actions", "every recorded action, oldest first"),
        ("logins", "login attempts (actions login and login.*), oldest first"),
    ):
        p = add(name, help, cmd_audit, aus)
        p.epilog = _TIME_HELP
        p.add_argument(
            "--action",
            metavar="NAME",
            help="only this action and its sub-actions (login matches login and login.resume)",
        )
        p.add_argument(
            "--account",
            metavar="A",
            help="what account A was the subject of (provisioning, logins) and what it did "
            "itself (actor channel:A: declarations, queries, password change)",
        )
        p.add_argument("--unit", metavar="U", help="events of the unit with 8-digit code U")
        p.add_argument("--session", metavar="ID", help="events of one channel session (its id)")
        p.add_argument(
            "--outcome", choices=sorted(audit.OUTCOMES), help="only ok, refused or failed events"
        )
        p.add_argument(
            "--source",
            metavar="IP",
            help="events from this client address (the peer or source in the details)",
        )
        _time_filters(p, "the event's time")
        p.add_argument("--format", choices=_FORMATS, default="table", help=_FORMAT_HELP)
    for name, help in (
        ("sessions", "channel sessions, newest first"),
        ("live", "live sessions (open and seen recently), newest first"),
    ):
        p = add(name, help, cmd_sessions, aus)
        p.epilog = _TIME_HELP
        p.add_argument("--account", metavar="A", help="sessions of channel account A")
        p.add_argument("--unit", metavar="U", help="sessions of the unit with 8-digit code U")
        p.add_argument(
            "--source", metavar="IP", help="sessions from this client address (without port)"
        )
        p.add_argument("--node", metavar="NODE", help="sessions held by this gateway node")
        if name == "sessions":
            p.add_argument(
                "--reason",
                metavar="CODE",
                help="sessions that ended for this reason code (e.g. idle-timeout, officer-kill)",
            )
        _time_filters(p, "the session's start")
        p.add_argument("--format", choices=_FORMATS, default="table", help=_FORMAT_HELP)
    p = add(
        "kill", "end a live session (the client is told an officer ended it)", cmd_sessions, aus
    )
    p.add_argument("session_id", metavar="SESSION_ID")
    p.add_argument("--reason", help="a note kept in the session record and the audit log")
    _add_chain_commands(add, aus)
    p = add(
        "export",
        "export the whole log in its exact form (at as hashed, both hashes, UTC times), "
        "so the chain can be checked again",
        cmd_audit,
        aus,
    )
    p.add_argument("--format", required=True, choices=["jsonl", "csv", "syslog"])

    pki = add("pki", "the private CA: certificates and revocation list", cmd_pki)
    pks = pki.add_subparsers(
        dest="pki_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = add("crl", "show the current CRL", cmd_pki, pks)
    p.add_argument(
        "--renew", action="store_true", help="re-sign the CRL now (do this before 'next update')"
    )
    p.add_argument("--pem", action="store_true", help="print the CRL in PEM")
    add("list", "list issued certificates", cmd_pki, pks)

    add(
        "routes",
        "both sites' route tables: site, method, path and the role that may call it "
        "(employer = the unit of the gateway session; public = no login; staff = any "
        "logged-in staff member; admin may call every console route)",
        cmd_routes,
    )
    _backup_parsers(add)
    node = add(
        "node",
        "this gateway node among the nodes sharing the database: drain, list, export, policy",
        cmd_node_drain,
    )
    node_actions = node.add_subparsers(
        dest="node_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    _node_drain_parser(add, node_actions)
    _node_export_parsers(add, node_actions)

    from ssgate._declare_cli import add_declare_parser

    add_declare_parser(add, cmd_declare)
    db = add("db", "database schema status and upgrade", cmd_db)
    ds = db.add_subparsers(dest="db_command", metavar="ACTION", required=True, parser_class=_Parser)
    add("status", "show the schema revision", cmd_db, ds)
    add("upgrade", "migrate to the newest schema", cmd_db, ds)

    from ssgate._radius import add_radius_commands

    add_radius_commands(add, _Parser)
    _persons_parser(add)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    state = StateDir(resolve_state_dir(getattr(args, "state", None)))
    try:
        result: int = args.func(args, state, out)
        return result
    except CliError as e:
        return _fail(e.code, str(e))
    except _USAGE_ERRORS as e:
        return _fail(EXIT_USAGE, str(e))
    except _REFUSALS as e:
        return _fail(EXIT_REFUSED, str(e))
    except sa_exc.OperationalError as e:
        return _fail(EXIT_REFUSED, f"database unavailable: {str(e.orig).strip().splitlines()[0]}")
    except KeyboardInterrupt:
        return _fail(EXIT_REFUSED, "interrupted")
    except BrokenPipeError:
        # The reader went away (`ssgate … | head -1`): what it wanted it got.  Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:  # the one place that turns bugs into one line
        if os.environ.get("SSGATE_DEBUG"):
            traceback.print_exc()
        return _fail(
            EXIT_REFUSED,
            f"internal error ({type(e).__name__}); rerun with SSGATE_DEBUG=1 for details",
        )


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"ssgate: {message}\n")
    return code


def _json_dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
