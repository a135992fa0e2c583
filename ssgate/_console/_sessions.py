"""Staff console sessions as the console uses them: the policy, the login-form token,
and the periodic sweep.

The sessions themselves live in the database (:mod:`auth._console_sessions`: hashed
ids, per-session CSRF tokens, idle and absolute timeouts), so every node sharing it
serves every staff member and a restart logs nobody out.

Before login there is no server state: the login form's token is an HMAC, under a
key every node derives from the state directory's ``identity.key``
(:func:`login_form_key`), of a random pre-login cookie.  A flood of login-page
requests costs no storage, a cross-site POST cannot carry a valid pair, and a form
loaded from one node can be sent to another, or after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

import auth

SessionPolicy = auth.ConsoleSessionPolicy

SWEEP_SECONDS = 60.0
_LOGIN_FORM_LABEL = b"ssgate console login-form v1"


def _b64(data: bytes) -> str:
    """Unpadded URL-safe base64: cookie- and form-safe."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def login_form_key(identity_key: bytes) -> bytes:
    """The login-form token key, the same on every node holding *identity_key*
    (a label of its own keeps it apart from every other use of that key)."""
    return hmac.digest(identity_key, _LOGIN_FORM_LABEL, "sha256")


class LoginFormTokens:
    """Pre-login cookies and the login-form tokens bound to them."""

    def __init__(self, key: bytes, *, random_bytes: Callable[[int], bytes]) -> None:
        if len(key) < 32:
            raise ValueError("the login-form key must be at least 32 bytes")
        self._key = key
        self._random = random_bytes

    def __repr__(self) -> str:
        return "LoginFormTokens(<key>)"

    def new_prelogin(self) -> str:
        """A fresh pre-login cookie value (256 random bits)."""
        return _b64(self._random(32))

    def token_for(self, prelogin: str) -> str:
        """The token the login form carries for the pre-login cookie *prelogin*."""
        mac = hmac.new(
            self._key, b"login-form\x00" + prelogin.encode("ascii", "replace"), hashlib.sha256
        ).digest()
        return _b64(mac)

    def check(self, prelogin: str, form_token: str) -> bool:
        if not prelogin or not form_token:
            return False
        expected = self.token_for(prelogin)
        return hmac.compare_digest(expected.encode("ascii"), form_token.encode("ascii", "replace"))


def same_token(expected: str, given: str) -> bool:
    """Constant-time comparison of a CSRF token with what the form carried."""
    return bool(given) and hmac.compare_digest(
        expected.encode("ascii"), given.encode("utf-8", "replace")
    )


class TransactionRunner(Protocol):
    """``runner.run``: one transaction on the database pool."""

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]: ...


def session_sweeper(
    runner: TransactionRunner,
    clock: IReactorTime,
    policy: SessionPolicy,
    *,
    interval: float = SWEEP_SECONDS,
) -> TimerService:
    """A service deleting expired and ended console sessions every *interval* seconds.

    Each node may run one: the deletes are idempotent.  A failed sweep is logged and
    the next one runs as planned.
    """
    log = Logger(namespace="ssgate.console")

    def sweep() -> Deferred[Any]:
        d = runner.run(auth.sweep_console_sessions, now=clock.seconds(), policy=policy)

        def failed(failure: Failure) -> None:
            log.failure("console session sweep failed", failure)

        return d.addErrback(failed)

    service = TimerService(interval, sweep)
    service.clock = clock
    return service
