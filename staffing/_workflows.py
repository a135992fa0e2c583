"""The administrator's staff workflows: list, show, add, disable, enable, reset the
password or the OTP, unlock.

:class:`StaffAdministration` is the one place these changes are made: the ``ssgate
staff`` command and the administrators' console pages (:mod:`staffing._pages`) call
the same methods, and :meth:`StaffAdministration.acting_as` names who acts
(``os:<user>`` on the command line, ``staff:<name>`` in the console).

Each change is one database transaction that also appends its audit event, so a
change and its record commit together.  A refusal rolls the change back (and removes
an OTP bundle written for it) and then appends a ``refused`` event with the reason
code in a transaction of its own (``provisioning.AuditedWorkflows``, the carrier's
workflows' base too).  Disabling a member, or resetting their password
or OTP, ends every console session of theirs in that same transaction
(:func:`auth.end_staff_console_sessions` marks the rows): the next request with any
of their cookies, on any node, is sent to the login page.

The OTP enrolment files (``otpauth.txt``, ``otp-qr.png``, ``otp-qr.svg``) are made and
written by ``provisioning``'s public bundle functions, the one place that writes
secrets to a directory all or nothing.

Nothing here prints and everything blocks (database, argon2): the console calls it
through ``runner.call``, never on the reactor.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine

import auth
from provisioning import AuditedWorkflows, BundleError, WorkflowRefused, check_bundle_dir, qr_files

#: What ends a member's console sessions, as ``console_sessions.end_reason`` keeps it.
END_DISABLED = "staff-disabled"
END_PASSWORD_RESET = "password-reset"  # noqa: S105 - a reason code, not a password
END_OTP_RESET = "otp-reset"

MAX_REASON = 200  # as the console's reason field takes
# Control characters but tab and line ends: a reason may have several lines.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StaffRefused(WorkflowRefused):
    """The change is not allowed in the current state; ``reason`` is the audit code
    (``unknown-staff``, ``staff-exists``, ``bad-transition``, ``own-account``,
    ``not-locked``, ``password-in-directory``)."""


class StaffInputError(ValueError):
    """The administrator's input is malformed (a name, a role, a password, ``--out``)."""


@dataclass(frozen=True)
class StaffSettings:
    totp_issuer: str
    # True with ``[directory] backend = "ldap"``: the directory checks staff passwords,
    # so none is set, shown or reset here (only the TOTP is enrolled).
    passwords_in_directory: bool = False


@dataclass(frozen=True)
class StaffIssued:
    """What a change hands out once: shown to the administrator, never stored in clear.

    *files* are the OTP enrolment (``otpauth.txt``, ``otp-qr.png``, ``otp-qr.svg``), also
    when nothing was written to disk: the console offers them as a zip.
    """

    name: str
    role: str
    password: str | None = field(default=None, repr=False)
    otp_uri: str | None = field(default=None, repr=False)
    bundle_dir: Path | None = None
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    sessions_ended: int = 0


@dataclass(frozen=True)
class StaffView:
    """A staff member with their lockout state (no secret)."""

    record: auth.StaffRecord
    credential: auth.CredentialState | None

    @property
    def name(self) -> str:
        return self.record.name

    def is_locked(self, now: float) -> bool:
        c = self.credential
        return c is not None and c.is_locked(now)

    def may_unlock(self, now: float) -> bool:
        """Locked, or with failures counted towards the next lock."""
        c = self.credential
        return c is not None and (c.is_locked(now) or c.consecutive_failures > 0)


@dataclass(frozen=True)
class StatusChange:
    record: auth.StaffRecord
    sessions_ended: int = 0


