"""Channel accounts and staff identities with two factors (password + TOTP).

The public face of the auth package: account-name rules, argon2id passwords, TOTP,
secrets sealed at rest, the account / staff / credential store (functions on a
SQLAlchemy ``Connection``), the staff console's sessions (in the database, so every
node and every restart sees the same ones), and the :class:`Authenticator` with
lockout, source throttling and the TOTP replay guard.  Where a password is checked is a
:class:`PasswordVerifier`: the stored hash (:class:`SqlPasswords`) or, for staff, an
LDAP directory (:class:`LdapPasswords`, a simple bind with ldap3).  Nothing here
imports Twisted: these are blocking library calls for a thread pool, and
:class:`Runner` is how the Twisted side puts them on one (a transaction on the
database pool, a login on the login pool).  Time is always passed in as ``now``
(epoch seconds UTC).
"""

from ._assertion import (
    Identity,
    IdentityHeaderError,
    IdentityHeaderReader,
    encode_assertion,
    new_nonce,
    verify_assertion,
)
from ._authenticator import (
    DIRECTORY_UNAVAILABLE,
    REASONS,
    Authenticator,
    AuthOutcome,
    DirectoryPasswordError,
    WeakPasswordError,
)
from ._console_sessions import (
    ConsoleSession,
    ConsoleSessionLookup,
    ConsoleSessionPolicy,
    create_console_session,
    end_console_session,
    end_staff_console_sessions,
    lookup_console_session,
    sweep_console_sessions,
)
from ._directory import (
    DirectorySettingsError,
    LdapPasswords,
    LdapSettings,
    PasswordCheck,
    PasswordVerifier,
    SqlPasswords,
    ldap_settings_problem,
    user_dn_for,
)
from ._failures import FailureCause, RepeatedFailureLog, failure_cause
from ._lockout import LockoutPolicy, LockoutPolicyError
from ._locks import ThrottledSource, locked_principals, source_throttle_wait, throttled_sources
from ._names import (
    AccountName,
    AccountNameError,
    is_valid_region_code,
    is_valid_unit_code,
    parse_account_name,
)
from ._passwords import (
    Argon2Params,
    Argon2ParamsError,
    PasswordHasher,
    check_password_strength,
    generate_password,
)
from ._runner import Runner
from ._schema import metadata
from ._secretbox import SecretBox, SecretBoxError
from ._store import (
    ACCOUNT_STATUSES,
    STAFF_ROLES,
    STAFF_STATUSES,
    AccountExistsError,
    AccountRecord,
    AccountStateError,
    AuthStoreError,
    CredentialFormatError,
    CredentialState,
    PrincipalNotFoundError,
    StaffExistsError,
    StaffNameError,
    StaffRecord,
    check_staff_name,
    clear_lockout,
    create_account,
    create_staff,
    get_account,
    get_credential_state,
    get_staff,
    list_accounts,
    list_staff,
    prune_source_failures,
    reset_password,
    reset_totp,
    set_account_status,
    set_staff_status,
)
from ._totp import (
    TotpSecretError,
    current_code,
    match_totp,
    new_totp_secret,
    totp_secret_context,
    totp_step,
    totp_uri,
)

__all__ = [
    "ACCOUNT_STATUSES",
    "DIRECTORY_UNAVAILABLE",
    "REASONS",
    "STAFF_ROLES",
    "STAFF_STATUSES",
    "AccountExistsError",
    "AccountName",
    "AccountNameError",
    "AccountRecord",
    "AccountStateError",
    "Argon2Params",
    "Argon2ParamsError",
    "AuthOutcome",
    "AuthStoreError",
    "Authenticator",
    "ConsoleSession",
    "ConsoleSessionLookup",
    "ConsoleSessionPolicy",
    "CredentialFormatError",
    "CredentialState",
    "DirectoryPasswordError",
    "DirectorySettingsError",
    "FailureCause",
    "Identity",
    "IdentityHeaderError",
    "IdentityHeaderReader",
    "LdapPasswords",
    "LdapSettings",
    "LockoutPolicy",
    "LockoutPolicyError",
    "PasswordCheck",
    "PasswordHasher",
    "PasswordVerifier",
    "PrincipalNotFoundError",
    "RepeatedFailureLog",
    "Runner",
    "SecretBox",
    "SecretBoxError",
    "SqlPasswords",
    "StaffExistsError",
    "StaffNameError",
    "StaffRecord",
    "ThrottledSource",
    "TotpSecretError",
    "WeakPasswordError",
    "check_password_strength",
    "check_staff_name",
    "clear_lockout",
    "create_account",
    "create_console_session",
    "create_staff",
    "current_code",
    "encode_assertion",
    "end_console_session",
    "end_staff_console_sessions",
    "failure_cause",
    "generate_password",
    "get_account",
    "get_credential_state",
    "get_staff",
    "is_valid_region_code",
    "is_valid_unit_code",
    "ldap_settings_problem",
    "list_accounts",
    "list_staff",
    "locked_principals",
    "lookup_console_session",
    "match_totp",
    "metadata",
    "new_nonce",
    "new_totp_secret",
    "parse_account_name",
    "prune_source_failures",
    "reset_password",
    "reset_totp",
    "set_account_status",
    "set_staff_status",
    "source_throttle_wait",
    "sweep_console_sessions",
    "throttled_sources",
    "totp_secret_context",
    "totp_step",
    "totp_uri",
    "user_dn_for",
    "verify_assertion",
]
