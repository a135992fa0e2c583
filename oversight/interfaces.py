"""What the officers' pages need from the gateway's session registry.

``oversight`` reads sessions and asks for kills only through :class:`SessionRegistry`
(``gateway.SessionRegistryView`` is the real one; ``ssgate`` passes it in), so the
pages do not depend on how or where the gateway keeps its sessions.  Unlocking an
account goes through :class:`AccountUnlock` (``ssgate`` passes the carriers'
workflow, so the officers' unlock is the same one ``ssgate provision unlock`` runs).
The charts count open sessions through :class:`SessionCounts` (``gateway`` again)
and declarations through :class:`DeclarationCounts` (``declare_app`` owns them).
The audit log is read directly: ``audit`` is a layer below every feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection

__all__ = [
    "AccountUnlock",
    "DeclarationCounts",
    "DeclarationTally",
    "SessionCounts",
    "SessionRegistry",
    "SessionRow",
    "UnlockRefused",
]


class SessionRow(Protocol):
    """One channel session as the registry records it (times are epoch seconds)."""

    @property
    def id(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def unit_code(self) -> str: ...
    @property
    def peer(self) -> str: ...  # host:port the employer connected from
    @property
    def cert_serial(self) -> str: ...
    @property
    def node(self) -> str: ...  # the gateway process holding it
    @property
    def status(self) -> str: ...  # live | detached | ended
    @property
    def started_at(self) -> float: ...
    @property
    def last_seen_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def end_reason(self) -> str | None: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def streams_opened(self) -> int: ...
    @property
    def kill_requested_at(self) -> float | None: ...
    @property
    def kill_reason(self) -> str | None: ...
    @property
    def kill_note(self) -> str | None: ...
    @property
    def kill_actor(self) -> str | None: ...


class SessionRegistry(Protocol):
    """The channel sessions of every node; blocking, each call in the caller's
    transaction on the database pool."""

    def search(
        self,
        conn: Connection,
        *,
        account: str | None = ...,
        unit: str | None = ...,
        peer_host: str | None = ...,
        node: str | None = ...,
        end_reason: str | None = ...,
        since: float | None = ...,
        until: float | None = ...,
        open_only: bool = ...,
        now: float | None = ...,
        before: tuple[float, str] | None = ...,
        limit: int = ...,
    ) -> Sequence[SessionRow]:
        """A page of sessions newest first, each filter given matching; *before* is
        the (start, id) of the previous page's last session (keyset paging)."""
        ...

    def get(self, conn: Connection, session_id: str) -> SessionRow | None: ...

    def kill(
        self,
        conn: Connection,
        session_id: str,
        *,
        note: str,
        actor: str,
        now: float,
        details: Mapping[str, Any] | None = None,
    ) -> SessionRow | None:
        """Ask the node holding the session to end it (within seconds) and record the
        kill in the audit log; None (recorded as refused) if it is not open."""
        ...

    def reasons(self) -> Mapping[str, str]:
        """Reason codes (ends of sessions, refused logins and streams) in Chinese."""
        ...


class UnlockRefused(Exception):
    """The unlock was not done; ``reason`` is the workflow's code (``not-locked``,
    ``account-cancelled``, ``unknown-account``, ``bad-account``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountUnlock(Protocol):
    """Clears a channel account's lock through the carriers' workflow (what ``ssgate
    provision unlock`` runs), audited as *actor* in console session *session_ref*.

    Blocking, in a transaction of its own: call it with ``runner.call``.  Raises
    :class:`UnlockRefused` (the workflow has audited the refusal)."""

    def __call__(self, account: str, *, reason: str, actor: str, session_ref: str) -> None: ...


class SessionCounts(Protocol):
    """How many channel sessions were open at given instants (``gateway``'s
    ``SessionRegistryView.open_counts``); blocking, in the caller's transaction."""

    def open_counts(self, conn: Connection, instants: Sequence[float]) -> Sequence[int]: ...


class DeclarationTally(Protocol):
    """Declarations of one type now in one state, counted per interval."""

    @property
    def type(self) -> str: ...
    @property
    def type_text(self) -> str: ...  # the type in Chinese
    @property
    def status(self) -> str: ...
    @property
    def status_text(self) -> str: ...  # the state in Chinese
    @property
    def counts(self) -> Sequence[int]: ...  # one per interval between the boundaries


class DeclarationCounts(Protocol):
    """Declarations submitted in each interval ``[boundaries[i], boundaries[i+1])``,
    by type and current state (``declare_app.submitted_per_interval``); blocking, in
    the caller's transaction."""

    def __call__(
        self, conn: Connection, boundaries: Sequence[float]
    ) -> Sequence[DeclarationTally]: ...
