"""``ssgate serve``: the gateway and the services behind it, in one process.

Wiring only; every part is built and tested in its own package.  The gateway listens
with TLS 1.2/1.3 and required client certificates on ``[gateway] listen``; the
``declare`` service listens on ``[declare] listen`` (default: a Unix socket in the
state directory, so only this host can reach it) behind the identity guard, which
admits only connections that start with the gateway's signed identity header.  A
watcher reloads the TLS files and the CRL the nodes share in the database within
seconds and ends the sessions of revoked certificates; the node registry
(:mod:`ssgate._nodes`) keeps this node's heartbeat and ends the sessions of nodes that
died.  The alert evaluator (:mod:`ssgate._alerting`) judges new audit
records every ``[alerts] interval_seconds``; the syslog forwarders (:mod:`ssgate._syslog`)
send every audit record to the ``[syslog]`` collectors.  Once a day the audit log's
retention and a signed checkpoint run (:mod:`ssgate._audit_daily`).

Threads: database transactions on one pool, logins (argon2 hashing plus their own
short transactions) on another, so a burst of logins cannot starve the session
registry's polling and a slow database cannot stall hashing.
"""

from __future__ import annotations

import hmac
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TextIO, TypeVar, cast

from cryptography import x509
from sqlalchemy import Connection
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    serverFromString,
)
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

import auth
import declare_app
import web
from declare_app._declarations import Declarations
from declare_app._guard import IdentityGuardFactory
from declare_app.web import employer_site, registry_unit_name
from gateway import (
    GatewayContext,
    GatewayNode,
    ReloadingServerTLS,
    ServerTLSMaterial,
    SharedCrl,
    SharedCrlWatcher,
    channel_portal,
    default_node_name,
    load_state_server_tls,
    policy_view,
)
from ssgate._alerting import alert_service
from ssgate._app import App
from ssgate._audit_daily import DailyPaths, audit_daily_service
from ssgate._config import Config, ConfigError
from ssgate._console import (
    ConsoleListenError,
    SessionPolicy,
    check_console_listen,
    console_factory,
    console_site,
    login_form_key,
    session_sweeper,
)
from ssgate._db import Database, ReadStream, WorkerPool
from ssgate._monthly_close import monthly_close_service
from ssgate._nodes import (
    NodeRegistry,
    PolicyMismatch,
    check_policy,
    crl_fetcher,
    node_host,
    shared_crl_at_start,
)
from ssgate._ops import Ops, exposure_warning, is_loopback_listen, node_ops
from ssgate._portal import person_counter, start_portal  # the insured persons' portal (issue 18)
from ssgate._radius import RadiusListener, start_radius
from ssgate._state import StateDir, StateError
from ssgate._syslog import SyslogSetupError, syslog_service
from ssgate._workers import (
    KILL_MARGIN_SECONDS,
    READY_LINE,
    WorkerSeat,
    WorkersError,
    adopt_listener,
    bind_listeners,
    run_workers,
    watch_parent,
    worker_node_name,
)

DECLARE_SOCKET = "declare.sock"
ACCESS_LOG = "logs/access.log"  # both sites' requests, one masked line each
LOGIN_THREADS = 4

P = ParamSpec("P")
T = TypeVar("T")


class ServeError(Exception):
    """The gateway cannot start; the message says why (a bad file, a busy port…)."""


