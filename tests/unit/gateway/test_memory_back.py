"""After a rush of sessions ends, the gateway hands the freed heap back (issue 16)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

from gateway import GatewayContext, GatewayNode, _service


class Tunnel:
    """What the node's heartbeat reads of a live tunnel."""

    def counters(self) -> tuple[int, int, int]:
        return (0, 0, 0)


class Database:
    def run(self, fn: object, *args: object, **kwargs: object) -> Deferred[Any]:
        return succeed({})


def _node(clock: MemoryReactorClock) -> tuple[GatewayNode, GatewayContext]:
    ctx = GatewayContext(
        clock=clock,
        portal=cast(Any, None),
        db=cast(Any, Database()),
        identity_key=b"k" * 32,
        resume_key=b"r" * 32,
        services={},
        policy_for=cast(Any, None),
        node="node-1",
    )
    return GatewayNode(ctx, poll_interval=1.0), ctx


def test_memory_is_given_back_once_after_many_sessions_ended_not_at_every_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[int] = []

    def trim(pad: int) -> int:
        trims.append(pad)
        return 1

    monkeypatch.setattr(_service, "_malloc_trim", trim)
    clock = MemoryReactorClock()
    node, ctx = _node(clock)
    node.startService()
    # Sessions are only counted here: no tick is due for tunnels not filed.
    ctx.live.update({f"s{i}": cast(Any, Tunnel()) for i in range(1000)})
    clock.advance(1)
    for _ in range(60):
        clock.advance(1)
    assert trims == []  # still live: nothing to give back
    for i in range(100):  # a few ended: not worth a trim
        del ctx.live[f"s{i}"]
    for _ in range(30):
        clock.advance(1)
    assert trims == []
    ctx.live.clear()  # the rush is over
    for _ in range(30):
        clock.advance(1)
    assert trims == [0]
    for _ in range(90):
        clock.advance(1)
    assert trims == [0]  # once, not every 30 s
    node.stopService()
