"""Where the staff console may listen: plain HTTP only where the network cannot see it."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.resource import Resource
from twisted.web.server import Site

from ssgate._config import ConsoleConfig
from ssgate._console import ConsoleListenError, check_console_listen, console_factory


@pytest.mark.parametrize(
    "spec",
    [
        ConsoleConfig().listen,  # the default: tcp:8444:interface=127.0.0.1
        "tcp:8444:interface=127.0.0.2",
        "tcp:0:interface=localhost",
        r"tcp6:8444:interface=\:\:1",
        "unix:/run/ssgate/console.sock:mode=600",
    ],
)
def test_plain_http_is_allowed_on_loopback_and_unix_sockets(spec: str) -> None:
    assert check_console_listen(spec, tls=False).loopback


@pytest.mark.parametrize(
    "spec",
    [
        "tcp:8444",  # every interface
        "tcp:8444:interface=0.0.0.0",
        "tcp:8444:interface=10.20.0.5",
        r"tcp6:8444:interface=\:\:",
        "haproxy:tcp:8444:interface=127.0.0.1",  # behind a balancer: from the network
        "systemd:domain=INET:index=0",
    ],
)
def test_plain_http_reachable_from_the_network_is_refused(spec: str) -> None:
    with pytest.raises(ConsoleListenError, match="TLS"):
        check_console_listen(spec, tls=False)
    check = check_console_listen(spec, tls=True)  # with TLS: fine anywhere
    assert not check.loopback


def test_ssl_endpoints_bring_their_own_tls() -> None:
    check = check_console_listen("ssl:8444:privateKey=k.pem:certKey=c.pem", tls=False)
    assert check.endpoint_tls and not check.loopback


def test_console_factory_wraps_the_site_in_tls_only_when_asked() -> None:
    site = Site(Resource(), reactor=MemoryReactorClock())
    assert console_factory(site, None) is site
    from twisted.internet.ssl import CertificateOptions

    wrapped = console_factory(site, CertificateOptions())
    assert isinstance(wrapped, TLSMemoryBIOFactory)
    assert wrapped.wrappedFactory is site
