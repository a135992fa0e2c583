"""Two ``ssgate serve`` nodes on one PostgreSQL behind a real HAProxy with
``send-proxy-v2`` (issue 13, acceptance 1 and 2, and the ``/metrics`` half of 6).

The nodes listen with ``[gateway] listen = "haproxy:tcp:0:…"``; HAProxy (Debian's
``/usr/sbin/haproxy``) takes its frontends' listening sockets from this test (bound to
port 0 here, inherited as ``bind fd@N``), so no port is left to chance and a client's
connection waits in the backlog until HAProxy accepts it.  Frontend ``all`` balances
over both nodes; ``a`` and ``b`` reach one node each.  Clients are scripted logins
(real TLS with their own certificates, the sans-IO client machine), each bound to a
loopback source address of its own (127.0.0.2, 127.0.0.3, …): the nodes see HAProxy's
127.0.0.1 as their TCP peer, and the client's address only in the PROXY header.

* Acceptance 1: sessions and audit (``ssgate audit sessions|logins``) show the
  client's address; an ``allowed_sources`` rule on that address admits it and refuses
  another loopback address; failures from one address throttle that address only.
* Acceptance 2: the same one-time code sent to both nodes at once, 50 rounds: exactly
  one login per round.
* ``/metrics`` on each node parses with prometheus_client's parser and its counters
  moved with these logins.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway._machine import AuthAccepted, AuthRejected, ClientMachine, SessionClosed
from tests.e2e._logins import Login, open_accounts
from tests.e2e.conftest import SSGATE, WAIT

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Proc, Run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HAPROXY = "/usr/sbin/haproxy"
ROUNDS = 50  # acceptance 2
FIRST_UNIT = 31000001
# The accounts, by what they are for (unit codes FIRST_UNIT, FIRST_UNIT + 1, …).
SEEN, FENCED, GUESSED, BYSTANDER = 0, 1, 2, 3
RACE = 4  # the first of ROUNDS accounts, one per round
SOURCE_MAX_FAILURES = 3

HAPROXY_CONFIG = """\
global
    maxconn 1000

defaults
    mode tcp
    timeout connect 5s
    timeout client 2m
    timeout server 2m

frontend all
    bind fd@{all}
    default_backend both

frontend a
    bind fd@{a}
    default_backend only_a

frontend b
    bind fd@{b}
    default_backend only_b

backend both
    balance roundrobin
    server a 127.0.0.1:{gateway_a} send-proxy-v2
    server b 127.0.0.1:{gateway_b} send-proxy-v2

backend only_a
    server a 127.0.0.1:{gateway_a} send-proxy-v2

backend only_b
    server b 127.0.0.1:{gateway_b} send-proxy-v2
"""


def account_name(index: int) -> str:
    return f"330682{FIRST_UNIT + index}@sxlss"


@dataclass
class Node:
    state: Path
    serve: Proc
    gateway: int
    ops: int


@dataclass
class Balancer:
    """HAProxy and its three frontends' ports."""

    all: int
    a: int
    b: int


@dataclass
class Cluster:
    nodes: tuple[Node, Node]
    balancer: Balancer
    accounts: list[Login]
    run: Run


def configure(state: Path) -> None:
    """Every listener on port 0, the gateway behind PROXY v2; the source throttle
    low and one account fenced to 127.0.0.2."""
    config = state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    for default, ours in (
        ('listen = "tcp:8443"', 'listen = "haproxy:tcp:0:interface=127.0.0.1"'),
        ('listen = "tcp:8444:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"'),
        ('listen = "tcp:8445:interface=127.0.0.1"', 'listen = "tcp:0:interface=127.0.0.1"'),
        ("source_max_failures = 30", f"source_max_failures = {SOURCE_MAX_FAILURES}"),
    ):
        assert default in text
        text = text.replace(default, ours)
    text += (
        "\n[[policy.account]]\n"
        f'name = "{account_name(FENCED)}"\n'
        'allowed_sources = ["127.0.0.2/32"]\n'
    )
    config.write_text(text, encoding="utf-8")


def start_node(spawn: Callable[[list[str]], Proc], state: Path) -> Node:
    serve = spawn([SSGATE, "--state", str(state), "serve"])
    gateway = int(serve.wait_for(r"gateway listening on 127\.0\.0\.1:(\d+) ").group(1))
    ops = int(serve.wait_for(r"ops on http://127\.0\.0\.1:(\d+)/").group(1))
    serve.wait_for(r"Ctrl-C stops")
    return Node(state, serve, gateway, ops)


