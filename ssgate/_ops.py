"""The ops listener: ``/healthz``, ``/readyz`` and ``/metrics`` without login.

``[ops] listen`` (ARCHITECTURE §5a) is for the balancer's health check and for
Prometheus, on loopback by default.  It carries no personal data, but a scrape tells
how busy the node is and which nodes exist, so a listen string reachable from the
network is allowed (a monitoring host may need it) and logged as a warning at every
start.

* ``/healthz`` — the process answers: 200 ``ok``.  Touches nothing else, so a
  database outage does not make a supervisor restart a healthy process.
* ``/readyz`` — whether this node should get new clients: the database answers a
  trivial query within ``[ops] readiness_timeout_seconds``, the CA and the CRL are
  loaded and the CRL is not past its nextUpdate (past it, every client certificate
  is refused at the handshake), and the node is not draining.  200 or 503, with a
  JSON body naming each check and why one failed.
* ``/metrics`` — Prometheus text from the process's own registry
  (:mod:`ssgate._metrics`), written by ``generate_latest`` from a plain
  twisted.web resource (importing ``prometheus_client.twisted`` would install the
  default reactor).  The database counts are refreshed first, on the database pool.

Database queries never run on the reactor thread, and at most one of each kind is in
flight however often the balancer asks: a check that arrives while one runs waits
for that one's answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Connection, Engine, text
from twisted.internet.defer import Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

import auth
from ssgate._config import OpsConfig
from ssgate._console import inspect_listen
from ssgate._metrics import DatabaseSnapshot, ProcessMetrics, process_metrics, read_snapshot

T = TypeVar("T")

REPORT_EVERY = 60.0  # seconds between two log lines about a failing probe


def is_loopback_listen(spec: str) -> bool:
    """Whether *spec* binds only this host (a loopback interface or a Unix socket)."""
    return inspect_listen(spec).loopback


def exposure_warning(spec: str) -> str | None:
    """The warning ``serve`` logs at every start for an ops listener other hosts can
    reach (allowed: a balancer or Prometheus elsewhere needs it), or None."""
    if is_loopback_listen(spec):
        return None
    return (
        f"[ops] listen = {spec!r} is reachable from other hosts: /healthz, /readyz and "
        "/metrics answer anyone who can connect, without login; firewall the port to "
        "the balancer and the Prometheus server"
    )


class OneAtATime(Generic[T]):
    """At most one run of *start* in flight; callers meanwhile share its outcome.

    Each caller waits at most *timeout* seconds on *clock* (then gets
    ``TimeoutError``), but the run itself — on a thread pool, where it cannot be taken
    back — stays the one in flight until it ends: a database that hangs holds one
    pool thread, not one per health check.
    """

    def __init__(
        self, start: Callable[[], Deferred[T]], clock: IReactorTime, *, timeout: float
    ) -> None:
        self._start = start
        self._clock = clock
        self._timeout = timeout
        self._waiting: list[Deferred[T]] | None = None

    def __call__(self) -> Deferred[T]:
        waiter: Deferred[T] = Deferred()
        waiter.addTimeout(self._timeout, self._clock)
        if self._waiting is not None:
            self._waiting.append(waiter)
            return waiter
        self._waiting = [waiter]
        try:
            d = self._start()
        except Exception:
            d = Deferred()
            d.errback(Failure())
        d.addBoth(self._done)
        return waiter

    def _done(self, outcome: T | Failure) -> None:
        waiting, self._waiting = self._waiting or [], None
        for waiter in waiting:
            if waiter.called:  # gave up waiting (timed out)
                continue
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)


def _select_one(conn: Connection) -> None:
    conn.execute(text("SELECT 1")).scalar()


@dataclass(frozen=True)
class Readiness:
    """The answer of ``/readyz``: each check's word, ``ok`` or why not."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())

    def json(self) -> bytes:
        body = {"status": "ready" if self.ready else "not-ready", "checks": self.checks}
        return json.dumps(body, sort_keys=True).encode("ascii") + b"\n"


