"""The values of the audit log: events going in, records and reports coming out.

An :class:`AuditEvent` checks itself when built, so nothing malformed ever reaches the
chain: a bad event is a programming error in the caller and fails loudly and early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeAlias

DetailValue: TypeAlias = str | int | float | bool | None

OUTCOMES: Final = frozenset({"ok", "refused", "failed"})

# Column widths in audit._schema; checked here so SQLite (which ignores VARCHAR
# lengths) and PostgreSQL (which enforces them) accept exactly the same events.
MAX_ACTOR = 255
MAX_ACTION = 64
MAX_SUBJECT = 255
MAX_UNIT = 64
MAX_SESSION_ID = 128
MAX_REASON = 4000
MAX_DETAILS_KEYS = 64
MAX_DETAIL_KEY = 64
MAX_DETAIL_TEXT = 4000

# datetime and syslog timestamps end at 9999-12-31; an event past that is a clock bug.
MAX_AT = 253_402_300_800.0


class AuditEventError(ValueError):
    """An audit event is malformed; the message names the field and what is wrong."""


class AuditChainError(RuntimeError):
    """The stored log is not in a state that can be appended to or read.

    Raised when the chain head has vanished while records remain (appending would fork
    the chain and hide the damage) or when a stored row cannot be read back as an event.
    ``verify`` never raises this: it reports damage in its :class:`VerifyReport`.
    """


def _text(name: str, value: object, *, required: bool, limit: int) -> str:
    if not isinstance(value, str):
        raise AuditEventError(f"audit event {name} must be a string, got {type(value).__name__}")
    value = str.__str__(value)  # a str subclass (an enum) becomes its plain value
    if required and not value.strip():
        raise AuditEventError(f"audit event {name} must not be empty")
    if len(value) > limit:
        raise AuditEventError(
            f"audit event {name} is {len(value)} characters long; the limit is {limit}"
        )
    _check_encodable(name, value)
    return value


def _check_encodable(name: str, value: str) -> None:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8,
    # so the hash could not be computed: refuse both on every backend alike.
    if "\x00" in value:
        raise AuditEventError(f"audit event {name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise AuditEventError(f"audit event {name} is not valid Unicode text") from None


def _detail_value(key: str, value: object) -> DetailValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditEventError(f"audit event details[{key!r}] must be a finite number")
        return float(value)
    if isinstance(value, str):
        return _text(f"details[{key!r}]", value, required=False, limit=MAX_DETAIL_TEXT)
    raise AuditEventError(
        f"audit event details[{key!r}] must be a string, number, boolean or None, "
        f"got {type(value).__name__}"
    )


def _details(value: object) -> Mapping[str, DetailValue]:
    if not isinstance(value, Mapping):
        raise AuditEventError(f"audit event details must be a mapping, got {type(value).__name__}")
    if len(value) > MAX_DETAILS_KEYS:
        raise AuditEventError(
            f"audit event details has {len(value)} keys; the limit is {MAX_DETAILS_KEYS}"
        )
    clean: dict[str, DetailValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise AuditEventError(
                f"audit event details keys must be strings, got {type(key).__name__}"
            )
        name = _text("details key", key, required=True, limit=MAX_DETAIL_KEY)
        clean[name] = _detail_value(name, item)
    return MappingProxyType(clean)


def _instant(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuditEventError(
            f"audit event at must be epoch seconds (a float), got {type(value).__name__}"
        )
    at = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0, which SQLite would do anyway
    if not math.isfinite(at) or not 0.0 <= at < MAX_AT:
        raise AuditEventError(
            f"audit event at must be epoch seconds UTC between 0 and {MAX_AT:.0f}, got {at!r}"
        )
    return at


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened, as the security officer will read it.

    ``at`` is epoch seconds UTC from the caller's clock; ``actor`` who did it (an
    account, a staff name, ``"system"``); ``action`` what (``"login"``,
    ``"provision.open"``); ``subject`` what it was done to; ``outcome`` one of
    ``"ok"``, ``"refused"``, ``"failed"``; ``reason`` why, in words or a reason code;
    ``unit`` and ``session_id`` tie the event to an insured unit and a tunnel session;
    ``details`` holds extra scalar facts.

    NEVER put a secret in an event: no password, OTP code, TOTP secret, private key,
    session cookie or token, in any field including ``reason`` and ``details``.  The
    log is kept forever, read by officers, exported to syslog and cannot be edited
    afterwards — a secret written here cannot be taken back.

    Building an event validates it and raises :class:`AuditEventError` when a field is
    malformed.  ``at`` is normalised to a float and ``details`` is copied into a
    read-only mapping, so the event cannot change after it was checked.
    """

    at: float
    actor: str
    action: str
    subject: str
    outcome: str
    reason: str = ""
    unit: str = ""
    session_id: str = ""
    details: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "at", _instant(self.at))
        set_(self, "actor", _text("actor", self.actor, required=True, limit=MAX_ACTOR))
        set_(self, "action", _text("action", self.action, required=True, limit=MAX_ACTION))
        set_(self, "subject", _text("subject", self.subject, required=True, limit=MAX_SUBJECT))
        outcome = _text("outcome", self.outcome, required=True, limit=16)
        if outcome not in OUTCOMES:
            raise AuditEventError(
                f"audit event outcome must be one of {', '.join(sorted(OUTCOMES))}, got {outcome!r}"
            )
        set_(self, "outcome", outcome)
        set_(self, "reason", _text("reason", self.reason, required=False, limit=MAX_REASON))
        set_(self, "unit", _text("unit", self.unit, required=False, limit=MAX_UNIT))
        set_(
            self,
            "session_id",
            _text("session_id", self.session_id, required=False, limit=MAX_SESSION_ID),
        )
        set_(self, "details", _details(self.details))


@dataclass(frozen=True)
class AuditRecord:
    """An event as stored: its place in the chain and the hashes that link it."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of walking the chain.

    ``checked`` counts the records found intact before the first problem (all of them
    when ``ok``); ``first_bad_seq`` is the sequence number of the first damaged or
    missing record, or ``None``; ``problem`` is a sentence naming it and what is wrong
    (empty when ``ok``).
    """

    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str
