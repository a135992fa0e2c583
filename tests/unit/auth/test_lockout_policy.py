"""LockoutPolicy: validation, and lock periods that double up to a maximum."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from auth import LockoutPolicy, LockoutPolicyError


def test_the_defaults_are_valid() -> None:
    policy = LockoutPolicy()
    policy.validate()
    assert (policy.threshold, policy.hard_cap, policy.source_max_failures) == (5, 20, 30)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"hard_cap": 4}, "hard_cap"),
        ({"hard_cap": 101}, "hard_cap"),
        ({"base_lock_seconds": 0.0}, "base_lock_seconds"),
        ({"base_lock_seconds": float("nan")}, "base_lock_seconds"),
        ({"max_lock_seconds": 30.0}, "max_lock_seconds"),
        ({"max_lock_seconds": float("inf")}, "max_lock_seconds"),
        ({"source_window_seconds": -1.0}, "source_window_seconds"),
        ({"source_max_failures": 0}, "source_max_failures"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(LockoutPolicyError, match=field):
        dataclasses.replace(LockoutPolicy(), **changes).validate()


def test_hard_cap_may_equal_threshold_and_reach_100() -> None:
    LockoutPolicy(threshold=5, hard_cap=5).validate()
    LockoutPolicy(threshold=100, hard_cap=100).validate()


def test_each_lock_lasts_twice_the_previous_one_up_to_the_maximum() -> None:
    policy = LockoutPolicy(base_lock_seconds=60.0, max_lock_seconds=3600.0)
    assert [policy.lock_seconds(n) for n in range(8)] == [
        60.0,
        120.0,
        240.0,
        480.0,
        960.0,
        1920.0,
        3600.0,
        3600.0,
    ]
    assert policy.lock_seconds(10_000) == 3600.0
    assert policy.growing_lock_seconds() == [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0]


def test_equal_base_and_maximum_give_a_constant_lock() -> None:
    policy = LockoutPolicy(base_lock_seconds=300.0, max_lock_seconds=300.0)
    assert policy.growing_lock_seconds() == []
    assert policy.lock_seconds(0) == policy.lock_seconds(5) == 300.0
