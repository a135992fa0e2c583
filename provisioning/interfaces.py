"""What provisioning needs from the packages beside it, as small interfaces."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Connection


class UnitDirectory(Protocol):
    """The agency's unit registry, as the carrier sees it."""

    def unit_status(self, conn: Connection, unit_code: str) -> tuple[str, str] | None:
        """``(status, region)`` of a registered unit, or ``None`` if unregistered."""
        ...


class SessionTerminator(Protocol):
    """Ends live channel sessions of an account (the gateway provides this)."""

    def end_sessions(self, conn: Connection, account: str, *, reason: str, now: float) -> int:
        """Ask every node to end the account's live sessions; return how many were live."""
        ...
