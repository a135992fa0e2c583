"""ssgate's benchmark: the gateway against stunnel and a direct connection, one run.

    python bench/run.py            # the full run recorded in docs/benchmarks.md
    python bench/run.py --quick    # smaller sizes, well under a minute
    python bench/run.py --quick --smoke   # tiny sizes: checks that everything runs
    python bench/run.py officer --db sqlite|postgresql [--events N]
                                   # the officers' console pages over a large audit log
                                   # (bench/_officer.py; a separate scenario)
    python bench/run.py declare --db sqlite|postgresql [--persons N] [--path read|write]
                                   # the declaration service's views at a 50,000-person
                                   # unit (bench/_declare.py; a separate scenario)
    python bench/run.py radius [--quick|--smoke] [--requests N]
                                   # RADIUS Access-Requests/s against ssgate serve and
                                   # argon2id verifications/s alone, same threads
                                   # (bench/_radius.py; a separate scenario)
    python bench/run.py portal --db sqlite|postgresql [--years 30]
                                   # the personal portal's pages for a person with 30
                                   # years of contributions (bench/_portal.py)
    python bench/run.py workers [--quick|--smoke] [--handshakes N]
                                   # mutual-TLS handshakes/s with serve --workers 2
                                   # against one worker, same run (bench/_workers.py)
    python bench/run.py sessions [--quick] [--sessions N] [--idle SECONDS]
                                   # N idle authenticated sessions to one gateway from
                                   # one client process: KiB per session, idle CPU,
                                   # fds, RSS after they end (bench/_sessions.py)

Everything runs on loopback, in one temporary directory, started and stopped here:

- a target service (``bench/_target.py``): upload sink, download source, echo;
- three routes to it, measured with the same client code:
  ``direct`` (TCP to the target), ``stunnel`` (stunnel client → stunnel server with
  mutual TLS → target), ``ssgate`` (``ssgate connect`` → the gateway with mutual TLS,
  logged in with password + TOTP → stream to the target, which first verifies the
  gateway's identity header);
- bulk throughput each way, small-request latency (p50/p99), and logins per second
  (TLS + password + TOTP + session record) against mutual-TLS handshakes per second
  with stunnel's server.

Against drift on a shared machine, the bulk transfers rotate the order of the routes
on every repeat, the latency runs take turns a quarter at a time, and each pair of
rate measurements (handshakes, logins against argon2id alone) runs in alternating
halves.  Besides MB/s it reports the CPU time the tunnel's own processes spent per
MB, which varies much less from run to run than throughput does.

It prints a table and the ratios.  Progress goes to stderr, results to stdout.  No
figure is judged here: the numbers are for docs/benchmarks.md and for people.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import math
import os
import platform
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _measure as m
from _cpu import interleaved_with_cpu, own_cpu_seconds
from _procs import Child, Children, logged_errors, run_directory
from _setup import (
    BenchAccount,
    init_state,
    open_accounts,
    password_hasher,
    set_public_port,
    ssgate_binary,
    stunnel_client_config,
    stunnel_server_config,
)

import auth
from ssgate._serve import LOGIN_THREADS

BENCH = Path(__file__).resolve().parent
MB = 1_000_000
ROUTES = ("direct", "stunnel", "ssgate")
# The processes that make up each route's tunnel (their CPU time is the tunnel's cost).
TUNNEL_PROCESSES = {
    "direct": (),
    "stunnel": ("stunnel-client", "stunnel-server"),
    "ssgate": ("connect", "gateway"),
}


@dataclass(frozen=True)
class Sizes:
    bulk_bytes: int
    bulk_repeats: int
    rounds: int
    logins: int
    handshakes: int
    concurrency: int
    argon2: int


FULL = Sizes(
    bulk_bytes=200 * MB,
    bulk_repeats=5,
    rounds=2000,
    logins=200,
    handshakes=500,
    concurrency=16,
    argon2=64,
)
QUICK = Sizes(
    bulk_bytes=100 * MB,
    bulk_repeats=1,
    rounds=1000,
    logins=40,
    handshakes=200,
    concurrency=8,
    argon2=16,
)
SMOKE = Sizes(
    bulk_bytes=1 * MB,
    bulk_repeats=1,
    rounds=50,
    logins=4,
    handshakes=8,
    concurrency=4,
    argon2=4,
)


@dataclass
class Results:
    sizes: Sizes
    machine: dict[str, str] = field(default_factory=dict)
    upload: dict[str, list[float]] = field(default_factory=dict)  # route → MB/s per repeat
    download: dict[str, list[float]] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)  # route → seconds
    # (direction, route) → (user, system) CPU milliseconds per MB of the tunnel's
    # processes, per repeat
    cpu: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    rates: dict[str, m.Rate] = field(default_factory=dict)
    login_cpu_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def say(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


def stunnel_binary() -> str:
    for name in ("stunnel4", "stunnel"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("bench: stunnel not found (Debian: apt-get install stunnel4)")


def stunnel_version(stunnel: str) -> str:
    """``stunnel 5.68, OpenSSL 3.0.19 …`` from ``stunnel -version``."""
    try:
        out = subprocess.run(
            [stunnel, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return "?"
    name = runtime = ""
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("stunnel "):
            name = line.split(" on ")[0]
        elif line.startswith("Running  with "):
            runtime = line.removeprefix("Running  with ")
    return f"{name}, {runtime}" if runtime else name or "?"


# -- the run ------------------------------------------------------------------------------


@dataclass
class World:
    """What the measurements need once every child is up."""

    routes: dict[str, m.Route]
    gateway: m.Route
    stunnel_server: m.Route
    accounts: list[BenchAccount]
    ca_file: Path
    state: Path
    children: dict[str, Child]


def build_world(sizes: Sizes, tmp: Path, children: Children) -> World:
    state = tmp / "state"
    say(f"ssgate init in {state}")
    init_state(ssgate_binary(), state, env=children.env)

    target = children.start("target", [sys.executable, str(BENCH / "_target.py"), str(state)])
    ports = target.wait_for(r"target listening plain=(\d+) guarded=(\d+)")
    plain, guarded = int(ports.group(1)), int(ports.group(2))

    # The gateway binds port 0 and says which port it got; the profiles are written
    # after, naming that port.
    gateway = children.start(
        "gateway", [sys.executable, str(BENCH / "_gateway.py"), str(state), str(guarded)]
    )
    gateway_port = int(gateway.wait_for(r"gateway listening on 127\.0\.0\.1:(\d+)").group(1))
    set_public_port(state, gateway_port)

    count = 1 + sizes.logins
    say(f"opening {count} accounts (argon2id hashes, client certificates)")
    started = time.perf_counter()
    accounts = open_accounts(state, count, tmp, workers=os.cpu_count() or 2)
    say(f"  {count} accounts in {time.perf_counter() - started:.1f} s")

    first = accounts[0]
    connect = children.start(
        "connect",
        [
            ssgate_binary(),
            "connect",
            "--profile",
            str(first.profile),
            "--password-file",
            str(first.password_file),
            "--p12-password-file",
            str(first.p12_password_file),
            "--otp",
            auth.current_code(first.totp_secret, time.time()),
            "--listen",
            "127.0.0.1:0",
        ],
    )
    local = int(connect.wait_for(r"connected as .* open http://127\.0\.0\.1:(\d+)/").group(1))

    # stunnel binds port 0 too and does not print the port at this log level: the
    # kernel says which one each got.
    stunnel = stunnel_binary()
    server_conf = stunnel_server_config(tmp, state, target_port=plain)
    stunnel_server = children.start("stunnel-server", [stunnel, str(server_conf)])
    stunnel_server.wait_for(r"Configuration successful")
    server_accept = stunnel_server.listening_port()
    client_conf = stunnel_client_config(tmp, state, first, server_port=server_accept)
    stunnel_client = children.start("stunnel-client", [stunnel, str(client_conf)])
    stunnel_client.wait_for(r"Configuration successful")
    client_accept = stunnel_client.listening_port()

    routes = {
        "direct": m.Route("direct", "127.0.0.1", plain),
        "stunnel": m.Route("stunnel", "127.0.0.1", client_accept),
        "ssgate": m.Route("ssgate", "127.0.0.1", local),
    }
    return World(
        routes=routes,
        gateway=m.Route("gateway", "127.0.0.1", gateway_port),
        stunnel_server=m.Route("stunnel-server", "127.0.0.1", server_accept),
        accounts=accounts,
        ca_file=state / "ca.pem",
        state=state,
        children={c.name: c for c in children.started},
    )


def measure(sizes: Sizes, world: World, results: Results) -> None:
    routes = world.routes
    for route in routes.values():  # every route works before anything is timed
        m.round_trips(route, 3, warmup=0)

    n = sizes.bulk_bytes
    say(f"bulk: {n / MB:g} MB each way per route, {sizes.bulk_repeats} time(s)")
    for repeat in range(sizes.bulk_repeats):
        # Rotate the order so that drift on a shared machine does not favour one route.
        order = list(ROUTES[repeat % 3 :] + ROUTES[: repeat % 3])
        for name in order:
            for direction, timed in (
                ("upload", m.upload_seconds),
                ("download", m.download_seconds),
            ):
                tunnel = [world.children[p] for p in TUNNEL_PROCESSES[name]]
                before = [p.cpu_seconds() for p in tunnel]
                seconds = timed(routes[name], n)
                after = [p.cpu_seconds() for p in tunnel]
                user = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
                system = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
                table = results.upload if direction == "upload" else results.download
                table.setdefault(name, []).append(n / MB / seconds)
                per_mb = (user * 1000 / (n / MB), system * 1000 / (n / MB))
                results.cpu.setdefault((direction, name), []).append(per_mb)
                say(
                    f"  {name:8} {direction:8} {n / MB / seconds:8.1f} MB/s, "
                    f"tunnel CPU user {user:.2f} s + system {system:.2f} s"
                )

    say(f"latency: {sizes.rounds} round trips of 64 bytes per route")
    parts = 4  # in turns, a quarter at a time, on a new connection each
    for part in range(parts):
        for name in ROUTES[part % 3 :] + ROUTES[: part % 3]:
            times = m.round_trips(routes[name], math.ceil(sizes.rounds / parts))
            results.latency.setdefault(name, []).extend(times)

    contexts = [m.client_context(world.ca_file, a.cert_file, a.key_file) for a in world.accounts]
    results.machine["tls ssgate"] = m.negotiated(world.gateway, contexts[0])
    results.machine["tls stunnel"] = m.negotiated(world.stunnel_server, contexts[0])
    c = sizes.concurrency

    def rotating(job: Callable[[ssl.SSLContext], float], count: int) -> list[Callable[[], float]]:
        return [functools.partial(job, contexts[i % len(contexts)]) for i in range(count)]

    # Each comparison runs in interleaved halves (A, B, A, B) so that a machine that
    # speeds up or slows down during the run does not favour one side.
    say(f"handshakes: {sizes.handshakes} mutual-TLS handshakes, {c} at a time, each server")
    handshakes = {
        "stunnel handshake": rotating(
            lambda ctx: m.stunnel_handshake(world.stunnel_server, ctx), sizes.handshakes
        ),
        "gateway handshake": rotating(
            lambda ctx: m.gateway_handshake(world.gateway, ctx), sizes.handshakes
        ),
    }
    for jobs in handshakes.values():
        m.concurrently(jobs[:c], c)  # warm-up: thread start, first connections
    results.rates.update(m.interleaved({k: (v, c) for k, v in handshakes.items()}))

    logins = world.accounts[1:]
    say(
        f"logins: {len(logins)} full logins (one account each), {c} at a time, and "
        f"{sizes.argon2} argon2id verifications, {LOGIN_THREADS} at a time"
    )

    def login(account: BenchAccount, ctx: ssl.SSLContext) -> Callable[[], float]:
        return lambda: m.gateway_login(
            world.gateway, ctx, account.name, account.password, account.totp_secret
        )

    hasher = password_hasher(world.state)
    login_jobs = [login(a, ctx) for a, ctx in zip(logins, contexts[1:], strict=True)]
    gateway = world.children["gateway"]
    login_rates, cpu = interleaved_with_cpu(
        {
            "ssgate login": (login_jobs, c),
            "argon2 verify": (m.argon2_jobs(hasher, sizes.argon2), LOGIN_THREADS),
        },
        {"ssgate login": gateway.cpu_seconds, "argon2 verify": own_cpu_seconds},
    )
    results.rates.update(login_rates)
    # CPU per login (the gateway, every thread) and per verification (this process):
    # far steadier than the rates on a shared machine.
    results.login_cpu_ms = {k: 1000 * cpu[k] / login_rates[k].count for k in login_rates}
    for name in (*handshakes, "ssgate login", "argon2 verify"):
        say(f"  {name}: {results.rates[name].per_second:.1f}/s")
    p = hasher.params
    results.machine["argon2id"] = (
        f"m={p.memory_kib} KiB, t={p.time_cost}, p={p.parallelism} ([passwords] of ssgate init)"
    )

    for child in world.children.values():
        child.check_running()
    errors = logged_errors(world.children["gateway"].output())
    if errors:
        results.warnings.append(
            f"the gateway logged {len(errors)} error(s); first: {errors[0][:300]}"
        )


def profile(args: argparse.Namespace, sizes: Sizes, world: World) -> None:
    from _profile import profile_run

    py_spy = args.py_spy or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("bench: --profile needs py-spy (pip install py-spy, or --py-spy PATH)")
    pids = {name: world.children[name].pid for name in ("gateway", "connect")}
    route = world.routes["ssgate"]

    def bulk() -> None:
        m.upload_seconds(route, sizes.bulk_bytes)
        m.download_seconds(route, sizes.bulk_bytes)

    def latency() -> None:
        m.round_trips(route, sizes.rounds)

    for phase, run_phase in (("bulk", bulk), ("latency", latency)):
        say(f"profiling ssgate {phase} with py-spy into {args.profile / phase}")
        text = profile_run(py_spy, pids, args.profile / phase, run_phase)
        sys.stderr.write(text)


# -- the report ---------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(results: Results, out: Any) -> None:
    s = results.sizes
    w = out.write
    w("\nssgate benchmark (loopback)\n")
    for key, value in results.machine.items():
        w(f"  {key + ':':21} {value}\n")
    w("\n")
    w(f"{'':40}{'direct':>12}{'stunnel':>12}{'ssgate':>12}\n")
    median: dict[str, dict[str, float]] = {}
    for direction, table in (("upload", results.upload), ("download", results.download)):
        median[direction] = {r: statistics.median(table[r]) for r in ROUTES}
        label = f"{direction} MB/s ({s.bulk_bytes / MB:g} MB, median of {s.bulk_repeats})"
        w(f"{label:40}" + "".join(f"{median[direction][r]:12.1f}" for r in ROUTES) + "\n")
    for direction in ("upload", "download"):
        label = f"  tunnel CPU ms/MB {direction}, user+sys"
        cells = ""
        for r in ROUTES:
            if TUNNEL_PROCESSES[r]:
                samples = results.cpu[direction, r]
                user = statistics.median(u for u, _ in samples)
                system = statistics.median(s for _, s in samples)
                cells += f"{f'{user:.2f}+{system:.2f}':>12}"
            else:
                cells += f"{'-':>12}"
        w(f"{label:40}{cells}\n")
    lat = {q: {r: m.percentile(results.latency[r], q) * 1000 for r in ROUTES} for q in (50, 99)}
    for q in (50, 99):
        label = f"64-byte round trip p{q} ms ({len(results.latency['direct'])})"
        w(f"{label:40}" + "".join(f"{lat[q][r]:12.3f}" for r in ROUTES) + "\n")
    w("\n")
    w(f"{'':76}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}\n")
    labels = {
        "stunnel handshake": "mutual-TLS handshake + 1-byte echo, stunnel",
        "gateway handshake": "mutual-TLS handshake + HELLO, ssgate gateway",
        "ssgate login": "full login (TLS+password+TOTP+session), ssgate",
        "argon2 verify": f"argon2id verify alone, {LOGIN_THREADS} threads (the login pool)",
    }
    for key, label in labels.items():
        rate = results.rates[key]
        text = f"{label} [{rate.count}, {rate.concurrency} at a time]"
        w(
            f"{text:76}{rate.per_second:9.1f}"
            f"{m.percentile(rate.latencies, 50) * 1000:9.1f}"
            f"{m.percentile(rate.latencies, 99) * 1000:9.1f}\n"
        )
    w("\n")
    for direction in ("upload", "download"):
        d = median[direction]
        w(
            f"ratio {direction} throughput: ssgate/stunnel {_ratio(d['ssgate'], d['stunnel'])}"
            f"  ssgate/direct {_ratio(d['ssgate'], d['direct'])}"
            f"  stunnel/direct {_ratio(d['stunnel'], d['direct'])}\n"
        )
    for q in (50, 99):
        d = lat[q]
        w(
            f"ratio p{q} latency (lower is better): ssgate/stunnel "
            f"{_ratio(d['ssgate'], d['stunnel'])}  ssgate/direct {_ratio(d['ssgate'], d['direct'])}"
            f"  stunnel/direct {_ratio(d['stunnel'], d['direct'])}\n"
        )
    per_s = {k: v.per_second for k, v in results.rates.items()}
    w(
        "ratio logins/s: ssgate full logins / stunnel mutual-TLS handshakes "
        f"{_ratio(per_s['ssgate login'], per_s['stunnel handshake'])}"
        f"  ssgate full logins / argon2id verifications "
        f"{_ratio(per_s['ssgate login'], per_s['argon2 verify'])}\n"
    )
    cpu = results.login_cpu_ms
    w(
        f"CPU ms: gateway per full login {cpu['ssgate login']:.1f} (all threads), argon2id per "
        f"verification {cpu['argon2 verify']:.1f}, so "
        f"{cpu['ssgate login'] - cpu['argon2 verify']:.1f} per login beyond the hash\n"
    )
    w(
        "ratio handshakes/s: ssgate gateway / stunnel server "
        f"{_ratio(per_s['gateway handshake'], per_s['stunnel handshake'])}\n"
    )
    for warning in results.warnings:
        w(f"warning: {warning}\n")
    out.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="ssgate against stunnel and a direct connection, on loopback.",
        epilog="python bench/run.py officer --help: the officers' console pages over a "
        "large audit log (another scenario, bench/_officer.py); python bench/run.py radius "
        "--help: RADIUS Access-Requests/s against argon2id alone (bench/_radius.py).",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (well under a minute)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: only checks that every part runs"
    )
    parser.add_argument("--bulk-mb", type=int, metavar="N", help="bulk size per transfer (MB)")
    parser.add_argument("--rounds", type=int, metavar="N", help="latency round trips per route")
    parser.add_argument("--logins", type=int, metavar="N", help="full logins (one account each)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs) and say where"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="afterwards, sample the gateway and ssgate connect with py-spy during one more "
        "bulk transfer and one more latency run through ssgate; stacks and a summary in DIR",
    )
    parser.add_argument(
        "--py-spy", metavar="PATH", help="the py-spy binary (default: py-spy on PATH)"
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the children


# The separate scenarios: the first argument → the module whose main() runs it.
SCENARIOS = {
    "declare": "_declare",
    "officer": "_officer",
    "radius": "_radius",
    "portal": "_portal",
    "workers": "_workers",
    "sessions": "_sessions",
}


def main(argv: list[str]) -> int:
    # SIGTERM and SIGHUP unwind through the finally clauses that stop the children and
    # remove temporary directories and schemas, in either scenario.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if argv[:1] and argv[0] in SCENARIOS:
        # Each separate scenario lives in its own module, imported only when asked for.
        module = importlib.import_module(SCENARIOS[argv[0]])
        scenario_main: Callable[[list[str]], int] = module.main
        return scenario_main(argv[1:])
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    overrides = {
        "bulk_bytes": args.bulk_mb * MB if args.bulk_mb else None,
        "rounds": args.rounds,
        "logins": args.logins,
    }
    sizes = dataclasses.replace(sizes, **{k: v for k, v in overrides.items() if v})
    results = Results(sizes)
    results.machine.update(
        {
            "cpus": str(os.cpu_count()),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "openssl": f"{ssl.OPENSSL_VERSION} (Python ssl: the bench clients)",
            "openssl (pyOpenSSL)": f"{_pyopenssl_version()} (ssgate connect and gateway)",
            "stunnel": stunnel_version(stunnel_binary()),
            "kernel": platform.release(),
        }
    )
    started = time.perf_counter()
    with run_directory(keep=args.keep, say=say) as (tmp, children):
        world = build_world(sizes, tmp, children)
        measure(sizes, world, results)
        if args.profile is not None:
            profile(args, sizes, world)
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(results, sys.stdout)
    return 0


def _pyopenssl_version() -> str:
    from OpenSSL import SSL

    return SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
