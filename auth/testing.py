"""Fakes of the auth interfaces, verified against them, for the tests of their users.

:class:`FakeDirectory` is a :class:`~auth.PasswordVerifier` that keeps staff passwords
in a dict and can be switched to *unavailable*, as an LDAP directory that is down.

:class:`SynchronousRunner` is the one fake :class:`~auth.Runner` of every package's
tests: it runs each call on the calling thread and returns a Deferred, so a whole
login or page view happens inside one call.  Unlike the rest of ``auth`` this module
imports Twisted at run time: a fake runner hands out real Deferreds.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ._directory import PasswordCheck, PasswordVerifier
from ._runner import Runner
from ._store import LoginRecord

P = ParamSpec("P")
T = TypeVar("T")

Pool = Literal["database", "login"]

#: The pool :class:`SynchronousRunner` is running a call on, or None outside any call
#: (on the reactor): a fake collaborator reads it to prove that it is only ever called
#: through the runner (``declare_app.web.testing.MemoryWorkflow(require_runner=True)``).
runner_pool: ContextVar[Pool | None] = ContextVar("runner_pool", default=None)


class FakeDirectory:
    """A directory of passwords in memory; ``available = False`` makes it unreachable."""

    stores_passwords = False

    def __init__(self, passwords: Mapping[str, str] | None = None) -> None:
        self._passwords = dict(passwords or {})
        self.available = True
        self.checked: list[str] = []  # principals asked about, in order

    def __repr__(self) -> str:
        return f"FakeDirectory({len(self._passwords)} entries)"

    def set_password(self, principal: str, password: str) -> None:
        self._passwords[principal] = password

    def check(self, login: LoginRecord, password: str) -> PasswordCheck:
        self.checked.append(login.principal)
        if not self.available:
            return PasswordCheck.UNAVAILABLE
        stored = self._passwords.get(login.principal)
        if password == "" or stored is None:
            return PasswordCheck.WRONG
        if hmac.compare_digest(stored.encode(), password.encode()):
            return PasswordCheck.RIGHT
        return PasswordCheck.WRONG


_verifier_check: type[PasswordVerifier] = FakeDirectory  # FakeDirectory satisfies the Protocol


@dataclass
class HeldCall:
    """A call :class:`SynchronousRunner` keeps until :meth:`~SynchronousRunner.release`."""

    fn: Callable[..., Any]
    pool: Pool
    work: Callable[[], Any] = field(repr=False)
    deferred: Deferred[Any] = field(repr=False)


class SynchronousRunner:
    """:class:`auth.Runner` on the calling thread.

    Each call runs at once and returns an already fired Deferred; after :meth:`hold`
    calls wait in :attr:`held` (their Deferreds unfired) until :meth:`release` runs
    them in order, as on a busy pool.  With an *engine* ``run`` is one transaction on
    it; without one the callable gets ``None`` for its connection (fakes that keep
    their data in memory).  :attr:`calls` records each call as it is made: a
    transaction as the callable's name, a login-pool call as ``call:<name>``.  While
    a call runs, :data:`runner_pool` names its pool.
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.calls: list[str] = []
        self.holding = False
        self.held: list[HeldCall] = []

    def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        self.calls.append(_name(fn))

        def work() -> T:
            if self.engine is None:
                no_connection: Any = None
                return fn(no_connection, *args, **kwargs)
            with self.engine.begin() as conn:
                return fn(conn, *args, **kwargs)

        return self._submit(fn, "database", work)

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        self.calls.append(f"call:{_name(fn)}")
        return self._submit(fn, "login", lambda: fn(*args, **kwargs))

    def hold(self) -> None:
        """Keep every call from now on until :meth:`release` (the pool is busy)."""
        self.holding = True

    def release(self) -> None:
        """Stop holding and run the held calls in order; calls they make run at once."""
        self.holding = False
        while self.held:
            held = self.held.pop(0)
            self._fire(held.pool, held.work, held.deferred)

    def _submit(self, fn: Callable[..., Any], pool: Pool, work: Callable[[], T]) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        if self.holding:
            self.held.append(HeldCall(fn, pool, work, d))
        else:
            self._fire(pool, work, d)
        return d

    @staticmethod
    def _fire(pool: Pool, work: Callable[[], T], d: Deferred[T]) -> None:
        try:
            with _on(pool):
                result = work()
        except Exception:
            d.errback(Failure())
        else:
            d.callback(result)  # outside the pool, as the reactor fires a pool's result


@contextmanager
def _on(pool: Pool) -> Iterator[None]:
    token = runner_pool.set(pool)
    try:
        yield
    finally:
        runner_pool.reset(token)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", repr(fn))


_runner_check: type[Runner] = SynchronousRunner  # SynchronousRunner satisfies the Protocol
