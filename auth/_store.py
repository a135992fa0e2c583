"""Account, staff and credential storage: SQLAlchemy Core functions on a Connection.

Every function takes ``conn`` first and runs inside the caller's transaction (the
caller owns ``BEGIN``/``COMMIT``), and returns plain frozen dataclasses, never Rows.
No secret is ever returned by a public function here except to the authenticator
(:class:`LoginRecord`, whose secret fields are left out of its repr).

The two statements that make logins safe under concurrency — reserving an attempt
(:func:`reserve_attempt`) and accepting a TOTP step (:func:`accept_totp_step`) — are
single conditional UPDATEs: atomic on PostgreSQL by themselves, and serialised on SQLite
by ``BEGIN IMMEDIATE``.  In an UPDATE every right-hand side reads the row as it was
before the statement, on both databases.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exc,
    false,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)

from ._console_sessions import end_staff_console_sessions
from ._lockout import LockoutPolicy
from ._names import AccountName
from ._passwords import ARGON2ID_PREFIX
from ._schema import PRINCIPAL_LENGTH, SOURCE_LENGTH, accounts, credentials, source_failures, staff
from ._secretbox import TOKEN_PREFIX

ACCOUNT_STATUSES = ("active", "suspended", "cancelled")
STAFF_ROLES = ("carrier", "auditor", "officer", "admin")
STAFF_STATUSES = ("active", "disabled")
# "person": an insured person's portal account (``portal/``): always active here; the
# portal owns who the principal is (``person:<ref>``, never an ID number).
PRINCIPAL_KINDS = ("account", "staff", "person")
MAX_REASON_LENGTH = 500

# (from, to) pairs a carrier may apply; cancelled is terminal.
ACCOUNT_TRANSITIONS = frozenset(
    {
        ("active", "suspended"),
        ("suspended", "active"),
        ("active", "cancelled"),
        ("suspended", "cancelled"),
    }
)

_STAFF_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")


class AuthStoreError(Exception):
    """A store operation was refused; the message names the principal and the problem."""


class PrincipalNotFoundError(AuthStoreError, LookupError):
    """No account, staff member or credentials by that name."""


class AccountExistsError(AuthStoreError):
    """An account by that name exists already, in some status."""


class AccountStateError(AuthStoreError):
    """The requested status change is not allowed from the account's current status."""


class StaffExistsError(AuthStoreError):
    """A staff member by that name exists already."""


class StaffNameError(AuthStoreError, ValueError):
    """A staff name breaks the naming rule."""


class CredentialFormatError(AuthStoreError, ValueError):
    """A value meant to be a hash or a sealed secret is not one (a plaintext by mistake?)."""


@dataclass(frozen=True)
class AccountRecord:
    name: str
    region: str
    unit_code: str
    realm: str
    status: str
    status_reason: str | None
    created_at: float
    updated_at: float

    @property
    def account_name(self) -> AccountName:
        return AccountName(region=self.region, unit_code=self.unit_code, realm=self.realm)


@dataclass(frozen=True)
class StaffRecord:
    name: str
    role: str
    status: str
    created_at: float


@dataclass(frozen=True)
class CredentialState:
    """Lockout and enrolment state of a principal, without any secret (``provision show``)."""

    principal: str
    kind: str
    consecutive_failures: int
    total_failures: int
    lock_count: int
    locked_until_at: float | None
    hard_locked: bool
    totp_last_step: int | None
    password_changed_at: float
    updated_at: float

    def is_locked(self, now: float) -> bool:
        return self.hard_locked or (self.locked_until_at is not None and self.locked_until_at > now)


@dataclass(frozen=True)
class LoginRecord:
    """What one login needs: who, whether they may log in, and the (hidden) proofs."""

    principal: str
    kind: str
    status: str
    unit_code: str | None
    password_hash: str = field(repr=False)
    totp_secret_sealed: str = field(repr=False)

    def same_proofs(self, other: LoginRecord) -> bool:
        """True if *other* holds the same password hash and sealed TOTP secret."""
        return hmac.compare_digest(
            self.password_hash.encode(), other.password_hash.encode()
        ) & hmac.compare_digest(self.totp_secret_sealed.encode(), other.totp_secret_sealed.encode())


