"""Wiring of the personal portal (``portal/``): its listener under ``serve`` and the
counter workflows for ``ssgate persons``.

:func:`start_portal` builds the portal's site on the shared runner and authenticator,
listens on ``[portal] listen`` inside TLS with the server certificate (the console's
TLS options: no client certificate), and adds to *services* what must stop with
``serve`` (the listener) and a periodic sweep of expired portal sessions.  With
``listen = ""`` (the default) it does nothing: the portal is a public-facing site
and is turned on deliberately.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

import auth
import portal
from gateway import load_state_server_tls
from ssgate._app import App, operator_name
from ssgate._console import console_factory

SWEEP_SECONDS = 300.0
_FORM_LABEL = b"ssgate portal login form v1"


class _StopListening(Service):
    """Stops the portal's listener when ``serve`` stops."""

    def __init__(self, port: IListeningPort) -> None:
        self._port = port

    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        return maybeDeferred(self._port.stopListening)


def portal_shell(
    app: App, reactor: Any, *, runner: auth.Runner, authenticator: auth.Authenticator
) -> portal.PortalShell:
    """The portal's site for this state directory (secure cookies: served over TLS)."""
    cfg = app.config.portal
    return portal.PortalShell(
        authenticator=authenticator,
        runner=runner,
        clock=reactor,
        form_key=hmac.digest(app.state.key("identity.key"), _FORM_LABEL, "sha256"),
        random_bytes=os.urandom,
        policy=portal.SessionPolicy(
            idle_seconds=cfg.idle_timeout_seconds, max_age_seconds=cfg.max_lifetime_seconds
        ),
        secure=True,
    )


def start_portal(
    app: App,
    reactor: Any,
    listen: Callable[[str, Any, str], IListeningPort],
    *,
    runner: auth.Runner,
    authenticator: auth.Authenticator,
    services: MultiService,
    access_log: Callable[[str], None] | None = None,
) -> IListeningPort | None:
    """Listen on ``[portal] listen`` (None while it is empty)."""
    cfg = app.config.portal
    if not cfg.enabled:
        return None
    shell = portal_shell(app, reactor, runner=runner, authenticator=authenticator)
    tls = load_state_server_tls(app.state.path, require_client_cert=False).options
    port = listen(cfg.listen, console_factory(shell.site(access_log=access_log), tls), "portal")
    services.addService(_StopListening(port))
    policy = shell.policy
    sweeper = TimerService(
        SWEEP_SECONDS,
        lambda: runner.run(portal.sweep_sessions, now=reactor.seconds(), policy=policy).addErrback(
            lambda f: Logger(namespace="ssgate.portal").failure("portal session sweep", f)
        ),
    )
    sweeper.clock = reactor
    services.addService(sweeper)
    return port


def person_counter(app: App) -> portal.PersonCounter:
    """The counter's workflows, acting as the operating-system user."""
    return portal.PersonCounter(
        engine=app.engine,
        box=app.box,
        hasher=app.hasher,
        totp_issuer=app.config.totp.issuer,
        clock=app.clock,
        actor=operator_name(),
    )
