"""``ssgate staff …`` on a real state directory (SQLite), and issue 11's acceptance 3: a
staff member locked out of the console is let back in by ``ssgate staff unlock``, and
``ssgate staff disable`` ends a live console session at once.

The console is the one ``serve`` builds, on the same state directory's database, driven
in memory (:class:`ssgate._console.testing.ConsoleClient`): what the command changes,
the console's next request sees.
"""

from __future__ import annotations

import io
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
from auth.testing import SynchronousRunner
from ssgate import cli
from ssgate._app import App, operator_name
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient
from ssgate._serve import make_authenticator
from ssgate._state import StateDir

PASSWORD = "Correct-Horse-9-battery"


def _ssgate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``ssgate init`` for the module (a CA and keys take a while); each test copies
    nothing and works on its own member names."""
    state = tmp_path_factory.mktemp("cli-staff") / "state"
    code, text = _ssgate("--state", str(state), "init", "--hostname", "localhost")
    assert code == 0, text
    return state


@pytest.fixture
def state(initialised: Path) -> Path:
    return initialised


def _add(state: Path, tmp: Path, name: str, role: str = "auditor") -> str:
    """``staff add`` with a known password; the member's TOTP secret."""
    pw = tmp / f"{name}.pw"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    out = tmp / f"{name}-otp"
    code, text = _ssgate(
        "--state", str(state), "staff", "add", name, "--role", role,
        "--password-file", str(pw), "--out", str(out),
    )  # fmt: skip
    assert code == 0, text
    uri = (out / "otpauth.txt").read_text(encoding="utf-8").strip()
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


def _events(state: Path, action: str) -> list[audit.AuditEvent]:
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions=[action])]
    finally:
        app.close()


def test_staff_add_prints_the_password_once_for_the_staff_member(
    state: Path, tmp_path: Path
) -> None:
    code, text = _ssgate("--state", str(state), "staff", "add", "cli.add", "--role", "officer")
    assert code == 0, text
    assert "give it to the staff member" in text and "unit" not in text
    assert re.search(r"^TOTP URI: +otpauth://\S+$", text, re.M)
    [event] = [e for e in _events(state, "staff.add") if e.subject == "cli.add"]
    assert (event.actor, event.details["role"]) == (operator_name(), "officer")
    password = re.search(r"initial password: (\S+)", text)
    assert password is not None and password.group(1) not in repr(event)


def test_list_and_show_tell_role_status_and_lockout(state: Path, tmp_path: Path) -> None:
    _add(state, tmp_path, "cli.show")
    code, text = _ssgate("--state", str(state), "staff", "list")
    assert code == 0
    assert re.search(r"^cli\.show +auditor +active +no ", text, re.M), text
    code, text = _ssgate("--state", str(state), "staff", "show", "cli.show")
    assert code == 0
    assert "role:      auditor" in text and "lockout:   no; 0 consecutive failures" in text


