"""Staff passwords from a directory: the verifier interface, its fake, DN escaping, the
authenticator's handling of right / wrong / unavailable, and the [directory] config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import auth
from auth import (
    DIRECTORY_UNAVAILABLE,
    Authenticator,
    DirectoryPasswordError,
    DirectorySettingsError,
    LdapPasswords,
    LdapSettings,
    LockoutPolicy,
    PasswordCheck,
    PasswordVerifier,
    SqlPasswords,
    current_code,
    get_credential_state,
    user_dn_for,
)
from auth._store import LoginRecord
from auth.testing import FakeDirectory
from ssgate._config import ConfigError, parse_config, render_default_config
from ssgate._db import make_engine

NOW = 1_767_225_615.0
NAME = "zhang.wei"
DIRECTORY_PASSWORD = "Directory-Pass-1"
STORED_PASSWORD = "Stored-Pass-1"
SOURCE = "203.0.113.7"
USER_DN = "uid={name},ou=staff,dc=example,dc=cn"


@pytest.fixture
def hasher() -> auth.PasswordHasher:
    return auth.PasswordHasher(auth.Argon2Params())


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/auth.db")
    auth.metadata.create_all(engine)
    yield engine
    engine.dispose()


class Enrolled:
    def __init__(self, engine: Engine, hasher: auth.PasswordHasher, policy: LockoutPolicy) -> None:
        self.engine = engine
        self.box = auth.SecretBox(auth.SecretBox.generate_key())
        self.secret = auth.new_totp_secret()
        with engine.begin() as conn:
            auth.create_staff(
                conn,
                NAME,
                "carrier",
                password_hash=hasher.hash(STORED_PASSWORD),
                totp_secret_sealed=self.box.seal(
                    self.secret, context=auth.totp_secret_context(NAME)
                ),
                now=0.0,
            )
        self.directory = FakeDirectory({NAME: DIRECTORY_PASSWORD})
        self.authenticator = Authenticator(
            engine, hasher, self.box, policy, staff_passwords=self.directory
        )

    def attempt(self, password: str, *, now: float = NOW) -> auth.AuthOutcome:
        return self.authenticator.authenticate(
            NAME, password, current_code(self.secret, now), source=SOURCE, now=now, kind="staff"
        )

    def counters(self) -> tuple[int, int, int, float | None, bool]:
        with self.engine.begin() as conn:
            state = get_credential_state(conn, NAME)
        assert state is not None
        return (
            state.consecutive_failures,
            state.total_failures,
            state.lock_count,
            state.locked_until_at,
            state.hard_locked,
        )

    def source_failures(self) -> int:
        with self.engine.begin() as conn:
            return auth._store.source_failure_count(conn, SOURCE, now=NOW, window_seconds=900)


@pytest.fixture
def enrolled(engine: Engine, hasher: auth.PasswordHasher) -> Enrolled:
    return Enrolled(engine, hasher, LockoutPolicy(threshold=3, source_max_failures=100_000))


# -- the interface and its fake ----------------------------------------------------------


def test_every_verifier_satisfies_the_interface() -> None:
    """SqlPasswords, LdapPasswords and the fake are PasswordVerifiers; only SQL stores."""
    ldap = LdapPasswords(LdapSettings(url="ldap://127.0.0.1:1", user_dn=USER_DN))
    fake = FakeDirectory()
    sql = SqlPasswords(auth.PasswordHasher(auth.Argon2Params()))
    for verifier in (ldap, fake, sql):
        assert isinstance(verifier, PasswordVerifier)
    assert (sql.stores_passwords, ldap.stores_passwords, fake.stores_passwords) == (
        True,
        False,
        False,
    )


def test_the_fake_answers_as_a_directory_does() -> None:
    """Right, wrong, unknown, empty and unavailable, as LdapPasswords answers them."""
    fake = FakeDirectory({NAME: DIRECTORY_PASSWORD})
    login = LoginRecord(NAME, "staff", "active", None, "x", "y")
    assert fake.check(login, DIRECTORY_PASSWORD) is PasswordCheck.RIGHT
    assert fake.check(login, "nope") is PasswordCheck.WRONG
    assert fake.check(login, "") is PasswordCheck.WRONG
    other = LoginRecord("li.na", "staff", "active", None, "x", "y")
    assert fake.check(other, DIRECTORY_PASSWORD) is PasswordCheck.WRONG
    fake.available = False
    assert fake.check(login, DIRECTORY_PASSWORD) is PasswordCheck.UNAVAILABLE


def test_ldap_never_binds_with_an_empty_password_or_a_name_outside_the_staff_rule() -> None:
    """An empty password would be an anonymous bind that 'succeeds' (RFC 4513 §5.1.2);
    no connection is even attempted (the URL points nowhere)."""
    ldap = LdapPasswords(LdapSettings(url="ldap://127.0.0.1:1", user_dn=USER_DN))
    login = LoginRecord(NAME, "staff", "active", None, "x", "y")
    assert ldap.check(login, "") is PasswordCheck.WRONG
    injected = LoginRecord("*)(uid=*", "staff", "active", None, "x", "y")
    assert ldap.check(injected, "whatever") is PasswordCheck.WRONG


@pytest.mark.parametrize(
    ("name", "dn"),
    [
        ("zhang.wei", "uid=zhang.wei,ou=staff,dc=example,dc=cn"),
        ("a,ou=admins", "uid=a\\,ou\\=admins,ou=staff,dc=example,dc=cn"),
        ("x+cn=root", "uid=x\\+cn\\=root,ou=staff,dc=example,dc=cn"),
        ("#lead", "uid=\\#lead,ou=staff,dc=example,dc=cn"),
    ],
)
def test_the_name_is_escaped_as_one_rdn_value(name: str, dn: str) -> None:
    """A name can never add an RDN or leave its attribute value."""
    assert user_dn_for(USER_DN, name) == dn


def test_reprs_carry_no_password(enrolled: Enrolled) -> None:
    settings = LdapSettings(url="ldaps://ldap.example.cn", user_dn=USER_DN)
    text = repr(LdapPasswords(settings)) + repr(enrolled.authenticator) + repr(settings)
    assert DIRECTORY_PASSWORD not in text and STORED_PASSWORD not in text
    assert "FakeDirectory" in repr(enrolled.authenticator)


@pytest.mark.parametrize(
    ("url", "user_dn", "start_tls", "says"),
    [
        ("http://x", USER_DN, False, "url"),
        ("ldap://", USER_DN, False, "url"),
        ("ldap://h/dc=x", USER_DN, False, "nothing more"),
        ("ldaps://h", USER_DN, True, "start_tls"),
        ("ldap://h", "uid=x,dc=cn", False, "{name}"),
        ("ldap://h", "uid={name},{name}", False, "{name}"),
        ("ldap://h", "uid={name},dc={x}", False, "braces"),
        ("ldap://h", "not a dn {name}", False, "not a DN"),
    ],
)
def test_bad_ldap_settings_are_refused_by_name(
    url: str, user_dn: str, start_tls: bool, says: str
) -> None:
    with pytest.raises(DirectorySettingsError, match=says.replace("{", r"\{").replace("}", r"\}")):
        LdapSettings(url=url, user_dn=user_dn, start_tls=start_tls)


# -- the authenticator with a directory ---------------------------------------------------


def test_the_directory_password_logs_staff_in_and_the_stored_one_does_not(
    enrolled: Enrolled,
) -> None:
    assert enrolled.attempt(STORED_PASSWORD).reason == "bad-password"
    outcome = enrolled.attempt(DIRECTORY_PASSWORD, now=NOW + 30)
    assert outcome.ok and outcome.reason == "ok"
    assert enrolled.directory.checked == [NAME, NAME]
    assert enrolled.counters()[:2] == (0, 0)  # the success reset the counters


def test_a_wrong_directory_password_counts_toward_lockout(enrolled: Enrolled) -> None:
    for _ in range(3):
        assert enrolled.attempt("wrong").reason == "bad-password"
    assert enrolled.attempt(DIRECTORY_PASSWORD).reason == "locked"
    assert enrolled.counters()[:3] == (3, 3, 1)
    assert enrolled.source_failures() == 3


def test_an_unavailable_directory_is_not_a_failure(enrolled: Enrolled) -> None:
    """directory-unavailable: the reserved attempt is taken back, the source not charged,
    and the TOTP code is not spent (the same code works once the directory is back)."""
    enrolled.attempt("wrong")
    before = enrolled.counters()
    enrolled.directory.available = False
    for _ in range(5):  # more than the threshold: still no lock
        outcome = enrolled.attempt(DIRECTORY_PASSWORD)
        assert (outcome.ok, outcome.reason) == (False, DIRECTORY_UNAVAILABLE)
    assert enrolled.counters() == before
    assert enrolled.source_failures() == 1
    enrolled.directory.available = True
    assert enrolled.attempt(DIRECTORY_PASSWORD).ok


def test_an_outage_right_at_the_threshold_takes_back_the_lock_too(enrolled: Enrolled) -> None:
    """The reservation that reaches the threshold sets the lock; its refund removes it."""
    enrolled.attempt("wrong")
    enrolled.attempt("wrong")
    before = enrolled.counters()
    enrolled.directory.available = False
    assert enrolled.attempt(DIRECTORY_PASSWORD).reason == DIRECTORY_UNAVAILABLE
    assert enrolled.counters() == before
    assert before[3] is None


def test_channel_accounts_keep_their_stored_passwords(
    engine: Engine, hasher: auth.PasswordHasher
) -> None:
    """The staff directory is never asked about a channel account."""
    box = auth.SecretBox(auth.SecretBox.generate_key())
    secret = auth.new_totp_secret()
    account = "33068212345678@sxlss"
    with engine.begin() as conn:
        auth.create_account(
            conn,
            auth.AccountName(region="330682", unit_code="12345678", realm="sxlss"),
            password_hash=hasher.hash(STORED_PASSWORD),
            totp_secret_sealed=box.seal(secret, context=auth.totp_secret_context(account)),
            now=0.0,
        )
    directory = FakeDirectory({account: DIRECTORY_PASSWORD})
    authenticator = Authenticator(engine, hasher, box, staff_passwords=directory)
    code = current_code(secret, NOW)
    assert authenticator.authenticate(account, STORED_PASSWORD, code, source=SOURCE, now=NOW).ok
    assert directory.checked == []
    assert authenticator.stores_passwords("account")
    assert not authenticator.stores_passwords("staff")


def test_staff_passwords_in_a_directory_cannot_be_changed_here(enrolled: Enrolled) -> None:
    with pytest.raises(DirectoryPasswordError, match="change it there"):
        enrolled.authenticator.change_password(
            NAME,
            DIRECTORY_PASSWORD,
            current_code(enrolled.secret, NOW),
            "Another-Pass-99",
            source=SOURCE,
            now=NOW,
            kind="staff",
        )
    assert enrolled.directory.checked == []  # refused before any login attempt


# -- [directory] in ssgate.toml ------------------------------------------------------------


def test_the_default_is_sql_and_the_template_documents_ldap() -> None:
    text = render_default_config(hostname="gw.example.cn")
    assert parse_config(text, source="ssgate.toml").directory.backend == "sql"
    assert '# backend = "ldap"' in text and "# user_dn = " in text
    assert "{name}" in text  # the f-string kept the placeholder


def test_an_ldap_directory_section_parses() -> None:
    config = parse_config(
        '[directory]\nbackend = "ldap"\nurl = "ldap://10.0.0.5:389"\nstart_tls = true\n'
        f'ca_file = "ldap-ca.pem"\nuser_dn = "{USER_DN}"\ntimeout_seconds = 2\n',
        source="ssgate.toml",
    )
    d = config.directory
    assert (d.backend, d.url, d.start_tls, d.ca_file, d.user_dn, d.timeout_seconds) == (
        "ldap",
        "ldap://10.0.0.5:389",
        True,
        "ldap-ca.pem",
        USER_DN,
        2,
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('backend = "LDAP"', 'directory.backend = .* expected "sql" or "ldap"'),
        ('url = "http://x"', "directory.url = .* expected an LDAP URL"),
        ("start_tls = 1", "directory.start_tls = 1 is invalid; expected true or false"),
        ('user_dn = "uid=x,dc=cn"', "directory.user_dn = .* expected a DN template"),
        ("timeout_seconds = 0", "directory.timeout_seconds = 0 is invalid"),
        (
            "timeout_seconds = 2.5",
            "directory.timeout_seconds = 2.5 is invalid; expected an integer",
        ),
        ("port = 389", "unknown key directory.port"),
        ('backend = "ldap"', 'directory.url is required with directory.backend = "ldap"'),
        (
            f'backend = "ldap"\nurl = "ldap://h"\nuser_dn = "{USER_DN}"\nstart_tls = true\n'
            'url2 = ""',
            "unknown key directory.url2",
        ),
        (
            f'backend = "ldap"\nurl = "ldaps://h"\nuser_dn = "{USER_DN}"\nstart_tls = true',
            "directory.start_tls is for ldap:// URLs",
        ),
        (
            f'backend = "ldap"\nurl = "ldap://h:99999"\nuser_dn = "{USER_DN}"',
            "directory.url .* bad port",
        ),
    ],
)
def test_a_bad_directory_value_is_one_error_naming_file_and_key(body: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"^ssgate.toml: {says}"):
        parse_config(f"[directory]\n{body}\n", source="ssgate.toml")
