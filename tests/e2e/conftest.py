"""End-to-end helpers: run the real ``ssgate`` command in a subprocess."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SSGATE = shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"

Run = Callable[..., subprocess.CompletedProcess[str]]

# ``ssgate init`` installs no contribution figures (issue 14): a state that declares
# installs the demo figures explicitly, as an operator installs the agency's own.
DEMO_RATES = Path(__file__).resolve().parents[2] / "declare_app" / "rates_330682_demo.toml"


def install_demo_rates(run: Run, state: Path | None = None) -> None:
    """``ssgate declare rates --install`` the demo figures (every one unverified)."""
    run("declare", "rates", "--install", str(DEMO_RATES), state=state, check_rc=0)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run("provision", "open", ...)`` against a state directory in tmp_path."""

    def _run(
        *args: str, state: Path | None = None, check_rc: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
        result = subprocess.run(
            [SSGATE, "--state", str(state or tmp_path / "state"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check_rc is not None:
            assert result.returncode == check_rc, (result.stdout, result.stderr)
        return result

    return _run


# -- the secure channel with real processes --------------------------------------------

import re  # noqa: E402
import selectors  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import pyotp  # noqa: E402

WAIT = 30.0  # seconds any single step may take on a loaded CI machine
# 'ssgate serve' is one process (as before --workers) unless a test asks for workers.
os.environ.setdefault("SSGATE_WORKERS", "1")


GATEWAY_SOCKET = "gateway"  # the name serve's [gateway] listen adopts the socket by

# Run as ``python -I -c SOCKET_ACTIVATION FD PROGRAM ARG…``: hands the listening socket
# FD to PROGRAM the way systemd's socket activation does (fd 3, LISTEN_FDS,
# LISTEN_FDNAMES, and LISTEN_PID, which must be PROGRAM's own pid: known only here,
# after the fork, and kept by exec).
SOCKET_ACTIVATION = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def listening_socket() -> socket.socket:
    """A TCP socket listening on a loopback port the kernel chose (bind port 0)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
    except OSError:
        s.close()
        raise
    return s


class Proc:
    """A child process whose output lines we can wait for (no sleeps, bounded waits)."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        listening: socket.socket | None = None,
    ) -> None:
        """Start *args*; with *listening*, the child gets that socket as systemd's
        socket activation hands one over (fd 3, named :data:`GATEWAY_SOCKET`)."""
        self.args = args
        pass_fds: tuple[int, ...] = ()
        if listening is not None:
            pass_fds = (listening.fileno(),)
            args = [sys.executable, "-I", "-c", SOCKET_ACTIVATION, str(pass_fds[0]), *args]
            env = {
                **(os.environ if env is None else env),
                "LISTEN_FDS": "1",
                "LISTEN_FDNAMES": GATEWAY_SOCKET,
            }
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,  # stop() ends the whole group (socat forks per client)
        )
        assert self.popen.stdout is not None
        os.set_blocking(self.popen.stdout.fileno(), False)
        self._buffer = b""
        self.lines: list[str] = []

    def _pump(self, timeout: float) -> bool:
        """Read what is there (waiting up to *timeout*); False at end of output."""
        assert self.popen.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return True
        chunk = self.popen.stdout.read()
        if not chunk:
            return False
        self._buffer += chunk
        *done, self._buffer = self._buffer.split(b"\n")
        self.lines += [line.decode("utf-8", "replace") for line in done]
        return True

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first output line matching *pattern*; fails with the output so far."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                m = re.search(pattern, line)
                if m:
                    return m
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in:\n{self.output}")
            if not self._pump(min(left, 0.5)) and self.popen.poll() is not None:
                for line in self.lines[seen:]:
                    m = re.search(pattern, line)
                    if m:
                        return m
                raise AssertionError(
                    f"exited {self.popen.returncode} before {pattern!r}:\n{self.output}"
                )

    def wait_exit(self, timeout: float = WAIT) -> int:
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None or self._pump(0):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"still running after {timeout} s:\n{self.output}")
            self._pump(min(left, 0.2))
        return self.popen.returncode

    def stop(self) -> None:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        assert self.popen.stdout is not None
        self.popen.stdout.close()


@dataclass
class Account:
    name: str
    bundle: Path
    password_file: Path
    p12_password_file: Path
    totp: pyotp.TOTP

    @property
    def profile(self) -> Path:
        return self.bundle / "profile.toml"

    def code(self, offset_steps: int = 0) -> str:
        return str(self.totp.at(time.time() + 30 * offset_steps))


@dataclass
class Channel:
    """A state directory with ``ssgate serve`` on loopback, and no port left to chance.

    The gateway adopts a listening socket this fixture bound to port 0 and holds for
    the channel's whole life (``[gateway] listen = "systemd:…"``, handed over as
    systemd's socket activation does): its port is known before anything starts, so
    every profile ``provision open`` writes names the port that serves, and a serve
    started again (after a kill, say) serves on the same one.  (While no serve runs,
    a client's connection waits in that socket's backlog instead of being refused.)
    The staff console binds port 0 and :meth:`start` reads the port it got from the
    banner.
    """

    WAIT = WAIT
    ssgate = SSGATE

    tmp: Path
    state: Path
    run: Run
    gateway_socket: socket.socket = field(default_factory=listening_socket)
    console_port: int = 0  # known once start() has read the banner
    serve: Proc | None = None
    children: list[Proc] = field(default_factory=list)
    _units: int = 0

    @property
    def port(self) -> int:
        """The gateway's port (the public port in every profile)."""
        return int(self.gateway_socket.getsockname()[1])

    def configure(self, extra: str = "") -> None:
        """The listeners as above, then *extra* appended (a second call only appends)."""
        config = self.state / "ssgate.toml"
        text = config.read_text(encoding="utf-8")
        text = text.replace(
            'listen = "tcp:8443"', f'listen = "systemd:domain=INET:name={GATEWAY_SOCKET}"'
        )
        text = text.replace("public_port = 8443", f"public_port = {self.port}")
        text = text.replace(
            'listen = "tcp:8444:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"'
        )
        text = text.replace(
            'listen = "tcp:8445:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"'
        )
        config.write_text(text + extra, encoding="utf-8")

    def start(self, command: str = "serve") -> Proc:
        """``ssgate serve`` (or ``demo``) with the gateway's socket; once it listens."""
        env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
        self.serve = Proc(
            [SSGATE, "--state", str(self.state), command], env=env, listening=self.gateway_socket
        )
        self.serve.wait_for(rf"gateway listening on 127\.0\.0\.1:{self.port} ")
        console = self.serve.wait_for(r"staff console on https://127\.0\.0\.1:(\d+)/")
        self.console_port = int(console.group(1))
        return self.serve

    def stop(self) -> None:
        for child in self.children:
            child.stop()
        if self.serve is not None:
            self.serve.stop()
        self.gateway_socket.close()

    def open_account(self, unit: str | None = None) -> Account:
        self._units += 1
        unit = unit or f"{10000000 + self._units}"
        name = f"330682{unit}@sxlss"
        self.run(
            "units",
            "register",
            unit,
            "--name",
            f"单位{unit}",
            "--region",
            "330682",
            "--injury-risk-class",
            "3",
            check_rc=0,
        )
        self.run("units", "approve", unit, check_rc=0)
        secrets_dir = self.tmp / f"secrets-{unit}"
        secrets_dir.mkdir()
        password_file = secrets_dir / "password"
        password_file.write_text(f"Correct-Horse-{unit}!\n", encoding="utf-8")
        p12_file = secrets_dir / "p12"
        p12_file.write_text("bundle-pass-123\n", encoding="utf-8")
        bundle = self.tmp / f"bundle-{unit}"
        self.run(
            "provision",
            "open",
            name,
            "--out",
            str(bundle),
            "--password-file",
            str(password_file),
            "--p12-password-file",
            str(p12_file),
            check_rc=0,
        )
        uri = (bundle / "otpauth.txt").read_text(encoding="utf-8").strip()
        secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
        return Account(name, bundle, password_file, p12_file, pyotp.TOTP(secret))

    def spawn(self, args: list[str]) -> Proc:
        """Any other child process, stopped with the channel."""
        env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
        # The printed commands say plain 'ssgate': find this venv's first.
        env["PATH"] = f"{Path(SSGATE).parent}{os.pathsep}{env.get('PATH', '')}"
        proc = Proc(args, env=env)
        self.children.append(proc)
        return proc

    def connect(
        self,
        account: Account,
        *,
        otp: str | None = None,
        password_file: Path | None = None,
        profile: Path | None = None,
        listen: str = "127.0.0.1:0",
    ) -> Proc:
        env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
        proc = Proc(
            [
                SSGATE,
                "connect",
                "--profile",
                str(profile or account.profile),
                "--password-file",
                str(password_file or account.password_file),
                "--p12-password-file",
                str(account.p12_password_file),
                "--otp",
                otp if otp is not None else account.code(),
                "--listen",
                listen,
            ],
            env=env,
        )
        self.children.append(proc)
        return proc

    def connected(self, proc: Proc) -> tuple[str, int]:
        """Wait for 'connected as …'; the session id and the local port."""
        m = proc.wait_for(
            r"connected as \S+ \(unit \d+, session ([0-9a-f]+)\); open http://127\.0\.0\.1:(\d+)/"
        )
        return m.group(1), int(m.group(2))


@pytest.fixture(scope="session")
def initialised_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory after ``ssgate init --hostname localhost`` and the demo rates
    on the SQLite default, made once per run: a channel on SQLite starts from a copy
    (two processes, keys, a CA and every migration saved per test).  Every copy has
    the same keys and certificates, which no test tells apart; the tests of ``init``
    itself run it."""
    state = tmp_path_factory.mktemp("initialised") / "state"
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    for args in (
        ["init", "--hostname", "localhost"],
        ["declare", "rates", "--install", str(DEMO_RATES)],
    ):
        done = subprocess.run(
            [SSGATE, "--state", str(state), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
    return state


def fresh_state(initialised: Path, tmp_path: Path) -> Path:
    """A copy of *initialised* at ``tmp_path/state`` (modes kept: keys stay 0600)."""
    state = tmp_path / "state"
    shutil.copytree(initialised, state)
    return state


@pytest.fixture
def channel(tmp_path: Path, run: Run, initialised_state: Path) -> Iterator[Channel]:
    fresh_state(initialised_state, tmp_path)
    ch = Channel(tmp_path, tmp_path / "state", run)
    ch.configure()
    try:
        yield ch
    finally:
        ch.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def channel_on(request: pytest.FixtureRequest, tmp_path: Path, run: Run) -> Iterator[Channel]:
    """:func:`channel` on SQLite, and again on a fresh PostgreSQL schema."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        run("init", "--hostname", "localhost", "--database-url", url, check_rc=0)
        install_demo_rates(run)
    else:
        fresh_state(request.getfixturevalue("initialised_state"), tmp_path)
    ch = Channel(tmp_path, tmp_path / "state", run)
    ch.configure()
    try:
        yield ch
    finally:
        ch.stop()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """``spawn([args…])``: a child process whose output lines can be waited for; every
    one still running is stopped at the end of the test."""
    started: list[Proc] = []

    def _spawn(args: list[str]) -> Proc:
        env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
        proc = Proc(args, env=env)
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.stop()  # a no-op for one already stopped
