"""``ssgate node list``: every node of the registry with what the others make of it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from ssgate._db import make_engine
from ssgate._nodes import node_stopped, reap_lost_nodes, register_node
from ssgate.cli import main


def _listed(state: Path, *extra: str) -> str:
    out = io.StringIO()
    assert main(["--state", str(state), "node", "list", *extra], out=out) == 0
    return out.getvalue()


def test_each_node_is_running_silent_lost_or_stopped_with_times_people_read(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    assert main(["--state", str(state), "init", "--hostname", "localhost"], out=io.StringIO()) == 0
    assert "no node has started" in _listed(state)

    now = time.time()
    engine = make_engine(f"sqlite:///{state / 'ssgate.db'}")
    with engine.begin() as conn:
        for name, age in (("gw-a", 0), ("gw-b", 60), ("gw-c", 0), ("gw-d", 600)):
            register_node(conn, name=name, host="h1", pid=100, version="t", now=now - age)
        node_stopped(conn, name="gw-c", now=now)
    with engine.begin() as conn:
        reap_lost_nodes(conn, me="gw-a", now=now - 300, lost_after=15)  # gw-d, long ago
    engine.dispose()

    rows = {r["name"]: r for r in map(json.loads, _listed(state, "--json").splitlines())}
    assert {n: r["status"] for n, r in rows.items()} == {
        "gw-a": "running",
        "gw-b": "silent",
        "gw-c": "stopped",
        "gw-d": "lost",
    }
    assert rows["gw-a"]["started_at"].endswith("+08:00")  # ISO 8601 with offset

    table = _listed(state)
    assert table.splitlines()[0].split()[:4] == ["NODE", "HOST", "PID", "STATUS"]
    assert "+08:00" in table and "gw-b" in table
