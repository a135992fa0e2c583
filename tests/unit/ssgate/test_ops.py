"""The ops listener in memory: /healthz, /readyz, /metrics over real HTTP/1.1 on a
StringTransport, time on a MemoryReactorClock, the database through a
SynchronousRunner on SQLite (or a runner that fails as a database that is down)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, exc
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import certs
import declare_app
import gateway
from auth.testing import SynchronousRunner
from ssgate._config import OpsConfig, parse_config
from ssgate._console.testing import ConsoleClient
from ssgate._db import make_engine
from ssgate._metrics import GatewayMetrics
from ssgate._ops import OneAtATime, exposure_warning, is_loopback_listen, node_ops

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW_DT = datetime.fromtimestamp(NOW, UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/ops.db")
    for metadata in (auth.metadata, audit.metadata, gateway.metadata, declare_app.metadata):
        metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def authority() -> certs.CertificateAuthority:
    return certs.CertificateAuthority.create("ssgate test CA", now=NOW_DT - timedelta(days=1))


class DownRunner:
    """:class:`auth.Runner` over a database that refuses connections."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls += 1
        error = exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        return fail(error)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return self.run(fn)


class Node:
    """An ops site over *runner* with the TLS material a running node has."""

    def __init__(
        self,
        runner: Any,
        authority: certs.CertificateAuthority,
        *,
        crl_next_update: timedelta = timedelta(days=7),
        engine: Engine | None = None,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(NOW)
        self.crl = authority.build_crl(
            [], now=NOW_DT - timedelta(hours=1), next_update=crl_next_update, crl_number=1
        )
        ops = node_ops(
            runner,
            self.clock,
            OpsConfig(readiness_timeout_seconds=2.0, metrics_refresh_seconds=10.0),
            node="gw1:100",
            engine=engine,
            ca=authority.certificate,
            crl=lambda: self.crl,
        )
        self.readiness, self.metrics, site = ops.readiness, ops.metrics, ops.site
        self.client = ConsoleClient(site, clock=self.clock)


def test_healthz_answers_ok_without_touching_the_database(
    authority: certs.CertificateAuthority,
) -> None:
    runner = DownRunner()
    node = Node(runner, authority)
    reply = node.client.get("/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")
    assert runner.calls == 0
    assert reply.header("cache-control") == "no-store"


def test_readyz_is_200_when_database_tls_and_node_are_fine(
    engine: Engine, authority: certs.CertificateAuthority
) -> None:
    reply = Node(SynchronousRunner(engine), authority).client.get("/readyz")
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "status": "ready",
        "checks": {"database": "ok", "draining": "ok", "tls": "ok"},
    }


def test_readyz_is_503_naming_the_database_when_it_is_down(
    authority: certs.CertificateAuthority,
) -> None:
    reply = Node(DownRunner(), authority).client.get("/readyz")
    assert reply.status == 503
    body = json.loads(reply.body)
    assert body["status"] == "not-ready"
    assert body["checks"]["database"] == "unreachable (OperationalError)"
    assert body["checks"]["tls"] == "ok"


def test_readyz_gives_up_on_a_database_that_does_not_answer_within_the_timeout(
    engine: Engine, authority: certs.CertificateAuthority
) -> None:
    runner = SynchronousRunner(engine)
    runner.hold()  # the pool is busy: the probe waits
    node = Node(runner, authority)
    reply = node.client.get("/readyz")  # the client advances the clock past 2 s
    assert reply.status == 503
    assert json.loads(reply.body)["checks"]["database"] == "unreachable: no answer within 2 s"


def test_readyz_is_503_while_draining(
    engine: Engine, authority: certs.CertificateAuthority
) -> None:
    node = Node(SynchronousRunner(engine), authority)
    node.readiness.start_draining()
    reply = node.client.get("/readyz")
    assert reply.status == 503
    assert json.loads(reply.body)["checks"]["draining"].startswith("draining")


