"""``python bench/run.py sessions``: what idle authenticated sessions cost one gateway.

One run, on loopback, in one temporary directory:

- a state directory from the real ``ssgate init`` with ``[policy] max_sessions = 3``;
- the benchmark target and the gateway (``bench/_gateway.py``: what ``ssgate serve``
  runs) as children, started after this process raised its soft ``RLIMIT_NOFILE`` to
  the hard limit (children inherit it);
- ``ceil(N / 3)`` accounts sharing one password (hashed once at set-up; each login
  still verifies it with the state's argon2id parameters), taken in turn: the TOTP
  replay guard accepts each time-step once per account, so each login of an account
  uses a later step than its last one (the current or the next; the run waits for
  the next step if an account comes round again within one).

Then, from this one process, with the client library (``gateway._client.ConnectClient``,
what ``ssgate connect`` runs, without its local listening port), in one reactor:

1. warm-up: a few sessions opened, held, ended; the gateway settles; its RSS is the
   *warm baseline*;
2. N sessions opened, ``--concurrency`` logins at a time (password + code + session
   record each, as ``ssgate connect`` does);
3. an idle window (``--idle`` seconds, 60 by default): every client keeps its
   keepalive, nothing else is sent; the gateway's CPU time over the window is its
   idle CPU; its RSS and open fds are read at the end, and every session must still
   be live;
4. every session ends (GOAWAY ``client-quit``), the gateway settles, RSS again.

Reports KiB of gateway RSS per session over the warm baseline, idle CPU as % of one
core, fds, and RSS after the end against the baseline.  Progress goes to stderr,
figures to stdout.  Nothing is judged here: the targets (issue 16) are in
docs/benchmarks.md.

With ``--tracemalloc``, the gateway runs under tracemalloc (``bench/_gateway_traced.py``)
and the biggest allocation sites with the sessions held are printed (slow: figures
taken that way are not the ones to record).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _procs import Child, Children, logged_errors, run_directory
from _setup import (
    P12_PASSPHRASE,
    BenchAccount,
    init_state,
    open_accounts,
    set_max_sessions,
    set_public_port,
    ssgate_binary,
)
from twisted.internet import reactor as _reactor
from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.task import deferLater

import auth
from gateway._client import (
    ClientIdentity,
    ConnectClient,
    Profile,
    load_identity,
    load_profile,
)
from gateway._tls import client_tls_options

BENCH = Path(__file__).resolve().parent
BASELINE_IDLE = 10.0  # seconds of the gateway's idle CPU measured with no session
PER_ACCOUNT = 3  # sessions per account ([policy] max_sessions)
STEP = 30  # TOTP seconds per step
reactor: Any = _reactor


def say(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


# -- the gateway as /proc sees it --------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_total(child: Child) -> float:
    user, system = child.cpu_seconds()
    return user + system


# -- the clients ---------------------------------------------------------------------------


class _Quiet:
    """Where the clients' sentences go (one object for all of them)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class IdleClient(ConnectClient):
    """``ssgate connect`` without the local listening port: a session and nothing else.
    ``ready`` fires True once logged in, or False if the client ended first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ready: Deferred[bool] = Deferred()
        self.done.addCallback(self._ended)

    def _listen(self) -> bool:
        return True  # no local port: 10,000 of them would double this process's fds

    def connected(self, tunnel: Any, event: Any) -> None:
        super().connected(tunnel, event)
        if not self.ready.called:
            self.ready.callback(True)

    def _ended(self, status: int) -> int:
        if not self.ready.called:
            self.ready.callback(False)
        return status

    @property
    def live(self) -> bool:
        return self.tunnel is not None and self.tunnel.open and not self.done.called


@dataclass
class Login:
    """One account's client material and the last TOTP step it used."""

    account: BenchAccount
    profile: Profile
    identity: ClientIdentity
    tls: Any
    last_step: int = 0
    # One login at a time per account: the gateway must see its codes in step order.
    lock: DeferredLock = field(default_factory=DeferredLock)

    def next_code(self) -> str | None:
        """A code for a step later than the last one used and still accepted (the
        current or the next step); None if this account has used both."""
        current = int(time.time() // STEP)
        # Not the previous step: on a busy gateway the login may wait in its queue
        # long enough for that one to expire.
        step = max(self.last_step + 1, current)
        if step > current + 1:
            return None
        self.last_step = step
        return auth.current_code(self.account.totp_secret, step * STEP + STEP / 2)


def prepare(accounts: list[BenchAccount]) -> list[Login]:
    logins = []
    for account in accounts:
        profile = load_profile(account.profile)
        identity = load_identity(profile, P12_PASSPHRASE.encode())
        tls = client_tls_options(
            hostname=profile.gateway_host,
            ca=identity.ca,
            client_key=identity.key,
            client_certificate=identity.certificate,
        )
        logins.append(Login(account, profile, identity, tls))
    return logins


async def open_sessions(logins: list[Login], count: int, concurrency: int) -> list[IdleClient]:
    """*count* sessions, *concurrency* logins at a time, round-robin over *logins*."""
    gate = DeferredSemaphore(concurrency)
    clients: list[IdleClient] = []
    failures: list[str] = []

    async def one(i: int) -> None:
        login = logins[i % len(logins)]
        await login.lock.acquire()
        try:
            # A login the gateway could not complete (e.g. its database busy on a
            # loaded machine) is tried again, up to three times; each is counted.
            for _ in range(3):
                if await login_once(login):
                    return
        finally:
            login.lock.release()

    async def login_once(login: Login) -> bool:
        code = login.next_code()
        while code is None:  # this account used its three steps: wait for the next
            await deferLater(reactor, 1.0, lambda: None)
            code = login.next_code()
        profile = login.profile

        def endpoint() -> Any:
            return wrapClientTLS(
                login.tls,
                HostnameEndpoint(reactor, profile.gateway_host, profile.gateway_port, timeout=30),
            )

        client = IdleClient(
            reactor=reactor,
            profile=profile,
            identity=login.identity,
            password=login.account.password,
            otp=code,
            listen=("127.0.0.1", 0),
            out=_Quiet(),
            endpoint_for=endpoint,
        )
        client.start()
        if await client.ready:
            clients.append(client)
            return True
        failures.append(f"{login.account.name}: exit status {client.done.result}")
        return False

    def limited(i: int) -> Deferred[None]:
        return gate.run(lambda: ensureDeferred(one(i)))

    batch = max(concurrency * 4, 1)
    started = time.perf_counter()
    next_report = count / 10
    for first in range(0, count, batch):  # in batches: not 10,000 Deferreds at once
        await gatherResults(
            [limited(i) for i in range(first, min(first + batch, count))], consumeErrors=True
        )
        done = min(first + batch, count)
        if done >= next_report or done == count:
            next_report += count / 10
            rate = done / (time.perf_counter() - started)
            say(f"  {done}/{count} sessions open ({rate:.1f}/s), {len(failures)} failed")
    if len(clients) < count:
        raise RuntimeError(f"{count - len(clients)} sessions not opened; first: {failures[0]}")
    if failures:
        say(f"  {len(failures)} login(s) failed and were tried again; first: {failures[0]}")
    return clients


async def end_sessions(clients: list[IdleClient]) -> None:
    for client in clients:
        client.quit()
    await gatherResults([client.done for client in clients])


async def settle(gateway: Child, *, timeout: float = 300.0) -> None:
    """Until the gateway's open fds stay the same and it spends under 3 % of a core over
    two seconds (the session ends it writes are done, the sockets closed)."""
    deadline = time.monotonic() + timeout
    fds = fd_count(gateway.pid)
    while time.monotonic() < deadline:
        before = cpu_total(gateway)
        await deferLater(reactor, 2.0, lambda: None)
        busy = (cpu_total(gateway) - before) / 2.0
        fds, was = fd_count(gateway.pid), fds
        if fds == was and busy < 0.03:
            return
    say(f"  the gateway did not settle within {timeout:.0f} s")


# -- the run -------------------------------------------------------------------------------


@dataclass
class Figures:
    sessions: int
    idle_seconds: float
    machine: dict[str, str] = field(default_factory=dict)
    baseline_kib: int = 0
    loaded_kib: int = 0
    after_kib: int = 0
    idle_cpu: float = 0.0  # fraction of one core
    baseline_cpu: float = 0.0  # the same, at the warm baseline (no session)
    fds_baseline: int = 0
    fds_loaded: int = 0
    live_after_idle: int = 0
    open_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    traced: str = ""


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def drive(args: argparse.Namespace, gateway: Child, logins: list[Login], f: Figures) -> None:
    pid = gateway.pid
    warm_logins, logins = logins[: args.warm_accounts], logins[args.warm_accounts :]
    say(f"warm-up: {args.warmup} sessions opened, held 5 s, ended")
    warm = await open_sessions(warm_logins, args.warmup, args.concurrency)
    await deferLater(reactor, 5.0, lambda: None)
    await end_sessions(warm)
    await settle(gateway)
    f.baseline_kib, f.fds_baseline = rss_kib(pid), fd_count(pid)
    before = cpu_total(gateway)
    await deferLater(reactor, BASELINE_IDLE, lambda: None)
    f.baseline_cpu = (cpu_total(gateway) - before) / BASELINE_IDLE
    say(
        f"  warm baseline: RSS {f.baseline_kib / 1024:.1f} MiB, {f.fds_baseline} fds, "
        f"idle CPU {f.baseline_cpu * 100:.2f} % of a core without sessions"
    )

    say(f"opening {f.sessions} sessions, {args.concurrency} logins at a time")
    started = time.perf_counter()
    clients = await open_sessions(logins, f.sessions, args.concurrency)
    f.open_seconds = time.perf_counter() - started
    await deferLater(reactor, 5.0, lambda: None)  # the last logins' writes
    say(f"idle for {f.idle_seconds:g} s")
    spy = None
    if args.py_spy:
        spy = subprocess.Popen(
            [
                args.py_spy,
                "record",
                "--nonblocking",
                "-d",
                str(int(f.idle_seconds)),
                "-p",
                str(pid),
                "-f",
                "raw",
                "-o",
                str(args.py_spy_out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    before = cpu_total(gateway)
    await deferLater(reactor, f.idle_seconds, lambda: None)
    f.idle_cpu = (cpu_total(gateway) - before) / f.idle_seconds
    f.loaded_kib, f.fds_loaded = rss_kib(pid), fd_count(pid)
    f.live_after_idle = sum(1 for c in clients if c.live)
    if spy is not None:
        spy.wait(30)
        say(f"  py-spy samples of the idle gateway in {args.py_spy_out}")
    say(
        f"  {f.live_after_idle}/{f.sessions} live; RSS {f.loaded_kib / 1024:.1f} MiB, "
        f"{f.fds_loaded} fds, idle CPU {f.idle_cpu * 100:.2f} % of a core"
    )
    if args.tracemalloc:
        gateway.popen.send_signal(signal.SIGUSR1)
        for _ in range(120):  # a snapshot of every trace takes a while
            await deferLater(reactor, 1.0, lambda: None)
            if "--- tracemalloc top ---" in gateway.output():
                await deferLater(reactor, 2.0, lambda: None)
                break
        f.traced = gateway.output().partition("--- tracemalloc top ---")[2][:6000]

    say("ending every session")
    await end_sessions(clients)
    await settle(gateway)
    # The node gives freed memory back at its next 30-second mark (malloc_trim).
    await deferLater(reactor, 35.0, lambda: None)
    f.after_kib = rss_kib(pid)
    say(f"  after: RSS {f.after_kib / 1024:.1f} MiB")


def run(args: argparse.Namespace, tmp: Path, children: Children) -> Figures:
    f = Figures(sessions=args.sessions, idle_seconds=args.idle)
    hard = raise_fd_limit()
    f.machine["RLIMIT_NOFILE"] = str(hard)
    state = tmp / "state"
    say(f"ssgate init in {state}")
    init_state(ssgate_binary(), state, env=children.env)
    set_max_sessions(state, PER_ACCOUNT)
    target = children.start("target", [sys.executable, str(BENCH / "_target.py"), str(state)])
    guarded = int(target.wait_for(r"target listening plain=\d+ guarded=(\d+)").group(1))
    script = "_gateway_traced.py" if args.tracemalloc else "_gateway.py"
    gateway = children.start(
        "gateway", [sys.executable, str(BENCH / script), str(state), str(guarded)]
    )
    port = int(gateway.wait_for(r"gateway listening on 127\.0\.0\.1:(\d+)").group(1))
    set_public_port(state, port)

    args.warm_accounts = args.warmup  # one each: the warm-up never waits for a step
    count = args.warm_accounts + math.ceil(args.sessions / PER_ACCOUNT)
    say(f"opening {count} accounts (one shared password hash, a certificate each)")
    started = time.perf_counter()
    accounts = open_accounts(state, count, tmp, workers=os.cpu_count() or 2, shared_password=True)
    logins = prepare(accounts)
    say(f"  {count} accounts in {time.perf_counter() - started:.1f} s")

    failure: list[BaseException] = []

    def finished(result: object) -> None:
        if isinstance(result, BaseException):
            failure.append(result)
        elif hasattr(result, "value"):
            failure.append(result.value)
        reactor.stop()

    driving: list[Deferred[None]] = []

    def begin() -> None:
        d = ensureDeferred(drive(args, gateway, logins, f))
        driving.append(d)
        d.addBoth(finished)

    reactor.callWhenRunning(begin)
    reactor.run()
    if failure:
        raise failure[0]
    if not driving or not driving[0].called:
        raise SystemExit("bench: interrupted")
    gateway.check_running()
    errors = logged_errors(gateway.output())
    if errors:
        f.warnings.append(f"the gateway logged {len(errors)} error(s); first: {errors[0][:300]}")
    return f


def report(f: Figures, out: Any) -> None:
    w = out.write
    grown = f.loaded_kib - f.baseline_kib
    w(f"\nssgate idle sessions (loopback, one gateway process, {f.sessions} sessions)\n")
    for key, value in f.machine.items():
        w(f"  {key + ':':18} {value}\n")
    w(f"  sessions opened in     {f.open_seconds:.1f} s ({f.sessions / f.open_seconds:.0f}/s)\n")
    w(f"  live after {f.idle_seconds:g} s idle:  {f.live_after_idle}/{f.sessions}\n")
    w(f"  warm baseline RSS      {f.baseline_kib / 1024:.1f} MiB ({f.fds_baseline} fds)\n")
    w(f"  RSS with the sessions  {f.loaded_kib / 1024:.1f} MiB ({f.fds_loaded} fds)\n")
    w(f"  per session            {grown / f.sessions:.1f} KiB over the warm baseline\n")
    w(
        f"  idle CPU               {f.idle_cpu * 100:.2f} % of one core "
        f"({f.baseline_cpu * 100:.2f} % without sessions)\n"
    )
    w(
        f"  RSS after they ended   {f.after_kib / 1024:.1f} MiB "
        f"({(f.after_kib / f.baseline_kib - 1) * 100:+.1f} % of the baseline)\n"
    )
    for warning in f.warnings:
        w(f"  warning: {warning}\n")
    if f.traced:
        w(f"\ntracemalloc, the gateway with the sessions held:{f.traced}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py sessions",
        description="Idle authenticated sessions to one gateway process: memory, CPU, fds.",
    )
    parser.add_argument("--sessions", type=int, default=10_000, metavar="N")
    parser.add_argument("--quick", action="store_true", help="1,000 sessions, 30 s idle")
    parser.add_argument("--idle", type=float, metavar="SECONDS", help="idle window (60)")
    parser.add_argument("--warmup", type=int, default=60, metavar="N", help="warm-up sessions")
    parser.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="logins at a time (8)"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="allocation sites (slow)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="sample the gateway during the idle window with this py-spy (adds its cost)",
    )
    parser.add_argument("--py-spy-out", type=Path, default=Path("gateway-idle.txt"))
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions = 1000 if "--sessions" not in argv else args.sessions
        args.idle = args.idle or 30.0
    args.idle = args.idle or 60.0
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with run_directory(keep=args.keep, say=say) as (tmp, children):
        figures = run(args, tmp, children)
    figures.machine.update({"python": platform.python_version(), "cpus": str(os.cpu_count())})
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(figures, sys.stdout)
    return 0
