"""The two-factor login on SQLite and PostgreSQL: outcomes, lockout, throttling, cost parity."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from auth import (
    AccountName,
    Argon2Params,
    Authenticator,
    AuthOutcome,
    LockoutPolicy,
    PasswordHasher,
    SecretBox,
    WeakPasswordError,
    clear_lockout,
    create_account,
    create_staff,
    current_code,
    generate_password,
    get_credential_state,
    new_totp_secret,
    reset_password,
    reset_totp,
    set_account_status,
    set_staff_status,
    totp_secret_context,
    totp_step,
)
from auth._totp import code_for_step

NOW = 1_767_225_615.0  # 15 s into a TOTP step
STEP = 30.0
PRINCIPAL = "33068212345678@sxlss"
SOURCE = "203.0.113.7"
# Source throttling off unless a test is about it.
POLICY = LockoutPolicy(source_max_failures=100_000)


class CountingHasher(PasswordHasher):
    """The real hasher, counting every argon2 evaluation (verify or burn)."""

    def __init__(self) -> None:
        super().__init__(Argon2Params())
        self._lock = threading.Lock()
        self.verifies = 0
        self.burns = 0
        self.during_verify: list[object] = []

    def verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.verifies += 1
        for hook in self.during_verify:
            assert callable(hook)
            hook()
        return super().verify(stored, password)

    def burn(self, password: str) -> None:
        with self._lock:
            self.burns += 1
        super().burn(password)

    @property
    def evaluations(self) -> int:
        return self.verifies + self.burns

    def reset(self) -> None:
        self.verifies = self.burns = 0


@dataclasses.dataclass
class Login:
    """One enrolled principal and the means to try logging in as it."""

    authenticator: Authenticator
    hasher: CountingHasher
    engine: Engine
    principal: str
    password: str = dataclasses.field(repr=False)
    secret: str = dataclasses.field(repr=False)
    kind: str = "account"

    def attempt(
        self,
        *,
        now: float,
        password: str | None = None,
        otp: str | None = None,
        source: str = SOURCE,
        principal: str | None = None,
    ) -> AuthOutcome:
        return self.authenticator.authenticate(
            self.principal if principal is None else principal,
            self.password if password is None else password,
            current_code(self.secret, now) if otp is None else otp,
            source=source,
            now=now,
            kind=self.kind,
        )


@pytest.fixture(scope="module")
def counting_hasher() -> CountingHasher:
    return CountingHasher()


def _enrol(
    db: Engine,
    hasher: CountingHasher,
    box: SecretBox,
    policy: LockoutPolicy = POLICY,
    *,
    kind: str = "account",
) -> Login:
    password, secret = generate_password(), new_totp_secret()
    principal = PRINCIPAL if kind == "account" else "zhang.wei"
    sealed = box.seal(secret, context=totp_secret_context(principal))
    with db.begin() as conn:
        if kind == "account":
            name = AccountName(region="330682", unit_code="12345678", realm="sxlss")
            create_account(
                conn, name, password_hash=hasher.hash(password), totp_secret_sealed=sealed, now=0.0
            )
        else:
            create_staff(
                conn,
                principal,
                "carrier",
                password_hash=hasher.hash(password),
                totp_secret_sealed=sealed,
                now=0.0,
            )
    hasher.reset()
    hasher.during_verify.clear()
    return Login(
        Authenticator(db, hasher, box, policy), hasher, db, principal, password, secret, kind
    )


@pytest.fixture
def login(db: Engine, counting_hasher: CountingHasher, box: SecretBox) -> Login:
    return _enrol(db, counting_hasher, box)


def _state(login: Login) -> tuple[int, int, int, float | None, bool]:
    with login.engine.begin() as conn:
        state = get_credential_state(conn, login.principal)
    assert state is not None
    return (
        state.consecutive_failures,
        state.total_failures,
        state.lock_count,
        state.locked_until_at,
        state.hard_locked,
    )


# -- the happy path and the replay guard ---------------------------------------------------


def test_the_right_password_and_a_fresh_code_log_in(login: Login) -> None:
    outcome = login.attempt(now=NOW)
    assert outcome == AuthOutcome(
        ok=True, reason="ok", principal=PRINCIPAL, unit_code="12345678", totp_step=totp_step(NOW)
    )
    assert login.hasher.evaluations == 1


def test_the_same_time_step_is_accepted_once_only(login: Login) -> None:
    assert login.attempt(now=NOW).reason == "ok"
    again = login.attempt(now=NOW + 5)
    assert (again.ok, again.reason, again.totp_step) == (False, "otp-reused", totp_step(NOW))
    assert login.attempt(now=NOW + STEP).reason == "ok"


def test_an_older_step_is_refused_after_a_newer_one_was_used(login: Login) -> None:
    step = totp_step(NOW)
    assert login.attempt(now=NOW, otp=code_for_step(login.secret, step + 1)).reason == "ok"
    assert login.attempt(now=NOW, otp=code_for_step(login.secret, step)).reason == "otp-reused"


def test_a_reused_code_keeps_its_pre_charged_failure(login: Login) -> None:
    login.attempt(now=NOW)
    login.attempt(now=NOW)
    assert _state(login)[:2] == (1, 1)


def test_two_threads_with_the_same_code_at_once_get_exactly_one_login(login: Login) -> None:
    for round_ in range(5):
        now = NOW + round_ * STEP
        barrier = threading.Barrier(2)

        def race(now: float = now, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return login.attempt(now=now).reason

        with ThreadPoolExecutor(max_workers=2) as pool:
            reasons = sorted(pool.map(lambda _: race(), range(2)))
        assert reasons == ["ok", "otp-reused"], f"round {round_}"


# -- wrong factors ---------------------------------------------------------------------------


def test_a_wrong_password_is_bad_password_even_with_a_right_code(login: Login) -> None:
    outcome = login.attempt(now=NOW, password=login.password + "x")
    assert (outcome.ok, outcome.reason, outcome.unit_code) == (False, "bad-password", "12345678")
    assert _state(login)[:2] == (1, 1)


@pytest.mark.parametrize("otp", ["000000x", "12345", "", "１２３４５６", "999999"])
def test_a_wrong_or_malformed_code_is_bad_otp(login: Login, otp: str) -> None:
    valid = {code_for_step(login.secret, totp_step(NOW) + d) for d in (-1, 0, 1)}
    if otp in valid:
        pytest.skip("the random secret happens to produce this code")
    assert login.attempt(now=NOW, otp=otp).reason == "bad-otp"
    assert login.hasher.verifies == 1


def test_a_full_width_copy_of_the_right_code_is_refused(login: Login) -> None:
    code = current_code(login.secret, NOW)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert login.attempt(now=NOW, otp=full_width).reason == "bad-otp"


def test_a_success_resets_every_lockout_counter(login: Login) -> None:
    for _ in range(3):
        login.attempt(now=NOW, password="wrong")
    assert _state(login)[:2] == (3, 3)
    assert login.attempt(now=NOW).reason == "ok"
    assert _state(login) == (0, 0, 0, None, False)


# -- cost parity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown", "unknown-account"),
        ("wrong-password", "bad-password"),
        ("empty-password", "empty-password"),
        ("suspended", "account-suspended"),
        ("cancelled", "account-cancelled"),
        ("right", "ok"),
    ],
)
def test_every_evaluated_refusal_costs_exactly_one_argon2_run(
    login: Login, case: str, reason: str
) -> None:
    """Unknown account, wrong password, empty password and refused status all hash once."""
    if case in ("suspended", "cancelled"):
        with login.engine.begin() as conn:
            set_account_status(conn, PRINCIPAL, case, reason="t", now=NOW)
    kwargs: dict[str, str] = {
        "unknown": {"principal": "33068299999999@sxlss"},
        "wrong-password": {"password": "Wrong-Password-1"},
        "empty-password": {"password": ""},
    }.get(case, {})
    outcome = login.attempt(now=NOW, **kwargs)
    assert outcome.reason == reason
    assert login.hasher.evaluations == 1


@pytest.mark.parametrize(
    "principal", ["", "x" * 10_000, "3306821234\x005678@sxlss", "\udcff@sxlss", "zhang.wei"]
)
def test_odd_principals_are_unknown_accounts_and_never_raise(login: Login, principal: str) -> None:
    assert login.attempt(now=NOW, principal=principal).reason == "unknown-account"
    assert login.hasher.evaluations == 1


# -- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["suspended", "cancelled"])
def test_suspended_and_cancelled_accounts_are_refused_with_the_right_credentials(
    login: Login, status: str
) -> None:
    with login.engine.begin() as conn:
        set_account_status(conn, PRINCIPAL, status, reason="t", now=NOW)
    outcome = login.attempt(now=NOW)
    assert (outcome.ok, outcome.reason) == (False, f"account-{status}")
    assert login.hasher.verifies == 0  # burnt, not verified: a refused account is no oracle


def test_a_resumed_account_logs_in_again(login: Login) -> None:
    with login.engine.begin() as conn:
        set_account_status(conn, PRINCIPAL, "suspended", reason="arrears", now=NOW)
    assert login.attempt(now=NOW).reason == "account-suspended"
    with login.engine.begin() as conn:
        set_account_status(conn, PRINCIPAL, "active", reason="paid", now=NOW + 1)
    assert login.attempt(now=NOW + 1).reason == "ok"


def test_an_account_suspended_while_its_password_was_being_checked_is_refused(
    login: Login,
) -> None:
    def suspend() -> None:
        with login.engine.begin() as conn:
            set_account_status(conn, PRINCIPAL, "suspended", reason="now", now=NOW)

    login.hasher.during_verify.append(suspend)
    assert login.attempt(now=NOW).reason == "account-suspended"


def test_a_password_reset_while_the_old_one_was_being_checked_refuses_the_old_one(
    login: Login,
) -> None:
    new_hash = login.hasher.hash("New-Password-42")
    login.hasher.during_verify.append(
        lambda: _in_tx(
            login.engine, lambda conn: reset_password(conn, PRINCIPAL, new_hash, now=NOW)
        )
    )
    assert login.attempt(now=NOW).reason == "bad-password"


def _in_tx(engine: Engine, fn: object) -> None:
    assert callable(fn)
    with engine.begin() as conn:
        fn(conn)


def test_staff_log_in_with_kind_staff_and_disabled_staff_are_refused(
    db: Engine, counting_hasher: CountingHasher, box: SecretBox
) -> None:
    staff = _enrol(db, counting_hasher, box, kind="staff")
    outcome = staff.attempt(now=NOW)
    assert (outcome.ok, outcome.principal, outcome.unit_code) == (True, "zhang.wei", None)
    as_account = staff.authenticator.authenticate(
        "zhang.wei",
        staff.password,
        current_code(staff.secret, NOW + STEP),
        source=SOURCE,
        now=NOW + STEP,
    )
    assert as_account.reason == "unknown-account"
    with db.begin() as conn:
        set_staff_status(conn, "zhang.wei", "disabled", now=NOW)
    assert staff.attempt(now=NOW + 2 * STEP).reason == "staff-disabled"


# -- lockout --------------------------------------------------------------------------------


def test_a_locked_account_refuses_the_right_password_and_a_fresh_code_until_the_lock_ends(
    login: Login,
) -> None:
    for _ in range(5):
        assert login.attempt(now=NOW, password="Wrong-Password-1").reason == "bad-password"
    assert _state(login) == (5, 5, 1, NOW + 60.0, False)
    login.hasher.reset()
    refused = login.attempt(now=NOW + 59)
    assert (refused.ok, refused.reason) == (False, "locked")
    assert login.hasher.evaluations == 0  # not even looked at
    assert login.attempt(now=NOW + 60).reason == "ok"
    assert _state(login) == (0, 0, 0, None, False)


def test_each_lock_period_is_twice_as_long_as_the_one_before(login: Login) -> None:
    now = NOW
    for expected in (60.0, 120.0, 240.0):
        for _ in range(5):
            assert login.attempt(now=now, password="Wrong-Password-1").reason == "bad-password"
        consecutive, _, _, locked_until, _ = _state(login)
        assert (consecutive, locked_until) == (5, now + expected)
        assert login.attempt(now=now + expected - 1, password="x").reason == "locked"
        now += expected
    assert _state(login)[2] == 3


def test_the_lock_period_stops_growing_at_the_maximum(
    db: Engine, counting_hasher: CountingHasher, box: SecretBox
) -> None:
    policy = dataclasses.replace(
        POLICY, threshold=1, base_lock_seconds=60.0, max_lock_seconds=200.0, hard_cap=10
    )
    login = _enrol(db, counting_hasher, box, policy)
    now = NOW
    lengths = []
    for _ in range(5):
        login.attempt(now=now, password="x1")
        locked_until = _state(login)[3]
        assert locked_until is not None
        lengths.append(locked_until - now)
        now = locked_until
    assert lengths == [60.0, 120.0, 200.0, 200.0, 200.0]


def test_the_hard_cap_locks_until_a_carrier_resets_the_password_or_clears_the_lock(
    login: Login,
) -> None:
    now = NOW
    for _ in range(4):  # 4 rounds x 5 failures = hard_cap 20
        for _ in range(5):
            assert login.attempt(now=now, password="Wrong-Password-1").reason == "bad-password"
        locked_until = _state(login)[3]
        assert locked_until is not None
        now = locked_until
    assert _state(login)[1:] == (20, 4, now, True)
    assert login.attempt(now=now + 10**7).reason == "locked"
    with login.engine.begin() as conn:
        clear_lockout(conn, PRINCIPAL, now=now)
    assert login.attempt(now=now + 10**7).reason == "ok"

    for _ in range(4):
        for _ in range(5):
            login.attempt(now=now, password="Wrong-Password-1")
        locked_until = _state(login)[3]
        assert locked_until is not None
        now = locked_until
    assert _state(login)[4] is True
    assert login.attempt(now=now + 10**7).reason == "locked"
    with login.engine.begin() as conn:
        reset_password(conn, PRINCIPAL, login.hasher.hash("Fresh-Password-7"), now=now)
    assert login.attempt(now=now + 10**7 + STEP, password="Fresh-Password-7").reason == "ok"


def test_the_attempt_that_reaches_the_caps_is_still_evaluated_and_a_success_refunds_it(
    db: Engine, counting_hasher: CountingHasher, box: SecretBox
) -> None:
    """Reserving the third of threshold = hard_cap = 3 sets both locks; the right
    password and code on that very attempt log in and clear them."""
    policy = dataclasses.replace(POLICY, threshold=3, hard_cap=3)
    login = _enrol(db, counting_hasher, box, policy)
    for _ in range(2):
        assert login.attempt(now=NOW, password="Wrong-Password-1").reason == "bad-password"
    assert login.attempt(now=NOW).reason == "ok"
    assert _state(login) == (0, 0, 0, None, False)
    for _ in range(3):
        assert login.attempt(now=NOW, password="Wrong-Password-1").reason == "bad-password"
    assert _state(login) == (3, 3, 1, NOW + 60.0, True)
    assert login.attempt(now=NOW + 10**6).reason == "locked"


def test_fifty_parallel_wrong_passwords_get_at_most_threshold_evaluations(login: Login) -> None:
    """The pre-charge: attempts beyond the threshold are never evaluated, even at once."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        reasons = list(
            pool.map(
                lambda i: (
                    login.attempt(now=NOW, password=f"Wrong-{i}", source=f"10.0.0.{i}").reason
                ),
                range(50),
            )
        )
    assert login.hasher.verifies == 5
    assert login.hasher.burns == 0
    assert sorted(set(reasons)) == ["bad-password", "locked"]
    assert reasons.count("bad-password") == 5
    assert reasons.count("locked") == 45
    assert _state(login) == (5, 5, 1, NOW + 60.0, False)