# -- helpers -------------------------------------------------------------------------------


def is_storable(text: str, max_length: int) -> bool:
    """True if *text* can be a key in both databases (length, no NUL, valid UTF-8)."""
    if len(text) > max_length or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def source_key(source: str) -> str:
    """The ``source_failures`` key for a source address; odd or long ones are hashed."""
    if is_storable(source, SOURCE_LENGTH):
        return source
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    return ("sha256:" + digest)[:SOURCE_LENGTH]


def _check_proof_formats(*, password_hash: str | None, totp_secret_sealed: str | None) -> None:
    if password_hash is not None and not password_hash.startswith(ARGON2ID_PREFIX):
        raise CredentialFormatError(
            "password_hash is not an argon2id hash: store PasswordHasher.hash(...), "
            "never the password"
        )
    if totp_secret_sealed is not None and not totp_secret_sealed.startswith(TOKEN_PREFIX):
        raise CredentialFormatError(
            "totp_secret_sealed is not a sealed secret: store SecretBox.seal(...), never the secret"
        )


def _check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise AuthStoreError(f"reason is longer than {MAX_REASON_LENGTH} characters")


def _account(row: Row[Any]) -> AccountRecord:
    return AccountRecord(
        name=row.name,
        region=row.region,
        unit_code=row.unit_code,
        realm=row.realm,
        status=row.status,
        status_reason=row.status_reason,
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
    )


def _staff(row: Row[Any]) -> StaffRecord:
    return StaffRecord(
        name=row.name, role=row.role, status=row.status, created_at=float(row.created_at)
    )


def _insert_credentials(
    conn: Connection,
    principal: str,
    kind: str,
    *,
    password_hash: str,
    totp_secret_sealed: str,
    now: float,
) -> None:
    conn.execute(
        insert(credentials).values(
            principal=principal,
            kind=kind,
            password_hash=password_hash,
            totp_secret_sealed=totp_secret_sealed,
            totp_last_step=None,
            consecutive_failures=0,
            total_failures=0,
            lock_count=0,
            locked_until_at=None,
            hard_locked=False,
            password_changed_at=now,
            updated_at=now,
        )
    )


# -- accounts ------------------------------------------------------------------------------


def create_account(
    conn: Connection,
    name: AccountName,
    *,
    password_hash: str,
    totp_secret_sealed: str,
    now: float,
) -> AccountRecord:
    """Create an active account with its credentials.

    Raises :class:`AccountExistsError` if the name exists in any status: a cancelled
    account's name is never given out again.
    """
    principal = str(name)
    _check_proof_formats(password_hash=password_hash, totp_secret_sealed=totp_secret_sealed)
    existing = get_account(conn, principal)
    if existing is not None:
        raise AccountExistsError(
            f"account {principal} already exists (status {existing.status}); "
            "an account name is never reused"
        )
    try:
        _insert_credentials(
            conn,
            principal,
            "account",
            password_hash=password_hash,
            totp_secret_sealed=totp_secret_sealed,
            now=now,
        )
        conn.execute(
            insert(accounts).values(
                name=principal,
                region=name.region,
                unit_code=name.unit_code,
                realm=name.realm,
                status="active",
                status_reason=None,
                created_at=now,
                updated_at=now,
            )
        )
    except exc.IntegrityError:
        # Another transaction created it between our check and our insert.
        raise AccountExistsError(f"account {principal} already exists") from None
    record = get_account(conn, principal)
    assert record is not None
    return record


def get_account(conn: Connection, name: str) -> AccountRecord | None:
    if not is_storable(name, PRINCIPAL_LENGTH):
        return None
    row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
    return None if row is None else _account(row)


