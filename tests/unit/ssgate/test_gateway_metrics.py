"""The gateway reports to :class:`ssgate._metrics.GatewayMetrics` as its observer:
handshakes, logins by outcome, streams opened, open and refused, bytes each way, audit
write latency and the tunnels it holds move with what happens on the channel.

The real gateway and ``ssgate connect`` in memory (:class:`gateway.testing.ChannelTestbed`)
with the real Prometheus registry of ``serve``'s ops listener.
"""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from gateway import NoObserver
from gateway.testing import ChannelTestbed
from ssgate._metrics import process_metrics


def samples(metrics_text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels (as a scraper reads)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics_text.decode())
        for s in family.samples
    }


def test_logins_streams_bytes_and_audit_writes_move_the_gateway_metrics(
    sqlite_engine: Engine,
) -> None:
    bed = ChannelTestbed(sqlite_engine)
    metrics = process_metrics("test-node")
    bed.ctx.observer = metrics.gateway
    metrics.gateway.watch_tunnels(lambda: len(bed.ctx.live))

    client = bed.client()
    client.start()
    bed.run()
    [tunnel] = bed.tunnels
    assert tunnel.session is not None
    browser, _ = bed.browse(client)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    browser.transport.write(request)  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    response = b"HTTP/1.1 204 No Content\r\n\r\n"
    service.transport.write(response)  # type: ignore[union-attr]
    bed.run()
    during = samples(generate_latest(metrics.registry))
    service.transport.loseConnection()  # type: ignore[union-attr]
    browser.transport.loseConnection()  # type: ignore[union-attr]
    bed.run()

    bed.clock.advance(30)  # the next TOTP step, so only the password is wrong
    refused = bed.client(password="not-the-password")
    refused.start()
    bed.run()

    after = samples(generate_latest(metrics.registry))
    assert during[("ssgate_streams_active", (("service", "declare"),))] == 1
    assert after[("ssgate_streams_active", (("service", "declare"),))] == 0
    assert after[("ssgate_streams_opened_total", (("service", "declare"),))] == 1
    assert after[("ssgate_tls_handshakes_total", ())] == 2
    assert after[("ssgate_channel_logins_total", (("outcome", "ok"),))] == 1
    assert after[("ssgate_channel_logins_total", (("outcome", "auth-failed"),))] >= 1
    assert after[("ssgate_tunnel_bytes_total", (("direction", "in"),))] == len(request)
    assert after[("ssgate_tunnel_bytes_total", (("direction", "out"),))] == len(response)
    assert after[("ssgate_audit_write_seconds_count", ())] >= 1  # the stream.end event
    assert after[("ssgate_gateway_tunnels", ())] == 1  # the first client is still in
    assert after[("ssgate_node_info", (("node", "test-node"),))] == 1


def test_a_refused_stream_is_counted_by_reason(sqlite_engine: Engine) -> None:
    bed = ChannelTestbed(sqlite_engine)
    bed.policy = replace(bed.policy, services=())  # no service for this account
    metrics = process_metrics("test-node")
    bed.ctx.observer = metrics.gateway
    client = bed.client()
    client.start()
    bed.run()
    browser, _ = bed.browse(client)
    browser.transport.write(b"GET / HTTP/1.1\r\n\r\n")  # type: ignore[union-attr]
    bed.run()
    after = samples(generate_latest(metrics.registry))
    assert after[("ssgate_streams_refused_total", (("reason", "service-denied"),))] == 1
    assert ("ssgate_streams_opened_total", (("service", "declare"),)) not in after


def test_the_gateway_counts_nothing_without_an_observer(sqlite_engine: Engine) -> None:
    bed = ChannelTestbed(sqlite_engine)
    assert isinstance(bed.ctx.observer, NoObserver)
    client = bed.client()
    client.start()
    bed.run()  # and nothing breaks
    assert bed.tunnels[-1].session is not None
