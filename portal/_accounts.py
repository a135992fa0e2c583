"""Counter workflows: open an insured person's portal account, reset its password.

An auditor at the agency counter checks the person's identity document and then runs
``ssgate persons enrol ID_NUMBER --out DIR`` (or ``reset-password``).  These blocking
methods are what that command calls: each change is one transaction that also appends
its audit event, and a refusal is recorded in a transaction of its own after the
rollback — the same shape as :class:`staffing.StaffAdministration`.

The ID number is the login name, but it never reaches the audit log, a log line or a
message: the account is known everywhere by its principal ``person:<ref>``, where
*ref* is random (nothing about the person can be read from it).  The TOTP enrolment
files are written with ``provisioning``'s bundle writer (all or nothing, owner-only).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, insert, select, update

import auth
from declare_app._schema import persons
from declare_app._voucher_pdf import mask_id_number
from provisioning import (
    AuditedWorkflows,
    BundleError,
    WorkflowRefused,
    check_bundle_dir,
    qr_files,
    remove_bundle,
    write_bundle,
)

from ._schema import person_accounts, portal_sessions

_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")
MAX_REASON = 200


class PersonInputError(ValueError):
    """The counter's input is malformed (an ID number, ``--out``); exit status 2."""


class PersonRefused(WorkflowRefused):
    """The change is not possible; ``reason`` is the audit code (``unknown-person``,
    ``already-enrolled``, ``not-enrolled``)."""


# A refusal's subject: never the ID number the counter typed, which never enters the log.
_BY_ID_NUMBER = "person:(by-id-number)"


@dataclass(frozen=True)
class PersonIssued:
    """What the counter hands the person once (never stored in clear)."""

    principal: str
    masked_id: str
    password: str = field(repr=False)
    otp_uri: str | None = field(default=None, repr=False)
    bundle_dir: Path | None = None
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    sessions_ended: int = 0


def normalise_id_number(text: str) -> str | None:
    """The 18-character ID number as stored (``x`` → ``X``), or None if it cannot be one."""
    value = "".join(text.split()).upper()
    return value if _ID_SHAPE.fullmatch(value) else None


def new_principal() -> str:
    """``person:p`` and 16 random hex digits: names the account, identifies nobody."""
    return auth.PERSON_PREFIX + "p" + secrets.token_hex(8)


def principal_of(conn: Connection, id_number: str) -> tuple[str, str] | None:
    """(principal, 个人编号) of the portal account of the person with *id_number*."""
    a, p = person_accounts.c, persons.c
    row = conn.execute(
        select(a.principal, a.person_number)
        .join_from(person_accounts, persons, p.person_number == a.person_number)
        .where(p.id_number == id_number, a.status == "active")
    ).first()
    return None if row is None else (row.principal, row.person_number)


class PersonCounter(AuditedWorkflows):
    """The counter's workflows over the declaration service's persons, auth and audit.

    Who acts and how each change is audited come from
    :class:`provisioning.AuditedWorkflows` (``acting_as``, ``_event``), as for the
    carrier's and the administrator's workflows."""

    def __init__(
        self,
        *,
        engine: Engine,
        box: auth.SecretBox,
        hasher: auth.PasswordHasher,
        totp_issuer: str,
        clock: Callable[[], float],
        actor: str,
        session_ref: str = "",
    ) -> None:
        super().__init__(engine=engine, clock=clock, actor=actor, session_ref=session_ref)
        self._box = box
        self._hasher = hasher
        self._issuer = totp_issuer

    @property
    def totp_issuer(self) -> str:
        return self._issuer

    def enrol(self, id_number: str, *, out: Path | None = None, reason: str = "") -> PersonIssued:
        """Open the portal account of the insured person with *id_number*: an initial
        password (to be changed at first login) and a TOTP secret, both handed back
        once, the QR codes written to *out*."""
        number = _checked(id_number, reason)
        if out is not None:
            try:
                check_bundle_dir(out)
            except BundleError as e:
                raise PersonInputError(str(e)) from None
        password = auth.generate_password()
        password_hash = self._hasher.hash(password)
        secret = auth.new_totp_secret()
        principal = new_principal()
        masked = mask_id_number(number)
        uri = auth.totp_uri(secret, account=masked, issuer=self._issuer)
        files = qr_files(uri)
        written: Path | None = None
        try:
            with self._engine.begin() as conn:
                person_number = _person_number(conn, number)
                if conn.execute(
                    select(person_accounts.c.principal).where(
                        person_accounts.c.person_number == person_number
                    )
                ).first():
                    raise PersonRefused(
                        "already-enrolled",
                        "this person already has a portal account; "
                        "use 'ssgate persons reset-password' to give a new password",
                    )
                now = self._clock()
                auth.create_person_credentials(
                    conn,
                    principal,
                    password_hash=password_hash,
                    totp_secret_sealed=self._box.seal(
                        secret, context=auth.totp_secret_context(principal)
                    ),
                    now=now,
                )
                conn.execute(
                    insert(person_accounts).values(
                        principal=principal,
                        person_number=person_number,
                        status="active",
                        must_change_password=True,
                        created_at=now,
                        created_by=self._actor,
                        updated_at=now,
                    )
                )
                self._event(conn, "person.enrol", principal, reason=reason)
                if out is not None:
                    write_bundle(out, files)
                    written = out
        except BaseException as failure:
            if written is not None:
                remove_bundle(written)
            if isinstance(failure, PersonRefused):
                self._refuse("person.enrol", _BY_ID_NUMBER, failure)
            raise
        return PersonIssued(principal, masked, password, uri, out, files)

    def reset_password(self, id_number: str, *, reason: str = "") -> PersonIssued:
        """A new initial password (shown once, to be changed at the next login); the
        lockout is cleared and the person's portal sessions end."""
        number = _checked(id_number, reason)
        password = auth.generate_password()
        password_hash = self._hasher.hash(password)
        try:
            with self._engine.begin() as conn:
                found = principal_of(conn, number)
                if found is None:
                    _person_number(conn, number)  # unknown-person if nobody has it
                    raise PersonRefused(
                        "not-enrolled",
                        "this person has no portal account; open one with 'ssgate persons enrol'",
                    )
                principal = found[0]
                now = self._clock()
                auth.reset_password(conn, principal, password_hash, now=now)
                conn.execute(
                    update(person_accounts)
                    .where(person_accounts.c.principal == principal)
                    .values(must_change_password=True, updated_at=now)
                )
                ended = conn.execute(
                    delete(portal_sessions).where(portal_sessions.c.principal == principal)
                ).rowcount
                self._event(conn, "person.reset-password", principal, reason=reason, sessions=ended)
        except PersonRefused as refused:
            self._refuse("person.reset-password", _BY_ID_NUMBER, refused)
        return PersonIssued(principal, mask_id_number(number), password, sessions_ended=ended)

    # -- pieces --------------------------------------------------------------------------


def _checked(id_number: str, reason: str) -> str:
    number = normalise_id_number(id_number)
    if number is None:
        raise PersonInputError(
            "ID_NUMBER must be an 18-character citizen identity number (17 digits and a digit or X)"
        )
    if len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        raise PersonInputError(f"reason must be one line of at most {MAX_REASON} characters")
    return number


def _person_number(conn: Connection, id_number: str) -> str:
    row = conn.execute(
        select(persons.c.person_number).where(persons.c.id_number == id_number)
    ).first()
    if row is None:
        raise PersonRefused(
            "unknown-person",
            "no insured person with this ID number is known to the declaration service "
            "(a unit must have declared them first)",
        )
    return str(row.person_number)