class Runner:
    """:class:`auth.Runner`: transactions on the database pool, logins (hashing) on
    their own pool."""

    def __init__(self, db: Database, reactor: Any, *, login_threads: int = LOGIN_THREADS) -> None:
        self._db = db
        self._logins = WorkerPool(reactor, name="ssgate-login", max_threads=login_threads)

    def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        d: Deferred[T] = self._db.run(fn, *args, **kwargs)
        return d

    def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        """``fn(conn, ...)`` in a read-only transaction on the database's read pool."""
        d: Deferred[T] = self._db.read(fn, *args, **kwargs)
        return d

    def stream(
        self,
        fn: Callable[Concatenate[Connection, P], Iterable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> ReadStream[T]:
        """``fn(conn, ...)``'s items, read as asked for in one read-only transaction."""
        return self._db.stream(fn, *args, **kwargs)

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        d: Deferred[T] = self._logins.defer(fn, *args, **kwargs)
        return d

    def close(self) -> None:
        self._logins.stop()
        self._db.close()


def client_endpoint_for(reactor: Any, port: IListeningPort) -> Callable[[], IStreamClientEndpoint]:
    """How the gateway reaches a service: the address the service actually bound."""
    address = port.getHost()
    kind = type(address).__name__
    if kind == "UNIXAddress":
        path = address.name  # type: ignore[attr-defined]
        name = path.decode() if isinstance(path, bytes) else str(path)
        return lambda: UNIXClientEndpoint(reactor, name)
    host, number = address.host, address.port  # type: ignore[attr-defined]
    if kind == "IPv6Address":
        target6 = "::1" if host in ("::", "") else host
        return lambda: TCP6ClientEndpoint(reactor, target6, number)
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 (not a bind)
    return lambda: TCP4ClientEndpoint(reactor, target, number)


def describe(port: IListeningPort) -> str:
    address = port.getHost()
    if type(address).__name__ == "UNIXAddress":
        name = address.name  # type: ignore[attr-defined]
        return "unix:" + (name.decode() if isinstance(name, bytes) else str(name))
    return f"{address.host}:{address.port}"  # type: ignore[attr-defined]


@dataclass
class Serving:
    """A running gateway: what tests and ``ssgate demo`` need to reach it."""

    gateway: IListeningPort
    declare: IListeningPort
    console: IListeningPort
    services: MultiService
    node: GatewayNode
    runner: Runner
    ops_port: IListeningPort
    ops: Ops  # readiness (draining) and the metrics registry
    dial_in: RadiusListener | None = None  # UDP, while [radius] has clients
    portal: IListeningPort | None = None  # [portal] listen, while configured

    def stop(self) -> Deferred[Any]:
        """Stop listening, drain the live sessions (MOVE to another node, or GOAWAY for
        clients older than protocol version 3; recorded either way), then the pools.

        ``/readyz`` says "draining" from the first moment, and the ops listener is the
        last to close, so the balancer sees the node leave rather than vanish.
        """
        from twisted.internet.defer import gatherResults, maybeDeferred

        self.ops.readiness.start_draining()
        waits = [
            maybeDeferred(self.gateway.stopListening),
            maybeDeferred(self.console.stopListening),
            *(
                maybeDeferred(port.stopListening)
                for port in (self.dial_in.ports() if self.dial_in is not None else ())
            ),
            maybeDeferred(self.services.stopService),  # the node waits for session ends
        ]
        d: Deferred[Any] = gatherResults(waits, consumeErrors=True)
        # The declaration service listens until the sessions have drained: a stream the
        # client opened on a moving connection just before MOVE still gets its answer.
        d.addBoth(lambda _: self.declare.stopListening())
        d.addBoth(lambda _: self.ops_port.stopListening())
        d.addBoth(self._closed)
        return d

    def _closed(self, result: object) -> None:
        self.runner.close()


def make_authenticator(app: App) -> auth.Authenticator:
    """Password + TOTP with the configured lockout (channel accounts and staff).

    With ``[directory] backend = "ldap"`` staff passwords are checked by an LDAP bind
    (:class:`auth.LdapPasswords`).  The bind runs inside ``authenticate`` on the login
    pool (``ssgate-login``, not the reactor's shared pool), bounded by
    ``timeout_seconds``; see :mod:`auth._directory` for why it needs no pool of its own.
    """
    lock = app.config.lockout
    return auth.Authenticator(
        app.engine,
        app.hasher,
        app.box,
        auth.LockoutPolicy(
            threshold=lock.threshold,
            base_lock_seconds=lock.base_lock_seconds,
            max_lock_seconds=lock.max_lock_seconds,
            hard_cap=lock.hard_cap,
            source_window_seconds=lock.source_window_seconds,
            source_max_failures=lock.source_max_failures,
        ),
        staff_passwords=staff_directory(app),
    )


def staff_directory(app: App) -> auth.PasswordVerifier | None:
    """The LDAP verifier for staff passwords, or None for the stored hashes (sql)."""
    directory = app.config.directory
    if directory.backend != "ldap":
        return None
    ca_file = None
    if directory.ca_file:
        ca_file = app.state.path / directory.ca_file  # an absolute path stays as it is
        if not ca_file.is_file():
            raise ServeError(f"directory.ca_file {ca_file}: no such file")
    try:
        settings = auth.LdapSettings(
            url=directory.url,
            user_dn=directory.user_dn,
            start_tls=directory.start_tls,
            ca_file=ca_file,
            timeout_seconds=directory.timeout_seconds,
        )
    except auth.DirectorySettingsError as e:
        raise ServeError(f"directory: {e}") from None
    log = Logger(namespace="ssgate.directory")
    return auth.LdapPasswords(settings, warn=lambda message: log.warn("{m}", m=message))


class _Ports:
    """Listens one by one; if one fails, closes the ones already open."""

    def __init__(
        self, reactor: Any, runner: Runner, inherited: Mapping[str, int] | None = None
    ) -> None:
        self._reactor = reactor
        self._runner = runner
        self._inherited = dict(inherited or {})  # a worker's sockets by what they serve
        self.opened: list[IListeningPort] = []

    def listen(self, spec: str, factory: Any, what: str) -> IListeningPort:
        from twisted.internet.error import CannotListenError

        try:
            fd = self._inherited.pop(what, None)
            if fd is not None:
                port = adopt_listener(self._reactor, spec, fd, factory)
            else:
                port = _listen_now(self._reactor, spec, factory)
        except (CannotListenError, OSError, ValueError) as e:
            for other in self.opened:
                other.stopListening()
            self._runner.close()
            raise ServeError(f"{what} cannot listen on {spec}: {e}") from None
        self.opened.append(port)
        return port


def _load_files(
    app: App, crl: x509.CertificateRevocationList | None = None
) -> tuple[ServerTLSMaterial, Any, declare_app.RateTable]:
    """Everything read from the state directory, checked before anything listens;
    *crl* (the shared one from the database) instead of crl.pem."""
    state = app.state
    try:
        check_console_listen(app.config.console.listen, tls=True)
        material = load_state_server_tls(state.path, crl=crl)
        console_tls = load_state_server_tls(state.path, require_client_cert=False).options
        rates = app.rate_table
    except FileNotFoundError as e:
        raise ServeError(f"{e.filename}: missing; run 'ssgate init' first") from None
    except (ConsoleListenError, StateError, ConfigError) as e:
        raise ServeError(str(e)) from None
    except (OSError, ValueError) as e:
        raise ServeError(f"TLS files cannot be used: {e}") from None
    return material, console_tls, rates


def start(
    app: App,
    reactor: Any,
    *,
    services: Mapping[str, Callable[[], IStreamClientEndpoint]] | None = None,
    seat: WorkerSeat | None = None,
) -> Serving:
    """Listen and start everything; raise :class:`ServeError` on bad files or busy ports.

    *services* replaces the service endpoints (``declare`` → the built-in service) —
    for the benchmarks, which put their own target behind the gateway.  *seat*: this
    process is a worker of ``serve --workers N`` (:mod:`ssgate._workers`): it adopts
    its parent's listening sockets, names itself after its index and writes its own
    access log.
    """
    config, state = app.config, app.state
    node_name = worker_node_name(
        config.node.name, None if seat is None else seat.index, default_node_name
    )
    shared_crl = _shared_state_at_start(app, reactor, node_name)
    material, console_tls, rates = _load_files(app, shared_crl.crl)
    identity_key = state.key("identity.key")
    audit_key = state.audit_signing_key()  # created here for a state dir that predates it
    authenticator = make_authenticator(app)
    access = _access_log(state, reactor, seat)
    runner = Runner(Database(app.engine, reactor), reactor)
    try:
        forwarding = syslog_service(
            runner, reactor, config.syslog, state_path=state.path, node=node_name
        )
    except SyslogSetupError as e:
        runner.close()
        raise ServeError(str(e)) from None
    ports = _Ports(reactor, runner, None if seat is None else seat.listeners)
    workflow = Declarations(rates, settings=agency_rule_settings(config), clock=reactor.seconds)
    # What the web sites get: a database outage is their 503, not a 500 (web._outage).
    site_runner = web.OutageRunner(runner, clock=reactor.seconds)

    site: Any = employer_site(  # a Site is a Factory; Twisted's generics disagree
        workflow=workflow,
        runner=site_runner,
        clock=reactor,
        csrf_key=hmac.digest(identity_key, b"ssgate employer csrf v1", "sha256"),
        unit_names=registry_unit_name,
        agency_name=config.agency.name,
        queries=declare_app.EmployerQueries(rates),
        change_password=authenticator.change_password,
        access_log=access.writer("employer"),
        reader=runner,
    )
    declare_port = ports.listen(
        declare_listen(app),
        IdentityGuardFactory(site, key=identity_key, clock=reactor),
        "declare service",
    )
    console_policy = SessionPolicy(
        idle_seconds=config.console.idle_timeout_seconds,
        max_age_seconds=config.console.max_lifetime_seconds,
    )
    console = console_site(
        authenticator=authenticator,
        runner=site_runner,
        workflow=workflow,
        # The carriers' pages: the same workflows ``ssgate provision`` runs.
        provisioner=app.provisioner(),
        # The administrators' staff pages: the same workflows ``ssgate staff`` runs.
        staff_admin=app.staff_admin(),
        # The counter's portal enrolment: the same workflows ``ssgate persons`` runs.
        person_counter=person_counter(app),
        # The login page's lockout help and the officers' view of throttled sources.
        lockout=authenticator.policy,
        # The officers' integrity page has a verdict from the start (audited as system).
        verify_audit_at_start=True,
        clock=reactor,
        secure=True,
        policy=console_policy,
        # The same on every node and after a restart: a login form loaded from one
        # node can be sent to another.
        login_form_key=login_form_key(identity_key),
        access_log=access.writer("console"),
    )
    console_port = ports.listen(
        config.console.listen, console_factory(console, console_tls), "staff console"
    )

    policy_for = policy_view(config.policy.for_account)
    ctx = GatewayContext(
        clock=reactor,
        portal=channel_portal(authenticator, runner, policy_for, reactor.seconds, node_name),
        db=runner,
        identity_key=identity_key,
        resume_key=state.key("resume.key"),
        services=services or {"declare": client_endpoint_for(reactor, declare_port)},
        policy_for=policy_for,
        node=node_name,
        handshake_timeout=config.policy.handshake_timeout_seconds,
        auth_timeout=config.policy.auth_timeout_seconds,
    )
    node = GatewayNode(ctx, drain_seconds=config.gateway.drain_seconds)
    tls = ReloadingServerTLS(material.options)

    def on_crl(crl: x509.CertificateRevocationList | None) -> None:
        if crl is not None:
            node.revoked(crl)

    running = MultiService()
    running.addService(access)  # closes the file on stop
    running.addService(node)
    watcher = _shared_state_services(
        app,
        reactor,
        runner,
        running,
        tls=tls,
        shared_crl=shared_crl,
        on_crl=on_crl,
        node_name=node_name,
    )
    running.addService(session_sweeper(runner, reactor, console_policy))
    # The officers' alert rules, once across every node sharing the database.
    running.addService(alert_service(runner, reactor, config.alerts))
    # Every audit record to the [syslog] collectors, each by one node at a time.
    running.addService(forwarding)
    # Retention and the signed checkpoint, daily (archives go to this node's state dir).
    running.addService(
        audit_daily_service(
            runner,
            reactor,
            config.audit,
            DailyPaths(state.archive_dir(config), state.checkpoints_dir),
            audit_key,
            node=node_name,
        )
    )
    ops, ops_port = _start_ops(
        app, reactor, ports, runner, node_name=node_name, watcher=watcher, gateway=ctx
    )
    if config.declare.close_day:  # the contribution ledger's monthly close (issue 14)
        running.addService(monthly_close_service(runner, reactor, rates, config.declare.close_day))
    gateway_port = ports.listen(config.gateway.listen, node.factory(tls), "gateway")
    # RADIUS in one process only: an Access-Challenge's state lives where it was sent.
    dial_in = (
        _start_radius(app, reactor, ports, authenticator, runner)
        if seat is None or seat.index == 0
        else None
    )
    portal_port = start_portal(
        app,
        reactor,
        ports.listen,
        runner=site_runner,
        authenticator=authenticator,
        services=running,
        access_log=access.writer("portal"),
    )
    if dial_in is not None:
        running.addService(dial_in.services)  # keep-alive and disconnect timers
    running.startService()
    return Serving(
        gateway_port,
        declare_port,
        console_port,
        running,
        node,
        runner,
        ops_port,
        ops,
        dial_in,
        portal_port,
    )


def _access_log(state: StateDir, reactor: Any, seat: WorkerSeat | None) -> web.AccessLog:
    """Both sites' access log; a worker's own (the file rotates per process)."""
    path = state.path / (ACCESS_LOG if seat is None else seat.access_log)
    try:
        return web.AccessLog(path, clock=reactor.seconds)
    except OSError as e:
        raise ServeError(f"{path}: cannot be written: {e.strerror}") from None


def declare_listen(app: App) -> str:
    """``[declare] listen``, else the state directory's socket (whose lock names the
    process serving it, which ``ssgate node drain`` signals).  Its backlog holds the
    burst of one session's 100 streams opening at once: Twisted's default of 50 would
    refuse half of them (``service-unavailable``)."""
    return app.config.declare.listen or (
        f"unix:{app.state.path / DECLARE_SOCKET}:mode=600:lockfile=1:backlog=1024"
    )


def stream_listeners(app: App) -> dict[str, str]:
    """What ``serve --workers N``'s parent binds for its workers: what → endpoint."""
    config = app.config
    specs = {
        "declare service": declare_listen(app),
        "staff console": config.console.listen,
        "ops listener": config.ops.listen,
        "gateway": config.gateway.listen,
    }
    if config.portal.listen:
        specs["portal"] = config.portal.listen
    return specs


def _shared_state_services(
    app: App,
    reactor: Any,
    runner: Runner,
    running: MultiService,
    *,
    tls: ReloadingServerTLS,
    shared_crl: SharedCrl,
    on_crl: Callable[[x509.CertificateRevocationList | None], None],
    node_name: str,
) -> SharedCrlWatcher:
    """The shared CRL's watcher and the node registry (issue 13), added to *running*."""
    state = app.state
    # Reloaded within seconds of a change in the database, renewed by whichever node
    # finds it due first; the server certificate files are still watched here.
    watcher = SharedCrlWatcher(
        reactor,
        tls,
        shared_crl,
        crl_fetcher(
            runner,
            app.ca,
            reactor,
            next_update=timedelta(days=app.config.pki.crl_next_update_days),
        ),
        lambda crl: load_state_server_tls(state.path, crl=crl).options,
        paths=[state.server_cert_path, state.server_key_path, state.ca_cert_path],
        on_change=on_crl,
    )
    running.addService(watcher)
    # This node in the registry; the sessions of nodes that stop reporting end node-lost.
    running.addService(
        NodeRegistry(runner, reactor, name=node_name, host=node_host(), pid=os.getpid())
    )
    return watcher


def _shared_state_at_start(app: App, reactor: Any, node_name: str) -> SharedCrl:
    """The shared CRL (signed now if the database has none or it is due) and the
    policy check (issue 13), before anything listens."""
    from sqlalchemy.exc import SQLAlchemyError

    next_update = timedelta(days=app.config.pki.crl_next_update_days)
    try:
        with app.engine.begin() as conn:
            check_policy(
                conn, app.config.policy, now=reactor.seconds(), actor=f"gateway:{node_name}"
            )
        return shared_crl_at_start(
            app.engine, app.ca, now=reactor.seconds(), next_update=next_update
        )
    except PolicyMismatch as e:
        raise ServeError(str(e)) from None
    except SQLAlchemyError as e:
        raise ServeError(
            "the database cannot be reached, and a node needs it at start for the shared CRL "
            f"and policy: {type(e).__name__}"
        ) from None


def _start_ops(
    app: App,
    reactor: Any,
    ports: _Ports,
    runner: Runner,
    *,
    node_name: str,
    watcher: Any,
    gateway: GatewayContext,
) -> tuple[Ops, IListeningPort]:
    """Health, readiness and metrics on ``[ops] listen`` (a warning when not loopback);
    the *gateway* reports its handshakes, logins, streams, bytes and audit writes there."""
    ops = node_ops(
        runner,
        reactor,
        app.config.ops,
        node=node_name,
        engine=app.engine,
        # What /readyz checks the CRL against; the gateway's copy is in its options.
        ca=x509.load_pem_x509_certificate(app.state.ca_cert_path.read_bytes()),
        crl=lambda: watcher.current_crl,
    )
    gateway.observer = ops.metrics.gateway
    ops.metrics.gateway.watch_tunnels(lambda: len(gateway.live))
    ops_port = ports.listen(app.config.ops.listen, ops.site, "ops listener")
    exposed = exposure_warning(app.config.ops.listen)
    if exposed is not None:
        Logger(namespace="ssgate.ops").warn("{warning}", warning=exposed)
    return ops, ops_port


def _start_radius(
    app: App, reactor: Any, ports: _Ports, authenticator: auth.Authenticator, runner: Runner
) -> RadiusListener | None:
    """The dial-in access server (``[radius]``), or None while it has no NAS."""
    from twisted.internet.error import CannotListenError

    try:
        return start_radius(app, reactor, authenticator=authenticator, runner=runner)
    except (ConfigError, CannotListenError, OSError) as e:
        for other in ports.opened:
            other.stopListening()
        runner.close()
        raise ServeError(f"RADIUS: {e}") from None


def _listen_now(reactor: Any, spec: str, factory: Any) -> IListeningPort:
    """Listen synchronously (endpoints for tcp/unix listen at once) and return the port."""
    result: list[Any] = []
    serverFromString(reactor, spec).listen(factory).addBoth(result.append)
    if not result:
        raise ValueError(f"{spec}: this endpoint type is not supported here")
    outcome = result[0]
    if isinstance(outcome, Failure):
        outcome.raiseException()
    return outcome  # type: ignore[no-any-return]


def log_observer(out: TextIO) -> ILogObserver:
    """Human lines on a terminal; otherwise one JSON object per line, without the
    RFC 7464 record separator (0x1E) Twisted puts before each by default, so that
    ``json.loads`` per line and every log shipper read it.

    A JSON line of a logged failure carries its cause, ``"error": {"type": …,
    "message": …}`` (:func:`auth.failure_cause`): Twisted writes the exception itself
    as ``{"unpersistable": true}``, which cannot tell a stopped database from a full
    disk."""
    if out.isatty():
        return textFileLogObserver(out)
    return with_failure_cause(jsonFileLogObserver(out, recordSeparator=""))


def with_failure_cause(observer: ILogObserver) -> ILogObserver:
    """*observer* with ``error`` added to each event that has a ``log_failure``."""

    def observe(event: LogEvent) -> None:
        failure = event.get("log_failure")
        if isinstance(failure, Failure) and "error" not in event:
            event = {**event, "error": auth.failure_cause(failure.value).as_dict()}
        observer(event)

    return cast(ILogObserver, implementer(ILogObserver)(observe))


def with_node_name(observer: ILogObserver, node: str) -> ILogObserver:
    """*observer* with this node's name on every event: ``node`` in each JSON line, and
    as the ``[system]`` of a terminal line, so the lines of several nodes can be told
    apart once collected."""

    def observe(event: LogEvent) -> None:
        event = {**event, "node": node}
        if event.get("log_system") in (None, "-"):
            event["log_system"] = node
        observer(event)

    return cast(ILogObserver, implementer(ILogObserver)(observe))


def start_logging(out: TextIO, *, node: str = "") -> None:
    """Log to *out* (:func:`log_observer`), at info and above, each line naming *node*."""
    observer = log_observer(out)
    if node:
        observer = with_node_name(observer, node)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(observer, [predicate])], redirectStandardIO=False
    )


