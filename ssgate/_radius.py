"""The dial-in access server assembled from ``[radius]``, and ``ssgate radius test``.

:func:`radius_clients` reads each ``[[radius.client]]`` secret file (relative to the
state directory); :func:`start_radius` listens on UDP ``[radius] interface`` and
``auth_port`` with the channel's authenticator and runner, or does nothing while no
client is configured.  Unit approval comes from the agency's unit registry.

Accounting (``accounting_port``) records dial-in sessions in the gateway's session
registry through :class:`RegistrySessions`, and a timer keeps the open ones from being
reaped (the registry ends sessions nobody reported for two minutes).

``ssgate radius test ACCOUNT`` is the built-in client a carrier uses to check the setup
end to end: it sends a PAP Access-Request (with Message-Authenticator) to the
configured listener as one of the configured NAS, answers a challenge with the code,
and prints the answer.  It must run from an address of that NAS's ``sources``.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort

import auth
import declare_app
import gateway
import radius
from ssgate._app import App
from ssgate._config import ConfigError, RadiusClientConfig, RadiusConfig
from ssgate._state import StateDir

TEST_TIMEOUT_SECONDS = 3.0
TEST_TRIES = 3


class RadiusSetupError(ConfigError):
    """A ``[radius]`` setting cannot be used (a missing secret file, overlapping NAS)."""


def read_client_secret(state_path: Path, client: RadiusClientConfig) -> bytes:
    """The shared secret of *client*: its file's bytes without a trailing newline.  The
    file must be readable by its owner only, as the state directory is."""
    path = state_path / client.secret_file  # an absolute secret_file stays as it is
    where = f"[[radius.client]] {client.name}: radius.client.secret_file {path}"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        secret = path.read_bytes().rstrip(b"\r\n")
    except FileNotFoundError:
        raise RadiusSetupError(f"{where}: no such file") from None
    except OSError as e:
        raise RadiusSetupError(f"{where}: cannot read ({e.strerror})") from None
    if mode & 0o077:
        raise RadiusSetupError(
            f"{where}: mode {mode:04o} lets other users read the secret; run: chmod 600 {path}"
        )
    return secret


def radius_clients(state_path: Path, config: RadiusConfig) -> radius.NasDirectory:
    """The configured NAS with their secrets; :class:`RadiusSetupError` naming the key."""
    clients = []
    for c in config.clients:
        secret = read_client_secret(state_path, c)
        try:
            clients.append(
                radius.NasClient(
                    name=c.name,
                    networks=radius.parse_networks(c.sources),
                    secret=secret,
                    require_message_authenticator=c.require_message_authenticator,
                    disconnect_port=c.disconnect_port,
                )
            )
        except radius.NasSettingsError as e:
            raise RadiusSetupError(f"[[radius.client]] {c.name}: {e}") from None
    try:
        return radius.NasDirectory(clients)
    except radius.NasSettingsError as e:
        raise RadiusSetupError(f"radius.client.sources: {e}") from None


def unit_approved(conn: Connection, unit_code: str) -> bool:
    """The agency approved the unit for online service (the channel's precondition)."""
    unit = declare_app.get_unit(conn, unit_code)
    return unit is not None and unit.status == "approved"


class RegistrySessions:
    """:class:`radius.DialInSessions` on the gateway's session registry: a dial-in
    session is a row of ``sessions`` held by node ``radius:<nas>``."""

    def start(
        self,
        conn: Connection,
        *,
        session_id: str,
        account: str,
        unit_code: str,
        peer: str,
        node: str,
        now: float,
    ) -> None:
        # The NAS already let the user in: the session is recorded whatever the limit.
        gateway.start_session(
            conn,
            session_id=session_id,
            account=account,
            unit_code=unit_code,
            peer=peer,
            cert_serial="",
            node=node,
            now=now,
            max_concurrent=2**31,
        )

    def update(
        self, conn: Connection, session_id: str, *, bytes_in: int, bytes_out: int, now: float
    ) -> None:
        gateway.heartbeat(conn, {session_id: (bytes_in, bytes_out, 0)}, now=now)

    def end(
        self,
        conn: Connection,
        session_id: str,
        *,
        reason: str,
        bytes_in: int,
        bytes_out: int,
        now: float,
    ) -> bool:
        return gateway.end_session(
            conn, session_id, reason=reason, now=now, bytes_in=bytes_in, bytes_out=bytes_out
        )

    def kill_reason(self, conn: Connection, session_id: str) -> str | None:
        """An officer's kill (``ssgate audit kill``, the console) or a suspension or
        cancellation (``request_kill_account``) marks the registry row."""
        record = gateway.SessionRegistryView().get(conn, session_id)
        if record is None or record.status == "ended" or record.kill_requested_at is None:
            return None
        return record.kill_reason or "officer-kill"


KEEP_ALIVE_SECONDS = 30.0  # well inside the registry's two minutes
DISCONNECT_POLL_SECONDS = 2.0  # an officer's kill reaches the NAS within seconds


def open_sessions(conn: Connection, account: str, now: float) -> int:
    """The account's open sessions, channel and dial-in (for ``max_sessions``)."""
    return len(gateway.search_sessions(conn, account=account, open_only=True, now=now, limit=101))


@dataclass
class RadiusListener:
    """The running dial-in access server: its UDP ports and its timers."""

    port: IListeningPort
    protocol: radius.RadiusAuthProtocol
    accounting_port: IListeningPort
    accounting: radius.RadiusAccountingProtocol
    disconnect_port: IListeningPort
    disconnects: radius.DisconnectPoller
    services: MultiService  # keep-alive and disconnect timers

    def ports(self) -> tuple[IListeningPort, ...]:
        return (self.port, self.accounting_port, self.disconnect_port)


def start_radius(
    app: App,
    reactor: Any,
    *,
    authenticator: auth.Authenticator,
    runner: auth.Runner,
) -> RadiusListener | None:
    """Listen for the configured NAS, or None while ``[radius]`` has no client.

    Raises :class:`RadiusSetupError` for unusable settings and
    ``twisted.internet.error.CannotListenError`` for a busy port.
    """
    config = app.config.radius
    if not config.enabled:
        return None
    nas = radius_clients(app.state.path, config)
    server = radius.AccessServer(
        nas,
        duplicate_window=config.duplicate_window_seconds,
        challenge_timeout=config.challenge_timeout_seconds,
    )
    login = radius.DialInLogin(
        authenticator=authenticator,
        runner=runner,
        policy_for=app.config.policy.for_account,
        unit_admitted=unit_approved,
        open_sessions=open_sessions,
        clock=reactor,
    )
    protocol = radius.RadiusAuthProtocol(server, login, reactor)
    sessions = RegistrySessions()

    def store(usage: radius.Usage) -> Deferred[str]:
        return runner.run(radius.record_usage, usage, sessions=sessions, now=reactor.seconds())

    accounting = radius.RadiusAccountingProtocol(
        radius.AccountingServer(nas, duplicate_window=config.duplicate_window_seconds),
        store,
        reactor,
    )
    sender = radius.DisconnectSender(reactor)
    opened: list[IListeningPort] = []
    try:
        for number, listener in (
            (config.auth_port, protocol),
            (config.accounting_port, accounting),
            (0, sender),  # Disconnect-Requests go out from any free port
        ):
            opened.append(reactor.listenUDP(number, listener, interface=config.interface))
    except Exception:
        for port in opened:
            port.stopListening()
        raise
    timers = MultiService()
    keep = TimerService(
        KEEP_ALIVE_SECONDS,
        lambda: runner.run(radius.keep_alive, sessions=sessions, now=reactor.seconds()),
    )
    poller = radius.DisconnectPoller(runner, sessions, sender, nas, reactor)
    disconnect = TimerService(DISCONNECT_POLL_SECONDS, poller.tick)
    for timer in (keep, disconnect):
        timer.clock = reactor
        timer.setServiceParent(timers)
    return RadiusListener(opened[0], protocol, opened[1], accounting, opened[2], poller, timers)


# -- ssgate radius test ----------------------------------------------------------------


def add_radius_commands(add: Callable[..., argparse.ArgumentParser], parser_class: Any) -> None:
    """``ssgate radius test ACCOUNT`` under the command line's ``add`` helper."""
    group = add("radius", "the dial-in access server (RADIUS) for the carrier's NAS", cmd_radius)
    actions = group.add_subparsers(
        dest="radius_command", metavar="ACTION", required=True, parser_class=parser_class
    )
    p = add(
        "test",
        "send a PAP Access-Request as a configured NAS and print the answer",
        cmd_radius,
        actions,
    )
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--client", metavar="NAME", help="the NAS to act as (default: the first)")
    p.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="where to send (default: [radius] interface and auth_port)",
    )
    p.add_argument("--password-file", metavar="F", help="password (first line); default: prompt")
    p.add_argument("--otp", metavar="CODE", help="the current one-time code; default: prompt")
    p.add_argument(
        "--challenge",
        action="store_true",
        help="send the password alone and the code after the Access-Challenge",
    )
    p.add_argument("--calling-station", metavar="ID", help="a Calling-Station-Id to send")


