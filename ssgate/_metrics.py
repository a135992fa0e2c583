"""The Prometheus metrics of one ssgate process, each on a registry of its own.

Two kinds:

* **What the database says**, read at scrape time (:class:`DatabaseCollector`): live
  and detached sessions per node, lockouts in force, declarations by type and state,
  the audit log's length and last append.  One snapshot query runs on the database
  pool (never on the reactor thread) at most every ``[ops] metrics_refresh_seconds``
  and, when the database does not answer in time, the families are left out rather
  than shown stale; ``ssgate_database_up`` says which.
* **What only the gateway sees** (:class:`GatewayMetrics`): TLS handshakes and their
  failures by reason, channel logins by outcome, streams, bytes relayed, audit write
  latency, the tunnels this process holds, connections refused before any login
  (``gateway-full``); with the node: open files and the open-files limit.  The
  metric objects are defined and registered here, with methods that keep every label
  value in a known set; the gateway calls them as its
  :class:`gateway.GatewayObserver` (``GatewayContext.observer``, set by ``serve``), so
  ``gateway/`` imports no metrics library.

Privacy and cardinality: no label carries an account, a unit, an address or a
session id.  Labels are node names, reason and outcome codes, declaration types and
states, and directions — all small closed sets.
"""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata as distribution
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, or_, select

import audit
import auth
import declare_app
import gateway
from ssgate._limits import count_open_descriptors

OTHER = "other"  # the label value for anything outside a metric's known set

# Why a TLS handshake failed (gateway._tls.tls_refusal_reason).
TLS_FAILURE_REASONS = frozenset(
    {
        "cert-revoked",
        "no-client-cert",
        "cert-untrusted",
        "tls-version",
        "tls-cipher",
        "not-tls",
        "tls-timeout",
        "tls-failed",
        "closed-before-handshake",
    }
)
# A channel login's outcome: "ok" or the refusal's reason slug.
LOGIN_OUTCOMES = frozenset({"ok"} | {reason.slug for reason in gateway.Reason})
STREAM_REFUSALS = frozenset(reason.slug for reason in gateway.Reason)
DIRECTIONS = frozenset({"in", "out"})  # in: from employers; out: to employers

# Audit appends are one short transaction: milliseconds normally, seconds in trouble.
AUDIT_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _known(value: str, known: frozenset[str]) -> str:
    return value if value in known else OTHER


class GatewayMetrics:
    """The gateway's counters on *registry*: a :class:`gateway.GatewayObserver`.

    The gateway calls these through ``GatewayContext.observer`` where the events
    happen.  Each method takes the code the gateway already has; an unknown code is
    counted as ``other`` so a bug cannot create unbounded series.  Bytes are counted
    when each stream ends (what a stream still open carries shows at its end).
    """

    def __init__(self, registry: CollectorRegistry, *, services: Iterable[str] = ("declare",)):
        self._services = frozenset(services)
        self.tls_handshakes = Counter(
            "ssgate_tls_handshakes",
            "Mutual-TLS handshakes completed on the gateway listener.",
            registry=registry,
        )
        self.tls_handshake_failures = Counter(
            "ssgate_tls_handshake_failures",
            "Gateway connections that ended before their TLS handshake completed, by reason.",
            ["reason"],
            registry=registry,
        )
        self.logins = Counter(
            "ssgate_channel_logins",
            "Channel logins (AUTH) by outcome: ok, or the refusal's reason code.",
            ["outcome"],
            registry=registry,
        )
        self.streams_opened = Counter(
            "ssgate_streams_opened",
            "Streams opened through the tunnel, by service.",
            ["service"],
            registry=registry,
        )
        self.streams_refused = Counter(
            "ssgate_streams_refused",
            "Streams refused or reset, by reason code.",
            ["reason"],
            registry=registry,
        )
        self.streams_active = Gauge(
            "ssgate_streams_active",
            "Streams open now on this node, by service.",
            ["service"],
            registry=registry,
        )
        self.tunnel_bytes = Counter(
            "ssgate_tunnel_bytes",
            "Payload bytes relayed through tunnels: in from employers, out to employers.",
            ["direction"],
            registry=registry,
        )
        self.audit_write_seconds = Histogram(
            "ssgate_audit_write_seconds",
            "Time to append one audit record (the transaction, on the database pool).",
            buckets=AUDIT_WRITE_BUCKETS,
            registry=registry,
        )

        self.connections_refused = Counter(
            "ssgate_gateway_connections_refused",
            "Gateway connections refused before any login, by reason code "
            "(gateway-full: the process was near its open-files limit).",
            ["reason"],
            registry=registry,
        )
        self.tunnels = Gauge(
            "ssgate_gateway_tunnels",
            "Logged-in channel sessions this process carries now (its own tunnels).",
            registry=registry,
        )

    def watch_tunnels(self, count: Callable[[], int]) -> None:
        """Read :attr:`tunnels` from *count* at each scrape (``len`` of the live map)."""
        self.tunnels.set_function(lambda: float(count()))

    def handshake_completed(self) -> None:
        self.tls_handshakes.inc()

    def handshake_failed(self, reason: str) -> None:
        self.tls_handshake_failures.labels(_known(reason, TLS_FAILURE_REASONS)).inc()

    def login(self, outcome: str) -> None:
        self.logins.labels(_known(outcome, LOGIN_OUTCOMES)).inc()

    def stream_opened(self, service: str) -> None:
        service = _known(service, self._services)
        self.streams_opened.labels(service).inc()
        self.streams_active.labels(service).inc()

    def stream_closed(self, service: str) -> None:
        self.streams_active.labels(_known(service, self._services)).dec()

    def stream_refused(self, reason: str) -> None:
        self.streams_refused.labels(_known(reason, STREAM_REFUSALS)).inc()

    def bytes_relayed(self, direction: str, count: int) -> None:
        if count > 0:
            self.tunnel_bytes.labels(_known(direction, DIRECTIONS)).inc(count)

    def audit_written(self, seconds: float) -> None:
        self.audit_write_seconds.observe(max(seconds, 0.0))

    def connection_refused(self, reason: str) -> None:
        self.connections_refused.labels(_known(reason, STREAM_REFUSALS)).inc()