def tls_problem(
    ca: x509.Certificate | None, crl: x509.CertificateRevocationList | None, now: float
) -> str | None:
    """Why the gateway's TLS material cannot admit clients, or None."""
    if ca is None:
        return "no CA certificate loaded"
    if ca.not_valid_after_utc.timestamp() <= now:
        return "the CA certificate has expired"
    if crl is None:
        return "no CRL loaded"
    next_update = crl.next_update_utc
    if next_update is not None and next_update.timestamp() <= now:
        return f"the CRL is past its nextUpdate ({next_update.isoformat()}); renew it"
    return None


class ReadinessCheck:
    """What ``/readyz`` asks: database, TLS material, draining.

    *ca* and *crl* return what the gateway uses now (the CRL watcher's current one);
    :meth:`start_draining` is called by whatever drains the node (SIGTERM,
    ``ssgate node drain``) before it stops accepting.
    """

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        clock: IReactorTime,
        *,
        timeout: float,
        ca: Callable[[], x509.Certificate | None],
        crl: Callable[[], x509.CertificateRevocationList | None],
        on_database: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self._clock = clock
        self._ca = ca
        self._crl = crl
        self._on_database = on_database
        self._probe: OneAtATime[None] = OneAtATime(
            lambda: runner.run(_select_one), clock, timeout=timeout
        )
        self._timeout = timeout
        self.draining = False
        self._failing = 0
        self._reported_at: float | None = None

    def start_draining(self) -> None:
        self.draining = True

    async def check(self) -> Readiness:
        checks = {"database": await self._database()}
        checks["tls"] = tls_problem(self._ca(), self._crl(), self._clock.seconds()) or "ok"
        checks["draining"] = "draining: not taking new clients" if self.draining else "ok"
        return Readiness(checks)

    async def _database(self) -> str:
        try:
            await self._probe()
        except Exception as e:
            self._on_database(False)
            self._failed(Failure())
            if isinstance(e, DeferredTimeout):  # from Deferred.addTimeout
                return f"unreachable: no answer within {self._timeout:g} s"
            return f"unreachable ({type(e).__name__})"
        self._on_database(True)
        if self._failing:
            self.log.info("the database answers again after {n} failed check(s)", n=self._failing)
            self._failing = 0
            self._reported_at = None
        return "ok"

    def _failed(self, failure: Failure) -> None:
        # The body says only the exception's kind: a driver's text can name the
        # database host and user.  The log says it all, once a minute at most.
        self._failing += 1
        now = self._clock.seconds()
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY:
            return
        self._reported_at = now
        self.log.warn(
            "readiness: the database does not answer ({n} failed check(s)): {error}",
            n=self._failing,
            error=failure.getErrorMessage(),
        )


class MetricsRefresh:
    """Reads a :class:`DatabaseSnapshot` for the collector, at most every
    *max_age* seconds, one query at a time, bounded by *timeout*."""

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        clock: IReactorTime,
        metrics: ProcessMetrics,
        *,
        max_age: float,
        timeout: float,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._max_age = max_age
        self._read: OneAtATime[DatabaseSnapshot] = OneAtATime(
            lambda: runner.run(read_snapshot, clock.seconds()), clock, timeout=timeout
        )

    def __call__(self) -> Deferred[None]:
        collector = self._metrics.database
        snap = collector.snapshot
        if snap is not None and self._clock.seconds() - snap.taken_at < self._max_age:
            return succeed(None)
        d: Deferred[None] = self._read().addCallbacks(self._got, self._failed)
        return d

    def _got(self, snapshot: DatabaseSnapshot) -> None:
        self._metrics.database.snapshot = snapshot
        self._metrics.database.database_up = True

    def _failed(self, failure: Failure) -> None:
        # Counts that could not be read are left out, not shown stale.
        self._metrics.database.snapshot = None
        self._metrics.database.database_up = False
        self.log.debug("metrics: database counts unavailable: {e}", e=failure.getErrorMessage())


# -- the resources ---------------------------------------------------------------------------


def _answer(request: Request, status: int, body: bytes, content_type: bytes) -> None:
    if request._disconnected:  # the balancer gave up waiting
        return
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body if request.method != b"HEAD" else b"")
    request.finish()


class _Leaf(Resource):
    isLeaf = True

    def render_HEAD(self, request: Request) -> Any:
        return self.render_GET(request)  # type: ignore[attr-defined]


