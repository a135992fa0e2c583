"""File descriptors: the gateway's admission against the process's limit.

Every employer connection holds one descriptor, and each of its streams two more while
the service runs in the same process (the gateway's end and the service's end).  When
the process runs out, ``accept`` fails and the client is left hanging, and anything
else that opens a file (a TLS reload, the database, a log) fails with it.  So:

- ``ssgate serve`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start
  (``ssgate._limits``; the hard limit is the operator's: systemd ``LimitNOFILE=``,
  see ``docs/operations.md``);
- :class:`DescriptorBudget` keeps a reserve below that limit: past ``limit - reserve``
  descriptors in use, a new gateway connection is refused with ``gateway-full`` (the
  client is told to try again) while the live sessions keep what they need.

Counting the open descriptors reads ``/proc/self/fd``, which costs a few
milliseconds with ten thousand open; the budget recounts only when it may be near
the limit, or every :attr:`DescriptorBudget.recount_every` admissions or
:attr:`DescriptorBudget.recount_after` seconds, and estimates in between.  Pure: no
Twisted, the clock and the counter are parameters.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

__all__ = [
    "DescriptorBudget",
    "count_open_descriptors",
    "default_reserve",
    "open_files_limit",
]


def open_files_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` now (``-1`` if unlimited)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return -1 if soft == resource.RLIM_INFINITY else int(soft)


def count_open_descriptors() -> int:
    """How many descriptors this process has open (``-1`` if it cannot tell)."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            # The listing itself opens one descriptor, which it counts: take it off.
            return len(os.listdir(path)) - 1
        except OSError:
            continue
    return -1


def default_reserve(limit: int) -> int:
    """Descriptors kept free for the live sessions: 1/16 of the limit, 32 to 1024.

    Enough for the live sessions' new streams (two descriptors each), the database
    pool, a TLS reload, log files and the refusals themselves; a small part of a
    large limit."""
    return max(32, min(1024, limit // 16))


class DescriptorBudget:
    """Whether the gateway may take one more connection: ``in use < limit - reserve``.

    *limit* ``None`` follows the process's soft limit (read again at each recount, so
    an operator's ``prlimit`` on the running process counts too); an unlimited one,
    or a counter that cannot tell (``-1``), admits everything.  *reserve* ``None`` is
    :func:`default_reserve` of the limit.  *clock* is seconds (the reactor's).
    """

    recount_every = 32
    recount_after = 1.0

    def __init__(
        self,
        limit: int | None = None,
        *,
        reserve: int | None = None,
        count_open: Callable[[], int] = count_open_descriptors,
        read_limit: Callable[[], int] = open_files_limit,
        clock: Callable[[], float],
    ) -> None:
        self._fixed_limit = limit
        self._fixed_reserve = reserve
        self._read_limit = read_limit
        self._count_open = count_open
        self._clock = clock
        self.limit = 0
        self.reserve = 0
        self._read_limits()
        self._counted = 0  # descriptors in use at the last count
        self._counted_at: float | None = None
        self._since = 0  # admissions since that count
        self.refused = 0  # connections refused so far

    def _read_limits(self) -> None:
        self.limit = self._read_limit() if self._fixed_limit is None else self._fixed_limit
        if self._fixed_reserve is not None:
            self.reserve = self._fixed_reserve
        else:
            self.reserve = default_reserve(self.limit)

    @property
    def threshold(self) -> int:
        """Refuse at this many descriptors in use."""
        return self.limit - self.reserve

    @property
    def in_use(self) -> int:
        """The last count plus the connections admitted since (an estimate)."""
        return self._counted + self._since

    def admit(self) -> bool:
        """One more connection: True to serve it, False to refuse it (``gateway-full``)."""
        now = self._clock()
        near = self.in_use + 1 >= self.threshold - self.reserve
        if (
            near
            or self._counted_at is None
            or self._since >= self.recount_every
            or now - self._counted_at >= self.recount_after
        ):
            self._read_limits()
            counted = self._count_open() if self.limit >= 0 else -1
            if counted < 0:
                self._counted_at, self._since = now, 0
                return True
            self._counted, self._counted_at, self._since = counted, now, 0
        if self.limit < 0:
            return True
        if self.in_use + 1 > self.threshold:
            self.refused += 1
            return False
        self._since += 1
        return True
