"""``ssgate serve --workers 2`` with real processes (issue 13): two worker processes
share the gateway's socket, each a node of its own (``gw-0``, ``gw-1``); two clients
log in, one on each worker, and both work; a ``kill -9`` of one worker gets it started
again while the other worker's session stays live and working; SIGTERM to the parent
drains both workers and the parent exits 0 with both nodes recorded as stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Channel, Proc

pytestmark = [pytest.mark.slow]

WAIT = 30.0
RECOVERY = ("start-up recovery: no session", "sessions left live by a stopped gateway process")


def _db(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(state / "ssgate.db", timeout=10)


def session_row(state: Path, session: str) -> tuple[str, str]:
    """(node, status) of the session whose id starts with *session*."""
    with _db(state) as conn:
        row = conn.execute(
            "SELECT node, status FROM sessions WHERE id LIKE ?", (session + "%",)
        ).fetchone()
    assert row is not None, session
    return str(row[0]), str(row[1])


def nodes(state: Path) -> dict[str, tuple[int, str]]:
    """The node registry as ``ssgate node list --json`` prints it: name → (pid, status)."""
    listed = subprocess.run(
        [Channel.ssgate, "--state", str(state), "node", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    return {row["name"]: (row["pid"], row["status"]) for row in rows}


def works(port: int) -> None:
    """A page of the declaration service answers through the client's tunnel."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=WAIT) as answer:
        assert answer.status == 200


def wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)  # polling another process's state, not timing a behaviour


def events(serve: Proc) -> list[dict[str, Any]]:
    """The JSON log events in *serve*'s output so far (the parent's and the workers')."""
    found = []
    for line in serve.lines:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def wait_event(
    serve: Proc, text: str | tuple[str, ...], count: int = 1, **fields: object
) -> dict[str, Any]:
    """The *count*-th log event whose format contains *text* (one of them) with these
    *fields*."""
    texts = (text,) if isinstance(text, str) else text
    deadline = time.monotonic() + WAIT
    while True:
        found = [
            e
            for e in events(serve)
            if any(t in str(e.get("log_format", "")) for t in texts)
            and all(e.get(k) == v for k, v in fields.items())
        ]
        if len(found) >= count:
            return found[count - 1]
        assert time.monotonic() < deadline, f"no {text!r} {fields} in:\n{serve.output}"
        serve._pump(0.5)


def worker_pids(serve: Proc) -> dict[int, int]:
    """Each worker's latest process id, from the parent's 'worker i started' events."""
    return {
        int(e["index"]): int(e["pid"])
        for e in events(serve)
        if str(e.get("log_format", "")).startswith("worker {index} started")
    }


def test_two_workers_share_the_socket_survive_a_kill_and_stop_together(
    channel: Channel,
) -> None:
    """Two workers, two clients one on each, both working; kill -9 of one worker: it is
    started again (same node name) and the other's session stays live and working;
    SIGTERM to the parent alone: both drain, the parent exits 0, both nodes stopped."""
    config = channel.state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    named, count = re.subn(r'(\[node\]\n(?:#.*\n)*)name = ""', r'\1name = "gw"', text)
    assert count == 1
    # The moved clients have nowhere to go (the test holds the socket): drain briefly.
    named, count = re.subn(r"(?m)^drain_seconds = 30$", "drain_seconds = 3", named)
    assert count == 1
    config.write_text(named, encoding="utf-8")
    alice, bob = channel.open_account(), channel.open_account()

    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    serve = Proc(
        [channel.ssgate, "--state", str(channel.state), "serve", "--workers", "2"],
        env=env,
        listening=channel.gateway_socket,
    )
    channel.serve = serve
    serve.wait_for(rf"gateway listening on 127\.0\.0\.1:{channel.port} ")
    serve.wait_for(r"2 workers, each a node: gw-0 … gw-1")
    wait_event(serve, "worker {index} started", index=1)
    pids = worker_pids(serve)
    assert sorted(pids) == [0, 1]
    parent = serve.popen.pid
    assert parent not in pids.values()

    # Client A on whichever worker the kernel picks; client B on the other one: the
    # worker holding A is stopped while B connects, so only the other accepts.
    a_session, a_port = channel.connected(channel.connect(alice))
    a_node, _ = session_row(channel.state, a_session)
    a_index = int(a_node.rpartition("-")[2])
    b_index = 1 - a_index
    os.kill(pids[a_index], signal.SIGSTOP)
    try:
        b_session, b_port = channel.connected(channel.connect(bob))
    finally:
        os.kill(pids[a_index], signal.SIGCONT)
    assert session_row(channel.state, b_session) == (f"gw-{b_index}", "live")
    works(a_port)
    works(b_port)
    registry = nodes(channel.state)
    assert {"gw-0", "gw-1"} <= set(registry)
    assert registry["gw-0"][1] == registry["gw-1"][1] == "running"
    assert registry[f"gw-{a_index}"][0] == pids[a_index]

    # kill -9 of A's worker: the parent starts it again; B's session is not touched.
    os.kill(pids[a_index], signal.SIGKILL)
    wait_event(serve, "ended unexpectedly", index=a_index, status=137)
    wait_event(serve, "serves again", index=a_index)
    restarted = worker_pids(serve)[a_index]
    assert restarted != pids[a_index]
    wait_until(
        lambda: nodes(channel.state)[f"gw-{a_index}"][0] == restarted,
        "the restarted worker registered under its old name",
    )
    # The new worker's start-up recovery has run (its node's second): whatever it ended
    # of its dead predecessor's, nothing of its sibling's.
    wait_event(serve, RECOVERY, count=2, node=f"gw-{a_index}")
    assert session_row(channel.state, b_session) == (f"gw-{b_index}", "live")
    works(b_port)
    assert worker_pids(serve)[b_index] == pids[b_index]  # the sibling never restarted

    # SIGTERM to the parent only: every worker drains, the parent exits 0.
    os.kill(parent, signal.SIGTERM)
    assert serve.wait_exit(timeout=60) == 0
    registry = nodes(channel.state)
    for name in ("gw-0", "gw-1"):
        assert registry[name][1] == "stopped", (name, registry[name])
    for pid in (restarted, pids[b_index]):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (channel.state / "declare.sock.lock").exists()