def test_reset_password_and_reset_otp_hand_out_new_credentials(state: Path, tmp_path: Path) -> None:
    _add(state, tmp_path, "cli.reset")
    code, text = _ssgate("--state", str(state), "staff", "reset-password", "cli.reset")
    assert code == 0, text
    assert "give it to the staff member" in text and "lockout cleared" in text
    out = tmp_path / "new-otp"
    code, text = _ssgate(
        "--state", str(state), "staff", "reset-otp", "cli.reset", "--out", str(out), "--reason", "new phone"
    )  # fmt: skip
    assert code == 0, text
    assert sorted(p.name for p in out.iterdir()) == ["otp-qr.png", "otp-qr.svg", "otpauth.txt"]
    assert "give the QR code or this URI to the staff member" in text
    [event] = [e for e in _events(state, "staff.reset-otp") if e.subject == "cli.reset"]
    assert (event.actor, event.reason) == (operator_name(), "new phone")


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["show", "nobody"], 1, "staff member nobody does not exist"),
        (["unlock", "nobody"], 1, "does not exist"),
        (["disable", "Bad Name"], 2, "staff name 'Bad Name' must be"),
        (["reset-otp", "nobody"], 2, "--out"),
        (["add", "x.y", "--role", "root"], 2, "invalid choice"),
    ],
)
def test_bad_input_is_exit_2_and_refusals_exit_1_with_one_line(
    state: Path, argv: list[str], status: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    if argv[0] == "reset-otp" or argv[-1] == "root":
        with pytest.raises(SystemExit) as exited:
            cli.main(["--state", str(state), "staff", *argv])
        assert exited.value.code == status
    else:
        assert cli.main(["--state", str(state), "staff", *argv]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unlocking_someone_not_locked_is_refused(state: Path, tmp_path: Path) -> None:
    _add(state, tmp_path, "cli.free")
    code, _ = _ssgate("--state", str(state), "staff", "unlock", "cli.free")
    assert code == 1
    assert [e.reason for e in _events(state, "staff.unlock") if e.subject == "cli.free"] == [
        "not-locked"
    ]


def test_every_staff_action_has_a_help_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["staff", "--help"])
    text = capsys.readouterr().out
    for action in (
        "add",
        "list",
        "show",
        "unlock",
        "reset-password",
        "reset-otp",
        "disable",
        "enable",
    ):
        assert re.search(rf"^\s+{action}\s+\S", text, re.M), (action, text)


# -- acceptance 3 ------------------------------------------------------------------------


class Console:
    """The console ``serve`` builds, on the state directory's database, in memory."""

    def __init__(self, state: Path) -> None:
        self.app = App(StateDir(state))
        self.clock = MemoryReactorClock()
        self.clock.advance(time.time())
        authenticator = make_authenticator(self.app)
        self.site = console_site(
            authenticator=authenticator,
            runner=SynchronousRunner(self.app.engine),
            workflow=None,
            staff_admin=self.app.staff_admin(),
            lockout=authenticator.policy,
            clock=self.clock,
            secure=False,
            refusal_delay=0,
            login_form_key=bytes(range(32)),
        )

    def client(self) -> ConsoleClient:
        return ConsoleClient(self.site, clock=self.clock)


@pytest.fixture
def console(state: Path) -> Iterator[Console]:
    c = Console(state)
    yield c
    c.app.close()


def test_a_member_locked_out_in_the_console_is_let_back_in_by_staff_unlock(
    state: Path, tmp_path: Path, console: Console
) -> None:
    secret = _add(state, tmp_path, "locked.out")
    browser = console.client()
    for _ in range(console.app.config.lockout.threshold):
        assert browser.login("locked.out", "wrong-Password-1", "000000").status == 403
    console.clock.advance(30)
    code = auth.current_code(secret, console.clock.seconds())
    locked = browser.login("locked.out", PASSWORD, code)
    assert locked.status == 403  # the right password, but locked
    assert "ssgate staff unlock" in locked.text and "分钟" in locked.text

    status, text = _ssgate("--state", str(state), "staff", "unlock", "locked.out")
    assert status == 0, text
    assert "staff locked.out unlocked" in text

    reply = browser.login("locked.out", PASSWORD, code)
    assert (reply.status, reply.location) == (303, "/")
    assert browser.get("/").status == 200
    [event] = [e for e in _events(state, "staff.unlock") if e.subject == "locked.out"]
    assert (event.actor, event.outcome) == (operator_name(), "ok")


def test_staff_disable_ends_a_live_console_session_at_its_next_request(
    state: Path, tmp_path: Path, console: Console
) -> None:
    secret = _add(state, tmp_path, "to.disable")
    browser = console.client()
    console.clock.advance(30)
    code = auth.current_code(secret, console.clock.seconds())
    assert browser.login("to.disable", PASSWORD, code).status == 303
    assert browser.get("/").status == 200

    status, text = _ssgate("--state", str(state), "staff", "disable", "to.disable")
    assert (status, text) == (0, "staff to.disable is now disabled; 1 console session(s) ended\n")

    reply = browser.get("/")
    assert (reply.status, reply.location) == (303, "/login")
    ends = [e for e in _events(state, "console.session-end") if e.subject == "to.disable"]
    assert [e.reason for e in ends] == ["staff-disabled"]
    status, _ = _ssgate("--state", str(state), "staff", "enable", "to.disable")
    assert status == 0
    assert browser.get("/").location == "/login"  # the ended session stays ended
