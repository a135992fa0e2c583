"""``ssgate node drain``: ask the node running on a state directory to drain and exit.

Draining is what SIGTERM already does (``ssgate serve`` stops listening, tells each
client to MOVE to another node with its resume token, lets open streams finish within
``[gateway] drain_seconds``, then exits), so this command finds the node's process and
sends it SIGTERM.  The process is the one holding the state directory's socket lock
(``declare.sock.lock``, a symbolic link to the holder's process id that Twisted writes
when it listens on ``declare.sock``): the lock is exactly "the node running on this
state directory", with no pid file to go stale.  Under ``serve --workers N`` the lock
names the parent (it binds the socket; :mod:`ssgate._workers`), whose SIGTERM drains
every worker before it exits.

It works on the node's own host, as systemd's ``systemctl stop`` does (which sends
SIGTERM too); for a node on another host, run it there (``ssh host ssgate node drain``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

DECLARE_LOCK = "declare.sock.lock"


class NodeNotRunning(Exception):
    """No node runs on this state directory (or it cannot be found); the message says why."""


def node_pid(state_dir: Path) -> int:
    """The process id of the ``ssgate serve`` holding *state_dir*'s socket lock."""
    lock = state_dir / DECLARE_LOCK
    try:
        target = os.readlink(lock)
    except FileNotFoundError:
        raise NodeNotRunning(
            f"no node is running on {state_dir} (no {DECLARE_LOCK}); if [declare] listen "
            "is not the state directory's socket, send SIGTERM to the 'ssgate serve' process"
        ) from None
    except OSError as e:
        raise NodeNotRunning(f"cannot read {lock}: {e.strerror}") from None
    if not target.isdigit():
        raise NodeNotRunning(f"{lock} does not name a process")
    pid = int(target)
    if not _alive(pid):
        raise NodeNotRunning(f"the node that held {lock} (process {pid}) is gone")
    return pid


def _alive(pid: int) -> bool:
    """Whether process *pid* runs (a zombie has exited: it only waits to be collected)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except OSError:
        return True


def request_drain(
    state_dir: Path,
    *,
    wait_seconds: float | None = None,
    alive: Callable[[int], bool] = _alive,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[int, bool]:
    """SIGTERM to the node on *state_dir*; with *wait_seconds*, wait up to that long
    for it to exit.  Returns (process id, whether it has exited)."""
    pid = node_pid(state_dir)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid, True
    except PermissionError:
        raise NodeNotRunning(
            f"process {pid} belongs to another user: run this as the node's user"
        ) from None
    if wait_seconds is None:
        return pid, False
    deadline = monotonic() + wait_seconds
    while alive(pid):
        if monotonic() >= deadline:
            return pid, False
        sleep(0.2)  # a command-line wait for another process, not a test's
    return pid, True