def test_a_reset_totp_secret_takes_effect_and_the_old_one_stops_working(
    login: Login, box: SecretBox
) -> None:
    assert login.attempt(now=NOW).reason == "ok"
    new_secret = new_totp_secret()
    with login.engine.begin() as conn:
        reset_totp(
            conn, PRINCIPAL, box.seal(new_secret, context=totp_secret_context(PRINCIPAL)), now=NOW
        )
    later = NOW + STEP
    assert login.attempt(now=later).reason in ("bad-otp", "ok")  # ok only by 1e-6 chance
    assert login.attempt(now=later, otp=current_code(new_secret, later)).reason == "ok"


def test_a_sealed_secret_copied_to_another_principal_does_not_open(
    login: Login, box: SecretBox
) -> None:
    other = AccountName(region="330682", unit_code="87654321", realm="sxlss")
    with login.engine.begin() as conn:
        create_account(
            conn,
            other,
            password_hash=login.hasher.hash(login.password),
            totp_secret_sealed=box.seal(login.secret, context=totp_secret_context(PRINCIPAL)),
            now=NOW,
        )
    from auth import SecretBoxError

    with pytest.raises(SecretBoxError):
        login.attempt(now=NOW, principal=str(other))


# -- source throttle ------------------------------------------------------------------------