class StaffAdministration(AuditedWorkflows):
    """The staff workflows over the auth and audit stores."""

    def __init__(
        self,
        *,
        engine: Engine,
        box: auth.SecretBox,
        hasher: auth.PasswordHasher,
        settings: StaffSettings,
        clock: Callable[[], float],
        actor: str,
        session_ref: str = "",
    ) -> None:
        super().__init__(engine=engine, clock=clock, actor=actor, session_ref=session_ref)
        self._box = box
        self._hasher = hasher
        self._settings = settings

    @property
    def settings(self) -> StaffSettings:
        return self._settings

    # -- reading -----------------------------------------------------------------------

    def list(self) -> builtins.list[StaffView]:
        """Every staff member, by name, with their lockout state."""
        with self._engine.begin() as conn:
            return [
                StaffView(record, auth.get_credential_state(conn, record.name))
                for record in auth.list_staff(conn)
            ]

    def show(self, name: str) -> StaffView:
        check_name(name)
        with self._engine.begin() as conn:
            record = self._member(conn, name)
            return StaffView(record, auth.get_credential_state(conn, name))

    # -- changes -----------------------------------------------------------------------

    def add(
        self,
        name: str,
        role: str,
        *,
        password: str | None = None,
        out: Path | None = None,
        reason: str = "",
    ) -> StaffIssued:
        """Enrol *name* with *role*: an initial password (generated unless given) and a
        new TOTP secret, both handed back once (and the QR codes written to *out*)."""
        check_name(name)
        _check_reason(reason)
        if role not in auth.STAFF_ROLES:
            raise StaffInputError(
                f"unknown staff role {role!r}; one of: {', '.join(auth.STAFF_ROLES)}"
            )
        self._check_out(out)
        in_directory = self._settings.passwords_in_directory
        if password is not None:
            if in_directory:
                raise StaffInputError(
                    "staff passwords are kept in the LDAP directory "
                    '([directory] backend = "ldap"); set the password there'
                )
            _check_password(password)
        # With a directory the credentials row still holds the hash of a random password
        # that nobody is shown: logins never check it.
        password = password or auth.generate_password()
        password_hash = self._hasher.hash(password)
        secret = auth.new_totp_secret()
        uri = auth.totp_uri(secret, account=name, issuer=self._settings.totp_issuer)
        files = qr_files(uri)
        with self._action("staff.add", name) as tx:
            conn = tx.conn
            if auth.get_staff(conn, name) is not None:
                raise StaffRefused("staff-exists", f"staff member {name} already exists")
            try:
                auth.create_staff(
                    conn,
                    name,
                    role,
                    password_hash=password_hash,
                    totp_secret_sealed=self._seal(name, secret),
                    now=self._clock(),
                )
            except auth.StaffExistsError as e:
                raise StaffRefused("staff-exists", str(e)) from None
            self._event(conn, "staff.add", name, reason=reason, role=role)
            if out is not None:
                tx.write_bundle(out, files)
        return StaffIssued(
            name=name,
            role=role,
            password=None if in_directory else password,
            otp_uri=uri,
            bundle_dir=out,
            files=files,
        )

    def disable(self, name: str, *, reason: str = "") -> StatusChange:
        """No more logins for *name*, and every console session of theirs ends now."""
        return self._set_status(name, "disabled", "staff.disable", reason)

    def enable(self, name: str, *, reason: str = "") -> StatusChange:
        """Let a disabled member log in again (sessions ended by the disable stay ended)."""
        return self._set_status(name, "active", "staff.enable", reason)

    def reset_password(
        self, name: str, *, password: str | None = None, reason: str = ""
    ) -> StaffIssued:
        """A new password (generated unless given), handed back once; the lockout is
        cleared and the member's console sessions end."""
        check_name(name)
        _check_reason(reason)
        if self._settings.passwords_in_directory:
            self._refuse(
                "staff.reset-password",
                name,
                StaffRefused(
                    "password-in-directory",
                    f"the password of {name} is kept in the LDAP directory "
                    '([directory] backend = "ldap"); reset it there '
                    f"(ssgate staff unlock {name} clears a lockout)",
                ),
            )
        if password is not None:
            _check_password(password)
        password = password or auth.generate_password()
        password_hash = self._hasher.hash(password)
        with self._action("staff.reset-password", name) as tx:
            conn = tx.conn
            record = self._member(conn, name)
            now = self._clock()
            # auth.reset_password ends the sessions too; ending them first counts them.
            ended = auth.end_staff_console_sessions(conn, name, reason=END_PASSWORD_RESET, now=now)
            auth.reset_password(conn, name, password_hash, now=now)
            self._event(conn, "staff.reset-password", name, reason=reason, console_sessions=ended)
        return StaffIssued(name=name, role=record.role, password=password, sessions_ended=ended)

    def reset_otp(self, name: str, *, out: Path | None = None, reason: str = "") -> StaffIssued:
        """A new TOTP secret, its QR codes handed back once (and written to *out*); the
        old codes stop working and the member's console sessions end."""
        check_name(name)
        _check_reason(reason)
        self._check_out(out)
        secret = auth.new_totp_secret()
        uri = auth.totp_uri(secret, account=name, issuer=self._settings.totp_issuer)
        files = qr_files(uri)
        with self._action("staff.reset-otp", name) as tx:
            conn = tx.conn
            record = self._member(conn, name)
            now = self._clock()
            ended = auth.end_staff_console_sessions(conn, name, reason=END_OTP_RESET, now=now)
            auth.reset_totp(conn, name, self._seal(name, secret), now=now)
            self._event(conn, "staff.reset-otp", name, reason=reason, console_sessions=ended)
            if out is not None:
                tx.write_bundle(out, files)
        return StaffIssued(
            name=name,
            role=record.role,
            otp_uri=uri,
            bundle_dir=out,
            files=files,
            sessions_ended=ended,
        )

    def unlock(self, name: str, *, reason: str = "") -> auth.CredentialState:
        """Clear the member's failure counters and their timed or hard lock."""
        check_name(name)
        _check_reason(reason)
        with self._action("staff.unlock", name) as tx:
            conn = tx.conn
            self._member(conn, name)
            now = self._clock()
            before = auth.get_credential_state(conn, name)
            if before is None or not (before.is_locked(now) or before.consecutive_failures):
                raise StaffRefused("not-locked", f"staff member {name} is not locked")
            auth.clear_lockout(conn, name, now=now)
            self._event(
                conn,
                "staff.unlock",
                name,
                reason=reason,
                failures=before.consecutive_failures,
                hard_locked=int(before.hard_locked),
            )
            after = auth.get_credential_state(conn, name)
            assert after is not None
        return after

    # -- pieces ------------------------------------------------------------------------

    def _set_status(self, name: str, status: str, action: str, reason: str) -> StatusChange:
        check_name(name)
        _check_reason(reason)
        with self._action(action, name) as tx:
            conn = tx.conn
            current = self._member(conn, name)
            if current.status == status:
                raise StaffRefused("bad-transition", f"staff member {name} is already {status}")
            if status == "disabled" and self._actor == f"staff:{name}":
                # From the console an administrator would lock themselves out with no
                # page left to undo it; another administrator (or the command) can.
                raise StaffRefused("own-account", "you cannot disable your own staff account")
            now = self._clock()
            ended = 0
            if status == "disabled":
                # set_staff_status ends them too; ending them first counts them.
                ended = auth.end_staff_console_sessions(conn, name, reason=END_DISABLED, now=now)
            record = auth.set_staff_status(conn, name, status, now=now)
            self._event(conn, action, name, reason=reason, role=record.role, console_sessions=ended)
        return StatusChange(record, ended)

    def _member(self, conn: Connection, name: str) -> auth.StaffRecord:
        record = auth.get_staff(conn, name)
        if record is None:
            raise StaffRefused("unknown-staff", f"staff member {name} does not exist")
        return record

    def _seal(self, name: str, secret: str) -> str:
        return self._box.seal(secret, context=auth.totp_secret_context(name))

    @staticmethod
    def _check_out(out: Path | None) -> None:
        if out is None:
            return
        try:
            check_bundle_dir(out)
        except BundleError as e:
            raise StaffInputError(str(e)) from None


def check_name(name: str) -> None:
    """Raise :class:`StaffInputError` unless *name* can be a staff name."""
    try:
        auth.check_staff_name(name)
    except auth.StaffNameError as e:
        raise StaffInputError(str(e)) from None


def _check_reason(reason: str) -> None:
    if len(reason) > MAX_REASON:
        raise StaffInputError(f"reason is longer than {MAX_REASON} characters")
    if _CONTROL.search(reason):
        raise StaffInputError("reason must be text without control characters")


def _check_password(password: str) -> None:
    problem = auth.check_password_strength(password)
    if problem:
        raise StaffInputError(f"password refused: {problem}")
