"""The account / staff / credential store on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import Engine

from auth import (
    AccountExistsError,
    AccountName,
    AccountStateError,
    AuthStoreError,
    CredentialFormatError,
    CredentialState,
    LockoutPolicy,
    PasswordHasher,
    PrincipalNotFoundError,
    SecretBox,
    StaffExistsError,
    StaffNameError,
    clear_lockout,
    create_account,
    create_staff,
    generate_password,
    get_account,
    get_credential_state,
    get_staff,
    list_accounts,
    list_staff,
    new_totp_secret,
    prune_source_failures,
    reset_password,
    reset_totp,
    set_account_status,
    set_staff_status,
    totp_secret_context,
)
from auth._store import (
    accept_totp_step,
    record_source_failure,
    reserve_attempt,
    source_failure_count,
    source_key,
)

NOW = 1_767_225_600.0
NAME = AccountName(region="330682", unit_code="12345678", realm="sxlss")
OTHER = AccountName(region="330604", unit_code="87654321", realm="sxlss")


def _proofs(hasher: PasswordHasher, box: SecretBox, principal: str) -> dict[str, str]:
    return {
        "password_hash": hasher.hash(generate_password()),
        "totp_secret_sealed": box.seal(new_totp_secret(), context=totp_secret_context(principal)),
    }


def _open(db: Engine, hasher: PasswordHasher, box: SecretBox, name: AccountName) -> None:
    with db.begin() as conn:
        create_account(conn, name, now=NOW, **_proofs(hasher, box, str(name)))


def test_a_new_account_is_active_and_read_back_as_a_plain_record(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    with db.begin() as conn:
        record = create_account(conn, NAME, now=NOW, **_proofs(hasher, box, str(NAME)))
    assert dataclasses.asdict(record) == {
        "name": "33068212345678@sxlss",
        "region": "330682",
        "unit_code": "12345678",
        "realm": "sxlss",
        "status": "active",
        "status_reason": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    with db.begin() as conn:
        assert get_account(conn, "33068212345678@sxlss") == record
        assert get_account(conn, "33068299999999@sxlss") is None
        assert get_account(conn, "x\x00y") is None
    assert record.account_name == NAME


@pytest.mark.parametrize("status", ["active", "suspended", "cancelled"])
def test_an_existing_name_is_never_created_again_whatever_its_status(
    db: Engine, hasher: PasswordHasher, box: SecretBox, status: str
) -> None:
    _open(db, hasher, box, NAME)
    if status != "active":
        with db.begin() as conn:
            set_account_status(conn, str(NAME), status, reason="test", now=NOW + 1)
    with db.begin() as conn, pytest.raises(AccountExistsError, match=f"status {status}"):
        create_account(conn, NAME, now=NOW + 2, **_proofs(hasher, box, str(NAME)))


def test_a_plaintext_password_or_secret_is_refused_by_the_store(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    proofs = _proofs(hasher, box, str(NAME))
    with db.begin() as conn:
        with pytest.raises(CredentialFormatError, match="argon2id") as caught:
            create_account(
                conn,
                NAME,
                password_hash="Hunter2-Hunter2",
                now=NOW,
                totp_secret_sealed=proofs["totp_secret_sealed"],
            )
        assert "Hunter2" not in str(caught.value)
        secret = new_totp_secret()
        with pytest.raises(CredentialFormatError, match="sealed") as caught:
            create_account(
                conn,
                NAME,
                password_hash=proofs["password_hash"],
                now=NOW,
                totp_secret_sealed=secret,
            )
        assert secret not in str(caught.value)
        assert get_account(conn, str(NAME)) is None


def test_accounts_are_listed_by_name_and_filtered_by_status_and_unit(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    _open(db, hasher, box, OTHER)
    _open(db, hasher, box, NAME)
    with db.begin() as conn:
        set_account_status(conn, str(OTHER), "suspended", reason="arrears", now=NOW + 5)
        assert [a.name for a in list_accounts(conn)] == [str(OTHER), str(NAME)]
        assert [a.name for a in list_accounts(conn, status="active")] == [str(NAME)]
        assert [a.name for a in list_accounts(conn, unit_code="87654321")] == [str(OTHER)]
        assert list_accounts(conn, status="suspended", unit_code="12345678") == []
        with pytest.raises(AuthStoreError, match="unknown account status 'closed'"):
            list_accounts(conn, status="closed")


@pytest.mark.parametrize(
    "path",
    [
        ["suspended"],
        ["suspended", "active"],
        ["suspended", "active", "suspended", "cancelled"],
        ["cancelled"],
        ["suspended", "cancelled"],
    ],
)
def test_allowed_status_transitions_apply_with_their_reason_and_time(
    db: Engine, hasher: PasswordHasher, box: SecretBox, path: list[str]
) -> None:
    _open(db, hasher, box, NAME)
    for offset, status in enumerate(path, start=1):
        with db.begin() as conn:
            record = set_account_status(
                conn, str(NAME), status, reason=f"step {offset}", now=NOW + offset
            )
        assert (record.status, record.status_reason, record.updated_at) == (
            status,
            f"step {offset}",
            NOW + offset,
        )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (["active"], "already active"),
        (["suspended", "suspended"], "already suspended"),
        (["cancelled", "active"], "cancellation is final"),
        (["cancelled", "suspended"], "cancellation is final"),
        (["cancelled", "cancelled"], "already cancelled"),
        (["closed"], "unknown account status 'closed'"),
    ],
)
def test_refused_status_transitions_say_why_and_change_nothing(
    db: Engine, hasher: PasswordHasher, box: SecretBox, path: list[str], message: str
) -> None:
    _open(db, hasher, box, NAME)
    for status in path[:-1]:
        with db.begin() as conn:
            set_account_status(conn, str(NAME), status, reason=None, now=NOW + 1)
    with db.begin() as conn:
        before = get_account(conn, str(NAME))
        with pytest.raises(AccountStateError, match=message):
            set_account_status(conn, str(NAME), path[-1], reason=None, now=NOW + 2)
        assert get_account(conn, str(NAME)) == before


def test_status_changes_of_an_unknown_account_raise_not_found(db: Engine) -> None:
    with db.begin() as conn, pytest.raises(PrincipalNotFoundError, match="no account"):
        set_account_status(conn, str(NAME), "suspended", reason=None, now=NOW)


@pytest.mark.parametrize(
    "name", ["a", "Alice", "1alice", "alice smith", "alice@sxlss", "a" * 33, "ålice", "alice\n"]
)
def test_staff_names_that_break_the_rule_are_refused(
    db: Engine, hasher: PasswordHasher, box: SecretBox, name: str
) -> None:
    with db.begin() as conn, pytest.raises(StaffNameError, match="staff name"):
        create_staff(conn, name, "carrier", now=NOW, **_proofs(hasher, box, name))


def test_staff_are_created_with_a_role_listed_and_disabled(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    with db.begin() as conn:
        zhang = create_staff(conn, "zhang.wei", "carrier", now=NOW, **_proofs(hasher, box, "zw"))
        create_staff(conn, "audit-1", "auditor", now=NOW, **_proofs(hasher, box, "a1"))
        with pytest.raises(StaffExistsError):
            create_staff(conn, "zhang.wei", "admin", now=NOW, **_proofs(hasher, box, "zw"))
        with pytest.raises(AuthStoreError, match="unknown staff role 'root'"):
            create_staff(conn, "root-user", "root", now=NOW, **_proofs(hasher, box, "r"))
    assert (zhang.name, zhang.role, zhang.status, zhang.created_at) == (
        "zhang.wei",
        "carrier",
        "active",
        NOW,
    )
    with db.begin() as conn:
        assert [s.name for s in list_staff(conn)] == ["audit-1", "zhang.wei"]
        assert get_staff(conn, "zhang.wei") == zhang
        assert get_staff(conn, "nobody") is None
        assert set_staff_status(conn, "zhang.wei", "disabled", now=NOW + 1).status == "disabled"
        state = get_credential_state(conn, "zhang.wei")
        assert state is not None
        assert state.kind == "staff"


def _lock_hard(db: Engine, principal: str) -> None:
    policy = LockoutPolicy(threshold=2, hard_cap=2)
    with db.begin() as conn:
        assert reserve_attempt(conn, principal, policy=policy, now=NOW)
        assert reserve_attempt(conn, principal, policy=policy, now=NOW)
        assert not reserve_attempt(conn, principal, policy=policy, now=NOW + 10**6)
        state = get_credential_state(conn, principal)
    assert state is not None
    assert state.hard_locked
    assert state.is_locked(NOW + 10**9)


@pytest.mark.parametrize("how", ["reset_password", "clear_lockout"])
def test_a_password_reset_or_clear_lockout_lifts_every_lock_including_the_hard_lock(
    db: Engine, hasher: PasswordHasher, box: SecretBox, how: str
) -> None:
    _open(db, hasher, box, NAME)
    _lock_hard(db, str(NAME))
    with db.begin() as conn:
        if how == "reset_password":
            reset_password(conn, str(NAME), hasher.hash("New-Password-1"), now=NOW + 7)
        else:
            clear_lockout(conn, str(NAME), now=NOW + 7)
        state = get_credential_state(conn, str(NAME))
    assert state is not None
    assert (state.consecutive_failures, state.total_failures, state.lock_count) == (0, 0, 0)
    assert (state.locked_until_at, state.hard_locked, state.updated_at) == (None, False, NOW + 7)
    assert state.password_changed_at == (NOW + 7 if how == "reset_password" else NOW)


def test_a_totp_reset_forgets_the_last_used_step(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    _open(db, hasher, box, NAME)
    with db.begin() as conn:
        assert accept_totp_step(conn, str(NAME), 1000, now=NOW)
        assert not accept_totp_step(conn, str(NAME), 1000, now=NOW)
        reset_totp(conn, str(NAME), box.seal(new_totp_secret(), context="c"), now=NOW + 1)
        state = get_credential_state(conn, str(NAME))
        assert state is not None
        assert state.totp_last_step is None
        assert accept_totp_step(conn, str(NAME), 999, now=NOW + 2)


def test_credential_changes_for_an_unknown_principal_raise_not_found(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    with db.begin() as conn:
        with pytest.raises(PrincipalNotFoundError):
            reset_password(conn, "nobody", hasher.hash("x"), now=NOW)
        with pytest.raises(PrincipalNotFoundError):
            reset_totp(conn, "nobody", box.seal("x", context="c"), now=NOW)
        with pytest.raises(PrincipalNotFoundError):
            clear_lockout(conn, "nobody", now=NOW)
        assert get_credential_state(conn, "nobody") is None


def test_the_credential_state_for_provision_show_carries_no_secret(
    db: Engine, hasher: PasswordHasher, box: SecretBox
) -> None:
    _open(db, hasher, box, NAME)
    with db.begin() as conn:
        state = get_credential_state(conn, str(NAME))
    assert state is not None
    fields = {f.name for f in dataclasses.fields(CredentialState)}
    assert not {"password_hash", "totp_secret_sealed"} & fields
    assert "$argon2id$" not in repr(state)
    assert "sb1:" not in repr(state)
    assert (state.kind, state.totp_last_step, state.is_locked(NOW)) == ("account", None, False)


def test_source_failures_count_within_a_fixed_window_and_restart_after_it(db: Engine) -> None:
    window = 900.0
    with db.begin() as conn:
        for offset in range(3):
            record_source_failure(conn, "203.0.113.7", now=NOW + offset, window_seconds=window)
        assert source_failure_count(conn, "203.0.113.7", now=NOW + 899, window_seconds=window) == 3
        assert source_failure_count(conn, "203.0.113.7", now=NOW + 900, window_seconds=window) == 0
        assert source_failure_count(conn, "198.51.100.1", now=NOW, window_seconds=window) == 0
        record_source_failure(conn, "203.0.113.7", now=NOW + 1000, window_seconds=window)
        assert source_failure_count(conn, "203.0.113.7", now=NOW + 1000, window_seconds=window) == 1
        assert prune_source_failures(conn, now=NOW + 1899, window_seconds=window) == 0
        assert prune_source_failures(conn, now=NOW + 1900, window_seconds=window) == 1


def test_long_or_odd_source_addresses_are_stored_under_a_hash(db: Engine) -> None:
    odd = ["x" * 500, "1.2.3.4\x00", "\udcff"]
    assert all(len(source_key(s)) <= 64 for s in odd)
    assert len({source_key(s) for s in odd}) == 3
    with db.begin() as conn:
        for source in odd:
            record_source_failure(conn, source, now=NOW, window_seconds=60)
            assert source_failure_count(conn, source, now=NOW, window_seconds=60) == 1


def test_no_password_or_totp_secret_is_readable_in_the_sqlite_files(
    sqlite_engine: Engine, hasher: PasswordHasher, box: SecretBox, tmp_path: Path
) -> None:
    from auth._schema import metadata

    metadata.create_all(sqlite_engine)
    password, secret = generate_password(), new_totp_secret()
    with sqlite_engine.begin() as conn:
        create_account(
            conn,
            NAME,
            password_hash=hasher.hash(password),
            totp_secret_sealed=box.seal(secret, context=totp_secret_context(str(NAME))),
            now=NOW,
        )
    files = sorted(tmp_path.glob("test.db*"))
    contents = b"".join(f.read_bytes() for f in files)
    assert str(NAME).encode() in contents  # the data really is in these files
    for needle in (password, secret):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert needle.encode(encoding) not in contents