def list_accounts(
    conn: Connection,
    *,
    status: str | None = None,
    unit_code: str | None = None,
    name_contains: str | None = None,
    limit: int | None = None,
) -> list[AccountRecord]:
    """Accounts ordered by name, optionally only those with *status* / *unit_code* /
    *name_contains* in their name; at most *limit* of them."""
    query = select(accounts).order_by(accounts.c.name).limit(limit)
    if name_contains is not None:
        # autoescape: LIKE's wildcards in the text match themselves.
        query = query.where(accounts.c.name.contains(name_contains, autoescape=True))
    if status is not None:
        if status not in ACCOUNT_STATUSES:
            raise AuthStoreError(
                f"unknown account status {status!r}; one of: {', '.join(ACCOUNT_STATUSES)}"
            )
        query = query.where(accounts.c.status == status)
    if unit_code is not None:
        query = query.where(accounts.c.unit_code == unit_code)
    return [_account(row) for row in conn.execute(query)]


def set_account_status(
    conn: Connection, name: str, status: str, *, reason: str | None, now: float
) -> AccountRecord:
    """Move an account to *status*, recording *reason*.

    Allowed: active→suspended, suspended→active, active|suspended→cancelled.  Anything
    else — including a status to itself, or any change from cancelled — raises
    :class:`AccountStateError`.
    """
    if status not in ACCOUNT_STATUSES:
        raise AccountStateError(
            f"unknown account status {status!r}; one of: {', '.join(ACCOUNT_STATUSES)}"
        )
    _check_reason(reason)
    current = get_account(conn, name)
    if current is None:
        raise PrincipalNotFoundError(f"no account {name!r}")
    if current.status == status:
        raise AccountStateError(f"account {name} is already {status}")
    if current.status == "cancelled":
        raise AccountStateError(f"account {name} is cancelled; cancellation is final")
    if (current.status, status) not in ACCOUNT_TRANSITIONS:
        raise AccountStateError(f"account {name} cannot go from {current.status} to {status}")
    result = conn.execute(
        update(accounts)
        .where(accounts.c.name == name, accounts.c.status == current.status)
        .values(status=status, status_reason=reason, updated_at=now)
    )
    if result.rowcount != 1:
        raise AccountStateError(f"account {name} changed status meanwhile; look again")
    record = get_account(conn, name)
    assert record is not None
    return record


# -- insured persons (the portal) ----------------------------------------------------------

PERSON_PREFIX = "person:"


def create_person_credentials(
    conn: Connection,
    principal: str,
    *,
    password_hash: str,
    totp_secret_sealed: str,
    now: float,
) -> None:
    """The proofs of an insured person's portal login; *principal* is ``person:<ref>``
    (a reference the portal made up, never an ID number).  Raises
    :class:`AccountExistsError` if the principal exists."""
    if not principal.startswith(PERSON_PREFIX) or not is_storable(principal, PRINCIPAL_LENGTH):
        raise AuthStoreError("a person's principal is 'person:' and a reference")
    _check_proof_formats(password_hash=password_hash, totp_secret_sealed=totp_secret_sealed)
    try:
        _insert_credentials(
            conn,
            principal,
            "person",
            password_hash=password_hash,
            totp_secret_sealed=totp_secret_sealed,
            now=now,
        )
    except exc.IntegrityError:
        raise AccountExistsError(f"{principal} already exists") from None


# -- staff ---------------------------------------------------------------------------------


def check_staff_name(name: str) -> None:
    """Raise :class:`StaffNameError` unless *name* matches ``^[a-z][a-z0-9._-]{1,31}$``."""
    if not isinstance(name, str) or _STAFF_NAME.fullmatch(name) is None:
        raise StaffNameError(
            f"staff name {name!r} must be 2-32 characters: a lowercase ASCII letter, then "
            "lowercase letters, digits, '.', '_' or '-'"
        )


