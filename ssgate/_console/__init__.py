"""The agency staff console: its own listener, staff login, sessions, roles, pages.

The shell is here; the pages belong to the feature packages and reach the shell only
through the :class:`auth.console.ConsolePage` contract (the auditors' review pages in
``declare_app.console_pages``; the officers' and carriers' go in ``audit`` and
``provisioning`` the same way).

Wiring (in ``ssgate serve``)::

    check_console_listen(config.console.listen, tls=True)      # refuses plain non-loopback
    tls = load_state_server_tls(state.path, require_client_cert=False).options
    site = console_site(authenticator=authenticator, runner=runner, workflow=workflow,
                        clock=reactor, pages=[...], secure=True, policy=policy,
                        login_form_key=login_form_key(state.key("identity.key")))
    listen(config.console.listen, console_factory(site, tls))
    services.addService(session_sweeper(runner, reactor, policy))

Sessions live in the database (:mod:`auth._console_sessions`), and the login form's
key comes from the state directory: any node sharing the database and the state's
keys serves any staff member, and a restart logs nobody out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Site

from auth.console import ConsolePage

from ._listen import (
    ConsoleListenError,
    ListenCheck,
    check_console_listen,
    console_factory,
    inspect_listen,
)
from ._sessions import LoginFormTokens, SessionPolicy, login_form_key, session_sweeper
from ._site import (
    ConsoleResource,
    ConsoleRunner,
    ConsoleSite,
    StaffAuthenticator,
    console_resource,
)

if TYPE_CHECKING:
    from declare_app.interfaces import DeclarationWorkflow

__all__ = [
    "ConsoleListenError",
    "ConsoleResource",
    "ConsoleRunner",
    "ListenCheck",
    "LoginFormTokens",
    "SessionPolicy",
    "StaffAuthenticator",
    "check_console_listen",
    "console_factory",
    "console_site",
    "inspect_listen",
    "login_form_key",
    "session_sweeper",
]


def console_site(
    *,
    authenticator: StaffAuthenticator,
    runner: ConsoleRunner,
    workflow: DeclarationWorkflow | None,
    clock: IReactorTime,
    pages: Sequence[ConsolePage] = (),
    secure: bool,
    login_form_key: bytes,
    policy: SessionPolicy | None = None,
    refusal_delay: float = 1.0,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> Site:
    """The staff console as a twisted.web ``Site``.

    *workflow* (when given) mounts the auditors' declaration review pages at
    ``/review``; *pages* adds any others (officers', carriers').  *secure* says the
    site is served over TLS: cookies then get ``Secure`` and the ``__Host-`` prefix,
    and responses carry HSTS.  *clock* gives the time (session timeouts, audit
    timestamps), the delay after a refused login (*refusal_delay* seconds) and the
    HTTP timeouts.  *policy* sets the session timeouts (15 min idle, 8 h in all).
    *login_form_key* signs the login form's token; every node serving the console
    must use the same one (:func:`login_form_key` derives it from ``identity.key``).
    """
    mounted: list[ConsolePage] = []
    if workflow is not None:
        from declare_app.console_pages import ReviewPage

        mounted.append(ReviewPage(workflow=workflow, runner=runner))
    mounted.extend(pages)
    resource = console_resource(
        authenticator=authenticator,
        runner=runner,
        clock=clock,
        pages=mounted,
        secure=secure,
        login_form_key=login_form_key,
        policy=policy,
        refusal_delay=refusal_delay,
        random_bytes=random_bytes,
    )
    return ConsoleSite(resource, reactor=clock)
