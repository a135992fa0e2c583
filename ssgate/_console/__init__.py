"""The agency staff console, assembled: the shell from ``web`` and the features'
sections, on its own listener.

The shell (:class:`web.ConsoleShell`: staff login through twisted.cred, sessions,
roles, CSRF, the layout) and the pages live elsewhere: the auditors' review in
``declare_app.web`` (:func:`declare_app.web.review_section`), the carriers' accounts
in ``provisioning`` (:func:`provisioning.accounts_section`), the administrators' staff
pages in ``staffing`` (:func:`staffing.staff_section`), the officers' in their package
the same way.  Here they are put together.

Wiring (in ``ssgate serve``)::

    check_console_listen(config.console.listen, tls=True)      # refuses plain non-loopback
    tls = load_state_server_tls(state.path, require_client_cert=False).options
    site = console_site(authenticator=authenticator, runner=runner, workflow=workflow,
                        clock=reactor, sections=[...], secure=True, policy=policy,
                        login_form_key=login_form_key(state.key("identity.key")))
    listen(config.console.listen, console_factory(site, tls))
    services.addService(session_sweeper(runner, reactor, policy))

Sessions live in the database (:mod:`auth._console_sessions`), and the login form's
key is derived from the state directory's ``identity.key``: any node sharing the
database and the key serves any staff member, and a restart logs nobody out.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Site

import audit
import auth
import declare_app
import gateway
import oversight
import web

from ._listen import (
    ConsoleListenError,
    ListenCheck,
    check_console_listen,
    console_factory,
    inspect_listen,
)
from ._sessions import DatabaseSessions, SessionPolicy, login_form_key, session_sweeper

if TYPE_CHECKING:
    from declare_app.interfaces import DeclarationWorkflow
    from portal import PersonCounter
    from provisioning import Provisioner
    from staffing import StaffAdministration

__all__ = [
    "ConsoleListenError",
    "DatabaseSessions",
    "ListenCheck",
    "SessionPolicy",
    "check_console_listen",
    "console_factory",
    "console_shell",
    "console_site",
    "inspect_listen",
    "login_form_key",
    "session_sweeper",
]


def console_shell(
    *,
    authenticator: web.StaffAuthenticator,
    runner: auth.Runner,
    workflow: DeclarationWorkflow | None,
    clock: IReactorTime,
    provisioner: Provisioner | None = None,
    staff_admin: StaffAdministration | None = None,
    person_counter: PersonCounter | None = None,
    lockout: auth.LockoutPolicy | None = None,
    login_form_key: bytes,
    sections: Sequence[web.ConsoleSection] = (),
    secure: bool,
    policy: SessionPolicy | None = None,
    refusal_delay: float = 1.0,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    verify_audit_at_start: bool = False,
) -> web.ConsoleShell:
    """The staff console's shell with its sections (see :func:`console_site`)."""
    mounted: list[web.ConsoleSection] = []
    if workflow is not None:
        from declare_app.web import review_section

        mounted.append(review_section(workflow))
    registry = gateway.SessionRegistryView()
    mounted.append(oversight.sessions_section(registry))
    mounted.append(oversight.alerts_section())
    mounted.append(oversight.events_section())
    mounted.append(
        oversight.logins_section(
            None if provisioner is None else _unlock_through(provisioner),
            reasons=registry.reasons(),
            lockout=lockout,
        )
    )
    mounted.append(
        oversight.charts_section(
            registry, None if workflow is None else declare_app.submitted_per_interval
        )
    )
    mounted.append(
        oversight.integrity_section(runner, clock, verify_at_start=verify_audit_at_start)
    )
    if provisioner is not None:
        from provisioning import accounts_section

        mounted.append(accounts_section(provisioner))
    if staff_admin is not None:
        from staffing import staff_section

        mounted.append(staff_section(staff_admin))
    if person_counter is not None:
        # The agency counter's portal enrolment: the same workflows ``ssgate persons`` runs.
        from portal import persons_section

        mounted.append(persons_section(person_counter))
    mounted.extend(sections)
    return web.ConsoleShell(
        authenticator=authenticator,
        runner=runner,
        sessions=DatabaseSessions(policy or SessionPolicy(), random_bytes=random_bytes),
        audit_trail=audit.append_event,
        clock=clock,
        sections=mounted,
        secure=secure,
        form_key=login_form_key,
        new_token=lambda: web.new_token(random_bytes),
        refusal_delay=refusal_delay,
        lockout=lockout or auth.LockoutPolicy(),
    )


def _unlock_through(provisioner: Provisioner) -> oversight.AccountUnlock:
    """The officers' unlock as the carriers' workflow (``ssgate provision unlock``),
    acting as the staff member; the workflow's refusals in oversight's terms."""
    from provisioning import ProvisioningInputError, ProvisioningRefused

    def unlock(account: str, *, reason: str, actor: str, session_ref: str) -> None:
        try:
            provisioner.acting_as(actor, session_ref=session_ref).unlock(account, reason=reason)
        except ProvisioningRefused as refused:
            raise oversight.UnlockRefused(refused.reason) from None
        except ProvisioningInputError:
            raise oversight.UnlockRefused("bad-account") from None

    return unlock


def console_site(*, access_log: Callable[[str], None] | None = None, **kwargs: Any) -> Site:
    """The staff console as a twisted.web ``Site``.

    *workflow* (when given) mounts the auditors' review section at ``/review``,
    *provisioner* the carriers' account pages at ``/accounts``, *staff_admin* the
    administrators' staff pages at ``/staff``; *sections* adds any others.  *lockout*
    is the authenticator's lockout policy: the login page explains it after a refusal,
    and the officers' locked-out page shows the throttled sources' windows by it.
    *secure* says the site is served over TLS: cookies then get ``Secure`` and the
    ``__Host-`` prefix, and responses carry HSTS.  *clock* gives the time (session
    timeouts, audit timestamps), the delay after a refused login (*refusal_delay* seconds) and the
    HTTP timeouts.  *policy* sets the session timeouts (15 min idle, 8 h in all) and
    caps.  *verify_audit_at_start* starts the officers' audit-chain verification at
    the reactor's next turn (``serve``; tests and the benchmark leave it off).
    *login_form_key* signs the login form's token; every node serving the
    console must use the same one (:func:`login_form_key` derives it from
    ``identity.key``).  *access_log* (:meth:`web.AccessLog.writer`) gets one masked
    line per request.
    """
    return console_shell(**kwargs).site(access_log=access_log)