@contextlib.contextmanager
def haproxy(tmp_path: Path, node_a: Node, node_b: Node) -> Iterator[Balancer]:
    """HAProxy in the foreground on three listening sockets bound here (port 0)."""
    if not Path(HAPROXY).exists():
        if os.environ.get("CI"):
            raise AssertionError(f"{HAPROXY} is missing (.ci/run installs haproxy)")
        pytest.skip("haproxy not installed")
    sockets = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        sockets.append(s)
    fds = [s.fileno() for s in sockets]
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        HAPROXY_CONFIG.format(
            all=fds[0], a=fds[1], b=fds[2], gateway_a=node_a.gateway, gateway_b=node_b.gateway
        ),
        encoding="utf-8",
    )
    log = (tmp_path / "haproxy.log").open("wb")
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        pass_fds=fds,
    )
    ports = [int(s.getsockname()[1]) for s in sockets]
    try:
        yield Balancer(*ports)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for s in sockets:
            s.close()


@contextlib.contextmanager
def two_nodes(
    tmp_path: Path, run: Run, spawn: Callable[[list[str]], Proc], pg_url: str, *, accounts: int
) -> Iterator[Cluster]:
    """Node A initialised on PostgreSQL with *accounts* accounts, node B a copy of its
    state directory (same keys and config, one database), HAProxy in front."""
    state_a, state_b = tmp_path / "state", tmp_path / "state-b"
    run("init", "--hostname", "localhost", "--database-url", pg_url, check_rc=0)
    configure(state_a)
    logins = open_accounts(state_a, tmp_path, FIRST_UNIT, accounts)
    shutil.copytree(state_a, state_b)
    node_a, node_b = start_node(spawn, state_a), start_node(spawn, state_b)
    with haproxy(tmp_path, node_a, node_b) as balancer:
        yield Cluster((node_a, node_b), balancer, logins, run)


@pytest.fixture
def cluster(
    tmp_path: Path, run: Run, spawn: Callable[[list[str]], Proc], pg_url: str
) -> Iterator[Cluster]:
    with two_nodes(tmp_path, run, spawn, pg_url, accounts=RACE + ROUNDS) as nodes:
        yield nodes


Outcome = AuthAccepted | AuthRejected | SessionClosed


class Attempt:
    """One login through the balancer from *source*: TLS with the account's own
    certificate, then HELLO and AUTH (once :meth:`authenticate` is called)."""

    def __init__(self, login: Login, port: int, source: str) -> None:
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=WAIT, source_address=(source, 0)
        )
        self.login = login
        self.sock: ssl.SSLSocket = login.wrap(raw)
        self.sock.do_handshake()

    def authenticate(self, *, password: str | None = None, code: str | None = None) -> Outcome:
        login = self.login
        machine = ClientMachine(client_name="ssgate-e2e")
        machine.authenticate(
            login.name, login.password if password is None else password, code or login.code()
        )
        while True:
            out = machine.data_to_send()
            if out:
                self.sock.sendall(b"".join(out))
            data = self.sock.recv(65536)
            assert data, "the gateway closed the connection without an answer"
            for event in machine.receive(data):
                if isinstance(event, AuthAccepted | AuthRejected | SessionClosed):
                    return event

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def log_in(
    login: Login, port: int, source: str, *, password: str | None = None, code: str | None = None
) -> Outcome:
    attempt = Attempt(login, port, source)
    try:
        return attempt.authenticate(password=password, code=code)
    finally:
        attempt.close()


def audit_rows(cluster: Cluster, what: str) -> list[dict[str, Any]]:
    """``ssgate audit sessions|logins --format json``, as the officer reads them."""
    out = cluster.run("audit", what, "--format", "json", check_rc=0).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def host(peer: object) -> str:
    return str(peer).rpartition(":")[0]


def metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.ops}/metrics", timeout=WAIT) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def counter(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    """The sum of *name* over its labels (0 when it has no sample yet)."""
    return sum(v for (n, _), v in samples.items() if n == name)


def test_two_nodes_behind_haproxy_see_the_clients_address_and_race_one_code_to_one_login(
    cluster: Cluster,
) -> None:
    """Acceptance 1 and 2 on one pair of nodes (starting them is most of the time)."""
    client_address_is_recorded_fenced_and_throttled(cluster)
    same_code_to_both_nodes_logs_in_once_per_round(cluster)


def client_address_is_recorded_fenced_and_throttled(cluster: Cluster) -> None:
    accounts, front = cluster.accounts, cluster.balancer
    before = [metrics(node) for node in cluster.nodes]

    seen, fenced, guessed, bystander = (
        accounts[SEEN],
        accounts[FENCED],
        accounts[GUESSED],
        accounts[BYSTANDER],
    )

    # Seen: a login through the balancer from 127.0.0.2.
    assert isinstance(log_in(seen, front.all, "127.0.0.2"), AuthAccepted)
    # Fenced: allowed_sources = ["127.0.0.2/32"]: admitted from there, not from 127.0.0.3.
    assert isinstance(log_in(fenced, front.a, "127.0.0.2"), AuthAccepted)
    refused = log_in(fenced, front.b, "127.0.0.3")
    assert isinstance(refused, AuthRejected) and refused.reason.slug == "source-denied"
    # Guessed: wrong passwords from 127.0.0.4, over both nodes, throttle 127.0.0.4 only.
    for i in range(SOURCE_MAX_FAILURES):
        port = front.a if i % 2 else front.b
        wrong = log_in(guessed, port, "127.0.0.4", password="not-the-password")
        assert isinstance(wrong, AuthRejected), wrong
    assert isinstance(log_in(bystander, front.all, "127.0.0.4"), AuthRejected)
    assert isinstance(log_in(bystander, front.all, "127.0.0.5"), AuthAccepted)

    # What the officer reads: the clients' addresses, never HAProxy's 127.0.0.1.
    sessions = {r["account"]: host(r["peer"]) for r in audit_rows(cluster, "sessions")}
    assert sessions == {
        seen.name: "127.0.0.2",
        fenced.name: "127.0.0.2",
        bystander.name: "127.0.0.5",
    }
    logins = [
        (r["subject"], r["outcome"], r["reason"], host(r["details"]["peer"]))
        for r in audit_rows(cluster, "logins")
    ]
    assert logins == [
        (seen.name, "ok", "", "127.0.0.2"),
        (fenced.name, "ok", "", "127.0.0.2"),
        (fenced.name, "refused", "source-denied", "127.0.0.3"),
        *[(guessed.name, "refused", "bad-password", "127.0.0.4")] * SOURCE_MAX_FAILURES,
        (bystander.name, "refused", "throttled", "127.0.0.4"),
        (bystander.name, "ok", "", "127.0.0.5"),
    ]

    # /metrics on both nodes parses and moved with these logins.
    after = [metrics(node) for node in cluster.nodes]
    for b, a in zip(before, after, strict=True):
        assert counter(a, "ssgate_tls_handshakes_total") > counter(b, "ssgate_tls_handshakes_total")
        assert counter(a, "ssgate_channel_logins_total") > counter(b, "ssgate_channel_logins_total")
    ok = sum(a.get(("ssgate_channel_logins_total", (("outcome", "ok"),)), 0) for a in after)
    assert ok == 3
    nodes = {labels for a in after for (n, labels) in a if n == "ssgate_node_info"}
    assert len(nodes) == 2  # each node names itself


def same_code_to_both_nodes_logs_in_once_per_round(cluster: Cluster) -> None:
    """Acceptance 2: the same code to node A and node B at once, ROUNDS rounds."""
    front = cluster.balancer
    before = [counter(metrics(node), "ssgate_channel_logins_total") for node in cluster.nodes]

    def round_(n: int) -> list[str]:
        """Both TLS handshakes first, then AUTH with one code on both at the same moment.

        Each round from its own address: the losing attempt (``otp-reused``) counts
        against its source, and the throttle here is low."""
        login = cluster.accounts[RACE + n]
        code = login.code()
        source = f"127.0.1.{n + 1}"
        attempts = [Attempt(login, port, source) for port in (front.a, front.b)]
        go = threading.Barrier(2, timeout=WAIT)

        def send(attempt: Attempt) -> Outcome:
            go.wait()
            return attempt.authenticate(code=code)

        try:
            with ThreadPoolExecutor(max_workers=2) as pair:
                outcomes = list(pair.map(send, attempts))
        finally:
            for attempt in attempts:
                attempt.close()
        return sorted("ok" if isinstance(o, AuthAccepted) else o.reason.slug for o in outcomes)

    with ThreadPoolExecutor(max_workers=5) as rounds:  # five rounds at a time, each a pair
        results = list(rounds.map(round_, range(ROUNDS)))
    assert results == [["auth-failed", "ok"]] * ROUNDS
    # Each pair really was spread over the two nodes: both logged logins.
    after = [counter(metrics(node), "ssgate_channel_logins_total") for node in cluster.nodes]
    assert [a - b for a, b in zip(after, before, strict=True)] == [ROUNDS, ROUNDS]
