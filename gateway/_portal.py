"""The channel login assembled: the twisted.cred portal and the account-policy view.

:func:`channel_portal` puts :class:`~gateway._cred.ChannelChecker` and
:class:`~gateway._cred.ChannelRealm` behind one ``Portal``; :func:`policy_view` turns
the configured per-account policy (whatever object the host application keeps it in)
into the :class:`~gateway._cred.AccountPolicyView` the checker, the realm and the
tunnels read at each login.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.cred.portal import Portal

import auth
from gateway._cred import AccountPolicyView, ChannelChecker, ChannelRealm


class AccountPolicySettings(Protocol):
    """One account's configured policy, as :func:`policy_view` reads it
    (``ssgate._config.AccountPolicy``)."""

    @property
    def max_sessions(self) -> int: ...

    @property
    def allowed_sources(self) -> tuple[str, ...]: ...

    @property
    def services(self) -> tuple[str, ...]: ...

    @property
    def idle_timeout_seconds(self) -> float: ...

    @property
    def max_lifetime_seconds(self) -> float: ...


def policy_view(
    for_account: Callable[[str], AccountPolicySettings],
) -> Callable[[str], AccountPolicyView]:
    """``policy_for(account)`` over *for_account* (e.g. ``PolicyConfig.for_account``)."""

    def policy_for(account: str) -> AccountPolicyView:
        p = for_account(account)
        return AccountPolicyView(
            max_sessions=p.max_sessions,
            allowed_sources=p.allowed_sources,
            services=p.services,
            idle_timeout_seconds=p.idle_timeout_seconds,
            max_lifetime_seconds=p.max_lifetime_seconds,
        )

    return policy_for


def channel_portal(
    authenticator: auth.Authenticator,
    runner: auth.Runner,
    policy_for: Callable[[str], AccountPolicyView],
    clock: Callable[[], float],
    node_name: str,
) -> Portal:
    """twisted.cred for channel logins: certificate binding, policy, two factors, limit."""
    return Portal(
        ChannelRealm(
            db=runner, policy_for=policy_for, clock=clock, node=node_name, end_session=_no_op
        ),
        [
            ChannelChecker(
                authenticator=authenticator, db=runner, policy_for=policy_for, clock=clock
            )
        ],
    )


def _no_op(session_id: str) -> None:
    """The realm's logout: the tunnel ends its session itself, with the reason."""
