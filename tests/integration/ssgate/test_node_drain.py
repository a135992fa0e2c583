"""``ssgate node drain``: SIGTERM to the process holding the state directory's socket
lock (a real child process here), and one clear line when no node runs there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssgate._drain import DECLARE_LOCK, NodeNotRunning, node_pid, request_drain
from ssgate.cli import main

# A stand-in for 'ssgate serve': says it is ready, then exits 0 on SIGTERM.
NODE = """\
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", NODE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    # What Twisted's FilesystemLock writes when serve listens on declare.sock.
    os.symlink(str(proc.pid), tmp_path / DECLARE_LOCK)
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_node_drain_signals_the_lock_holder_and_waits_for_it_to_exit(
    tmp_path: Path, node: subprocess.Popen[str]
) -> None:
    assert node_pid(tmp_path) == node.pid
    pid, exited = request_drain(tmp_path, wait_seconds=30)
    assert (pid, exited) == (node.pid, True)
    assert node.wait(5) == 0  # it got SIGTERM, not SIGKILL


def test_without_a_lock_no_node_runs_there(tmp_path: Path) -> None:
    with pytest.raises(NodeNotRunning, match="no node is running on"):
        request_drain(tmp_path)


def test_a_lock_left_by_a_dead_process_is_not_a_running_node(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    os.symlink(gone.stdout.strip(), tmp_path / DECLARE_LOCK)
    with pytest.raises(NodeNotRunning, match="is gone"):
        request_drain(tmp_path)


def test_the_command_drains_the_node_or_says_in_one_line_that_none_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["--state", str(state), "init", "--hostname", "localhost"]) == 0
    capsys.readouterr()
    assert main(["--state", str(state), "node", "drain"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ssgate: no node is running on") and err.count("\n") == 1

    proc = subprocess.Popen([sys.executable, "-c", NODE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        os.symlink(str(proc.pid), state / DECLARE_LOCK)
        assert main(["--state", str(state), "node", "drain", "--wait", "30"]) == 0
        assert f"node (process {proc.pid}) drained and exited" in capsys.readouterr().out
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
