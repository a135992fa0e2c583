"""Where the gateway and ``ssgate connect`` spend their time: py-spy, sampled.

``python bench/run.py --profile DIR`` runs, after the measurements (so the sampling
does not disturb them), one more bulk upload and download and one more latency run
through the ssgate route while ``py-spy record --native`` samples both processes.
For each phase (``DIR/bulk``, ``DIR/latency``) it writes the collapsed stacks
(``gateway.txt``, ``connect.txt``; for flamegraph.pl or speedscope) and
``summary.txt``: the reactor thread's busy samples by layer, by module and by
function, on their own (self) and with what they call (inclusive).  py-spy pauses a
process to sample it, so the run under the sampler is slower than the measured one.
py-spy is not a dependency: ``pip install py-spy`` or ``--py-spy PATH``.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

RATE = 500  # samples per second per process


@contextlib.contextmanager
def sampled(py_spy: str, pids: dict[str, int], out: Path) -> Iterator[None]:
    """Sample *pids* (name → pid) while the block runs; stacks to ``out/NAME.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    logs = {name: (out / f"{name}.py-spy.log").open("wb") for name in pids}
    recorders = {
        name: subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--threads",
                "--output",
                str(out / f"{name}.txt"),
                "--native",
            ],
            stdout=subprocess.DEVNULL,
            stderr=logs[name],
            start_new_session=True,
        )
        for name, pid in pids.items()
    }
    try:
        yield
    finally:
        for recorder in recorders.values():
            with contextlib.suppress(ProcessLookupError):
                recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for recorder in recorders.values():
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        for log in logs.values():
            log.close()


def summary(stacks_file: Path, top: int = 20) -> str:
    """Where the main (reactor) thread's busy samples went: by module and by function,
    on their own (self) and with what they call (inclusive).  Samples whose innermost
    frame is ``epoll_wait`` are the reactor waiting for work: counted as idle."""
    try:
        lines = stacks_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return f"{stacks_file}: no samples (did py-spy attach?)\n"
    by_layer: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    busy = idle = other_threads = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, _, rest = stack.partition(";")
        if "MainThread" not in thread:
            other_threads += count
            continue
        raw = [f.strip() for f in rest.split(";") if f.strip()]
        frames = [_frame(f) for f in raw]
        if not frames:
            continue
        if frames[-1][0].startswith("epoll_wait"):
            idle += count
            continue
        busy += count
        by_layer[_layer(raw[-1])] += count
        name, module = frames[-1]
        by_module[module] += count
        by_function[f"{name} ({module})"] += count
        for name, module in set(frames):
            inclusive[f"{name} ({module})"] += count
    if not busy:
        return f"{stacks_file.stem}: no busy samples of the main thread\n"

    def table(counter: collections.Counter[str], title: str) -> list[str]:
        rows = [f"  {title}"]
        rows += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in counter.most_common(top)]
        return rows

    out = [
        f"{stacks_file.stem}: reactor thread busy in {busy} samples, waiting in epoll in "
        f"{idle} ({100 * busy / (busy + idle):.0f}% busy); other threads: {other_threads}",
        "  shares below are of the busy samples",
    ]
    out += table(by_layer, "self, by layer")
    out += table(by_module, "self, by module or library")
    out += table(by_function, "self, by function")
    out += table(inclusive, "inclusive (with what it calls)")
    return "\n".join(out) + "\n"


_LAYERS = (
    # (what the innermost frame's location contains, the layer it belongs to)
    ("libc.so", "kernel calls and libc (send, recv, epoll, memcpy)"),
    ("[vdso]", "kernel calls and libc (send, recv, epoll, memcpy)"),
    ("_rust.abi3.so", "OpenSSL (record encryption, AES-GCM) via cryptography"),
    ("OpenSSL/", "pyOpenSSL (Python glue around OpenSSL)"),
    ("_cffi_backend", "pyOpenSSL (Python glue around OpenSSL)"),
    ("twisted/protocols/tls.py", "Twisted TLS adapter (TLSMemoryBIOProtocol)"),
    ("twisted/", "Twisted reactor, transports, logging context"),
    ("gateway/", "ssgate tunnel (frames, machine, streams)"),
    ("ssgate/", "ssgate tunnel (frames, machine, streams)"),
    ("auth/", "ssgate auth"),
    ("sqlalchemy/", "database"),
    ("sqlite", "database"),
)


def _layer(frame: str) -> str:
    where = frame.partition(" (")[2]
    for needle, layer in _LAYERS:
        if needle in where:
            return layer
    return "Python runtime and standard library"


def _frame(frame: str) -> tuple[str, str]:
    """``fn (path/to/module.py:123)`` → (``fn``, ``module.py``); a native frame
    ``0x7f… (libc.so.6)`` → (``0x7f…``, ``libc.so.6``)."""
    name, _, where = frame.strip().partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return name, Path(file).name if file else "?"


def profile_run(py_spy: str, pids: dict[str, int], out: Path, transfer: Callable[[], None]) -> str:
    """Run *transfer* (a bulk transfer, a latency run) under the sampler; write and
    return the summary."""
    with sampled(py_spy, pids, out):
        transfer()
    text = "\n".join(summary(out / f"{name}.txt") for name in pids)
    (out / "summary.txt").write_text(text, encoding="utf-8")
    return text