def create_staff(
    conn: Connection,
    name: str,
    role: str,
    *,
    password_hash: str,
    totp_secret_sealed: str,
    now: float,
) -> StaffRecord:
    """Create an active staff member with *role* and credentials."""
    check_staff_name(name)
    if role not in STAFF_ROLES:
        raise AuthStoreError(f"unknown staff role {role!r}; one of: {', '.join(STAFF_ROLES)}")
    _check_proof_formats(password_hash=password_hash, totp_secret_sealed=totp_secret_sealed)
    if get_staff(conn, name) is not None:
        raise StaffExistsError(f"staff member {name} already exists")
    try:
        _insert_credentials(
            conn,
            name,
            "staff",
            password_hash=password_hash,
            totp_secret_sealed=totp_secret_sealed,
            now=now,
        )
        conn.execute(insert(staff).values(name=name, role=role, status="active", created_at=now))
    except exc.IntegrityError:
        raise StaffExistsError(f"staff member {name} already exists") from None
    record = get_staff(conn, name)
    assert record is not None
    return record


def get_staff(conn: Connection, name: str) -> StaffRecord | None:
    if not is_storable(name, PRINCIPAL_LENGTH):
        return None
    row = conn.execute(select(staff).where(staff.c.name == name)).first()
    return None if row is None else _staff(row)


def list_staff(conn: Connection) -> list[StaffRecord]:
    return [_staff(row) for row in conn.execute(select(staff).order_by(staff.c.name))]


def set_staff_status(conn: Connection, name: str, status: str, *, now: float) -> StaffRecord:
    """Enable (``active``) or disable (``disabled``) a staff member.

    Disabling ends the member's console sessions in the same transaction; enabling
    does not bring them back.
    """
    if status not in STAFF_STATUSES:
        raise AuthStoreError(
            f"unknown staff status {status!r}; one of: {', '.join(STAFF_STATUSES)}"
        )
    current = get_staff(conn, name)
    if current is None:
        raise PrincipalNotFoundError(f"no staff member {name!r}")
    if current.status == status:
        raise AuthStoreError(f"staff member {name} is already {status}")
    conn.execute(update(staff).where(staff.c.name == name).values(status=status))
    conn.execute(update(credentials).where(credentials.c.principal == name).values(updated_at=now))
    if status == "disabled":
        end_staff_console_sessions(conn, name, reason="staff-disabled", now=now)
    record = get_staff(conn, name)
    assert record is not None
    return record


# -- credentials ---------------------------------------------------------------------------


def _update_credentials(conn: Connection, principal: str, **values: Any) -> None:
    result = conn.execute(
        update(credentials).where(credentials.c.principal == principal).values(**values)
    )
    if result.rowcount != 1:
        raise PrincipalNotFoundError(f"no credentials for {principal!r}")


_CLEARED_LOCKOUT: dict[str, Any] = {
    "consecutive_failures": 0,
    "total_failures": 0,
    "lock_count": 0,
    "locked_until_at": None,
    "hard_locked": False,
}


def reset_password(conn: Connection, principal: str, password_hash: str, *, now: float) -> None:
    """Store a new password hash and clear every lock, the hard lock included.

    A staff member's console sessions end with the old password (a channel account
    has none; its tunnels are the gateway's business).
    """
    _check_proof_formats(password_hash=password_hash, totp_secret_sealed=None)
    _update_credentials(
        conn,
        principal,
        password_hash=password_hash,
        password_changed_at=now,
        updated_at=now,
        **_CLEARED_LOCKOUT,
    )
    end_staff_console_sessions(conn, principal, reason="password-reset", now=now)


def reset_totp(conn: Connection, principal: str, totp_secret_sealed: str, *, now: float) -> None:
    """Store a new sealed TOTP secret; the last-used step is forgotten with the old one,
    and a staff member's console sessions end with it."""
    _check_proof_formats(password_hash=None, totp_secret_sealed=totp_secret_sealed)
    _update_credentials(
        conn,
        principal,
        totp_secret_sealed=totp_secret_sealed,
        totp_last_step=None,
        updated_at=now,
    )
    end_staff_console_sessions(conn, principal, reason="otp-reset", now=now)


def clear_lockout(conn: Connection, principal: str, *, now: float) -> None:
    """Clear failure counters, the timed lock and the hard lock (carrier action)."""
    _update_credentials(conn, principal, updated_at=now, **_CLEARED_LOCKOUT)


