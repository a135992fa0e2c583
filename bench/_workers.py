"""``python bench/run.py workers``: mutual-TLS handshakes/s with ``serve --workers 2``
against one worker, same run.

On loopback, in one temporary directory: two state directories from the real
``ssgate init`` (each with one account for its client certificate), one served by
``ssgate serve --workers 1`` and one by ``ssgate serve --workers 2``, both running for
the whole measurement.  Each handshake is the gateway bench's
(:func:`_measure.gateway_handshake`): TCP connect, TLS 1.3 with the client
certificate verified against the CA and the shared CRL, then HELLO / HELLO_OK — no
login, so no argon2id: the figure is the TLS and protocol work that ``--workers``
spreads over the cores.  The two servers take turns in slices (A B A B …) so that a
shared machine drifting during the run does not favour one.

The clients are Python threads in this process (the ``ssl`` module releases the GIL
during the handshake), on the same cores as the servers: on a 2-core machine they
take a share of the CPU the second worker would use, so the ratio printed is a floor.
The ratio is printed, not judged (the target in issue 13 is 1.3 or more).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import _measure as m
from _procs import Children, logged_errors, run_directory
from _setup import init_state, open_accounts, ssgate_binary


@dataclass(frozen=True)
class Sizes:
    handshakes: int  # per server
    concurrency: int
    parts: int  # slices each server's handshakes are run in, taking turns


FULL = Sizes(handshakes=3000, concurrency=16, parts=6)
QUICK = Sizes(handshakes=800, concurrency=16, parts=4)
SMOKE = Sizes(handshakes=40, concurrency=4, parts=2)
WORKERS = (1, 2)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Figures:
    sizes: Sizes
    machine: dict[str, str]
    rates: dict[str, m.Rate]
    cpu: dict[str, float]  # server CPU seconds (parent and workers) per handshake, ms
    warnings: list[str]


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of *pid* and its children so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run(sizes: Sizes, tmp: Path, children: Children) -> Figures:
    servers: dict[str, m.Route] = {}
    contexts: dict[str, ssl.SSLContext] = {}
    pids: dict[str, int] = {}
    for count in WORKERS:
        name = f"{count} worker" + ("s" if count > 1 else "")
        state = tmp / f"state-{count}"
        say(f"ssgate init in {state}")
        init_state(ssgate_binary(), state, env=children.env)
        serve = children.start(
            f"serve-{count}",
            [ssgate_binary(), "--state", str(state), "serve", "--workers", str(count)],
        )
        bundles = tmp / f"accounts-{count}"
        bundles.mkdir()
        [account] = open_accounts(state, 1, bundles, workers=1)
        port = int(serve.wait_for(r"gateway listening on 127\.0\.0\.1:(\d+)").group(1))
        say(f"ssgate serve --workers {count}: gateway on 127.0.0.1:{port}")
        servers[name] = m.Route(name, "127.0.0.1", port)
        contexts[name] = m.client_context(state / "ca.pem", account.cert_file, account.key_file)
        pids[name] = serve.popen.pid

    c = sizes.concurrency

    def jobs(name: str, count: int) -> list[Callable[[], float]]:
        return [
            functools.partial(m.gateway_handshake, servers[name], contexts[name])
            for _ in range(count)
        ]

    for name in servers:  # warm-up: threads, first connections, every worker's caches
        m.concurrently(jobs(name, c * 4), c)
    say(
        f"{sizes.handshakes} mutual-TLS handshakes + HELLO per server, {c} at a time, "
        f"in {sizes.parts} alternating slices each"
    )
    before = {name: _tree_cpu(pid) for name, pid in pids.items()}
    rates = m.interleaved(
        {name: (jobs(name, sizes.handshakes), c) for name in servers}, parts=sizes.parts
    )
    cpu = {
        name: (_tree_cpu(pid) - before[name]) * 1000 / rates[name].count
        for name, pid in pids.items()
    }
    for name, rate in rates.items():
        say(f"  {name}: {rate.per_second:.1f}/s")
    warnings = []
    for child in children.started:
        child.check_running()
        errors = logged_errors(child.output())
        if errors:
            warnings.append(f"{child.name} logged {len(errors)} error(s); first: {errors[0][:300]}")
    machine = {
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "tls": m.negotiated(servers["1 worker"], contexts["1 worker"]),
    }
    return Figures(sizes, machine, rates, cpu, warnings)


def report(figures: Figures, out: TextIO) -> None:
    w = out.write
    w("\nssgate serve --workers benchmark (loopback)\n")
    for key, value in figures.machine.items():
        w(f"  {key + ':':8} {value}\n")
    rates = figures.rates
    rows = {
        f"mutual-TLS handshake + HELLO, {name} [{rate.count}, {rate.concurrency} at a time]": (
            name,
            rate,
        )
        for name, rate in rates.items()
    }
    width = max(len(text) for text in rows) + 2
    w(f"\n{'':{width}}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU ms':>12}\n")
    for text, (name, rate) in rows.items():
        w(
            f"{text:{width}}{rate.per_second:9.1f}"
            f"{m.percentile(rate.latencies, 50) * 1000:9.1f}"
            f"{m.percentile(rate.latencies, 99) * 1000:9.1f}"
            f"{figures.cpu[name]:12.2f}\n"
        )
    ratio = rates["2 workers"].per_second / rates["1 worker"].per_second
    w(f"\nratio handshakes/s 2 workers / 1 worker {ratio:.2f} (target: 1.3 or more)\n")
    for warning in figures.warnings:
        w(f"warning: {warning}\n")
    out.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py workers",
        description="mutual-TLS handshakes/s against 'ssgate serve --workers 2' and "
        "'--workers 1', same run, taking turns.",
    )
    parser.add_argument("--quick", action="store_true", help="800 handshakes per server")
    parser.add_argument("--smoke", action="store_true", help="a few handshakes: checks it runs")
    parser.add_argument("--handshakes", type=int, metavar="N", help="handshakes per server")
    parser.add_argument("--concurrency", type=int, metavar="N", help="handshakes in flight")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs) and say where"
    )
    args = parser.parse_args(argv)
    for name in ("handshakes", "concurrency"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    sizes = Sizes(
        handshakes=args.handshakes or sizes.handshakes,
        concurrency=args.concurrency or sizes.concurrency,
        parts=sizes.parts,
    )
    started = time.perf_counter()
    with run_directory(keep=args.keep, say=say) as (tmp, children):
        figures = run(sizes, tmp, children)
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(figures, sys.stdout)
    return 0