def run_serve(state: StateDir, out: TextIO, *, banner: str = "", workers: int = 1) -> int:
    """Run until SIGINT/SIGTERM; 0 after an orderly stop.

    *workers* > 1: this process supervises that many worker processes sharing its
    listening sockets (:mod:`ssgate._workers`).  A process started as such a worker
    (``$SSGATE_WORKER``) serves on the sockets it inherited."""
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor  # the running reactor: threads, signals, run options

    seat = WorkerSeat.from_env()
    if seat is None and workers > 1:
        return _run_parent(state, out, reactor, workers=workers, banner=banner)
    app = App(state)
    # Issue 16 (wt/edge): soft RLIMIT_NOFILE up to the hard limit, logged, before any
    # listener; the gateway then refuses new connections (gateway-full) below it.
    from ssgate._limits import raise_and_log_open_files_limit

    raise_and_log_open_files_limit()
    try:
        serving = start(app, reactor, seat=seat)
    except StateError:
        app.close()
        raise
    stopping: list[int] = []

    def interrupted(signum: int, frame: object) -> None:
        # One orderly stop however many signals come (a second Ctrl-C, or a supervisor
        # that signals the process group as well as the process); Twisted's own
        # handler would call reactor.stop again and log ReactorNotRunning.
        if not stopping:
            stopping.append(signum)
            reactor.callFromThread(_stop, signum)

    def _stop(signum: int) -> None:
        Logger(namespace="ssgate.serve").info(
            "{signal} received: stopping", signal=signal.Signals(signum).name
        )
        reactor.stop()

    # Before the banner, which tells supervisors and tests that signals are welcome.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    if seat is not None:  # the parent printed the banner; it waits for this line
        watch_parent(reactor, lambda: interrupted(signal.SIGTERM, None))
        out.write(f"{READY_LINE}{serving.node.ctx.node}\n")
        out.flush()
        start_logging(sys.stderr, node=serving.node.ctx.node)
        reactor.addSystemEventTrigger("before", "shutdown", serving.stop)
        reactor.run(installSignalHandlers=False)
        app.close()
        return 0
    out.write(
        f"ssgate gateway listening on {describe(serving.gateway)} "
        "(TLS 1.2/1.3, client certificate + password + one-time code)\n"
        f"declare service on {describe(serving.declare)} (identity-guarded)\n"
        f"staff console on https://{describe(serving.console)}/ (TLS, staff password + code)\n"
        f"ops on http://{describe(serving.ops_port)}/ (healthz, readyz, metrics"
        f"{'' if is_loopback_listen(app.config.ops.listen) else '; NOT loopback'})\n"
    )
    if serving.dial_in is not None:
        out.write(
            f"RADIUS access server on udp:{describe(serving.dial_in.port)} "
            "(PAP password + code, Message-Authenticator), "
            f"accounting on udp:{describe(serving.dial_in.accounting_port)}\n"
        )
    if serving.portal is not None:
        out.write(f"personal portal on https://{describe(serving.portal)}/ (TLS)\n")
    if banner:
        out.write(banner)
    out.write("Ctrl-C stops the gateway.\n")
    out.flush()
    start_logging(sys.stderr, node=serving.node.ctx.node)
    reactor.addSystemEventTrigger("before", "shutdown", serving.stop)
    reactor.run(installSignalHandlers=False)
    app.close()
    return 0