def get_credential_state(conn: Connection, principal: str) -> CredentialState | None:
    if not is_storable(principal, PRINCIPAL_LENGTH):
        return None
    c = credentials.c
    row = conn.execute(
        select(
            c.principal,
            c.kind,
            c.consecutive_failures,
            c.total_failures,
            c.lock_count,
            c.locked_until_at,
            c.hard_locked,
            c.totp_last_step,
            c.password_changed_at,
            c.updated_at,
        ).where(c.principal == principal)
    ).first()
    if row is None:
        return None
    return CredentialState(
        principal=row.principal,
        kind=row.kind,
        consecutive_failures=int(row.consecutive_failures),
        total_failures=int(row.total_failures),
        lock_count=int(row.lock_count),
        locked_until_at=None if row.locked_until_at is None else float(row.locked_until_at),
        hard_locked=bool(row.hard_locked),
        totp_last_step=None if row.totp_last_step is None else int(row.totp_last_step),
        password_changed_at=float(row.password_changed_at),
        updated_at=float(row.updated_at),
    )


# -- logins (used by the authenticator) ----------------------------------------------------


# The login path's statements are built once (per kind, per lockout policy) with bound
# parameters: building a SQLAlchemy expression and its cache key costs far more CPU
# than SQLite takes to run it, and a login runs them on every attempt.


@functools.cache
def _login_query(kind: str, for_update: bool) -> Select[Any]:
    c = credentials.c
    if kind == "account":
        query = select(
            c.principal,
            accounts.c.status,
            accounts.c.unit_code,
            c.password_hash,
            c.totp_secret_sealed,
        ).join_from(credentials, accounts, accounts.c.name == c.principal)
    elif kind == "person":
        # The portal's account row decides who may log in; auth keeps only the proofs.
        query = select(
            c.principal,
            literal("active").label("status"),
            literal(None).label("unit_code"),
            c.password_hash,
            c.totp_secret_sealed,
        ).select_from(credentials)
    else:
        query = select(
            c.principal,
            staff.c.status,
            literal(None).label("unit_code"),
            c.password_hash,
            c.totp_secret_sealed,
        ).join_from(credentials, staff, staff.c.name == c.principal)
    query = query.where(c.principal == bindparam("p_principal"), c.kind == kind)
    if for_update:
        query = query.with_for_update()
    return query


def load_login(
    conn: Connection, principal: str, kind: str, *, for_update: bool = False
) -> LoginRecord | None:
    """The login record of an account (``kind="account"``), staff member or insured
    person (``kind="person"``), or None."""
    if kind not in PRINCIPAL_KINDS:
        raise ValueError(f"kind must be one of {PRINCIPAL_KINDS}, got {kind!r}")
    if not is_storable(principal, PRINCIPAL_LENGTH):
        return None
    row = conn.execute(_login_query(kind, for_update), {"p_principal": principal}).first()
    if row is None:
        return None
    return LoginRecord(
        principal=row.principal,
        kind=kind,
        status=row.status,
        unit_code=row.unit_code,
        password_hash=row.password_hash,
        totp_secret_sealed=row.totp_secret_sealed,
    )


def _lock_seconds_expr(policy: LockoutPolicy) -> ColumnElement[Any]:
    """SQL for ``policy.lock_seconds(lock_count)``: portable, no power() needed."""
    schedule = policy.growing_lock_seconds()
    if not schedule:
        return literal(float(policy.max_lock_seconds), Float)
    return case(
        dict(enumerate(schedule)),
        value=credentials.c.lock_count,
        else_=literal(float(policy.max_lock_seconds), Float),
    )


@functools.cache
def _reserve_statement(policy: LockoutPolicy) -> Update:
    c = credentials.c
    now = bindparam("p_now", type_=Float)
    next_consecutive = case(
        (c.locked_until_at.is_(None), c.consecutive_failures + 1), else_=literal(1)
    )
    reaches_threshold = next_consecutive >= policy.threshold
    return (
        update(credentials)
        .where(
            c.principal == bindparam("p_principal"),
            c.hard_locked == false(),
            or_(
                and_(c.locked_until_at.is_(None), c.consecutive_failures < policy.threshold),
                c.locked_until_at <= now,
            ),
        )
        .values(
            consecutive_failures=next_consecutive,
            total_failures=c.total_failures + 1,
            locked_until_at=case(
                (reaches_threshold, now + _lock_seconds_expr(policy)),
                else_=null(),
            ),
            lock_count=case((reaches_threshold, c.lock_count + 1), else_=c.lock_count),
            hard_locked=case((c.total_failures + 1 >= policy.hard_cap, true()), else_=false()),
            updated_at=now,
        )
    )


