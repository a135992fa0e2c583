"""``bench/_gateway.py`` under tracemalloc, for ``python bench/run.py sessions --tracemalloc``.

On SIGUSR1 it writes ``--- tracemalloc top ---`` and the 25 biggest allocation sites
(by line, then by traceback of the top one) to its output.  Tracing slows the gateway
and adds its own memory: the sites say where memory goes, not how much RSS it costs.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from types import FrameType

from _gateway import main


def dump(signum: int, frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    lines = ["--- tracemalloc top ---"]
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    lines.append(f"traced: {total / 1024:.0f} KiB in {sum(s.count for s in stats)} blocks")
    lines.extend(str(s) for s in stats[:25])
    for s in snapshot.statistics("traceback")[:3]:
        lines.append(f"-- {s.size / 1024:.0f} KiB in {s.count} blocks from:")
        lines.extend("   " + line for line in s.traceback.format()[-12:])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    tracemalloc.start(12)
    signal.signal(signal.SIGUSR1, dump)
    sys.exit(main(sys.argv[1:]))
