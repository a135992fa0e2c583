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

The clients are processes (``--concurrency`` of them, forked, each with its own GIL,
handshaking one after another), on the same cores as the servers: on a 2-core machine
they take a share of the CPU the second worker would use, so the ratio printed is a
floor; the table shows the servers' and the clients' CPU per handshake to say how much.
The ratio is printed, not judged (the target in issue 13 is 1.3 or more).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
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
    seconds: int  # per slice, with --client openssl
    client: str = "openssl"  # openssl: s_time processes; python: the gateway bench's


FULL = Sizes(handshakes=3000, concurrency=16, parts=6, seconds=10)
QUICK = Sizes(handshakes=800, concurrency=16, parts=4, seconds=4)
SMOKE = Sizes(handshakes=40, concurrency=4, parts=2, seconds=1)
WORKERS = (1, 2)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Figures:
    sizes: Sizes
    machine: dict[str, str]
    rates: dict[str, m.Rate]
    cpu: dict[str, tuple[float, float]]  # CPU ms per handshake: servers (all processes), clients
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


def _handshakes(
    route: m.Route, files: tuple[Path, Path, Path], count: int
) -> tuple[list[float], float]:
    """In a client process: *count* handshakes one after another; their durations and
    the CPU seconds this process spent on them."""
    context = m.client_context(*files)
    cpu = time.process_time()
    durations = [m.gateway_handshake(route, context) for _ in range(count)]
    return durations, time.process_time() - cpu


def _burst(
    pool: ProcessPoolExecutor, route: m.Route, files: tuple[Path, Path, Path], count: int, c: int
) -> tuple[m.Rate, float]:
    """*count* handshakes spread over *c* client processes; the rate and the clients'
    CPU seconds."""
    shares = [count // c + (1 if i < count % c else 0) for i in range(c)]
    start = time.perf_counter()
    futures = [pool.submit(_handshakes, route, files, n) for n in shares if n]
    results = [f.result() for f in futures]
    latencies = tuple(x for durations, _ in results for x in durations)
    rate = m.Rate(len(latencies), c, time.perf_counter() - start, latencies)
    return rate, sum(cpu for _, cpu in results)


def _s_time_burst(
    route: m.Route, files: tuple[Path, Path, Path], seconds: int, c: int
) -> tuple[m.Rate, float]:
    """*c* ``openssl s_time -new`` clients (C, one full mutual-TLS handshake after
    another, no HELLO) for *seconds*; the rate and the clients' CPU seconds."""
    ca, cert, key = files
    command = [
        "openssl", "s_time", "-connect", f"{route.host}:{route.port}", "-new",
        "-time", str(seconds), "-cert", str(cert), "-key", str(key), "-CAfile", str(ca),
    ]  # fmt: skip
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(c)
    ]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    count = 0
    for output in outputs:
        found = re.search(r"(\d+) connections in [\d.]+ real seconds", output)
        if found is None:
            raise RuntimeError(f"openssl s_time said:\n{output}")
        count += int(found.group(1))
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return m.Rate(count, c, wall, ()), cpu


def run(sizes: Sizes, tmp: Path, children: Children) -> Figures:
    servers: dict[str, m.Route] = {}
    files: dict[str, tuple[Path, Path, Path]] = {}
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
        files[name] = (state / "ca.pem", account.cert_file, account.key_file)
        pids[name] = serve.popen.pid

    c = sizes.concurrency
    # Forked before any handshake; each client process handshakes one at a time.
    pool = ProcessPoolExecutor(max_workers=c, mp_context=multiprocessing.get_context("fork"))
    try:
        for name, route in servers.items():  # warm-up: processes, connections, workers
            _burst(pool, route, files[name], c * 4, c)
        say(
            f"{c} openssl s_time clients, {sizes.seconds} s per slice"
            if sizes.client == "openssl"
            else f"{sizes.handshakes} mutual-TLS handshakes + HELLO per server, {c} client "
            "processes"
        )
        say(f"  in {sizes.parts} alternating slices per server")
        slices: dict[str, list[m.Rate]] = {name: [] for name in servers}
        server_cpu = dict.fromkeys(servers, 0.0)
        client_cpu = dict.fromkeys(servers, 0.0)
        size = math.ceil(sizes.handshakes / sizes.parts)
        for _ in range(sizes.parts):
            for name, route in servers.items():
                before = _tree_cpu(pids[name])
                if sizes.client == "openssl":
                    rate, clients = _s_time_burst(route, files[name], sizes.seconds, c)
                else:
                    rate, clients = _burst(pool, route, files[name], size, c)
                slices[name].append(rate)
                server_cpu[name] += _tree_cpu(pids[name]) - before
                client_cpu[name] += clients
    finally:
        pool.shutdown()
    rates = {
        name: m.Rate(
            count=sum(r.count for r in parts),
            concurrency=c,
            seconds=sum(r.seconds for r in parts),
            latencies=tuple(x for r in parts for x in r.latencies),
        )
        for name, parts in slices.items()
    }
    cpu = {
        name: (
            server_cpu[name] * 1000 / rates[name].count,
            client_cpu[name] * 1000 / rates[name].count,
        )
        for name in servers
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
        "tls": m.negotiated(servers["1 worker"], m.client_context(*files["1 worker"])),
    }
    return Figures(sizes, machine, rates, cpu, warnings)


def report(figures: Figures, out: TextIO) -> None:
    w = out.write
    w("\nssgate serve --workers benchmark (loopback)\n")
    for key, value in figures.machine.items():
        w(f"  {key + ':':8} {value}\n")
    rates = figures.rates
    what = (
        "mutual-TLS handshake (openssl s_time -new)"
        if figures.sizes.client == "openssl"
        else "mutual-TLS handshake + HELLO (Python)"
    )
    rows = {
        f"{what}, {name} [{rate.count}, {rate.concurrency} at a time]": (
            name,
            rate,
        )
        for name, rate in rates.items()
    }
    width = max(len(text) for text in rows) + 2
    w(f"\n{'':{width}}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms: server':>16}{'client':>8}\n")
    for text, (name, rate) in rows.items():
        w(
            f"{text:{width}}{rate.per_second:9.1f}"
            + (
                f"{m.percentile(rate.latencies, 50) * 1000:9.1f}"
                f"{m.percentile(rate.latencies, 99) * 1000:9.1f}"
                if rate.latencies
                else f"{'-':>9}{'-':>9}"
            )
            + f"{figures.cpu[name][0]:16.2f}{figures.cpu[name][1]:8.2f}\n"
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
        "--client",
        choices=("openssl", "python"),
        default="openssl",
        help="openssl: 'openssl s_time -new' processes, timed slices (cheap clients, so "
        "the servers are what is measured); python: the gateway bench's handshake + HELLO "
        "in client processes (--handshakes per server)",
    )
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
        seconds=sizes.seconds,
        client=args.client,
    )
    started = time.perf_counter()
    with run_directory(keep=args.keep, say=say) as (tmp, children):
        figures = run(sizes, tmp, children)
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(figures, sys.stdout)
    return 0