def cmd_radius(args: argparse.Namespace, state: StateDir, out: TextIO) -> int:
    config = state.load_config().radius
    if not config.clients:
        raise RadiusSetupError(
            f"{state.path / 'ssgate.toml'}: [radius] has no [[radius.client]]: "
            "the dial-in access server is off"
        )
    client = config.clients[0]
    if args.client is not None:
        named = [c for c in config.clients if c.name == args.client]
        if not named:
            raise RadiusSetupError(
                f"--client {args.client}: no such [[radius.client]]; configured: "
                + ", ".join(c.name for c in config.clients)
            )
        client = named[0]
    secret = read_client_secret(state.path, client)
    server = _server_address(args.server, config)
    password = (
        _first_line(args.password_file) if args.password_file else getpass.getpass("Password: ")
    )
    otp = args.otp or getpass.getpass("One-time code: ")
    first = password if args.challenge else password + otp
    exchange = functools.partial(
        _exchange,
        server,
        secret=secret,
        account=args.account,
        calling_station=args.calling_station,
    )
    reply = exchange(password=first, state=None)
    if reply is not None and reply.code == 11 and reply.state is not None:
        out.write(f"{reply.code_name}: {reply.reply_message}\n")
        reply = exchange(password=otp, state=reply.state)
    if reply is None:
        out.write(
            f"no valid answer from {server[0]}:{server[1]} after {TEST_TRIES} tries: is the "
            f"address of this host in the sources of NAS {client.name}, and its secret the "
            "server's?\n"
        )
        return 1
    out.write(f"{reply.code_name}")
    if reply.reply_message:
        out.write(f": {reply.reply_message}")
    out.write("\n")
    if reply.code == 2:
        out.write(
            f"  Class (session id) {reply.session_class}\n"
            f"  Session-Timeout {reply.session_timeout} s, Idle-Timeout {reply.idle_timeout} s\n"
        )
        return 0
    return 1


