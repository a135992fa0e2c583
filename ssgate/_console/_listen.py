"""Where the staff console may listen, and the TLS wrapping of its factory.

The rule (ARCHITECTURE §5a: TLS with the server certificate): the console speaks
TLS.  Plain HTTP is allowed only on a loopback address or a Unix socket, where no
one on the network can read a password, a one-time code or a session cookie; any
other plain bind is refused at start with a message saying how to fix it.  A refusal
rather than a warning: a console that leaks staff logins on the LAN is not something
to find later in a log.

``ssl:`` endpoints bring their own TLS.  ``haproxy:`` and ``systemd:`` endpoints do
not say where they listen, so they count as non-loopback and need TLS.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOFactory


class ConsoleListenError(ValueError):
    """The console's listen string is refused; the message says why and what to do."""


@dataclass(frozen=True)
class ListenCheck:
    loopback: bool  # reachable from this host only
    endpoint_tls: bool  # the endpoint itself speaks TLS (ssl:)


_UNESCAPED_COLON = re.compile(r"(?<!\\):")


def _fields(spec: str) -> list[str]:
    return [part.replace("\\:", ":") for part in _UNESCAPED_COLON.split(spec)]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def inspect_listen(spec: str) -> ListenCheck:
    """What *spec* (a Twisted server endpoint string) binds to, as far as it says."""
    parts = _fields(spec)
    kind = parts[0].lower()
    if kind == "unix":
        return ListenCheck(loopback=True, endpoint_tls=False)
    if kind in ("tcp", "tcp6", "ssl"):
        interface = ""
        for part in parts[1:]:
            key, sep, value = part.partition("=")
            if sep and key == "interface":
                interface = value
        return ListenCheck(
            loopback=bool(interface) and _is_loopback(interface), endpoint_tls=kind == "ssl"
        )
    return ListenCheck(loopback=False, endpoint_tls=False)


def check_console_listen(spec: str, *, tls: bool) -> ListenCheck:
    """Refuse (:class:`ConsoleListenError`) a plain-HTTP console reachable from the
    network; *tls* says whether ssgate wraps the listener in TLS."""
    check = inspect_listen(spec)
    if not (tls or check.endpoint_tls or check.loopback):
        raise ConsoleListenError(
            f"[console] listen = {spec!r} is reachable from the network but the console "
            "would speak plain HTTP (staff passwords, one-time codes and session cookies "
            "in clear): serve it with TLS, or listen on 127.0.0.1 / a Unix socket"
        )
    return check


def console_factory(site: Any, tls: IOpenSSLServerConnectionCreator | None) -> Any:
    """The factory to listen with: *site* inside TLS when *tls* is given.

    Pass the console's :func:`ssgate._console.console_site` built with ``secure=True``
    whenever *tls* is not None, so cookies get ``Secure`` and the ``__Host-`` prefix.
    Server-only TLS (no client certificate) from the state directory:
    ``gateway.load_state_server_tls(state, require_client_cert=False).options``.
    """
    if tls is None:
        return site
    return TLSMemoryBIOFactory(tls, False, site)