class Healthz(_Leaf):
    def render_GET(self, request: Request) -> Any:
        _answer(request, 200, b"ok\n", b"text/plain; charset=utf-8")
        return NOT_DONE_YET


class Readyz(_Leaf):
    log = Logger()

    def __init__(self, check: ReadinessCheck) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._check = check

    def render_GET(self, request: Request) -> Any:
        d = Deferred.fromCoroutine(self._check.check())

        def done(readiness: Readiness) -> None:
            _answer(request, 200 if readiness.ready else 503, readiness.json(), b"application/json")

        def failed(failure: Failure) -> None:
            self.log.failure("readiness check failed", failure)
            body = Readiness({"check": "failed"}).json()
            _answer(request, 503, body, b"application/json")

        d.addCallbacks(done, failed)
        return NOT_DONE_YET


class Metrics(_Leaf):
    log = Logger()

    def __init__(self, metrics: ProcessMetrics, refresh: Callable[[], Deferred[None]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._metrics = metrics
        self._refresh = refresh

    def render_GET(self, request: Request) -> Any:
        def write(_: object) -> None:
            body = generate_latest(self._metrics.registry)
            _answer(request, 200, body, CONTENT_TYPE_LATEST.encode("ascii"))

        d = self._refresh()
        d.addErrback(lambda f: None)  # the collector already says what is missing
        d.addCallback(write)
        d.addErrback(lambda f: self.log.failure("metrics scrape failed", f))
        return NOT_DONE_YET


class _Root(Resource):
    def getChild(self, path: bytes, request: Request) -> Resource:
        return _NotFound()  # type: ignore[no-untyped-call]

    def render_GET(self, request: Request) -> Any:
        return _NotFound().render_GET(request)  # type: ignore[no-untyped-call]


class _NotFound(_Leaf):
    def render_GET(self, request: Request) -> Any:
        _answer(request, 404, b"not found: /healthz /readyz /metrics\n", b"text/plain")
        return NOT_DONE_YET


class OpsSite(Site):
    """The ops listener's site: three paths, GET and HEAD, no access log."""

    displayTracebacks = False

    def __init__(self, resource: Resource, *, reactor: IReactorTime) -> None:
        super().__init__(resource, reactor=reactor)  # type: ignore[no-untyped-call]


def ops_site(
    *,
    readiness: ReadinessCheck,
    metrics: ProcessMetrics,
    refresh: Callable[[], Deferred[None]],
    clock: IReactorTime,
) -> OpsSite:
    root = _Root()  # type: ignore[no-untyped-call]
    root.putChild(b"healthz", Healthz())  # type: ignore[no-untyped-call]
    root.putChild(b"readyz", Readyz(readiness))
    root.putChild(b"metrics", Metrics(metrics, refresh))
    return OpsSite(root, reactor=clock)


@dataclass
class Ops:
    """What ``serve`` listens with on ``[ops] listen``, and what others act on:
    :attr:`readiness` (``start_draining``) and :attr:`metrics` (``metrics.gateway`` is
    the object to hand the gateway)."""

    site: OpsSite
    readiness: ReadinessCheck
    metrics: ProcessMetrics


def node_ops(
    runner: auth.Runner,
    clock: IReactorTime,
    config: OpsConfig,
    *,
    node: str,
    engine: Engine | None,
    ca: x509.Certificate | None,
    crl: Callable[[], x509.CertificateRevocationList | None],
) -> Ops:
    """The ops site of one node: its metrics registry, readiness and refresh wired."""
    metrics = process_metrics(node, engine=engine)
    readiness = ReadinessCheck(
        runner,
        clock,
        timeout=config.readiness_timeout_seconds,
        ca=lambda: ca,
        crl=crl,
        on_database=lambda up: setattr(metrics.database, "database_up", up),
    )
    refresh = MetricsRefresh(
        runner,
        clock,
        metrics,
        max_age=config.metrics_refresh_seconds,
        timeout=config.readiness_timeout_seconds,
    )
    site = ops_site(readiness=readiness, metrics=metrics, refresh=refresh, clock=clock)
    return Ops(site, readiness, metrics)
