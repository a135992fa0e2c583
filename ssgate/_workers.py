"""``ssgate serve --workers N``: N worker processes sharing the listening sockets.

One Python process uses one core; argon2 hashing and TLS handshakes are CPU-bound.
With ``--workers N`` (N > 1) the process started by ``ssgate serve`` becomes a small
supervisor (the *parent*):

* it binds every stream listener once — the gateway, the staff console, ops, the
  declaration service (the state directory's socket, with its lock naming the parent,
  so ``ssgate node drain`` signals the parent) and the portal — exactly as a single
  process would, then stops reading them itself;
* it starts N workers (``ssgate serve`` again, in worker mode) with those sockets as
  inherited file descriptors; each worker adopts them (``adoptStreamPort``) instead of
  listening, so the kernel hands each new connection to one of them;
* each worker is a node of its own: ``host:pid``, or ``<[node] name>-<i>``, in the
  node registry, its log lines and its audit events; worker i writes its access log to
  ``logs/access-<i>.log`` (the rotating file is per process);
* a worker that dies unexpectedly is started again after a back-off (1 s, doubling up
  to 30 s; back to 1 s once a worker has run a minute) and the restart is logged;
  a worker that fails while the others start (a busy database, a policy mismatch)
  stops them all: a start-up error is not retried forever;
* SIGTERM or SIGINT (or ``ssgate node drain``) to the parent: SIGTERM to every worker,
  which drains as a single node does (MOVE to its clients, streams get
  ``[gateway] drain_seconds``); the parent exits 0 once every worker has exited 0.
  A worker still running ``drain_seconds`` + :data:`KILL_MARGIN_SECONDS` later is
  killed.  A worker whose parent vanished (a ``kill -9`` of the parent) drains itself.

RADIUS (``[radius]``) runs in worker 0 only: an Access-Challenge's state lives in the
process that sent it, so the NAS's answer must reach the same process.

:class:`WorkerSupervisor` is the supervision logic on an injected clock and spawner
(unit-tested with ``MemoryReactorClock``); :func:`run_workers` wires it to real
processes; :class:`WorkerSeat` is what a worker gets from its parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.process import reapAllProcesses
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

WORKER_ENV = "SSGATE_WORKER"  # the seat a worker process gets from its parent (JSON)
WORKERS_ENV = "SSGATE_WORKERS"  # the default of --workers when set (else the cores)
READY_LINE = "ssgate worker ready: "  # a worker's stdout line to its parent once it serves
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_SECONDS = 60.0  # a worker that ran this long restarts after BACKOFF_FIRST again
KILL_MARGIN_SECONDS = 30.0
PARENT_CHECK_SECONDS = 1.0
REAP_SECONDS = 0.5


class WorkersError(Exception):
    """The workers cannot start; the message says why."""


def default_workers(environ: Mapping[str, str] = os.environ) -> int:
    """``--workers`` when not given: ``$SSGATE_WORKERS``, else the number of cores."""
    text = environ.get(WORKERS_ENV, "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    return max(1, os.cpu_count() or 1)


def worker_node_name(configured: str, index: int | None, default: Callable[[], str]) -> str:
    """The node name of a single process (*index* None) or of worker *index*:
    ``[node] name`` (``<name>-<index>`` for a worker), else *default* (``host:pid``).

    A worker started again gets the same ``<name>-<i>``: its start-up recovery ends what
    its dead predecessor left live (sessions not seen since it booted) and nothing of
    its siblings, which have names of their own."""
    if not configured:
        return default()
    return configured if index is None else f"{configured}-{index}"


# -- what a worker inherits ----------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSeat:
    """What worker *index* of *count* gets from its parent: its node name (or "" for
    ``host:pid``) and each listener (what it serves, as ``stream_listeners`` names it)
    → inherited file descriptor."""

    index: int
    count: int
    name: str
    listeners: Mapping[str, int] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "count": self.count,
                "name": self.name,
                "listeners": dict(self.listeners),
            }
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerSeat | None:
        text = environ.get(WORKER_ENV)
        if not text:
            return None
        raw = json.loads(text)
        return cls(
            index=int(raw["index"]),
            count=int(raw["count"]),
            name=str(raw["name"]),
            listeners={str(k): int(v) for k, v in raw["listeners"].items()},
        )

    @property
    def access_log(self) -> str:
        return f"logs/access-{self.index}.log"


class _AdoptedUnixPort(unix.Port):
    """A Unix listening socket the parent owns: the worker neither changes its mode
    (Twisted would make it 0666) nor removes its file when it stops (its siblings
    still accept on it, and the parent removes it last)."""

    def connectionLost(self, reason: Failure) -> None:
        tcp.Port.connectionLost(self, reason)


def adopt_listener(reactor: Any, spec: str, fd: int, factory: Any) -> IListeningPort:
    """Serve *factory* on the inherited listening socket *fd* that the parent bound for
    endpoint *spec* (``haproxy:`` specs get the PROXY header parser, as the endpoint
    would add it)."""
    if spec.startswith("haproxy:"):
        from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory

        factory = HAProxyWrappingFactory(factory)
    probe = socket.socket(fileno=os.dup(fd))
    family = probe.family
    probe.close()
    if family == socket.AF_UNIX:
        port: Any = _AdoptedUnixPort._fromListeningDescriptor(  # type: ignore[no-untyped-call]
            reactor, fd, factory
        )
        name = port._bindPath
        if name and name[:1] not in (b"\0", "\0"):
            port.mode = stat.S_IMODE(os.stat(name).st_mode)  # keep the parent's mode
        port.startListening()
    else:
        port = reactor.adoptStreamPort(fd, family, factory)
    os.close(fd)  # the port holds its own duplicate
    return port  # type: ignore[no-any-return]


def bind_listeners(
    reactor: Any, specs: Mapping[str, str], listen: Callable[[Any, str, Any], IListeningPort]
) -> dict[str, tuple[str, IListeningPort]]:
    """The parent's listeners: each of *specs* (what → endpoint string) bound with
    *listen* (``ssgate._serve._listen_now``) and then left to the workers (the parent
    accepts nothing); what → (endpoint, port).  Raises :class:`WorkersError` naming
    the one that failed."""
    from twisted.internet.error import CannotListenError

    opened: dict[str, tuple[str, IListeningPort]] = {}
    for what, spec in specs.items():
        if spec.startswith("ssl:"):
            for _, other in opened.values():
                other.stopListening()
            raise WorkersError(
                f"{what} listens on {spec}: an ssl: endpoint cannot be shared by workers "
                "(it brings its own TLS); use tcp: (ssgate adds TLS) or --workers 1"
            )
        try:
            port = listen(reactor, spec, Factory())
        except (CannotListenError, OSError, ValueError) as e:
            for _, other in opened.values():
                other.stopListening()
            raise WorkersError(f"{what} cannot listen on {spec}: {e}") from None
        port.stopReading()  # type: ignore[attr-defined]
        opened[what] = (spec, port)
    return opened


# -- supervision ---------------------------------------------------------------------------


class WorkerProcess(Protocol):
    """A started worker, as the supervisor needs it."""

    @property
    def pid(self) -> int | None: ...

    def signalProcess(self, signal: Any, /) -> None: ...


Spawn = Callable[[int], WorkerProcess]


@dataclass
class _Slot:
    index: int
    process: WorkerProcess | None = None
    started_at: float = 0.0
    ready: bool = False
    failures: int = 0  # unexpected exits in a row (reset once it ran STABLE_SECONDS)
    restart: IDelayedCall | None = None
    last_status: int | None = None


class WorkerSupervisor:
    """Starts *count* workers with *spawn*, starts again those that die, stops them all.

    The process side calls :meth:`ready` when a worker serves and :meth:`exited` when
    it ends.  :attr:`finished` fires with the exit status for the parent: 0 after an
    orderly stop in which every worker exited 0, else 1 (also when a worker fails
    before every worker was ready once: a start-up error, not a crash to retry)."""

    log = Logger(namespace="ssgate.workers")

    def __init__(
        self,
        count: int,
        spawn: Spawn,
        clock: IReactorTime,
        *,
        kill_after: float,
        on_all_ready: Callable[[], None] = lambda: None,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
        stable_seconds: float = STABLE_SECONDS,
    ) -> None:
        self._slots = [_Slot(i) for i in range(count)]
        self._spawn = spawn
        self._clock = clock
        self._kill_after = kill_after
        self._on_all_ready = on_all_ready
        self._backoff_first = backoff_first
        self._backoff_max = backoff_max
        self._stable = stable_seconds
        self._all_ready_once = False
        self._stopping = False
        self._status = 0
        self._killer: IDelayedCall | None = None
        self.finished: Deferred[int] = Deferred()
        self.restarts = 0

    @property
    def stopping(self) -> bool:
        return self._stopping

    def pids(self) -> list[int | None]:
        return [s.process.pid if s.process is not None else None for s in self._slots]

    def start(self) -> None:
        for slot in self._slots:
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.restart = None
        slot.ready = False
        slot.started_at = self._clock.seconds()
        try:
            slot.process = self._spawn(slot.index)
        except Exception as e:  # cannot fork, exec: as if it had died at once
            self.log.error("worker {index} cannot start: {error}", index=slot.index, error=str(e))
            slot.process = None
            self.exited(slot.index, 1)

    def backoff(self, failures: int) -> float:
        """The wait before the start after *failures* unexpected exits in a row."""
        return float(min(self._backoff_first * 2 ** max(failures - 1, 0), self._backoff_max))

    def ready(self, index: int) -> None:
        """Worker *index* serves (its ready line arrived)."""
        slot = self._slots[index]
        slot.ready = True
        if self._all_ready_once:
            self.log.info("worker {index} serves again", index=index)
        if not self._all_ready_once and all(s.ready for s in self._slots):
            self._all_ready_once = True
            self._on_all_ready()

    def exited(self, index: int, status: int) -> None:
        """Worker *index* ended with *status* (its exit code, or 128 + signal)."""
        slot = self._slots[index]
        slot.process = None
        slot.last_status = status
        if self._stopping:
            if status != 0:
                self._status = 1
                self.log.warn(
                    "worker {index} ended with status {status} while stopping",
                    index=index,
                    status=status,
                )
            self._maybe_finished()
            return
        if not self._all_ready_once:
            self.log.error(
                "worker {index} ended with status {status} while the workers were starting: "
                "stopping them all",
                index=index,
                status=status,
            )
            self._status = 1  # before stop(), which may finish at once
            self.stop(reason="a worker failed to start")
            return
        ran = self._clock.seconds() - slot.started_at
        slot.failures = 1 if ran >= self._stable else slot.failures + 1
        delay = self.backoff(slot.failures)
        self.restarts += 1
        self.log.warn(
            "worker {index} ended unexpectedly (status {status}, after {ran:.0f} s): "
            "starting it again in {delay:g} s",
            index=index,
            status=status,
            ran=ran,
            delay=delay,
        )
        slot.restart = self._clock.callLater(delay, self._start, slot)

    def stop(self, reason: str = "") -> Deferred[int]:
        """Drain and stop every worker (SIGTERM), kill those still running after
        *kill_after* seconds; :attr:`finished` fires once all have exited."""
        if self._stopping:
            return self.finished
        self._stopping = True
        if reason:
            self.log.info(
                "stopping {count} workers: {reason}", count=len(self._slots), reason=reason
            )
        for slot in self._slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
            if slot.process is not None:
                _signal(slot.process, signal.SIGTERM)
        self._killer = self._clock.callLater(self._kill_after, self._kill_rest)
        self._maybe_finished()
        return self.finished

    def _kill_rest(self) -> None:
        self._killer = None
        for slot in self._slots:
            if slot.process is not None:
                self.log.warn("worker {index} still runs after the drain: killed", index=slot.index)
                self._status = 1
                _signal(slot.process, signal.SIGKILL)

    def _maybe_finished(self) -> None:
        if self.finished.called or any(s.process is not None for s in self._slots):
            return
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        self._killer = None
        self.finished.callback(self._status)


def _signal(process: WorkerProcess, signum: int) -> None:
    from twisted.internet.error import ProcessExitedAlready

    with contextlib.suppress(ProcessExitedAlready, OSError):  # its exit is on its way
        process.signalProcess(signum)


# -- real processes ------------------------------------------------------------------------


class _WorkerProtocol(ProcessProtocol):
    """One worker's pipes: its stdout says when it serves; stderr (its log) is the
    parent's own, inherited."""

    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self._supervisor = supervisor
        self._index = index
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self._buffer = (self._buffer + data)[-4096:]
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.decode("utf-8", "replace").startswith(READY_LINE):
                self._supervisor.ready(self._index)

    def processEnded(self, reason: Failure) -> None:
        value: Any = reason.value
        code = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        status = int(code) if code is not None else 128 + int(sig or 0)
        self._supervisor.exited(self._index, status)


