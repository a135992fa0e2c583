"""The runner: where blocking calls go so that the reactor never waits.

Every feature that touches the database or hashes a password does it through one
:class:`Runner` with two dedicated thread pools (never the reactor's shared one):
``run`` for transactions on the database pool, ``call`` for login work (argon2,
an LDAP bind, each with its own short transactions) on the login pool, so a burst
of logins cannot starve the database and a slow database cannot stall hashing.
``ssgate._serve.Runner`` is the real one; :class:`auth.testing.SynchronousRunner`
runs each call at once for tests.

It lives here, in the bottom layer, because the twisted.cred checkers and the
console contract that take a runner live here too.  Nothing in ``auth`` imports
Twisted at run time: ``Deferred`` is named for the type checker only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

P = ParamSpec("P")
T = TypeVar("T")


class RunnerClosed(Exception):
    """The runner was closed (the process is stopping): the work was not started.

    A background job that meets it at shutdown ends quietly; it is no fault."""


class Runner(Protocol):
    """Runs blocking callables off the reactor thread; each returns a Deferred of the
    callable's plain result (or its exception)."""

    def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        """``fn(conn, *args, **kwargs)`` in one transaction on the database pool."""
        ...

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """``fn(*args, **kwargs)`` on the login (hashing) pool, without a transaction."""
        ...
