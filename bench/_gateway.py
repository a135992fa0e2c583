"""The gateway under benchmark: ``ssgate serve`` with ``declare`` pointed at the target.

Everything is built by :func:`ssgate._serve.start`, the function ``ssgate serve``
runs: the same TLS options, portal, login thread pool, session registry, audit
trail, node and logging.  The one difference is where a ``declare`` stream goes:
to the benchmark target's guarded port (which verifies the identity header and then
sinks, sources or echoes) instead of the built-in identity page, so the gateway path
carries the same bytes to the same service as the stunnel and direct paths.  The
built-in page still listens on its Unix socket, unused.

Run: ``python bench/_gateway.py STATE_DIR TARGET_PORT``; it prints
``gateway listening on HOST:PORT`` when ready and stops on SIGTERM, recording the
ends of its sessions as ``ssgate serve`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from ssgate._app import App
from ssgate._serve import describe, start, start_logging
from ssgate._state import StateDir


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python bench/_gateway.py STATE_DIR TARGET_PORT\n")
        return 2
    state, target_port = Path(argv[0]), int(argv[1])
    app = App(StateDir(state))
    # The bench's only change to 'ssgate serve': the declare service is the target.
    serving = start(
        app,
        reactor,
        services={"declare": lambda: TCP4ClientEndpoint(reactor, "127.0.0.1", target_port)},
    )
    print(f"gateway listening on {describe(serving.gateway)}", flush=True)
    start_logging(sys.stderr)
    reactor.addSystemEventTrigger("before", "shutdown", serving.stop)
    reactor.run()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
