"""The carrier's workflows: open, suspend, resume, cancel, reset, reissue, unlock,
show, search.  (Staff enrolment is the administrator's: ``staffing``.)

Each workflow is one database transaction that also appends its audit event, so an
action and its record commit together.  A refusal rolls the action back and then
appends a ``refused`` event with the reason in a transaction of its own
(:class:`~provisioning._audited.AuditedWorkflows`, shared with ``staffing``).  Nothing
here prints: results come back as values, and the ``ssgate`` command and the
carriers' console pages (:mod:`provisioning._pages`) show them.  Both call these
same methods; :meth:`Provisioner.acting_as` names who acts (``os:<user>`` on the
command line, ``staff:<name>`` in the console).

Everything here blocks (database, argon2, key generation): the console calls it
through ``runner.call``, never on the reactor.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

import auth
import certs
from provisioning._audited import AuditedWorkflows, WorkflowRefused
from provisioning._bundle import BundleError, check_bundle_dir, qr_files, render_profile
from provisioning.interfaces import (
    SessionHistory,
    SessionSummary,
    SessionTerminator,
    UnitDirectory,
)

ACCOUNT_STATUSES = ("active", "suspended", "cancelled")
SEARCH_LIMIT = 200


class ProvisioningRefused(WorkflowRefused):
    """The operation is not allowed in the current state; ``reason`` is a code."""


class ProvisioningInputError(ValueError):
    """The operator's input is malformed."""


@dataclass(frozen=True)
class ProvisioningSettings:
    realms: tuple[str, ...]
    regions: tuple[str, ...]
    gateway_host: str
    gateway_port: int
    totp_issuer: str
    client_cert_days: int = 730
    crl_next_update_days: int = 7