def test_a_source_is_throttled_after_its_failures_and_nothing_more_is_evaluated(
    db: Engine, counting_hasher: CountingHasher, box: SecretBox
) -> None:
    policy = LockoutPolicy(source_max_failures=6, source_window_seconds=900.0)
    login = _enrol(db, counting_hasher, box, policy)
    for i in range(6):  # unknown names: no account lock gets in the way
        outcome = login.attempt(now=NOW + i, principal=f"3306829999999{i}@sxlss")
        assert outcome.reason == "unknown-account"
    login.hasher.reset()
    for attempt in (
        {"principal": "33068299999990@sxlss"},
        {"password": ""},
        {},  # even the right credentials
    ):
        assert login.attempt(now=NOW + 10, **attempt).reason == "throttled"
    assert login.hasher.evaluations == 0
    assert login.attempt(now=NOW + 10, source="198.51.100.1").reason == "ok"
    assert login.attempt(now=NOW + 900 + STEP).reason == "ok"  # the window has passed


def test_bad_passwords_and_bad_codes_count_against_the_source_but_locks_do_not(
    db: Engine, counting_hasher: CountingHasher, box: SecretBox
) -> None:
    policy = LockoutPolicy(threshold=2, hard_cap=20, source_max_failures=3)
    login = _enrol(db, counting_hasher, box, policy)
    assert login.attempt(now=NOW, password="Wrong-1").reason == "bad-password"
    assert login.attempt(now=NOW, otp="000000x").reason == "bad-otp"
    for _ in range(5):
        assert login.attempt(now=NOW + 1).reason == "locked"
    assert login.attempt(now=NOW + 60, password="").reason == "empty-password"
    assert login.attempt(now=NOW + 60).reason == "throttled"


