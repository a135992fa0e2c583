"""The open-files limit: raised to the hard limit at start, logged, shown in /metrics,
and the gateway's ``gateway-full`` refusals counted (issue 16)."""

from __future__ import annotations

import resource
from typing import cast

from prometheus_client import CollectorRegistry, generate_latest
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

from ssgate._limits import (
    count_open_descriptors,
    raise_and_log_open_files_limit,
    raise_open_files_limit,
)
from ssgate._metrics import GatewayMetrics, process_metrics

NOFILE = resource.RLIMIT_NOFILE


class FakeLimits:
    def __init__(self, soft: int, hard: int, *, refuse: bool = False) -> None:
        self.values = (soft, hard)
        self.refuse = refuse
        self.set: list[tuple[int, int]] = []

    def get(self, which: int) -> tuple[int, int]:
        assert which == NOFILE
        return self.values

    def put(self, which: int, values: tuple[int, int]) -> None:
        assert which == NOFILE
        if self.refuse:
            raise ValueError("not allowed to raise maximum limit")
        self.set.append(values)
        self.values = values


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    fake = FakeLimits(1024, 65_536)
    limit = raise_open_files_limit(getrlimit=fake.get, setrlimit=fake.put)
    assert fake.set == [(65_536, 65_536)]
    assert (limit.soft, limit.hard, limit.before, limit.error) == (65_536, 65_536, 1024, "")


def test_an_unlimited_hard_limit_means_the_kernels_maximum() -> None:
    fake = FakeLimits(1024, resource.RLIM_INFINITY)
    limit = raise_open_files_limit(getrlimit=fake.get, setrlimit=fake.put, nr_open=lambda: 4096)
    assert fake.set == [(4096, resource.RLIM_INFINITY)]
    assert (limit.soft, limit.hard) == (4096, -1)


def test_a_limit_already_at_the_hard_limit_is_left_alone() -> None:
    fake = FakeLimits(512, 512)
    limit = raise_open_files_limit(getrlimit=fake.get, setrlimit=fake.put)
    assert fake.set == []
    assert (limit.soft, limit.before, limit.error) == (512, 512, "")


def test_a_refused_raise_keeps_the_soft_limit_and_says_why() -> None:
    fake = FakeLimits(256, 4096, refuse=True)
    limit = raise_open_files_limit(getrlimit=fake.get, setrlimit=fake.put)
    assert limit.soft == 256 and "maximum limit" in limit.error


def test_the_limit_in_force_is_logged_at_start() -> None:
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        limit = raise_and_log_open_files_limit()
    finally:
        globalLogPublisher.removeObserver(observer)
    [line] = [e for e in events if e.get("log_namespace") == "ssgate.limits"]
    assert line["soft"] == limit.soft == resource.getrlimit(NOFILE)[0]


def test_metrics_show_open_files_the_limit_and_gateway_full_refusals() -> None:
    metrics = process_metrics("node-a")
    metrics.gateway.connection_refused("gateway-full")
    metrics.gateway.connection_refused("33068212345678@sxlss")  # a bug: never a label
    text = generate_latest(metrics.registry).decode()
    assert 'ssgate_gateway_connections_refused_total{reason="gateway-full"} 1.0' in text
    assert 'ssgate_gateway_connections_refused_total{reason="other"} 1.0' in text
    assert "sxlss" not in text
    assert f"ssgate_open_files_limit {float(resource.getrlimit(NOFILE)[0])}" in text
    assert "ssgate_open_files " in text
    assert count_open_descriptors() > 0


def test_gateway_metrics_is_still_a_gateway_observer_with_the_refusal_method() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.connection_refused("gateway-full")
    assert metrics.connections_refused.labels("gateway-full")._value.get() == 1.0
