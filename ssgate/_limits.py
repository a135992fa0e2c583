"""The process's file-descriptor limit: raised at start, logged, shown in ``/metrics``.

``ssgate serve`` calls :func:`raise_and_log_open_files_limit` before it listens: the
soft ``RLIMIT_NOFILE`` (often 1024) goes up to the hard limit, which only the operator
can raise (systemd ``LimitNOFILE=``, ``ulimit -Hn``; ``docs/operations.md``).  The
gateway then keeps a reserve below it (``gateway._limits.DescriptorBudget``) and
refuses new connections with ``gateway-full`` rather than running out.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import NamedTuple

from twisted.logger import Logger

from gateway import count_open_descriptors

__all__ = [
    "OpenFilesLimit",
    "count_open_descriptors",
    "raise_and_log_open_files_limit",
    "raise_open_files_limit",
]

log = Logger("ssgate.limits")

# Linux's default fs.nr_open: a hard limit of "unlimited" is capped here.
_NR_OPEN_DEFAULT = 1 << 20


class OpenFilesLimit(NamedTuple):
    """The process's ``RLIMIT_NOFILE`` after :func:`raise_open_files_limit`."""

    soft: int  # -1: unlimited
    hard: int  # -1: unlimited
    before: int  # the soft limit found at start
    error: str = ""  # why it could not be raised (empty: it was, or needed not be)


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open", "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return _NR_OPEN_DEFAULT


def _shown(value: int) -> int:
    return -1 if value == resource.RLIM_INFINITY else int(value)


def raise_open_files_limit(
    *,
    getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit,
    setrlimit: Callable[[int, tuple[int, int]], None] = resource.setrlimit,
    nr_open: Callable[[], int] = _nr_open,
) -> OpenFilesLimit:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; never raises.

    An unlimited hard limit is taken as the kernel's ``fs.nr_open``.  If the kernel
    refuses, the soft limit stays and :attr:`OpenFilesLimit.error` says why.
    """
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    target = nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return OpenFilesLimit(_shown(soft), _shown(hard), _shown(soft))
    try:
        setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        return OpenFilesLimit(int(soft), _shown(hard), int(soft), str(e) or type(e).__name__)
    return OpenFilesLimit(int(target), _shown(hard), int(soft))


def raise_and_log_open_files_limit() -> OpenFilesLimit:
    """:func:`raise_open_files_limit`, and one log line saying the limit now in force."""
    limit = raise_open_files_limit()
    if limit.error:
        log.warn(
            "open files limit stays at {soft} (hard limit {hard}): cannot raise it: {error}",
            soft=limit.soft,
            hard=limit.hard,
            error=limit.error,
        )
    elif limit.soft != limit.before:
        log.info(
            "open files limit raised from {before} to {soft} (the hard limit; raise it "
            "with systemd LimitNOFILE=)",
            before=limit.before,
            soft=limit.soft,
        )
    else:
        log.info("open files limit {soft} (hard limit {hard})", soft=limit.soft, hard=limit.hard)
    return limit