@dataclass(frozen=True)
class Issued:
    """What an operation hands out once: shown to the carrier, never stored in clear."""

    account: str
    password: str | None = field(default=None, repr=False)
    p12_passphrase: str | None = field(default=None, repr=False)
    otp_uri: str | None = field(default=None, repr=False)
    certificate_serial: str | None = None
    bundle_dir: Path | None = None
    # The bundle's files (client.p12, ca.pem, profile.toml, the OTP QR and URI), also
    # when nothing was written to disk: the console hands them out as a zip.
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class AccountView:
    account: auth.AccountRecord
    unit_status: str | None
    certificates: list[certs.CertificateRecord]
    credential: auth.CredentialState | None
    sessions: list[SessionSummary] = field(default_factory=list)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Provisioner(AuditedWorkflows):
    """Carrier workflows over the auth, certs and audit stores."""

    def __init__(
        self,
        *,
        engine: Engine,
        ca: certs.CertificateAuthority,
        box: auth.SecretBox,
        hasher: auth.PasswordHasher,
        units: UnitDirectory,
        settings: ProvisioningSettings,
        publish_crl: Callable[[bytes], None],
        clock: Callable[[], float],
        actor: str,
        sessions: SessionTerminator | None = None,
        history: SessionHistory | None = None,
        session_ref: str = "",
    ) -> None:
        super().__init__(engine=engine, clock=clock, actor=actor, session_ref=session_ref)
        self._ca = ca
        self._box = box
        self._hasher = hasher
        self._units = units
        self._settings = settings
        self._publish_crl = publish_crl
        self._sessions = sessions
        self._history = history

    @property
    def settings(self) -> ProvisioningSettings:
        return self._settings

    # -- helpers -----------------------------------------------------------------------

    def parse(self, account: str) -> auth.AccountName:
        try:
            return auth.parse_account_name(
                account, realms=self._settings.realms, regions=self._settings.regions
            )
        except auth.AccountNameError as e:
            raise ProvisioningInputError(str(e)) from None

    @staticmethod
    def _check_out(out: Path | None) -> None:
        if out is None:
            return
        try:
            check_bundle_dir(out)
        except BundleError as e:
            raise ProvisioningInputError(str(e)) from None

    def _check_password(self, password: str) -> None:
        problem = auth.check_password_strength(password)
        if problem:
            raise ProvisioningInputError(f"password refused: {problem}")

    def _account(self, conn: Connection, name: auth.AccountName) -> auth.AccountRecord:
        record = auth.get_account(conn, str(name))
        if record is None:
            raise ProvisioningRefused("unknown-account", f"account {name} does not exist")
        return record

    def _client_bundle(
        self, name: auth.AccountName, p12_passphrase: str
    ) -> tuple[certs.IssuedCertificate, dict[str, bytes]]:
        now = _utc(self._clock())
        issued = self._ca.issue_client(
            str(name), now=now, validity_days=self._settings.client_cert_days
        )
        files = {
            "client.p12": certs.make_pkcs12(
                issued, self._ca.certificate, p12_passphrase.encode(), friendly_name=str(name)
            ),
            "ca.pem": self._ca.cert_pem(),
            "profile.toml": render_profile(
                account=str(name),
                gateway_host=self._settings.gateway_host,
                gateway_port=self._settings.gateway_port,
                ca_fingerprint=self._ca.fingerprint_sha256(),
            ),
        }
        return issued, files

    def _refresh_crl(self, conn: Connection) -> None:
        now = _utc(self._clock())
        # Stored in this transaction as the current CRL, which every node reloads
        # within seconds (issue 13); the file is this host's copy for other readers.
        crl = certs.sign_crl(
            conn,
            self._ca,
            now=now,
            next_update=timedelta(days=self._settings.crl_next_update_days),
        )
        self._publish_crl(certs.crl_pem(crl))

    def _end_sessions(self, conn: Connection, account: str, reason: str) -> None:
        if self._sessions is not None:
            self._sessions.end_sessions(
                conn, account, reason=reason, now=self._clock(), actor=self._actor
            )

    # -- workflows ---------------------------------------------------------------------

    def open(
        self,
        account: str,
        out: Path | None = None,
        *,
        password: str | None = None,
        p12_passphrase: str | None = None,
        reason: str = "",
    ) -> Issued:
        """Open a channel account for an approved unit; its enrolment bundle comes back
        in :attr:`Issued.files` and is also written to *out* when given."""
        name = self.parse(account)
        self._check_out(out)
        if password is not None:
            self._check_password(password)
        password = password or auth.generate_password()
        p12_passphrase = p12_passphrase or auth.generate_password()
        secret = auth.new_totp_secret()
        uri = auth.totp_uri(secret, account=str(name), issuer=self._settings.totp_issuer)
        password_hash = self._hasher.hash(password)
        with self._action("provision.open", str(name), name.unit_code) as tx:
            conn = tx.conn
            unit = self._units.unit_status(conn, name.unit_code)
            if unit is None:
                raise ProvisioningRefused(
                    "unit-unregistered",
                    f"unit {name.unit_code} is not registered; the agency must register "
                    "and approve it first (ssgate units register / approve)",
                )
            status, region = unit
            if status != "approved":
                raise ProvisioningRefused(
                    "unit-unapproved",
                    f"unit {name.unit_code} is registered but not approved for online service "
                    "(ssgate units approve)",
                )
            if region != name.region:
                raise ProvisioningRefused(
                    "region-mismatch",
                    f"unit {name.unit_code} is registered in region {region}, not {name.region}",
                )
            if auth.get_account(conn, str(name)) is not None:
                raise ProvisioningRefused("account-exists", f"account {name} already exists")
            now = self._clock()
            auth.create_account(
                conn,
                name,
                password_hash=password_hash,
                totp_secret_sealed=self._box.seal(
                    secret, context=auth.totp_secret_context(str(name))
                ),
                now=now,
            )
            issued, files = self._client_bundle(name, p12_passphrase)
            certs.record_certificate(
                conn, issued.certificate, kind="client", subject=str(name), now=_utc(now)
            )
            files.update(qr_files(uri))
            self._event(
                conn,
                "provision.open",
                str(name),
                unit=name.unit_code,
                reason=reason,
                certificate=issued.serial_hex,
            )
            if out is not None:
                tx.write_bundle(out, files)
        return Issued(
            account=str(name),
            password=password,
            p12_passphrase=p12_passphrase,
            otp_uri=uri,
            certificate_serial=issued.serial_hex,
            bundle_dir=out,
            files=files,
        )

    def _set_status(
        self, account: str, status: str, action: str, reason: str
    ) -> auth.AccountRecord:
        name = self.parse(account)
        with self._action(action, str(name), name.unit_code) as tx:
            conn = tx.conn
            self._account(conn, name)
            try:
                record = auth.set_account_status(
                    conn, str(name), status, reason=reason, now=self._clock()
                )
            except auth.AccountStateError as e:
                raise ProvisioningRefused("bad-transition", str(e)) from None
            if status == "cancelled":
                revoked = certs.revoke_subject(
                    conn, str(name), reason="cessation_of_operation", now=_utc(self._clock())
                )
                self._refresh_crl(conn)
                self._event(
                    conn,
                    action,
                    str(name),
                    unit=name.unit_code,
                    reason=reason,
                    certificates=",".join(revoked),
                )
            else:
                self._event(conn, action, str(name), unit=name.unit_code, reason=reason)
            if status != "active":
                self._end_sessions(conn, str(name), "account-" + status)
        return record

    def suspend(self, account: str, *, reason: str = "") -> auth.AccountRecord:
        return self._set_status(account, "suspended", "provision.suspend", reason)

    def resume(self, account: str, *, reason: str = "") -> auth.AccountRecord:
        return self._set_status(account, "active", "provision.resume", reason)

    def cancel(self, account: str, *, reason: str = "") -> auth.AccountRecord:
        return self._set_status(account, "cancelled", "provision.cancel", reason)

    def _require_not_cancelled(self, record: auth.AccountRecord) -> None:
        if record.status == "cancelled":
            raise ProvisioningRefused(
                "account-cancelled", f"account {record.name} is cancelled; open a new account"
            )

    def reset_password(
        self, account: str, *, password: str | None = None, reason: str = ""
    ) -> Issued:
        """A new password (generated unless given); clears the lockout too."""
        name = self.parse(account)
        if password is not None:
            self._check_password(password)
        password = password or auth.generate_password()
        password_hash = self._hasher.hash(password)
        with self._action("provision.reset-password", str(name), name.unit_code) as tx:
            conn = tx.conn
            self._require_not_cancelled(self._account(conn, name))
            auth.reset_password(conn, str(name), password_hash, now=self._clock())
            self._event(
                conn, "provision.reset-password", str(name), unit=name.unit_code, reason=reason
            )
        return Issued(account=str(name), password=password)

    def reset_otp(self, account: str, *, out: Path | None = None, reason: str = "") -> Issued:
        name = self.parse(account)
        self._check_out(out)
        secret = auth.new_totp_secret()
        uri = auth.totp_uri(secret, account=str(name), issuer=self._settings.totp_issuer)
        with self._action("provision.reset-otp", str(name), name.unit_code) as tx:
            conn = tx.conn
            self._require_not_cancelled(self._account(conn, name))
            auth.reset_totp(
                conn,
                str(name),
                self._box.seal(secret, context=auth.totp_secret_context(str(name))),
                now=self._clock(),
            )
            self._event(conn, "provision.reset-otp", str(name), unit=name.unit_code, reason=reason)
            files = qr_files(uri)
            if out is not None:
                tx.write_bundle(out, files)
        return Issued(account=str(name), otp_uri=uri, bundle_dir=out, files=files)

    def reissue_cert(
        self,
        account: str,
        out: Path | None = None,
        *,
        p12_passphrase: str | None = None,
        reason: str = "",
    ) -> Issued:
        """Revoke the account's certificates (superseded) and issue a new bundle."""
        name = self.parse(account)
        self._check_out(out)
        p12_passphrase = p12_passphrase or auth.generate_password()
        with self._action("provision.reissue-cert", str(name), name.unit_code) as tx:
            conn = tx.conn
            self._require_not_cancelled(self._account(conn, name))
            revoked = certs.revoke_subject(
                conn, str(name), reason="superseded", now=_utc(self._clock())
            )
            issued, files = self._client_bundle(name, p12_passphrase)
            certs.record_certificate(
                conn,
                issued.certificate,
                kind="client",
                subject=str(name),
                now=_utc(self._clock()),
            )
            self._refresh_crl(conn)
            self._end_sessions(conn, str(name), "cert-revoked")
            self._event(
                conn,
                "provision.reissue-cert",
                str(name),
                unit=name.unit_code,
                reason=reason,
                certificate=issued.serial_hex,
                revoked=",".join(revoked),
            )
            if out is not None:
                tx.write_bundle(out, files)
        return Issued(
            account=str(name),
            p12_passphrase=p12_passphrase,
            certificate_serial=issued.serial_hex,
            bundle_dir=out,
            files=files,
        )

    def unlock(self, account: str, *, reason: str = "") -> auth.CredentialState:
        """Clear the account's failure counters and its timed or hard lock."""
        name = self.parse(account)
        with self._action("provision.unlock", str(name), name.unit_code) as tx:
            conn = tx.conn
            self._require_not_cancelled(self._account(conn, name))
            now = self._clock()
            before = auth.get_credential_state(conn, str(name))
            if before is None or not (before.is_locked(now) or before.consecutive_failures):
                raise ProvisioningRefused("not-locked", f"account {name} is not locked")
            auth.clear_lockout(conn, str(name), now=now)
            self._event(
                conn,
                "provision.unlock",
                str(name),
                unit=name.unit_code,
                reason=reason,
                failures=before.consecutive_failures,
                hard_locked=int(before.hard_locked),
            )
            after = auth.get_credential_state(conn, str(name))
            assert after is not None
        return after

    def show(self, account: str, *, sessions: int = 20) -> AccountView:
        """An account with its certificates, lockout state and latest *sessions*."""
        name = self.parse(account)
        with self._engine.begin() as conn:
            record = self._account(conn, name)
            unit = self._units.unit_status(conn, name.unit_code)
            return AccountView(
                account=record,
                unit_status=None if unit is None else unit[0],
                certificates=certs.list_certificates(conn, subject=str(name)),
                credential=auth.get_credential_state(conn, str(name)),
                sessions=(
                    []
                    if self._history is None
                    else self._history.recent_sessions(conn, str(name), limit=sessions)
                ),
            )

    def list(self, *, status: str | None = None) -> list[auth.AccountRecord]:
        return self.search(status=status, limit=None)

    def search(
        self,
        *,
        account: str = "",
        unit: str = "",
        status: str | None = None,
        limit: int | None = SEARCH_LIMIT,
    ) -> builtins.list[auth.AccountRecord]:
        """Accounts by name, whose name contains *account* and whose unit code is *unit*
        (each when given), with *status*; at most *limit* of them."""
        if status is not None and status not in ACCOUNT_STATUSES:
            raise ProvisioningInputError(
                f"--status {status!r}: choose active, suspended or cancelled"
            )
        with self._engine.begin() as conn:
            return auth.list_accounts(
                conn,
                status=status,
                unit_code=unit or None,
                name_contains=account or None,
                limit=limit,
            )