def test_readyz_is_503_when_the_crl_is_past_its_next_update(
    engine: Engine, authority: certs.CertificateAuthority
) -> None:
    node = Node(SynchronousRunner(engine), authority, crl_next_update=timedelta(hours=2))
    assert node.client.get("/readyz").status == 200  # signed an hour ago: an hour left
    node.clock.advance(3600)
    reply = node.client.get("/readyz")
    assert reply.status == 503
    assert "nextUpdate" in json.loads(reply.body)["checks"]["tls"]


def test_readyz_is_503_without_a_crl(engine: Engine, authority: certs.CertificateAuthority) -> None:
    node = Node(SynchronousRunner(engine), authority)
    node.crl = None  # type: ignore[assignment]
    assert json.loads(node.client.get("/readyz").body)["checks"]["tls"] == "no CRL loaded"


def test_one_probe_at_a_time_however_many_checks_arrive_even_after_a_timeout() -> None:
    clock = MemoryReactorClock()
    started: list[Deferred[int]] = []

    def start() -> Deferred[int]:
        started.append(Deferred())
        return started[-1]

    once = OneAtATime(start, clock, timeout=5)
    first, second = once(), once()
    assert len(started) == 1
    started[0].callback(7)
    assert (first.result, second.result) == (7, 7)
    third = once()
    assert len(started) == 2
    clock.advance(5)
    seen: list[str] = []
    third.addErrback(lambda f: seen.append(f.type.__name__))
    assert seen == ["TimeoutError"]
    # The hung run is still the one in flight: a later caller joins it, no second run.
    fourth = once()
    assert len(started) == 2
    started[1].callback(8)
    assert fourth.result == 8
    assert len(started) == 2


def _families(body: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}


def _seed(engine: Engine) -> None:
    from sqlalchemy import insert

    sessions = gateway.metadata.tables["sessions"]
    credentials = auth.metadata.tables["credentials"]
    row = {
        "account": "33068212345678@sxlss",
        "unit_code": "12345678",
        "peer": "192.0.2.1:5000",
        "cert_serial": "01",
        "started_at": NOW - 100,
        "last_seen_at": NOW - 1,
    }
    cred = {
        "kind": "account",
        "password_hash": "x",
        "totp_secret_sealed": "x",
        "password_changed_at": NOW,
        "updated_at": NOW,
        "locked_until_at": None,
        "hard_locked": False,
    }
    with engine.begin() as conn:
        conn.execute(
            insert(sessions),
            [
                {**row, "id": "a", "node": "gw1:100", "status": "live"},
                {**row, "id": "b", "node": "gw1:100", "status": "live"},
                {**row, "id": "c", "node": "gw2:200", "status": "detached"},
                {**row, "id": "d", "node": "gw2:200", "status": "ended"},
            ],
        )
        conn.execute(
            insert(credentials),
            [
                {**cred, "principal": "p1@sxlss", "locked_until_at": NOW + 60},
                {**cred, "principal": "p2@sxlss", "locked_until_at": NOW - 60},
                {**cred, "principal": "p3@sxlss", "hard_locked": True},
                {**cred, "principal": "alice", "kind": "staff", "locked_until_at": NOW + 5},
            ],
        )
        for i in range(3):
            audit.append(
                conn,
                audit.AuditEvent(
                    at=NOW - 10 + i, actor="os:root", action="test", subject="x", outcome="ok"
                ),
            )


def test_metrics_parse_and_show_what_the_database_says(
    engine: Engine, authority: certs.CertificateAuthority
) -> None:
    _seed(engine)
    node = Node(SynchronousRunner(engine), authority, engine=engine)
    reply = node.client.get("/metrics")
    assert reply.status == 200
    assert (reply.header("content-type") or "").startswith("text/plain; version=")
    families = _families(reply.body)
    live = {
        (s.labels["node"], s.labels["status"]): s.value for s in families["ssgate_sessions"].samples
    }
    assert live == {("gw1:100", "live"): 2, ("gw2:200", "detached"): 1}
    locks = {
        (s.labels["kind"], s.labels["lock"]): s.value for s in families["ssgate_lockouts"].samples
    }
    assert locks == {("account", "timed"): 1, ("account", "hard"): 1, ("staff", "timed"): 1}
    assert families["ssgate_audit_log_records"].samples[0].value == 3
    assert families["ssgate_audit_log_last_append_timestamp_seconds"].samples[0].value == NOW - 8
    assert families["ssgate_database_up"].samples[0].value == 1
    assert families["ssgate_node_info"].samples[0].labels == {"node": "gw1:100"}
    assert "version" in families["ssgate_build_info"].samples[0].labels
    assert "ssgate_db_pool_checked_out" in families
    # The gateway's counters are registered (no samples until it is handed them).
    for name in (
        "ssgate_tls_handshakes",
        "ssgate_tls_handshake_failures",
        "ssgate_channel_logins",
        "ssgate_streams_opened",
        "ssgate_tunnel_bytes",
        "ssgate_audit_write_seconds",
    ):
        assert name in families, name


