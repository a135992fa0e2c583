"""``python bench/run.py radius``: dial-in Access-Requests per second against argon2id alone.

One run, on loopback, in one temporary directory:

- a state directory from the real ``ssgate init``, with one NAS in ``[radius]``
  (``127.0.0.1/32``, a shared secret, Message-Authenticator required as by default)
  and the auth and accounting ports on 0;
- the real ``ssgate serve`` as a child (gateway, declaration service, console, ops
  and the dial-in access server, as a carrier runs it); the runner reads the UDP port
  from its banner;
- one account per request, opened as ``bench/_setup.py`` opens the login bench's
  (the TOTP replay guard accepts each time-step once per account, so a request per
  account is always a fresh step, whatever the clock does during the run).

Each request is what a NAS sends: an Access-Request with ``User-Name``, PAP
``User-Password`` = password + the current 6-digit code, a ``NAS-Identifier`` and a
Message-Authenticator (:func:`radius.build_access_request`); it counts once a valid,
signed Access-Accept came back (:func:`radius.read_reply`).  The server has checked
the Message-Authenticator, the duplicate cache, the account, lockout, the argon2id
hash (on ``ssgate serve``'s login pool, :data:`ssgate._serve.LOGIN_THREADS`
threads), the code and its replay guard, the unit's approval, ``max_sessions``, and
written the ``login`` audit event.  Against it, in alternating halves of the same
run: argon2id verifications alone with the state's ``[passwords]`` parameters on
the same number of threads — the ceiling for a login pool of that size.

A request that gets no answer is resent as a NAS does (same identifier and
authenticator, so the server answers it from its duplicate cache); a Reject, or no
answer after every try, stops the run.  The ratio is printed, not judged (the target
in issue 15 is 0.9 or more).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import _measure as m
from _cpu import interleaved_with_cpu, own_cpu_seconds
from _procs import Children, logged_errors, run_directory
from _setup import BenchAccount, init_state, open_accounts, password_hasher, ssgate_binary

import auth
import radius
from ssgate._serve import LOGIN_THREADS

NAS_NAME = "bench-nas"
SECRET = b"bench-radius-shared-secret-0123456789"
TRIES = 3  # as a NAS: the first send and two resends
TRY_TIMEOUT = 10.0  # seconds before a resend (a loaded 2-core machine answers well inside)
ACCESS_ACCEPT = 2


@dataclass(frozen=True)
class Sizes:
    requests: int  # one account each
    concurrency: int  # requests in flight, as a busy NAS (or several) would have
    argon2: int
    warmup: int


FULL = Sizes(requests=400, concurrency=16, argon2=400, warmup=8)
QUICK = Sizes(requests=100, concurrency=16, argon2=100, warmup=4)
SMOKE = Sizes(requests=6, concurrency=4, argon2=6, warmup=2)


def say(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


def configure_radius(state: Path) -> None:
    """``[radius]`` on loopback ports 0 and one NAS, 127.0.0.1, with its secret file."""
    config = state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    for key, default in (("auth_port", 1812), ("accounting_port", 1813)):
        line = f"\n{key} = {default}\n"
        if text.count(line) != 1:
            raise RuntimeError(f"{config}: no [radius] {key} default to replace")
        text = text.replace(line, f"\n{key} = 0\n")
    secret_file = state / "radius-bench.secret"
    secret_file.write_bytes(SECRET + b"\n")
    secret_file.chmod(0o600)
    text += (
        f'\n[[radius.client]]\nname = "{NAS_NAME}"\nsources = ["127.0.0.1/32"]\n'
        f'secret_file = "{secret_file.name}"\n'
    )
    config.write_text(text, encoding="utf-8")


def access_request(server: tuple[str, int], account: BenchAccount) -> float:
    """One PAP Access-Request (password + current code, Message-Authenticator) as the
    NAS; seconds from the first send to a valid Access-Accept."""
    start = time.perf_counter()
    code = auth.current_code(account.totp_secret, time.time())
    request, data = radius.build_access_request(
        secret=SECRET,
        user_name=account.name,
        password=account.password + code,
        nas_identifier=NAS_NAME,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TRY_TIMEOUT)
        sock.connect(server)
        for _ in range(TRIES):
            sock.send(data)
            try:
                while True:  # anything that is not a valid answer is ignored
                    reply = radius.read_reply(request, sock.recv(radius.MAX_PACKET + 1))
                    if reply is not None:
                        break
            except TimeoutError:
                continue
            if reply.code != ACCESS_ACCEPT:
                raise RuntimeError(
                    f"{account.name}: {reply.code_name} ({reply.reply_message}); "
                    "the reason is in the audit log (ssgate audit logins)"
                )
            return time.perf_counter() - start
    raise RuntimeError(f"{account.name}: no answer after {TRIES} tries of {TRY_TIMEOUT:g} s")


@dataclass
class Figures:
    sizes: Sizes
    machine: dict[str, str]
    rates: dict[str, m.Rate]
    warnings: list[str]
    cpu_ms: dict[str, float]


def run(
    sizes: Sizes, tmp: Path, children: Children, *, profile: Path | None = None, py_spy: str = ""
) -> Figures:
    state = tmp / "state"
    say(f"ssgate init in {state}")
    init_state(ssgate_binary(), state, env=children.env)
    configure_radius(state)
    # Started before the runner has any thread (see _procs.Child); it boots while the
    # accounts are opened.
    serve = children.start("serve", [ssgate_binary(), "--state", str(state), "serve"])
    count = sizes.warmup + sizes.requests + (sizes.requests if profile is not None else 0)
    say(f"opening {count} accounts (argon2id hashes, client certificates)")
    started = time.perf_counter()
    accounts = open_accounts(state, count, tmp, workers=os.cpu_count() or 2)
    say(f"  {count} accounts in {time.perf_counter() - started:.1f} s")
    hasher = password_hasher(state)
    found = serve.wait_for(r"RADIUS access server on udp:(127\.0\.0\.1):(\d+) ")
    server = (found.group(1), int(found.group(2)))
    say(f"ssgate serve: RADIUS on udp:{server[0]}:{server[1]}")

    def requests(batch: list[BenchAccount]) -> list[Callable[[], float]]:
        return [functools.partial(access_request, server, a) for a in batch]

    warm = accounts[: sizes.warmup]
    measured = accounts[sizes.warmup : sizes.warmup + sizes.requests]
    extra = accounts[sizes.warmup + sizes.requests :]
    c = sizes.concurrency
    # Warm-up: the server's first transactions, thread starts, the runner's sockets.
    m.concurrently(requests(warm), min(c, len(warm)))
    m.concurrently(m.argon2_jobs(hasher, LOGIN_THREADS), LOGIN_THREADS)
    say(
        f"{len(measured)} Access-Requests ({c} in flight) and {sizes.argon2} argon2id "
        f"verifications ({LOGIN_THREADS} threads), in alternating halves"
    )
    rates, cpu = interleaved_with_cpu(
        {
            "radius": (requests(measured), c),
            "argon2 verify": (m.argon2_jobs(hasher, sizes.argon2), LOGIN_THREADS),
        },
        {"radius": serve.cpu_seconds, "argon2 verify": own_cpu_seconds},
    )
    for name, rate in rates.items():
        say(f"  {name}: {rate.per_second:.1f}/s")
    # CPU per request (ssgate serve, every thread) and per verification (this process):
    # unlike the rates, these hardly move with what else the machine is running.
    cpu_ms = {name: 1000 * cpu[name] / rates[name].count for name in rates}
    if profile is not None:
        # After the measurement, so the sampler does not disturb it: as many requests
        # again, on accounts of their own (each account's code is used once).
        from _profile import profile_run

        def again() -> None:
            m.concurrently(requests(extra), c)

        say(f"profiling ssgate serve with py-spy into {profile}")
        text = profile_run(
            py_spy,
            {"serve": serve.pid},
            profile,
            again,
        )
        sys.stderr.write(text)
    serve.check_running()
    warnings = []
    errors = logged_errors(serve.output())
    if errors:
        warnings.append(f"ssgate serve logged {len(errors)} error(s); first: {errors[0][:300]}")
    p = hasher.params
    machine = {
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "argon2id": f"m={p.memory_kib} KiB, t={p.time_cost}, p={p.parallelism} "
        "([passwords] of ssgate init)",
        "login pool": f"{LOGIN_THREADS} threads (ssgate serve)",
    }
    return Figures(sizes, machine, rates, warnings, cpu_ms)


def report(figures: Figures, out: TextIO) -> None:
    w = out.write
    w("\nssgate RADIUS benchmark (loopback)\n")
    for key, value in figures.machine.items():
        w(f"  {key + ':':12} {value}\n")
    labels = {
        "radius": "RADIUS Access-Request → Accept (PAP password+code, Message-Authenticator)",
        "argon2 verify": f"argon2id verify alone, {LOGIN_THREADS} threads (the login pool)",
    }
    rates = figures.rates
    rows = {
        f"{label} [{rates[key].count}, {rates[key].concurrency} at a time]": rates[key]
        for key, label in labels.items()
    }
    width = max(len(text) for text in rows) + 2
    w(f"\n{'':{width}}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}\n")
    for text, rate in rows.items():
        w(
            f"{text:{width}}{rate.per_second:9.1f}"
            f"{m.percentile(rate.latencies, 50) * 1000:9.1f}"
            f"{m.percentile(rate.latencies, 99) * 1000:9.1f}\n"
        )
    ratio = rates["radius"].per_second / rates["argon2 verify"].per_second
    w(
        f"\nratio RADIUS Access-Requests/s / argon2id verifications/s {ratio:.2f} "
        "(target: 0.9 or more)\n"
    )
    cpu = figures.cpu_ms
    w(
        f"CPU ms: ssgate serve per Access-Request {cpu['radius']:.1f} (all threads), "
        f"argon2id per verification {cpu['argon2 verify']:.1f}, "
        f"so {cpu['radius'] - cpu['argon2 verify']:.1f} per request beyond the hash\n"
    )
    for warning in figures.warnings:
        w(f"warning: {warning}\n")
    out.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py radius",
        description="RADIUS Access-Requests/s against 'ssgate serve' and argon2id "
        "verifications/s alone, same run, same thread count.",
    )
    parser.add_argument("--quick", action="store_true", help="100 requests (about a minute)")
    parser.add_argument("--smoke", action="store_true", help="a few requests: checks it runs")
    parser.add_argument(
        "--requests", type=int, metavar="N", help="Access-Requests (one account each)"
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help="requests in flight")
    parser.add_argument("--argon2", type=int, metavar="N", help="argon2id verifications")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs) and say where"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="afterwards, sample ssgate serve with py-spy during as many requests again; "
        "stacks and a summary of every thread in DIR",
    )
    parser.add_argument(
        "--py-spy", metavar="PATH", help="the py-spy binary (default: py-spy on PATH)"
    )
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "argon2"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    sizes = Sizes(
        requests=args.requests or sizes.requests,
        concurrency=args.concurrency or sizes.concurrency,
        argon2=args.argon2 or sizes.argon2,
        warmup=sizes.warmup,
    )
    py_spy = ""
    if args.profile is not None:
        py_spy = args.py_spy or shutil.which("py-spy") or ""
        if not py_spy:
            raise SystemExit("bench: --profile needs py-spy (pip install py-spy, or --py-spy PATH)")
    started = time.perf_counter()
    with run_directory(keep=args.keep, say=say) as (tmp, children):
        figures = run(sizes, tmp, children, profile=args.profile, py_spy=py_spy)
    say(f"done in {time.perf_counter() - started:.0f} s")
    report(figures, sys.stdout)
    return 0