def reserve_attempt(conn: Connection, principal: str, *, policy: LockoutPolicy, now: float) -> bool:
    """Pre-charge one failure before a password is evaluated; False if locked.

    The attempt is granted only while the principal is not hard-locked and either has
    fewer than ``threshold`` consecutive failures and no lock, or its lock has expired
    (then a new round starts at one failure).  The reservation that reaches the
    threshold sets the next, longer lock and the one that reaches ``hard_cap`` sets the
    hard lock, in the same statement — so however many attempts arrive at once, at most
    ``threshold`` are ever granted per lock period.  A success refunds (see
    :func:`accept_totp_step`); a failure leaves the charge in place.
    """
    result = conn.execute(_reserve_statement(policy), {"p_principal": principal, "p_now": now})
    return result.rowcount == 1


_ACCEPT_STEP = (
    update(credentials)
    .where(
        credentials.c.principal == bindparam("p_principal"),
        or_(
            credentials.c.totp_last_step.is_(None),
            credentials.c.totp_last_step < bindparam("p_step"),
        ),
    )
    .values(
        totp_last_step=bindparam("p_step"),
        updated_at=bindparam("p_now", type_=Float),
        **_CLEARED_LOCKOUT,
    )
)


def accept_totp_step(conn: Connection, principal: str, step: int, *, now: float) -> bool:
    """Record a successful login at TOTP *step* if the step is fresh; False if reused.

    Fresh means greater than the last accepted step: a code can be used once only, and
    never an older one after a newer.  A success refunds the pre-charged attempt and
    resets every lockout counter, so the hard cap counts failures since the last
    success or carrier reset.
    """
    result = conn.execute(_ACCEPT_STEP, {"p_principal": principal, "p_step": step, "p_now": now})
    return result.rowcount == 1


# -- source addresses ----------------------------------------------------------------------


_SOURCE_FAILURES = select(source_failures.c.window_started_at, source_failures.c.failures).where(
    source_failures.c.source == bindparam("p_source")
)


def source_failure_count(
    conn: Connection, source: str, *, now: float, window_seconds: float
) -> int:
    """Refused attempts from *source* in its current window (0 if the window expired)."""
    row = conn.execute(_SOURCE_FAILURES, {"p_source": source_key(source)}).first()
    if row is None or float(row.window_started_at) + window_seconds <= now:
        return 0
    return int(row.failures)


def record_source_failure(
    conn: Connection, source: str, *, now: float, window_seconds: float
) -> None:
    """Count one refused attempt from *source*; an expired window restarts at *now*."""
    t = source_failures.c
    expired = t.window_started_at + window_seconds <= now
    values = {"source": source_key(source), "window_started_at": now, "failures": 1}
    on_conflict: dict[str, Any] = {
        "failures": case((expired, literal(1)), else_=t.failures + 1),
        "window_started_at": case((expired, literal(float(now), Float)), else_=t.window_started_at),
    }
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        conn.execute(
            postgresql.insert(source_failures)
            .values(values)
            .on_conflict_do_update(index_elements=[t.source], set_=on_conflict)
        )
    else:
        from sqlalchemy.dialects import sqlite

        conn.execute(
            sqlite.insert(source_failures)
            .values(values)
            .on_conflict_do_update(index_elements=[t.source], set_=on_conflict)
        )


def prune_source_failures(conn: Connection, *, now: float, window_seconds: float) -> int:
    """Delete the counters whose window has expired; returns how many."""
    result = conn.execute(
        delete(source_failures).where(source_failures.c.window_started_at + window_seconds <= now)
    )
    return int(result.rowcount)
