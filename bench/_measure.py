"""The measurements: bulk transfer, small round trips, TLS handshakes and full logins.

All clients are blocking sockets in the runner's process, the same code for every
path, so a difference between paths is the path's.  Logins use the sans-IO
:class:`gateway._machine.ClientMachine` over Python's ``ssl`` (OpenSSL, as pyOpenSSL
and stunnel use), one account per login: TLS with the account's client certificate,
HELLO, AUTH with password and the current TOTP code, AUTH_OK (the gateway has
checked the certificate binding, the argon2id hash, the code and its replay guard,
and written the session record and the audit event), then GOAWAY(client-quit).
"""

from __future__ import annotations

import math
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _target import CHUNK, COMMAND

import auth
from gateway._machine import (
    AuthAccepted,
    AuthRejected,
    ClientMachine,
    HandshakeCompleted,
    SessionClosed,
)
from gateway._reasons import Reason
from gateway._tls import CIPHERS

_PAYLOAD = memoryview(bytes(range(256)) * (CHUNK // 256))
TLS_SERVER_NAME = "localhost"  # the name in the gateway's certificate (ssgate init --hostname)


@dataclass(frozen=True)
class Route:
    """One way to reach the target: ``direct``, ``stunnel`` or ``ssgate``."""

    name: str
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


def _connect(route: Route) -> socket.socket:
    sock = socket.create_connection(route.address, timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise ConnectionError(f"end of file after {got} of {n} bytes")
        got += k
    return bytes(buffer)


# -- bulk ---------------------------------------------------------------------------------


def upload_seconds(route: Route, nbytes: int) -> float:
    """Send *nbytes* to the target's sink; seconds until it acknowledged the last byte."""
    start = time.perf_counter()
    with _connect(route) as sock:
        sock.sendall(COMMAND.pack(b"U", nbytes))
        left = nbytes
        while left:
            take = min(left, CHUNK)
            sock.sendall(_PAYLOAD[:take])
            left -= take
        if _read_exact(sock, 1) != b"K":
            raise ConnectionError("the target did not acknowledge the upload")
    return time.perf_counter() - start


def download_seconds(route: Route, nbytes: int) -> float:
    """Receive *nbytes* from the target's source; seconds until the last byte arrived."""
    start = time.perf_counter()
    with _connect(route) as sock:
        sock.sendall(COMMAND.pack(b"D", nbytes))
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        left = nbytes
        while left:
            k = sock.recv_into(view, min(left, CHUNK))
            if not k:
                raise ConnectionError(f"end of file with {left} of {nbytes} bytes to come")
            left -= k
    return time.perf_counter() - start


# -- latency ------------------------------------------------------------------------------


def round_trips(route: Route, rounds: int, *, size: int = 64, warmup: int = 50) -> list[float]:
    """Seconds for each of *rounds* request/response exchanges of *size* bytes, one
    connection, after *warmup* unmeasured ones."""
    message = bytes(_PAYLOAD[:size])
    times: list[float] = []
    with _connect(route) as sock:
        sock.sendall(COMMAND.pack(b"E", 0))
        for i in range(warmup + rounds):
            start = time.perf_counter()
            sock.sendall(message)
            if _read_exact(sock, size) != message:
                raise ConnectionError("the echo came back different")
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (*p* in 0–100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# -- handshakes and logins ----------------------------------------------------------------


def client_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Mutual TLS with the gateway's policy: TLS 1.2+, ECDHE+AEAD, server name checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.load_verify_locations(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def _tls(route: Route, context: ssl.SSLContext) -> ssl.SSLSocket:
    return context.wrap_socket(_connect(route), server_hostname=TLS_SERVER_NAME)


def stunnel_handshake(route: Route, context: ssl.SSLContext) -> float:
    """A full mutual-TLS handshake with stunnel's server and one byte echoed through it
    (so the server has verified our certificate before we count it)."""
    start = time.perf_counter()
    with _tls(route, context) as sock:
        sock.sendall(COMMAND.pack(b"E", 0) + b"x")
        if _read_exact(sock, 1) != b"x":
            raise ConnectionError("stunnel's echo came back different")
    return time.perf_counter() - start


def _exchange(sock: ssl.SSLSocket, machine: ClientMachine, done: type) -> object:
    """Send what *machine* queued and read until it reports an event of type *done*."""
    while True:
        out = machine.data_to_send()
        if out:
            sock.sendall(b"".join(out))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the gateway closed the connection")
        for event in machine.receive(data):
            if isinstance(event, done):
                return event
            if isinstance(event, AuthRejected | SessionClosed):
                raise ConnectionError(f"the gateway said {event.reason.slug}")


def gateway_handshake(route: Route, context: ssl.SSLContext) -> float:
    """A full mutual-TLS handshake with the gateway and the HELLO / HELLO_OK round trip,
    no login (the comparison for :func:`stunnel_handshake`)."""
    start = time.perf_counter()
    with _tls(route, context) as sock:
        _exchange(sock, ClientMachine(client_name="ssgate-bench"), HandshakeCompleted)
    return time.perf_counter() - start


def gateway_login(
    route: Route, context: ssl.SSLContext, account: str, password: str, totp_secret: str
) -> float:
    """A full login (TLS, HELLO, AUTH with password and current code, AUTH_OK); the
    session is then ended with GOAWAY(client-quit).  Seconds until AUTH_OK."""
    start = time.perf_counter()
    with _tls(route, context) as sock:
        machine = ClientMachine(client_name="ssgate-bench")
        machine.authenticate(account, password, auth.current_code(totp_secret, time.time()))
        _exchange(sock, machine, AuthAccepted)
        elapsed = time.perf_counter() - start
        machine.close(Reason.CLIENT_QUIT)
        sock.sendall(b"".join(machine.data_to_send()))
    return elapsed


@dataclass(frozen=True)
class Rate:
    """*count* operations, *concurrency* at a time, in *seconds* of wall time."""

    count: int
    concurrency: int
    seconds: float
    latencies: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def concurrently(jobs: Sequence[Callable[[], float]], concurrency: int) -> Rate:
    """Run *jobs* (each returns its own duration) *concurrency* at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(lambda job: job(), jobs))
    return Rate(len(jobs), concurrency, time.perf_counter() - start, tuple(latencies))


def negotiated(route: Route, context: ssl.SSLContext) -> str:
    """The TLS version and cipher suite *route* negotiates with *context*."""
    with _tls(route, context) as sock:
        cipher = sock.cipher()
        return f"{sock.version()} {cipher[0] if cipher else '?'}"


def interleaved(
    plans: dict[str, tuple[Sequence[Callable[[], float]], int]], parts: int = 2
) -> dict[str, Rate]:
    """Run each plan (name → (jobs, concurrency)) in *parts* slices, taking turns
    (A1 B1 A2 B2 …), and merge each plan's slices into one :class:`Rate`."""
    slices: dict[str, list[Rate]] = {name: [] for name in plans}
    for part in range(parts):
        for name, (jobs, concurrency) in plans.items():
            size = math.ceil(len(jobs) / parts)
            chunk = jobs[part * size : (part + 1) * size]
            if chunk:
                slices[name].append(concurrently(chunk, concurrency))
    return {
        name: Rate(
            count=sum(r.count for r in rates),
            concurrency=plans[name][1],
            seconds=sum(r.seconds for r in rates),
            latencies=tuple(x for r in rates for x in r.latencies),
        )
        for name, rates in slices.items()
    }


def argon2_jobs(hasher: auth.PasswordHasher, count: int) -> list[Callable[[], float]]:
    """*count* argon2id verifications with the state's parameters: run on the gateway's
    login pool size, they are the ceiling for logins per second on this machine."""
    stored = hasher.hash("Bench-Horse-argon2!")

    def verify() -> float:
        start = time.perf_counter()
        if not hasher.verify(stored, "Bench-Horse-argon2!"):
            raise RuntimeError("argon2 verify failed")
        return time.perf_counter() - start

    return [verify] * count