def _server_address(text: str | None, config: RadiusConfig) -> tuple[str, int]:
    if text is None:
        host = "127.0.0.1" if config.interface in ("0.0.0.0", "") else config.interface  # noqa: S104
        host = "::1" if host == "::" else host
        return host, config.auth_port
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RadiusSetupError(f"--server {text!r}: expected HOST:PORT, such as 127.0.0.1:1812")
    return host, int(port)


def _first_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise RadiusSetupError(f"--password-file {path}: cannot read ({e})") from None
    if not line:
        raise RadiusSetupError(f"--password-file {path}: empty (the first line is used)")
    return line


def _exchange(
    server: tuple[str, int],
    *,
    secret: bytes,
    account: str,
    password: str,
    state: bytes | None,
    calling_station: str | None,
) -> radius.AccessReply | None:
    """One request, resent up to :data:`TEST_TRIES` times (same identifier and
    authenticator, as a NAS retransmits) until a valid answer comes."""
    request, data = radius.build_access_request(
        secret=secret,
        user_name=account,
        password=password,
        state=state,
        calling_station=calling_station,
    )
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TEST_TIMEOUT_SECONDS)
        sock.connect(server)
        for _ in range(TEST_TRIES):
            sock.send(data)
            try:
                while True:
                    answer = sock.recv(radius.MAX_PACKET + 1)
                    reply = radius.read_reply(request, answer)
                    if reply is not None:
                        return reply
            except (TimeoutError, ConnectionRefusedError):
                continue
    return None
