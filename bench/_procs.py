"""Child processes of a benchmark run, each in its own process group, always stopped:
by the runner on its way out (also on SIGTERM and Ctrl-C), or by the kernel if the
runner itself is killed.

Output goes to a log file in the run's temporary directory (never to a pipe the
runner must keep draining, which would cost CPU in the middle of a measurement);
readiness is a line in that file, waited for with a bounded poll.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1
# Nothing in a benchmark run should make a server warn (a refused login, a service it
# cannot reach): such a line is reported with the figures.
BAD_LOG_LEVELS = ("warn", "error", "critical")
WAIT = 60.0  # seconds any child may take to get ready on a loaded machine


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the runner dies, even by SIGKILL (Linux),
    so no gateway or stunnel outlives a killed run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def listening_tcp_ports(pid: int) -> list[int]:
    """The TCP ports process *pid* listens on (Linux /proc): its socket inodes, matched
    against the listening sockets (state 0A) of its network namespace's tables."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):  # gone, or not started yet
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports: list[int] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text(encoding="ascii").splitlines()
        except OSError:
            continue
        for line in lines[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                ports.append(int(local.rpartition(":")[2], 16))
    return sorted(set(ports))


class ChildError(RuntimeError):
    """A child exited or did not get ready; the message carries its log's tail."""


class Child:
    """One child process (``start_new_session``: stopping it stops what it forked)."""

    def __init__(self, name: str, args: list[str], log: Path, *, env: dict[str, str]) -> None:
        self.name = name
        self.args = args
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # Children start before the runner has any thread (build_world).
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first match of *pattern* in the output; raise if the child exits first."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.popen.poll() is not None:
                m = re.search(pattern, self.output())
                if m:
                    return m
                raise ChildError(
                    f"{self.name} exited with status {self.popen.returncode} before "
                    f"{pattern!r}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ChildError(f"{self.name}: no {pattern!r} within {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def listening_port(self, timeout: float = WAIT) -> int:
        """The TCP port the child listens on, as the kernel tells (for a server bound to
        port 0 that does not print the port it got); waits for it with a bounded poll."""
        deadline = time.monotonic() + timeout
        while True:
            ports = listening_tcp_ports(self.popen.pid)
            if len(ports) == 1:
                return ports[0]
            if len(ports) > 1:
                raise ChildError(f"{self.name} listens on several ports: {ports}")
            self.check_running()
            if time.monotonic() > deadline:
                raise ChildError(f"{self.name}: not listening within {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU time of the process so far, all threads (Linux /proc)."""
        try:
            with open(f"/proc/{self.popen.pid}/stat", encoding="ascii") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return 0.0, 0.0
        # After "pid (comm)": fields[11] is utime, fields[12] stime, in clock ticks.
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            raise ChildError(
                f"{self.name} exited with status {self.popen.returncode}:\n{self.tail()}"
            )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, then SIGKILL if it has not gone within *grace* seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        # Whatever the leader did, nothing of the group may outlive the run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


class Children:
    """Every child of the run, stopped in reverse order of start."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.started: list[Child] = []

    def start(self, name: str, args: list[str]) -> Child:
        child = Child(name, args, self.logs / f"{name}.log", env=self.env)
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


def logged_errors(output: str) -> list[str]:
    """The lines of an ssgate child's JSON log (``start_logging`` on a file) that are a
    failure, a traceback or at a level in :data:`BAD_LOG_LEVELS`."""
    return [
        line
        for line in output.splitlines()
        if '"log_failure"' in line
        or "Traceback" in line
        or any(f'"log_level": {{"name": "{level}"' in line for level in BAD_LOG_LEVELS)
    ]


@contextlib.contextmanager
def run_directory(*, keep: bool, say: Callable[[str], None]) -> Iterator[tuple[Path, Children]]:
    """A run's temporary directory and its :class:`Children` (``SSGATE_DEBUG`` unset):
    on an error each child's log tail is said; on the way out, whatever happened, every
    child is stopped and the directory removed (or kept, and its path said)."""
    tmp = Path(tempfile.mkdtemp(prefix="ssgate-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    children = Children(tmp, env)
    try:
        yield tmp, children
    except Exception:
        for child in children.started:
            say(f"--- {child.name} ({child.log}) ---\n{child.tail(15)}")
        raise
    finally:
        children.stop_all()
        if keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
