"""Concurrent writers — threads, and separate processes as on several gateway nodes —
never fork, duplicate or skip a link of the chain.

Each writer appends in its own transaction per event with no retry, so any lost lock or
duplicate ``seq`` would surface as an error or a broken chain.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import defaultdict

import pytest
from sqlalchemy import Engine

from audit import AuditEvent, AuditRecord, append, query, verify
from audit._schema import metadata

PER_WRITER = 100

# A second "node": its own interpreter and engine on the same database URL.
WRITER = """
import sys
from audit import AuditEvent, append
from ssgate._db import make_engine

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = make_engine(url)
with engine.connect() as conn:
    pass  # connect before the start signal, so the appends themselves overlap
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    with engine.begin() as conn:
        append(conn, AuditEvent(
            at=1_700_000_000.0 + i, actor=name, action="test.append", subject=str(i),
            outcome="ok", details={"writer": name, "i": i},
        ))
engine.dispose()
"""


def append_many(engine: Engine, name: str, start: threading.Barrier, errors: list[str]) -> None:
    try:
        start.wait(timeout=30)
        for i in range(PER_WRITER):
            with engine.begin() as conn:
                append(
                    conn,
                    AuditEvent(
                        at=1_700_000_000.0 + i,
                        actor=name,
                        action="test.append",
                        subject=str(i),
                        outcome="ok",
                        details={"writer": name, "i": i},
                    ),
                )
    except Exception as e:  # reported to the test thread, which asserts none happened
        errors.append(f"{name}: {e!r}")


def check_chain(engine: Engine, writers: list[str]) -> None:
    with engine.begin() as conn:
        report = verify(conn)
        records = query(conn)
    assert report.ok, report.problem
    assert report.checked == len(writers) * PER_WRITER
    assert [r.seq for r in records] == list(range(1, len(writers) * PER_WRITER + 1))
    by_writer: dict[str, list[AuditRecord]] = defaultdict(list)
    for r in records:
        by_writer[r.event.actor].append(r)
    # Every event of every writer is there exactly once, in the order it was written.
    assert sorted(by_writer) == sorted(writers)
    for name in writers:
        assert [r.event.subject for r in by_writer[name]] == [str(i) for i in range(PER_WRITER)]


def test_two_threads_appending_concurrently_build_one_unbroken_chain(engine: Engine) -> None:
    metadata.create_all(engine)
    names = ["thread-a", "thread-b"]
    start = threading.Barrier(len(names))
    errors: list[str] = []
    threads = [
        threading.Thread(target=append_many, args=(engine, name, start, errors)) for name in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer thread hung"
    assert errors == []
    check_chain(engine, names)


@pytest.mark.slow
def test_two_processes_appending_concurrently_build_one_unbroken_chain(engine: Engine) -> None:
    metadata.create_all(engine)
    url = engine.url.render_as_string(hide_password=False)
    names = ["process-a", "process-b"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, name, str(PER_WRITER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # both start appending at (nearly) the same moment
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outcomes = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outcomes, strict=True):
        assert p.returncode == 0, err
    check_chain(engine, names)
