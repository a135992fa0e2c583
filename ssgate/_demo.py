"""``ssgate demo``: a ready-to-try installation on the embedded SQLite default.

A demo state directory listens on loopback only (gateway and staff console).  The
banner is short enough to read: the unit, the account, the live numbers of persons and
declarations, where the logins are (``demo-logins.txt``, mode 0600, not printed), the
current code and the connect command to paste, with the absolute path of this
``ssgate`` script, because a second terminal has no activated venv.  Requests go to
``STATE/logs/access.log``, not to the terminal.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

import audit
import auth
import declare_app
from auth._store import load_login
from declare_app._contributions import DEMO_330682_FILE
from declare_app._demo_data import load_demo, unit_counts
from ssgate._app import App, operator_name
from ssgate._init import init_state
from ssgate._state import StateDir

DEMO_REGION = "330682"
DEMO_UNIT = "12345678"
DEMO_UNIT_NAME = "绍兴市上虞示范制造有限公司"
DEMO_CREDIT_PREFIX = "91330604MA2BCDEF"  # 16 characters; org check char and USCC check appended
DEMO_ACCOUNT = f"{DEMO_REGION}{DEMO_UNIT}@sxlss"
LOGINS_FILE = "demo-logins.txt"  # 0600; the demo's own logins, so a rerun can show them again
PASSWORD_FILE = "demo-password.txt"  # noqa: S105 (a file name; 0600, for the paste command)
P12_PASSWORD_FILE = "demo-p12-password.txt"  # noqa: S105
BUNDLE_DIR = "demo-bundle"
LOOPBACK_GATEWAY = "tcp:8443:interface=127.0.0.1"  # the demo is for this machine only
DEMO_AUDITOR = "demo.auditor"  # agency auditor for the staff console
DEMO_SEED = 20261123  # the demo's persons and declarations are the same on every machine


def demo_credit_code() -> str:
    from declare_app._identifiers import org_code_check_char, uscc_check_char

    first17 = DEMO_CREDIT_PREFIX + org_code_check_char(DEMO_CREDIT_PREFIX[8:16])
    return first17 + uscc_check_char(first17)


def current_demo_code(state: StateDir, *, auditor: bool = False) -> str | None:
    """The demo employer's (or the demo auditor's) one-time code right now; None before
    the demo was loaded."""
    principal, kind = (DEMO_AUDITOR, "staff") if auditor else (DEMO_ACCOUNT, "account")
    app = App(state)
    try:
        with app.engine.begin() as conn:
            login = load_login(conn, principal, kind)
        if login is None:
            return None
        secret = app.box.open(login.totp_secret_sealed, context=auth.totp_secret_context(principal))
        return auth.current_code(secret, time.time())
    finally:
        app.close()


def ssgate_script() -> str:
    """The absolute path of the running ``ssgate`` command (its venv's script), so that
    a printed command works in a shell whose PATH does not have it."""
    started_as = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started_as is not None and started_as.name == "ssgate" and started_as.is_file():
        return str(started_as.absolute())
    beside = Path(sys.executable).parent / "ssgate"  # python -c / -m, or a test
    if beside.is_file():
        return str(beside.absolute())
    found = shutil.which("ssgate")
    return str(Path(found).absolute()) if found else "ssgate"


def connect_command(state: StateDir) -> str:
    """The exact command an employer would paste to dial the demo gateway."""
    base = state.path.absolute()
    ssgate = shlex.quote(ssgate_script())

    def q(path: Path) -> str:
        return shlex.quote(str(path))

    return (
        f"{ssgate} connect --profile {q(base / BUNDLE_DIR / 'profile.toml')} "
        f"--password-file {q(base / PASSWORD_FILE)} "
        f"--p12-password-file {q(base / P12_PASSWORD_FILE)} "
        f'--otp "$({ssgate} --state {q(base)} demo --code)"'
    )


def demo_banner(state: StateDir) -> str:
    """The lines above the connect command: what there is, and where the logins are."""
    app = App(state)
    try:
        with app.engine.begin() as conn:
            counts = unit_counts(conn, DEMO_UNIT)
    finally:
        app.close()
    base = state.path.absolute()
    return (
        f"demo unit:        {DEMO_UNIT} {DEMO_UNIT_NAME} (region {DEMO_REGION})\n"
        f"channel account:  {DEMO_ACCOUNT}\n"
        f"staff auditor:    {DEMO_AUDITOR}\n"
        f"demo data:        {counts.persons} persons ({counts.insured} insured now), "
        f"{counts.declarations} declarations\n"
        f"logins:           {base / LOGINS_FILE}  (passwords, TOTP URIs; 0600)\n"
        f"access log:       {base / 'logs' / 'access.log'}\n"
    )


def run_demo(state: StateDir, out: TextIO, *, serve: bool = True) -> int:
    if not state.is_initialised():
        init_state(
            state.path,
            hostname="localhost",
            clock=time.time,
            actor=operator_name(),
            gateway_listen=LOOPBACK_GATEWAY,
        )
        out.write(f"initialised {state.path}\n")
    logins = state.path / LOGINS_FILE
    if not logins.exists():
        if _install_demo_rates(state):
            out.write(f"installed the demo rates ({DEMO_330682_FILE}, none verified)\n")
        text = _load_demo(App(state))
        state.write_secret(LOGINS_FILE, text.encode())
    out.write(demo_banner(state))
    listen = state.load_config().gateway.listen
    if not _on_loopback(listen):
        out.write(
            f"note:             this state's gateway listens on {listen!r}, not loopback "
            "only ([gateway] listen in ssgate.toml)\n"
        )
    code = current_demo_code(state)
    ssgate = shlex.quote(ssgate_script())
    base = shlex.quote(str(state.path.absolute()))
    if code is not None:
        out.write(f"one-time code:    {code}  (changes every 30 s; 'ssgate demo --code')\n")
    banner = (
        "\nIn another terminal, dial the secure channel as the demo employer:\n\n"
        f"  {connect_command(state)}\n\n"
        "then open http://127.0.0.1:8080/ to declare as the demo unit.\n\n"
        f"Agency auditors review at https://localhost:8444/ (staff console; the CA is "
        f"{state.path.absolute() / 'ca.pem'}): staff {DEMO_AUDITOR}, password in "
        f"{LOGINS_FILE}, code from '{ssgate} --state {base} demo --code --auditor'.\n"
    )
    if not serve:
        out.write(banner.replace("In another terminal, dial", "Start 'ssgate serve', then dial"))
        return 0
    from ssgate._serve import run_serve

    out.write("\n")
    return run_serve(state, out, banner=banner + "\n")


def _install_demo_rates(state: StateDir) -> bool:
    """The demo's own figures (every one ``verified = false``) into the rates file, when
    that has none — ``ssgate init`` installs no figures, and an operator's own stay."""
    app = App(state)
    try:
        if app.rate_table.regions:
            return False
        state.write_public(app.config.declare.rates_file, declare_app.DEMO_330682.encode())
        return True
    finally:
        app.close()


def _on_loopback(spec: str) -> bool:
    """Whether a listen endpoint string reaches this machine only."""
    if spec.startswith("unix:"):
        return True
    return any(f"interface={host}" in spec for host in ("127.0.0.1", "localhost", r"\:\:1"))


def _load_demo(app: App) -> str:
    actor, now = operator_name(), app.clock()
    try:
        with app.engine.begin() as conn:
            if declare_app.get_unit(conn, DEMO_UNIT) is None:
                declare_app.register_unit(
                    conn,
                    DEMO_UNIT,
                    name=DEMO_UNIT_NAME,
                    region=DEMO_REGION,
                    credit_code=demo_credit_code(),
                    actor=actor,
                    now=now,
                )
                declare_app.approve_unit(conn, DEMO_UNIT, actor=actor, now=now)
                for action in ("units.register", "units.approve"):
                    audit.append(
                        conn,
                        audit.AuditEvent(
                            at=now,
                            actor=actor,
                            action=action,
                            subject=DEMO_UNIT,
                            outcome="ok",
                            unit=DEMO_UNIT,
                            details={"region": DEMO_REGION},
                        ),
                    )
        bundle = app.state.path / BUNDLE_DIR
        issued = app.provisioner().open(DEMO_ACCOUNT, bundle)
        assert issued.password is not None and issued.p12_passphrase is not None  # generated
        app.state.write_secret(PASSWORD_FILE, issued.password.encode() + b"\n")
        app.state.write_secret(P12_PASSWORD_FILE, issued.p12_passphrase.encode() + b"\n")
        auditor = app.staff_admin().add(DEMO_AUDITOR, "auditor", reason="demo")
        with app.engine.begin() as conn:
            summary = load_demo(
                conn,
                DEMO_UNIT,
                now=now,
                seed=DEMO_SEED,
                rates=app.rate_table,
                account=DEMO_ACCOUNT,
                auditor=DEMO_AUDITOR,
            )
    finally:
        app.close()
    return (
        f"demo unit:              {DEMO_UNIT} {DEMO_UNIT_NAME} (region {DEMO_REGION})\n"
        f"channel account:        {issued.account}\n"
        f"password:               {issued.password}\n"
        f"TOTP URI:               {issued.otp_uri}\n"
        f"client.p12 passphrase:  {issued.p12_passphrase}\n"
        f"enrolment bundle:       {bundle}/\n"
        f"staff console auditor:  {DEMO_AUDITOR}\n"
        f"auditor password:       {auditor.password}\n"
        f"auditor TOTP URI:       {auditor.otp_uri}\n"
        f"demo data loaded:       {summary.persons} persons, "
        f"{len(summary.declarations)} declarations in various states\n"
    )