# -- what the database says --------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSnapshot:
    """Counts read in one transaction (:func:`read_snapshot`)."""

    taken_at: float
    sessions: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (node, status)
    lockouts: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (kind, lock)
    declarations: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (type, status)
    audit_records: int = 0
    audit_last_append_at: float | None = None


def read_snapshot(conn: Connection, now: float) -> DatabaseSnapshot:
    """The counts the metrics show, in one transaction (on the database pool).

    Each is an indexed count or a group over a closed set (nodes, statuses, types);
    the audit log's length is its head row, not a count of the chain.
    """
    sessions_t = gateway.metadata.tables["sessions"]
    credentials_t = auth.metadata.tables["credentials"]
    declarations_t = declare_app.metadata.tables["declarations"]
    head_t = audit.metadata.tables["audit_head"]
    events_t = audit.metadata.tables["audit_events"]

    sessions = {
        (str(node), str(status)): int(n)
        for node, status, n in conn.execute(
            select(sessions_t.c.node, sessions_t.c.status, func.count())
            .where(sessions_t.c.status != "ended")
            .group_by(sessions_t.c.node, sessions_t.c.status)
        )
    }
    lockouts: dict[tuple[str, str], int] = {}
    for kind, hard, n in conn.execute(
        select(credentials_t.c.kind, credentials_t.c.hard_locked, func.count())
        .where(or_(credentials_t.c.hard_locked, credentials_t.c.locked_until_at > now))
        .group_by(credentials_t.c.kind, credentials_t.c.hard_locked)
    ):
        key = (str(kind), "hard" if hard else "timed")
        lockouts[key] = lockouts.get(key, 0) + int(n)
    declarations = {
        (str(kind), str(status)): int(n)
        for kind, status, n in conn.execute(
            select(declarations_t.c.type, declarations_t.c.status, func.count()).group_by(
                declarations_t.c.type, declarations_t.c.status
            )
        )
    }
    last_seq = conn.execute(select(head_t.c.last_seq)).scalar() or 0
    last_at = None
    if last_seq:
        last_at = conn.execute(select(events_t.c.at).where(events_t.c.seq == last_seq)).scalar()
    return DatabaseSnapshot(
        taken_at=now,
        sessions=sessions,
        lockouts=lockouts,
        declarations=declarations,
        audit_records=int(last_seq),
        audit_last_append_at=float(last_at) if last_at is not None else None,
    )


