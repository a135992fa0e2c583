"""The two-factor login: password (argon2id) + TOTP, lockout, throttling, replay guard.

:meth:`Authenticator.authenticate` blocks (database and argon2): the gateway calls it on
a dedicated thread pool.  One login is two short transactions around the slow part:

1. *Decide and reserve.*  A throttled source address is refused first, before anything
   about the principal is looked at (a throttled source learns nothing and costs no
   hashing).  An empty password, an unknown principal or a suspended / cancelled /
   disabled one is refused after :meth:`PasswordHasher.burn` — the same cost as a
   wrong password.  Otherwise one attempt is *reserved*: a failure is pre-charged by a
   conditional UPDATE that only succeeds while the principal is not locked, and that
   sets the lock itself when it reaches the threshold.  At most ``threshold`` password
   evaluations can therefore run per lock period, however many arrive in parallel, on
   one node or many.
2. *Evaluate*, outside any transaction: verify the password, open the sealed TOTP
   secret and match the code (±1 step).
3. *Commit the result.*  A correct password and code are accepted only if the code's
   time-step is greater than the last accepted one (conditional UPDATE: the same code
   is accepted once, even by two nodes at the same instant); a success refunds the
   reservation and resets all lockout counters.  Anything else leaves the pre-charged
   failure in place.

Every refusal that guessed a credential counts against the source address.  Reasons in
:class:`AuthOutcome` are for the audit log: never tell a client which factor was wrong.

Where the password is checked is a :class:`~auth._directory.PasswordVerifier`: the
stored argon2id hash for channel accounts, always, and for staff unless a directory is
injected (``staff_passwords``, e.g. :class:`~auth._directory.LdapPasswords`).  A
directory that cannot answer gives ``directory-unavailable``: the reserved attempt is
taken back (:mod:`auth._reservation`) and the source is not charged, because nobody
guessed anything — an outage must not lock staff out.  With a directory the cost of an
unknown staff name (an argon2 burn) is not the cost of a known one (a bind): staff names
are not secret the way channel passwords are, and the source throttle still applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from ._directory import PasswordCheck, PasswordVerifier, SqlPasswords
from ._lockout import LockoutPolicy
from ._passwords import PasswordHasher, check_password_strength
from ._reservation import LockoutCounters, lockout_counters, refund_attempt
from ._secretbox import SecretBox
from ._store import (
    PRINCIPAL_KINDS,
    LoginRecord,
    accept_totp_step,
    load_login,
    record_source_failure,
    reserve_attempt,
    reset_password,
    source_failure_count,
)
from ._totp import match_totp, totp_secret_context

OK = "ok"
UNKNOWN_ACCOUNT = "unknown-account"
ACCOUNT_SUSPENDED = "account-suspended"
ACCOUNT_CANCELLED = "account-cancelled"
STAFF_DISABLED = "staff-disabled"
LOCKED = "locked"
THROTTLED = "throttled"
BAD_PASSWORD = "bad-password"  # noqa: S105 - a reason code, not a password
BAD_OTP = "bad-otp"
OTP_REUSED = "otp-reused"
EMPTY_PASSWORD = "empty-password"  # noqa: S105 - a reason code, not a password
DIRECTORY_UNAVAILABLE = "directory-unavailable"

REASONS = frozenset(
    {
        OK,
        UNKNOWN_ACCOUNT,
        ACCOUNT_SUSPENDED,
        ACCOUNT_CANCELLED,
        STAFF_DISABLED,
        LOCKED,
        THROTTLED,
        BAD_PASSWORD,
        BAD_OTP,
        OTP_REUSED,
        EMPTY_PASSWORD,
        DIRECTORY_UNAVAILABLE,
    }
)

_STATUS_REFUSALS = {
    "suspended": ACCOUNT_SUSPENDED,
    "cancelled": ACCOUNT_CANCELLED,
    "disabled": STAFF_DISABLED,
}


class WeakPasswordError(ValueError):
    """A new password breaks the strength rule; the message says which part."""


class DirectoryPasswordError(ValueError):
    """The password is kept in a directory (LDAP), so ssgate cannot change it."""


@dataclass(frozen=True)
class AuthOutcome:
    """The result of one login attempt.

    ``reason`` is one of :data:`REASONS` (``"ok"`` when ``ok``).  ``unit_code`` is the
    account's unit once the principal is known (None for staff and unknown principals);
    ``totp_step`` is the matched time-step on success and on ``otp-reused``.
    """

    ok: bool
    reason: str
    principal: str
    unit_code: str | None
    totp_step: int | None


@dataclass(frozen=True)
class Reserved:
    """What :meth:`Authenticator.reserve` decided: a refusal (``refusal``), or one
    attempt reserved for ``login``.  Holds the password hash and sealed secret, never
    in its repr."""

    principal: str
    kind: str
    source: str
    refusal: str | None
    login: LoginRecord | None = field(repr=False)
    before: LockoutCounters | None = field(default=None, repr=False)
    after: LockoutCounters | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Checked:
    """What :meth:`Authenticator.check` found: the password's answer and the code's
    matched time-step; ``settled`` is the outcome when step 1 refused already."""

    reserved: Reserved
    password: PasswordCheck | None
    step: int | None = field(repr=False)
    settled: AuthOutcome | None


class Authenticator:
    """Checks password + TOTP for accounts and staff against the database.

    *staff_passwords* checks staff passwords (default: the stored argon2id hash, as for
    channel accounts, whose passwords are always checked in the database).
    """

    def __init__(
        self,
        engine: Engine,
        hasher: PasswordHasher,
        box: SecretBox,
        policy: LockoutPolicy | None = None,
        *,
        staff_passwords: PasswordVerifier | None = None,
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._box = box
        self.policy = policy if policy is not None else LockoutPolicy()
        self.policy.validate()
        sql = SqlPasswords(hasher)
        self._verifiers: dict[str, PasswordVerifier] = {
            "account": sql,
            "staff": staff_passwords if staff_passwords is not None else sql,
            "person": sql,  # insured persons (the portal): always the stored hash
        }

    def __repr__(self) -> str:
        return (
            f"Authenticator({self._engine.url.render_as_string()!r}, {self.policy!r}, "
            f"staff_passwords={self._verifiers['staff']!r})"
        )

    def stores_passwords(self, kind: str) -> bool:
        """False when *kind*'s passwords live in a directory (ssgate cannot change them)."""
        return self._verifiers[kind].stores_passwords

    def authenticate(
        self,
        principal: str,
        password: str,
        otp: str,
        *,
        source: str,
        now: float,
        kind: str = "account",
    ) -> AuthOutcome:
        """Check *password* and *otp* for *principal* arriving from *source* at *now*.

        Blocking; never raises for bad input (the outcome says why it was refused).
        Raises :class:`SecretBoxError` if the stored TOTP secret does not open with this
        authenticator's key: a configuration error, not a login failure (the attempt
        stays counted).
        """
        # 1. Decide and reserve, in one short transaction.
        with self._engine.begin() as conn:
            reserved = self.reserve(conn, principal, password, kind=kind, source=source, now=now)
        # 2. Evaluate, outside any transaction (argon2 or the directory is the slow part).
        checked = self.check(reserved, password, otp, now=now)
        if checked.settled is not None:
            return checked.settled
        # 3. Commit the result.
        with self._engine.begin() as conn:
            return self.settle(conn, checked, now=now)

    # -- the three steps, for callers that run the transactions themselves ----------------
    #
    # The gateway and the dial-in server run :meth:`reserve` and :meth:`settle` in
    # transactions on their database pool (each folded with the rest of that login's
    # database work: the certificate check, the session record, the audit event) and
    # only :meth:`check` on the login pool: the hashing threads never wait for the
    # database, and on SQLite never sleep in its busy handler behind the one writer.

    def reserve(
        self,
        conn: Connection,
        principal: str,
        password: str,
        *,
        source: str,
        now: float,
        kind: str = "account",
    ) -> Reserved:
        """Step 1 in the caller's transaction: the source throttle, the principal, and
        one reserved attempt (a pre-charged failure).  Commit it before :meth:`check`:
        the reservation is what bounds the guesses per lock period."""
        if kind not in PRINCIPAL_KINDS:
            raise ValueError(f"kind must be one of {PRINCIPAL_KINDS}, got {kind!r}")
        # A directory may fail to answer: then keep what the reservation changed, to
        # take it back.  (The stored hash always answers: that path reads nothing more.)
        refundable = not isinstance(self._verifiers[kind], SqlPasswords)
        before = lockout_counters(conn, principal) if refundable else None
        refusal, login = self._decide(conn, principal, password, kind=kind, source=source, now=now)
        after = lockout_counters(conn, principal) if refundable else None
        return Reserved(
            principal=principal,
            kind=kind,
            source=source,
            refusal=refusal,
            login=login,
            before=before,
            after=after,
        )

    def check(self, reserved: Reserved, password: str, otp: str, *, now: float) -> Checked:
        """Step 2, blocking, without the database: verify the password (or burn the
        same cost for a refused principal) and match the code.  ``settled`` is the
        outcome already when nothing is left to commit (a refusal of step 1)."""
        login = reserved.login
        if reserved.refusal in (THROTTLED, LOCKED):
            # Nothing evaluated, nothing burnt.
            return Checked(
                reserved, None, None, _outcome(reserved.refusal, reserved.principal, login)
            )
        if reserved.refusal is not None:
            self._hasher.burn(password)  # the same cost as a wrong password
            return Checked(
                reserved, None, None, _outcome(reserved.refusal, reserved.principal, login)
            )
        assert login is not None
        checked = self._verifiers[reserved.kind].check(login, password)
        if checked is PasswordCheck.UNAVAILABLE:
            return Checked(reserved, checked, None, None)
        secret = self._box.open(
            login.totp_secret_sealed, context=totp_secret_context(login.principal)
        )
        step = match_totp(secret, otp, now=now)
        del secret
        return Checked(reserved, checked, step, None)

    def settle(self, conn: Connection, checked: Checked, *, now: float) -> AuthOutcome:
        """Step 3 in the caller's transaction: accept the code's time-step (once) and
        clear the counters, or count the failure against the source."""
        if checked.settled is not None:
            return checked.settled
        reserved = checked.reserved
        login = reserved.login
        assert login is not None
        if checked.password is PasswordCheck.UNAVAILABLE:
            if reserved.before is not None and reserved.after is not None:
                refund_attempt(
                    conn, login.principal, before=reserved.before, after=reserved.after, now=now
                )
            return _outcome(DIRECTORY_UNAVAILABLE, reserved.principal, login)
        step = checked.step
        if checked.password is not PasswordCheck.RIGHT:
            reason = BAD_PASSWORD
        elif step is None:
            reason = BAD_OTP
        else:
            reason = self._accept(conn, login, step, now)
            if reason == OK:
                return AuthOutcome(
                    ok=True,
                    reason=OK,
                    principal=login.principal,
                    unit_code=login.unit_code,
                    totp_step=step,
                )
        self._count_source_failure(conn, reserved.source, now)
        return _outcome(reason, reserved.principal, login, step if reason == OTP_REUSED else None)

    def change_password(
        self,
        principal: str,
        old_password: str,
        otp: str,
        new_password: str,
        *,
        source: str,
        now: float,
        kind: str = "account",
    ) -> AuthOutcome:
        """Replace the password after a full login with the old one and a fresh code.

        Raises :class:`WeakPasswordError` (before any login attempt) if the new password
        breaks the strength rule or equals the old one, and
        :class:`DirectoryPasswordError` if *kind*'s passwords are kept in a directory.
        """
        if not self.stores_passwords(kind):
            raise DirectoryPasswordError(
                "this password is kept in the staff directory (LDAP): change it there"
            )
        problem = check_password_strength(new_password)
        if problem is not None:
            raise WeakPasswordError(problem)
        if new_password == old_password:
            raise WeakPasswordError("the new password must differ from the current one")
        outcome = self.authenticate(principal, old_password, otp, source=source, now=now, kind=kind)
        if outcome.ok:
            new_hash = self._hasher.hash(new_password)
            with self._engine.begin() as conn:
                reset_password(conn, principal, new_hash, now=now)
        return outcome

    # -- pieces ------------------------------------------------------------------------

    def _decide(
        self,
        conn: Connection,
        principal: str,
        password: str,
        *,
        kind: str,
        source: str,
        now: float,
    ) -> tuple[str | None, LoginRecord | None]:
        """(refusal reason or None if an attempt was reserved, the login record if known)."""
        # The source first: a throttled source learns nothing and costs no hashing.
        if self._is_throttled(conn, source, now):
            return THROTTLED, None
        login = None if password == "" else load_login(conn, principal, kind)
        if password == "":
            refusal = EMPTY_PASSWORD
        elif login is None:
            refusal = UNKNOWN_ACCOUNT
        elif login.status != "active":
            refusal = _STATUS_REFUSALS[login.status]
        elif reserve_attempt(conn, principal, policy=self.policy, now=now):
            return None, login
        else:
            return LOCKED, login
        self._count_source_failure(conn, source, now)
        return refusal, login

    def _is_throttled(self, conn: Connection, source: str, now: float) -> bool:
        count = source_failure_count(
            conn, source, now=now, window_seconds=self.policy.source_window_seconds
        )
        return count >= self.policy.source_max_failures

    def _count_source_failure(self, conn: Connection, source: str, now: float) -> None:
        record_source_failure(
            conn, source, now=now, window_seconds=self.policy.source_window_seconds
        )

    def _accept(self, conn: Connection, login: LoginRecord, step: int, now: float) -> str:
        # Look again, row locked on PostgreSQL: the account may have been suspended, or
        # its password or TOTP secret reset by a carrier, while we were hashing.
        current = load_login(conn, login.principal, login.kind, for_update=True)
        if current is None:
            return UNKNOWN_ACCOUNT
        if current.status != "active":
            return _STATUS_REFUSALS[current.status]
        if not current.same_proofs(login):
            return BAD_PASSWORD
        if accept_totp_step(conn, login.principal, step, now=now):
            return OK
        return OTP_REUSED


def _outcome(
    reason: str, principal: str, login: LoginRecord | None = None, step: int | None = None
) -> AuthOutcome:
    return AuthOutcome(
        ok=False,
        reason=reason,
        principal=principal,
        unit_code=None if login is None else login.unit_code,
        totp_step=step,
    )
