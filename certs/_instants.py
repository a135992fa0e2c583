"""Instants: the caller's ``now`` checks, and the database's epoch-seconds convention.

The package never reads the clock; every instant arrives as a parameter and must be
timezone-aware, because a naive datetime silently means "local time" to some APIs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certs._errors import CertificateError

# Certificates start, and CRLs claim to be issued, this long before ``now``: a relying
# party whose clock runs a little behind the signer's would otherwise see "not yet
# valid" and refuse every client.
CLOCK_SKEW = timedelta(minutes=5)


def require_utc(instant: datetime, what: str = "now") -> datetime:
    """Return *instant* in UTC, refusing a naive datetime."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise CertificateError(f"{what} must be a timezone-aware datetime (UTC), got a naive one")
    return instant.astimezone(UTC)


def to_epoch(instant: datetime, what: str = "now") -> float:
    """Epoch seconds UTC, the project-wide form of an instant in the database."""
    return require_utc(instant, what).timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