class DatabaseCollector(Collector):
    """Families from the latest :class:`DatabaseSnapshot` (set by the ops site before
    each scrape), plus the engine's connection pool, read without blocking."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.snapshot: DatabaseSnapshot | None = None
        self.database_up: bool | None = None  # None: not asked yet
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        if self.database_up is not None:
            up = GaugeMetricFamily(
                "ssgate_database_up",
                "1 if the database answered the last readiness or metrics query in time.",
            )
            up.add_metric([], 1.0 if self.database_up else 0.0)
            yield up
        yield from self._pool()
        snap = self.snapshot
        if snap is None:
            return
        yield _family(
            "ssgate_sessions",
            "Channel sessions not ended, by node and status (live or detached), "
            "as the shared session registry says.",
            ["node", "status"],
            snap.sessions,
        )
        yield _family(
            "ssgate_lockouts",
            "Principals locked out now, by kind (account or staff) and lock (timed or hard).",
            ["kind", "lock"],
            snap.lockouts,
        )
        yield _family(
            "ssgate_declarations",
            "Declarations by type and status.",
            ["type", "status"],
            snap.declarations,
        )
        records = GaugeMetricFamily(
            "ssgate_audit_log_records", "Records in the hash-chained audit log."
        )
        records.add_metric([], float(snap.audit_records))
        yield records
        if snap.audit_last_append_at is not None:
            last = GaugeMetricFamily(
                "ssgate_audit_log_last_append_timestamp_seconds",
                "When the newest audit record was appended (Unix time).",
            )
            last.add_metric([], snap.audit_last_append_at)
            yield last
        taken = GaugeMetricFamily(
            "ssgate_database_snapshot_timestamp_seconds",
            "When the database counts above were read (Unix time).",
        )
        taken.add_metric([], snap.taken_at)
        yield taken

    def _pool(self) -> Iterator[Metric]:
        pool: Any = self._engine.pool if self._engine is not None else None
        if pool is None or not all(hasattr(pool, a) for a in ("size", "checkedout", "overflow")):
            return  # SQLite in memory (StaticPool): nothing to say
        size = GaugeMetricFamily(
            "ssgate_db_pool_size", "Connections the SQLAlchemy pool keeps (without overflow)."
        )
        size.add_metric([], float(pool.size()))
        yield size
        used = GaugeMetricFamily(
            "ssgate_db_pool_checked_out", "Database connections in use now (SQLAlchemy pool)."
        )
        used.add_metric([], float(pool.checkedout()))
        yield used
        over = GaugeMetricFamily(
            "ssgate_db_pool_overflow",
            "Connections beyond the pool size open now (negative: room before the size).",
        )
        over.add_metric([], float(pool.overflow()))
        yield over


def _family(
    name: str, documentation: str, labels: list[str], values: Mapping[tuple[str, str], int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, n in sorted(values.items()):
        family.add_metric(list(key), float(n))
    return family


class NodeCollector(Collector):
    """``ssgate_node_info`` (this process's node name) and ``ssgate_build_info``."""

    def __init__(self, node: str, *, started_at: Callable[[], float] = time.time) -> None:
        self._node = node
        self._started_at = started_at()

    def collect(self) -> Iterator[Metric]:
        node = InfoMetricFamily("ssgate_node", "The node name of this process.")
        node.add_metric([], {"node": self._node})
        yield node
        build = InfoMetricFamily("ssgate_build", "The software this process runs.")
        build.add_metric([], build_info())
        yield build
        started = GaugeMetricFamily(
            "ssgate_process_start_time_seconds", "When this ssgate process started (Unix time)."
        )
        started.add_metric([], self._started_at)
        yield started
        # The gateway refuses new connections (gateway-full) some way below the limit.
        open_files = count_open_descriptors()
        if open_files >= 0:
            in_use = GaugeMetricFamily(
                "ssgate_open_files", "File descriptors this process has open."
            )
            in_use.add_metric([], open_files)
            yield in_use
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            limit = GaugeMetricFamily(
                "ssgate_open_files_limit", "This process's open-files limit (soft RLIMIT_NOFILE)."
            )
            limit.add_metric([], soft)
            yield limit


def build_info() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return distribution.version(name)
        except distribution.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("ssgate"),
        "python": platform.python_version(),
        "twisted": version("twisted"),
    }


@dataclass
class ProcessMetrics:
    """Everything ``/metrics`` shows for one process, on its own registry."""

    registry: CollectorRegistry
    database: DatabaseCollector
    gateway: GatewayMetrics


def process_metrics(
    node: str, *, engine: Engine | None = None, services: Iterable[str] = ("declare",)
) -> ProcessMetrics:
    """A fresh registry with the node, database and gateway metrics registered."""
    registry = CollectorRegistry(auto_describe=True)
    database = DatabaseCollector(engine)
    registry.register(NodeCollector(node))
    registry.register(database)
    return ProcessMetrics(registry, database, GatewayMetrics(registry, services=services))
