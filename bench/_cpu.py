"""Rates with the CPU time they cost: for a login, CPU per attempt beyond the hash.

A rate on a shared 2-core machine moves with whatever else runs there; the CPU time
that one login costs the server (every thread, from /proc) and that one argon2id
verification costs hardly does.  Their difference is what a login spends beyond the
hash: the figure to cut to bring logins/s to the hash bound.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import _measure as m


def own_cpu_seconds() -> tuple[float, float]:
    times = os.times()
    return times.user, times.system


def interleaved_with_cpu(
    plans: dict[str, tuple[list[Callable[[], float]], int]],
    cpu_of: dict[str, Callable[[], tuple[float, float]]],
    parts: int = 2,
) -> tuple[dict[str, m.Rate], dict[str, float]]:
    """:func:`_measure.interleaved`, plus the CPU seconds (user + system) that
    ``cpu_of[name]`` counted during *name*'s slices."""
    rates: dict[str, list[m.Rate]] = {name: [] for name in plans}
    cpu = dict.fromkeys(plans, 0.0)
    for part in range(parts):
        for name, (jobs, concurrency) in plans.items():
            size = -(-len(jobs) // parts)
            chunk = jobs[part * size : (part + 1) * size]
            if chunk:
                before = sum(cpu_of[name]())
                rates[name].append(m.concurrently(chunk, concurrency))
                cpu[name] += sum(cpu_of[name]()) - before
    merged = {
        name: m.Rate(
            count=sum(r.count for r in slices),
            concurrency=plans[name][1],
            seconds=sum(r.seconds for r in slices),
            latencies=tuple(x for r in slices for x in r.latencies),
        )
        for name, slices in rates.items()
    }
    return merged, cpu
