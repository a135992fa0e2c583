"""Two real ``ssgate serve`` nodes on one PostgreSQL (issue 13, acceptance 4 and 5).

Node B is made the way an operator makes one: ``ssgate node export`` on A, ``ssgate
init --join`` for B.  Then:

* acceptance 5 — ``provision reissue-cert`` run against A: B refuses the old client
  certificate at the TLS handshake once it has polled the shared CRL (every second),
  with no file copied and nothing done on B;
* acceptance 4 — ``kill -9`` of B: the session whose client cannot resume is ended
  ``node-lost`` by A through the node registry (well before the 120 s stale period),
  and a client that can resume goes on through A with the same session.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import Engine

import audit
from gateway import _sessions
from ssgate._db import make_engine
from tests.e2e.conftest import SSGATE, WAIT, Channel, Proc, Run

pytestmark = pytest.mark.postgres

PASSPHRASE = "two-nodes-one-database"


@pytest.fixture
def shared(tmp_path: Path, run: Run, pg_url: str) -> Iterator[Channel]:
    """Node A's state directory on a fresh PostgreSQL schema (not started)."""
    run("init", "--hostname", "localhost", "--database-url", pg_url, check_rc=0)
    ch = Channel(tmp_path, tmp_path / "state", run)
    ch.configure()
    try:
        yield ch
    finally:
        ch.stop()


@pytest.fixture
def database(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def join_node_b(ch: Channel) -> Path:
    """B's state directory: exported from A, joined — the same CA, keys, database."""
    passphrase = ch.tmp / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n", encoding="utf-8")
    sealed = ch.tmp / "node.export"
    ch.run("node", "export", "--out", str(sealed), "--passphrase-file", str(passphrase), check_rc=0)
    node_b = ch.tmp / "node-b"
    ch.run(
        "init", "--join", str(sealed), "--passphrase-file", str(passphrase),
        state=node_b, check_rc=0,
    )  # fmt: skip
    return node_b


def serve(ch: Channel, state: Path, *, shared_socket: bool) -> tuple[Proc, int]:
    """``ssgate serve`` on *state*: on the channel's gateway socket (the two nodes
    then share it, as workers behind one port do) or on a port of its own."""
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    proc = Proc(
        [SSGATE, "--state", str(state), "serve"],
        env=env,
        listening=ch.gateway_socket if shared_socket else None,
    )
    ch.children.append(proc)
    port = int(proc.wait_for(r"gateway listening on 127\.0\.0\.1:(\d+) ").group(1))
    return proc, port


def client_pem(ch: Channel, bundle: Path) -> tuple[Path, Path]:
    """The bundle's client certificate and key as PEM files, for a bare TLS client."""
    key, cert, _ = pkcs12.load_key_and_certificates(
        (bundle / "client.p12").read_bytes(), b"bundle-pass-123"
    )
    assert key is not None and cert is not None
    cert_file, key_file = ch.tmp / f"{bundle.name}.pem", ch.tmp / f"{bundle.name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def handshake(port: int, cert: Path, key: Path, ca: Path) -> str:
    """A TLS 1.2 handshake (where the server's verdict on the client certificate
    arrives within the handshake) with *cert*: ``"ok"`` or OpenSSL's reason."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost"):
                return "ok"
        except ssl.SSLError as e:
            return e.reason or str(e)


def test_a_certificate_reissued_through_node_a_is_refused_by_node_b_at_the_handshake(
    shared: Channel,
) -> None:
    ch = shared
    account = ch.open_account()
    node_b = join_node_b(ch)
    config = node_b / "ssgate.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'listen = "systemd:domain=INET:name=gateway"', 'listen = "tcp:0:interface=127.0.0.1"'
        ),
        encoding="utf-8",
    )
    ch.start()
    b, b_port = serve(ch, node_b, shared_socket=False)
    cert, key = client_pem(ch, account.bundle)
    ca = node_b / "ca.pem"
    assert handshake(b_port, cert, key, ca) == "ok"

    p12 = ch.tmp / "p12-again"
    p12.write_text("bundle-pass-456\n", encoding="utf-8")
    ch.run(
        "provision", "reissue-cert", account.name, "--out", str(ch.tmp / "reissued"),
        "--p12-password-file", str(p12), check_rc=0,
    )  # fmt: skip
    # B polls the CRL's number every second; nothing is copied to B, nothing run there.
    reissued_at = time.monotonic()
    verdict = handshake(b_port, cert, key, ca)
    while verdict == "ok" and time.monotonic() - reissued_at < WAIT:
        verdict = handshake(b_port, cert, key, ca)
    assert verdict == "SSLV3_ALERT_CERTIFICATE_REVOKED", verdict
    b.wait_for(r'"crl_number": 2, "revoked": 1, .*"log_format": "TLS options loaded')
    # And A refuses it too: the command ran beside A, not in it, so A also learns of
    # the new CRL from its poll of the database, within the same few seconds.
    verdict = handshake(ch.port, cert, key, ca)
    while verdict == "ok" and time.monotonic() - reissued_at < WAIT:
        verdict = handshake(ch.port, cert, key, ca)
    assert verdict == "SSLV3_ALERT_CERTIFICATE_REVOKED", verdict


def test_kill_9_of_node_b_ends_its_unresumed_sessions_node_lost_and_clients_resume_on_a(
    shared: Channel, database: Engine
) -> None:
    ch = shared
    first, second = ch.open_account(), ch.open_account()
    node_b = join_node_b(ch)
    # Only B serves the shared port while the clients log in: both land on B.
    b, _ = serve(ch, node_b, shared_socket=True)
    b_name = b.wait_for(r'"node": "([^"]+)"').group(1)
    resuming = ch.connect(first)
    resuming_id, _ = ch.connected(resuming)
    frozen = ch.connect(second)
    frozen_id, _ = ch.connected(frozen)
    with database.connect() as conn:
        held = [_sessions.get_session(conn, sid) for sid in (resuming_id, frozen_id)]
    assert [r.node if r else None for r in held] == [b_name, b_name]
    a = ch.start()  # A now shares the port
    a_name = a.wait_for(r'"node": "([^"]+)"').group(1)
    assert a_name != b_name
    # B dies while A runs, not while A starts: A's start-up recovery (which ends at once
    # what dead processes of this host left live) has looked, and found B alive.
    a.wait_for(r"start-up recovery: no session left live by a stopped process")

    os.kill(frozen.popen.pid, signal.SIGSTOP)  # its client cannot resume: only A can end it
    try:
        os.kill(b.popen.pid, signal.SIGKILL)
        assert b.wait_exit() == -signal.SIGKILL
        resuming.wait_for(f"reconnected, same session {resuming_id}")

        # A's registry finds B silent for 15 s and ends what B held (logged as it does).
        a.wait_for(rf'"lost": "{re.escape(b_name)}", "count": 1, .*stopped reporting', 2 * WAIT)
        with database.connect() as conn:
            record = _sessions.get_session(conn, frozen_id)
            resumed = _sessions.get_session(conn, resuming_id)
            [end] = [
                r.event for r in audit.query(conn, actions=["session.end"], session_id=frozen_id)
            ]
        assert record is not None
        assert (record.status, record.end_reason) == ("ended", "node-lost"), record
        # Ended by the registry (B silent 15 s), not the 120 s stale sweep.
        assert end.details["ended_by"] == "node-lost" and end.actor == f"gateway:{a_name}"
        assert resumed is not None and (resumed.status, resumed.node) == ("live", a_name)
    finally:
        os.kill(frozen.popen.pid, signal.SIGCONT)
