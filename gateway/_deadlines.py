"""One queue of deadlines for every session of a gateway process.

The node's once-a-second poll used to look at every live tunnel (idle timeout,
maximum lifetime, keepalive): with 10,000 idle sessions that is 10,000 Python calls a
second to learn that nothing is due.  Instead each tunnel is filed under the earliest
time anything of its could be due (:meth:`GatewayTunnel.next_due`), and the poll takes
out only the tunnels whose time has come.  A deadline only ever moves later (activity
pushes the idle timeout back; nothing pulls a deadline earlier), so a tunnel filed
under a time that has since moved is simply looked at, found not due, and filed again:
the poll acts at the same ticks as before, on a few tunnels instead of all of them.

Pure and synchronous: no clock, no reactor.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

T = TypeVar("T")


class DeadlineQueue(Generic[T]):
    """Items, each filed under one time; :meth:`due` takes out those due by *now*.

    Filing an item again replaces its earlier time; :meth:`discard` forgets it.  The
    heap keeps superseded entries until they surface or until they outnumber the live
    ones (then it is rebuilt), so a forgotten item is not kept alive for long.
    """

    __slots__ = ("_filed", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._filed: dict[T, int] = {}  # item -> the sequence number of its live entry
        self._seq = 0

    def __len__(self) -> int:
        return len(self._filed)

    def __contains__(self, item: T) -> bool:
        return item in self._filed

    def file(self, item: T, at: float) -> None:
        """*item* is due at *at* (replacing any earlier filing)."""
        self._seq += 1
        self._filed[item] = self._seq
        heapq.heappush(self._heap, (at, self._seq, item))
        self._compact()

    def discard(self, item: T) -> None:
        """Forget *item* (no error if it is not filed)."""
        if self._filed.pop(item, None) is not None:
            self._compact()

    def due(self, now: float) -> list[T]:
        """Take out every item filed at or before *now*, earliest first."""
        out: list[T] = []
        heap, filed = self._heap, self._filed
        while heap and heap[0][0] <= now:
            _, seq, item = heapq.heappop(heap)
            if filed.get(item) == seq:
                del filed[item]
                out.append(item)
        return out

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._filed) + 64:
            filed = self._filed
            self._heap = [e for e in self._heap if filed.get(e[2]) == e[1]]
            heapq.heapify(self._heap)