# -- changing a password --------------------------------------------------------------------


def test_change_password_needs_a_full_login_and_a_strong_new_password(login: Login) -> None:
    with pytest.raises(WeakPasswordError, match="at least 10"):
        login.authenticator.change_password(
            PRINCIPAL,
            login.password,
            current_code(login.secret, NOW),
            "short",
            source=SOURCE,
            now=NOW,
        )
    with pytest.raises(WeakPasswordError, match="differ"):
        login.authenticator.change_password(
            PRINCIPAL,
            login.password,
            current_code(login.secret, NOW),
            login.password,
            source=SOURCE,
            now=NOW,
        )
    assert login.hasher.evaluations == 0
    refused = login.authenticator.change_password(
        PRINCIPAL,
        "Wrong-Password-1",
        current_code(login.secret, NOW),
        "Brand-New-Pass-3",
        source=SOURCE,
        now=NOW,
    )
    assert refused.reason == "bad-password"
    changed = login.authenticator.change_password(
        PRINCIPAL,
        login.password,
        current_code(login.secret, NOW),
        "Brand-New-Pass-3",
        source=SOURCE,
        now=NOW,
    )
    assert changed.ok
    later = NOW + STEP
    assert login.attempt(now=later).reason == "bad-password"
    assert login.attempt(now=later, password="Brand-New-Pass-3").reason == "ok"


def test_outcomes_and_the_authenticator_never_show_a_secret(login: Login) -> None:
    outcome = login.attempt(now=NOW)
    text = repr(outcome) + repr(login.authenticator) + repr(login)
    for secret in (login.password, login.secret):
        assert secret not in text