def worker_command(state_path: str) -> list[str]:
    """How a worker runs: this Python, this ``ssgate``, one worker's serve."""
    return [
        sys.executable,
        "-c",
        "import sys; from ssgate.cli import main; sys.exit(main())",
        "--state",
        state_path,
        "serve",
        "--workers",
        "1",
    ]


def spawner(
    reactor: Any,
    supervisor_ref: list[WorkerSupervisor],
    *,
    state_path: str,
    count: int,
    name: str,
    fds: Mapping[str, int],
) -> Spawn:
    """Starts worker *index* with the listening sockets *fds* at the same numbers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", WORKER_ENV)
    }
    child_fds: dict[int, Any] = {0: "w", 1: "r", 2: 2, **{fd: fd for fd in fds.values()}}

    def spawn(index: int) -> WorkerProcess:
        seat = WorkerSeat(index=index, count=count, name=name, listeners=dict(fds))
        transport = reactor.spawnProcess(
            _WorkerProtocol(supervisor_ref[0], index),
            sys.executable,
            worker_command(state_path),
            env={**env, WORKER_ENV: seat.to_env()},
            childFDs=child_fds,
        )
        Logger(namespace="ssgate.workers").info(
            "worker {index} started (process {pid})", index=index, pid=transport.pid
        )
        return transport  # type: ignore[no-any-return]

    return spawn


def watch_parent(reactor: Any, stop: Callable[[], None]) -> Any:
    """In a worker: drain and stop once the parent is gone (``kill -9`` of the parent
    leaves the worker to init), checked every :data:`PARENT_CHECK_SECONDS`."""
    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            Logger(namespace="ssgate.workers").warn("the parent process is gone: stopping")
            loop.stop()
            stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    loop.start(PARENT_CHECK_SECONDS, now=False)
    return loop


def run_workers(
    *,
    reactor: Any,
    state_path: str,
    out: TextIO,
    count: int,
    name: str,
    listeners: Mapping[str, tuple[str, IListeningPort]],
    banner: Callable[[], str],
    kill_after: float,
) -> int:
    """The parent: start *count* workers on *listeners*, supervise them until
    SIGTERM/SIGINT, stop them; the exit status."""
    fds = {what: port.fileno() for what, (_, port) in listeners.items()}  # type: ignore[attr-defined]
    ref: list[WorkerSupervisor] = []

    def all_ready() -> None:
        out.write(banner())
        out.flush()

    supervisor = WorkerSupervisor(
        count,
        spawner(reactor, ref, state_path=state_path, count=count, name=name, fds=fds),
        reactor,
        kill_after=kill_after,
        on_all_ready=all_ready,
    )
    ref.append(supervisor)
    status: list[int] = []

    def interrupted(signum: int, frame: object) -> None:
        reactor.callFromThread(_stop, signum)

    def _stop(signum: int) -> None:
        if not supervisor.stopping:
            supervisor.stop(reason=f"{signal.Signals(signum).name} received")

    def finished(code: int) -> None:
        status.append(code)
        from twisted.internet.defer import gatherResults, maybeDeferred

        # The listeners close last: the socket files and the drain lock go with them.
        closing = [maybeDeferred(p.stopListening) for _, p in listeners.values()]
        gatherResults(closing, consumeErrors=True).addBoth(lambda _: reactor.stop())

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    supervisor.finished.addCallback(finished)
    reactor.callWhenRunning(supervisor.start)
    # Twisted reaps children on SIGCHLD only with its own signal handlers, which this
    # process does without (its SIGTERM is a drain); a worker closes its pipes a moment
    # before it exits, so the reap attempt at that moment can come too early.
    reaper = LoopingCall(reapAllProcesses)
    reaper.clock = reactor
    reactor.callWhenRunning(reaper.start, REAP_SECONDS, now=False)
    reactor.run(installSignalHandlers=False)
    return status[0] if status else 1
