"""What provisioning needs from the packages beside it, as small interfaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection


class UnitDirectory(Protocol):
    """The agency's unit registry, as the carrier sees it."""

    def unit_status(self, conn: Connection, unit_code: str) -> tuple[str, str] | None:
        """``(status, region)`` of a registered unit, or ``None`` if unregistered."""
        ...


class SessionTerminator(Protocol):
    """Ends live channel sessions of an account (the gateway provides this)."""

    def end_sessions(
        self, conn: Connection, account: str, *, reason: str, now: float, actor: str
    ) -> int:
        """Ask every node to end the account's live sessions on behalf of *actor*;
        return how many were live."""
        ...


@dataclass(frozen=True)
class SessionSummary:
    """One channel session of an account, as the carrier's account page lists it."""

    id: str
    peer: str
    node: str
    status: str  # the gateway's: "live", "detached" (may resume) or "ended"
    started_at: float
    ended_at: float | None
    end_reason: str | None
    bytes_in: int
    bytes_out: int


class SessionHistory(Protocol):
    """An account's channel sessions, newest first (the gateway provides this)."""

    def recent_sessions(
        self, conn: Connection, account: str, *, limit: int
    ) -> list[SessionSummary]: ...
