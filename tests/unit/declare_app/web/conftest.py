"""Fixtures for the employer site in memory (the helpers are in
:mod:`declare_app.web.testing`): a real ``HTTPChannel`` behind the real identity guard,
a :class:`MemoryWorkflow` that refuses any call made off the runner, and a
:class:`SynchronousRunner`."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site

from declare_app.web import employer_site
from declare_app.web.testing import (
    CSRF_KEY,
    NOW,
    GuardedClient,
    MemoryWorkflow,
    Seeder,
    SynchronousRunner,
)


@pytest.fixture
def clock() -> MemoryReactorClock:
    clock = MemoryReactorClock()
    clock.advance(NOW)
    return clock


@pytest.fixture
def workflow() -> MemoryWorkflow:
    return MemoryWorkflow(require_runner=True)


@pytest.fixture
def runner() -> SynchronousRunner:
    return SynchronousRunner()


@pytest.fixture
def site(workflow: MemoryWorkflow, runner: SynchronousRunner, clock: MemoryReactorClock) -> Site:
    return employer_site(workflow=workflow, runner=runner, clock=clock, csrf_key=CSRF_KEY)


@pytest.fixture
def client(site: Site, clock: MemoryReactorClock) -> GuardedClient:
    return GuardedClient(site, clock)


@pytest.fixture
def seed(workflow: MemoryWorkflow, runner: SynchronousRunner) -> Seeder:
    return Seeder(workflow, runner)