def _run_parent(state: StateDir, out: TextIO, reactor: Any, *, workers: int, banner: str) -> int:
    """``serve --workers N``'s parent: bind, start the workers, print the banner once
    they all serve, supervise until SIGTERM/SIGINT."""
    app = App(state)
    try:
        config = app.config
        _load_files(app)  # a missing or bad file: said once, here, before any worker
        try:
            listeners = bind_listeners(reactor, stream_listeners(app), _listen_now)
        except WorkersError as e:
            raise ServeError(str(e)) from None
    finally:
        app.close()
    parent_name = config.node.name or default_node_name()
    start_logging(sys.stderr, node=parent_name)
    by_what = {what: port for what, (_, port) in listeners.items()}

    def banner_text() -> str:
        lines = [
            f"ssgate gateway listening on {describe(by_what['gateway'])} "
            "(TLS 1.2/1.3, client certificate + password + one-time code)\n",
            f"declare service on {describe(by_what['declare service'])} (identity-guarded)\n",
            f"staff console on https://{describe(by_what['staff console'])}/ "
            "(TLS, staff password + code)\n",
            f"ops on http://{describe(by_what['ops listener'])}/ (healthz, readyz, metrics"
            f"{'' if is_loopback_listen(config.ops.listen) else '; NOT loopback'}; "
            "each answer from one worker)\n",
        ]
        if "portal" in by_what:
            lines.append(f"personal portal on https://{describe(by_what['portal'])}/ (TLS)\n")
        if config.radius.enabled:
            lines.append("RADIUS access server in worker 0\n")
        lines.append(
            f"{workers} workers, each a node: "
            + (
                f"{config.node.name}-0 … {config.node.name}-{workers - 1}"
                if config.node.name
                else "host:pid each"
            )
            + "\n"
        )
        return "".join(lines) + banner + "Ctrl-C stops the gateway (every worker drains).\n"

    return run_workers(
        reactor=reactor,
        state_path=str(state.path),
        out=out,
        count=workers,
        name=config.node.name,
        listeners=listeners,
        banner=banner_text,
        kill_after=config.gateway.drain_seconds + KILL_MARGIN_SECONDS,
    )


def agency_rule_settings(config: Config) -> declare_app.RuleSettings:
    """The declaration rules' local settings from ``[agency]`` (V-WIN-01)."""
    window = config.agency.submission_window
    return declare_app.RuleSettings(
        submission_window=(window[0], window[1]) if len(window) == 2 else None
    )
