"""The lockout policy: how many guesses a principal and a source address get.

Per principal: ``threshold`` consecutive failures lock it for
``min(base_lock_seconds * 2**lock_count, max_lock_seconds)``, so each lock period is
twice the previous one; ``hard_cap`` failures since the last success or carrier reset
lock it until a carrier clears it.  Per source address: ``source_max_failures`` refused
attempts within ``source_window_seconds`` (a fixed window from the first one) throttle
every further attempt from it, whatever the principal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_HARD_CAP = 100
_MAX_DOUBLINGS = 64


class LockoutPolicyError(ValueError):
    """A lockout setting is out of range; the message names the field."""


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    base_lock_seconds: float = 60.0
    max_lock_seconds: float = 3600.0
    hard_cap: int = 20
    source_window_seconds: float = 900.0
    source_max_failures: int = 30

    def validate(self) -> None:
        """Raise :class:`LockoutPolicyError` naming the first bad field."""
        for name in ("threshold", "hard_cap", "source_max_failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LockoutPolicyError(
                    f"lockout {name} must be a positive integer, got {value!r}"
                )
        for name in ("base_lock_seconds", "max_lock_seconds", "source_window_seconds"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise LockoutPolicyError(
                    f"lockout {name} must be a positive number of seconds, got {value!r}"
                )
        if self.hard_cap < self.threshold:
            raise LockoutPolicyError(
                f"lockout hard_cap ({self.hard_cap}) must be at least threshold ({self.threshold})"
            )
        if self.hard_cap > MAX_HARD_CAP:
            raise LockoutPolicyError(
                f"lockout hard_cap ({self.hard_cap}) must be at most {MAX_HARD_CAP}"
            )
        if self.max_lock_seconds < self.base_lock_seconds:
            raise LockoutPolicyError(
                f"lockout max_lock_seconds ({self.max_lock_seconds}) must be at least "
                f"base_lock_seconds ({self.base_lock_seconds})"
            )

    def lock_seconds(self, lock_count: int) -> float:
        """How long the lock lasts that is set when *lock_count* locks came before it."""
        doublings = min(max(lock_count, 0), _MAX_DOUBLINGS)
        return float(min(self.base_lock_seconds * 2**doublings, self.max_lock_seconds))

    def growing_lock_seconds(self) -> list[float]:
        """``lock_seconds(n)`` for n = 0, 1, … while it is below the maximum."""
        schedule: list[float] = []
        for n in range(_MAX_DOUBLINGS):
            seconds = self.lock_seconds(n)
            if seconds >= self.max_lock_seconds:
                break
            schedule.append(seconds)
        return schedule
