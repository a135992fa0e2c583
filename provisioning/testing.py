"""A real :class:`~provisioning.Provisioner` on a test database, with its neighbours
faked: the unit registry (:class:`MemoryUnits`) and the gateway's sessions
(:class:`RecordingSessions`), each checked against the interface it stands for by
its annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

import auth
import certs
from provisioning._workflows import Provisioner, ProvisioningSettings
from provisioning.interfaces import (
    SessionHistory,
    SessionSummary,
    SessionTerminator,
    UnitDirectory,
)


@dataclass
class MemoryUnits:
    """The agency's unit registry: unit code → (status, region)."""

    units: dict[str, tuple[str, str]] = field(default_factory=dict)

    def unit_status(self, conn: Connection, unit_code: str) -> tuple[str, str] | None:
        return self.units.get(unit_code)


@dataclass
class RecordingSessions:
    """Kill requests recorded, sessions listed from :attr:`sessions` by account."""

    ended: list[tuple[str, str, str]] = field(default_factory=list)  # account, reason, actor
    sessions: dict[str, list[SessionSummary]] = field(default_factory=dict)

    def end_sessions(
        self, conn: Connection, account: str, *, reason: str, now: float, actor: str
    ) -> int:
        self.ended.append((account, reason, actor))
        return len(self.sessions.get(account, []))

    def recent_sessions(
        self, conn: Connection, account: str, *, limit: int
    ) -> list[SessionSummary]:
        return self.sessions.get(account, [])[:limit]


def _conforms(units: MemoryUnits, sessions: RecordingSessions) -> None:
    """For mypy: the fakes are what they stand for."""
    _u: UnitDirectory = units
    _s: SessionTerminator = sessions
    _h: SessionHistory = sessions


def make_provisioner(
    engine: Engine,
    *,
    clock: Callable[[], float],
    units: MemoryUnits,
    sessions: RecordingSessions | None = None,
    actor: str = "os:tester",
    realms: tuple[str, ...] = ("sxlss",),
    regions: tuple[str, ...] = ("330682",),
    crls: list[bytes] | None = None,
    hasher: auth.PasswordHasher | None = None,
    box: auth.SecretBox | None = None,
) -> Provisioner:
    """A Provisioner with a fresh CA on *engine* (whose auth, certs and audit tables
    exist); published CRLs are appended to *crls*."""
    published = crls if crls is not None else []
    return Provisioner(
        engine=engine,
        ca=certs.CertificateAuthority.create(
            "ssgate test CA", now=datetime.fromtimestamp(clock(), UTC)
        ),
        box=box or auth.SecretBox(auth.SecretBox.generate_key()),
        hasher=hasher or auth.PasswordHasher(auth.Argon2Params()),
        units=units,
        settings=ProvisioningSettings(
            realms=realms,
            regions=regions,
            gateway_host="gateway.test",
            gateway_port=8443,
            totp_issuer="ssgate test",
        ),
        publish_crl=published.append,
        clock=clock,
        actor=actor,
        sessions=sessions,
        history=sessions,
    )