def test_metrics_leave_the_database_counts_out_when_it_is_down(
    authority: certs.CertificateAuthority,
) -> None:
    reply = Node(DownRunner(), authority).client.get("/metrics")
    assert reply.status == 200
    families = _families(reply.body)
    assert families["ssgate_database_up"].samples[0].value == 0
    assert "ssgate_sessions" not in families
    assert "ssgate_node_info" in families


def test_metrics_read_the_database_at_most_every_refresh_interval(
    engine: Engine, authority: certs.CertificateAuthority
) -> None:
    runner = SynchronousRunner(engine)
    node = Node(runner, authority, engine=engine)
    node.client.get("/metrics")
    node.client.get("/metrics")
    assert runner.calls.count("read_snapshot") == 1
    node.clock.advance(11)
    node.client.get("/metrics")
    assert runner.calls.count("read_snapshot") == 2


def test_gateway_counters_keep_labels_in_their_known_sets() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.handshake_completed()
    metrics.handshake_failed("cert-revoked")
    metrics.handshake_failed("33068212345678@sxlss")  # a bug passing an account name
    metrics.login("ok")
    metrics.login("auth-failed")
    metrics.stream_opened("declare")
    metrics.stream_closed("declare")
    metrics.bytes_relayed("in", 100)
    metrics.audit_written(0.004)
    text = generate_latest(registry).decode()
    assert 'ssgate_tls_handshake_failures_total{reason="other"} 1.0' in text
    assert "sxlss" not in text
    assert 'ssgate_channel_logins_total{outcome="auth-failed"} 1.0' in text
    assert 'ssgate_streams_active{service="declare"} 0.0' in text
    assert 'ssgate_tunnel_bytes_total{direction="in"} 100.0' in text


def test_unknown_paths_are_404_and_only_three_paths_exist(
    authority: certs.CertificateAuthority,
) -> None:
    node = Node(DownRunner(), authority)
    assert node.client.get("/").status == 404
    assert node.client.get("/healthz/x").status == 200  # a leaf: the balancer's typo is fine
    assert node.client.get("/admin").status == 404


@pytest.mark.parametrize(
    ("spec", "loopback"),
    [
        ("tcp:8445:interface=127.0.0.1", True),
        ("tcp:8445:interface=\\:\\:1", True),
        ("unix:/run/ssgate/ops.sock", True),
        ("tcp:8445", False),
        ("tcp:8445:interface=0.0.0.0", False),
    ],
)
def test_the_ops_listen_string_is_judged_loopback_or_not(spec: str, loopback: bool) -> None:
    assert is_loopback_listen(spec) is loopback
    warning = exposure_warning(spec)
    assert (warning is None) is loopback
    if warning is not None:
        assert spec in warning and "firewall" in warning


def test_ops_config_defaults_to_loopback_and_names_a_bad_key() -> None:
    config = parse_config("", source="ssgate.toml")
    assert config.ops.listen == "tcp:8445:interface=127.0.0.1"
    with pytest.raises(ValueError, match=r"ssgate.toml: ops.readiness_timeout_seconds = 0 "):
        parse_config("[ops]\nreadiness_timeout_seconds = 0\n", source="ssgate.toml")
    with pytest.raises(ValueError, match=r"ops.listen = 'http://x' is invalid"):
        parse_config('[ops]\nlisten = "http://x"\n', source="ssgate.toml")
