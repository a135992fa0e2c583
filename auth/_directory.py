"""Where a password is checked: the argon2id hash in the database, or an LDAP directory.

:class:`PasswordVerifier` is the one question the :class:`~auth.Authenticator` asks
after it has reserved an attempt: is this the principal's password?  The answer is a
:class:`PasswordCheck`, and there are three, not two: besides right and wrong, a
directory can be *unavailable* (down, too slow, TLS refused).  Unavailable is not a
wrong guess: the authenticator takes the reserved attempt back and refuses with
``directory-unavailable``, so an outage never locks anybody out.

* :class:`SqlPasswords` — the argon2id hash stored with the credentials (today's
  behaviour, and always the one for channel accounts).
* :class:`LdapPasswords` — an LDAP simple bind as the staff member's DN, for staff when
  ``[directory] backend = "ldap"``.  TOTP, the replay guard, lockout and throttling stay
  ssgate's own; only the password moves to the directory.

Blocking, like the rest of ``auth``: the authenticator runs on the login thread pool
(``ssgate-login``, never the reactor's shared pool).  The LDAP bind runs there too,
inside the one ``authenticate`` call, rather than on a pool of its own: a login needs
the bind's answer before it can commit, so a second pool would only park the login
thread while the bind thread works.  What keeps an outage from eating that pool is the
timeout: every bind uses a fresh ``SAFE_SYNC`` connection (ldap3 connections are not
shared across threads) whose connect *and* each receive are bounded by
``timeout_seconds``, so a dead or silent directory holds a login thread for at most
about three timeouts (connect, StartTLS, bind) and then answers ``unavailable``.

No password is ever logged, put into an exception message or a repr here; the
directory's own error text is logged only as its exception type and result code.
Nothing here imports Twisted: why a directory was unavailable goes to a ``warn``
callable (the stdlib logger by default; ``ssgate serve`` passes its Twisted logger).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._passwords import PasswordHasher
from ._store import LoginRecord, StaffNameError, check_staff_name

NAME_FIELD = "{name}"
INVALID_CREDENTIALS = 49  # RFC 4511 resultCode invalidCredentials


class PasswordCheck(enum.Enum):
    """The answer of a :class:`PasswordVerifier`."""

    RIGHT = "right"
    WRONG = "wrong"
    UNAVAILABLE = "unavailable"  # the verifier could not tell: not a wrong guess


@runtime_checkable
class PasswordVerifier(Protocol):
    """Checks one principal's password; blocking, for the login thread pool.

    ``stores_passwords`` is True when ssgate itself keeps the password (and may change
    it, :meth:`auth.Authenticator.change_password`), False when a directory does.
    :meth:`check` never raises for a wrong password or an unreachable server: it
    answers :attr:`PasswordCheck.WRONG` or :attr:`PasswordCheck.UNAVAILABLE`.
    """

    @property
    def stores_passwords(self) -> bool: ...

    def check(self, login: LoginRecord, password: str) -> PasswordCheck: ...


class SqlPasswords:
    """The argon2id hash stored with the principal's credentials."""

    stores_passwords = True

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher

    def __repr__(self) -> str:
        return "SqlPasswords()"

    def check(self, login: LoginRecord, password: str) -> PasswordCheck:
        if self._hasher.verify(login.password_hash, password):
            return PasswordCheck.RIGHT
        return PasswordCheck.WRONG


class DirectorySettingsError(ValueError):
    """An LDAP setting is unusable; the message names it (never a password)."""


@dataclass(frozen=True)
class LdapSettings:
    """Where and how to bind: ``url`` is ``ldap://host[:port]`` or ``ldaps://…``;
    ``user_dn`` a DN template with one ``{name}`` (the DN-escaped staff name)."""

    url: str
    user_dn: str
    start_tls: bool = False
    ca_file: Path | None = None
    timeout_seconds: int = 5

    def __post_init__(self) -> None:
        problem = ldap_settings_problem(self.url, self.user_dn, start_tls=self.start_tls)
        if problem is not None:
            raise DirectorySettingsError(problem)
        # Whole seconds: ldap3 2.9.1 packs receive_timeout into SO_RCVTIMEO as an
        # integer (a float raises struct.error from inside Connection.open).
        t = self.timeout_seconds
        if not isinstance(t, int) or isinstance(t, bool) or not 1 <= t <= 600:
            raise DirectorySettingsError("timeout_seconds must be whole seconds from 1 to 600")

    @property
    def uses_tls(self) -> bool:
        return self.start_tls or self.url.startswith("ldaps://")


def ldap_settings_problem(url: str, user_dn: str, *, start_tls: bool) -> str | None:
    """What is wrong with these settings, or None (for the config file's checks too)."""
    problem = _url_problem(url)
    if problem is not None:
        return problem
    if start_tls and url.startswith("ldaps://"):
        return "start_tls is for ldap:// URLs; ldaps:// is TLS from the start"
    rest = user_dn.replace(NAME_FIELD, "")
    if user_dn.count(NAME_FIELD) != 1 or "{" in rest or "}" in rest:
        return f'user_dn {user_dn!r} must contain "{NAME_FIELD}" exactly once and no other braces'
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    try:
        parse_dn(user_dn.replace(NAME_FIELD, "x"))
    except LDAPInvalidDnError:
        return f"user_dn {user_dn!r} is not a DN such as uid={NAME_FIELD},ou=staff,dc=example,dc=cn"
    return None


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        return f"url {url!r} must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return f"url {url!r} must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], nothing more"
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"url {url!r} has a bad port"
    return None


def user_dn_for(template: str, name: str) -> str:
    """The DN for *name* in *template*, the name escaped as an RDN value (RFC 4514).

    ldap3's ``escape_rdn`` escapes ``, + " \\ < > ; =``, NUL and a leading ``#`` or
    space, so a name can never add an RDN or leave its attribute value.
    """
    from ldap3.utils.dn import escape_rdn

    return template.replace(NAME_FIELD, escape_rdn(name))


class LdapPasswords:
    """An LDAP simple bind as the staff member's DN, a fresh connection each time."""

    stores_passwords = False

    def __init__(
        self, settings: LdapSettings, *, warn: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self._warn = warn if warn is not None else _stdlib_warn

    def __repr__(self) -> str:
        return f"LdapPasswords({self.settings.url!r}, user_dn={self.settings.user_dn!r})"

    def check(self, login: LoginRecord, password: str) -> PasswordCheck:
        # Never bind with an empty password: RFC 4513 §5.1.2 makes it an anonymous
        # bind that "succeeds".  (The authenticator refuses it earlier too.)
        if password == "":
            return PasswordCheck.WRONG
        try:
            check_staff_name(login.principal)
        except StaffNameError:
            return PasswordCheck.WRONG  # not a staff name: nothing to bind as
        return self._bind(user_dn_for(self.settings.user_dn, login.principal), password)

    def _bind(self, dn: str, password: str) -> PasswordCheck:
        from ldap3 import SAFE_SYNC, Connection, Server
        from ldap3.core.exceptions import LDAPException

        s = self.settings
        try:
            server = Server(
                s.url, connect_timeout=s.timeout_seconds, tls=self._tls(), get_info=None
            )
            conn = Connection(
                server,
                user=dn,
                password=password,
                client_strategy=SAFE_SYNC,
                receive_timeout=s.timeout_seconds,
                read_only=True,
                raise_exceptions=False,
            )
        except LDAPException as e:
            self._unavailable(dn, "set-up", type(e).__name__)
            return PasswordCheck.UNAVAILABLE
        try:
            conn.open()
            if s.start_tls:
                started = conn.start_tls()
                if not (started[0] if isinstance(started, tuple) else started):
                    self._unavailable(dn, "start-tls", "refused")
                    return PasswordCheck.UNAVAILABLE
            status, result, _response, _request = conn.bind()
        except (LDAPException, OSError) as e:
            # Connection refused, timeouts, TLS verification: the type says which;
            # the text is not logged (it is ldap3's, and this is a login path).
            self._unavailable(dn, "bind", type(e).__name__)
            return PasswordCheck.UNAVAILABLE
        finally:
            with contextlib.suppress(LDAPException, OSError):
                conn.unbind()
        if status:
            return PasswordCheck.RIGHT
        code = result.get("result") if isinstance(result, dict) else None
        if code == INVALID_CREDENTIALS:
            return PasswordCheck.WRONG
        self._unavailable(dn, "bind", f"result code {code}")
        return PasswordCheck.UNAVAILABLE

    def _tls(self) -> Any:
        if not self.settings.uses_tls:
            return None
        from ldap3 import Tls

        ca = self.settings.ca_file
        return Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=None if ca is None else str(ca),
        )

    def _unavailable(self, dn: str, stage: str, why: str) -> None:
        self._warn(f"LDAP directory {self.settings.url} unavailable at {stage} for {dn}: {why}")


def _stdlib_warn(message: str) -> None:
    logging.getLogger("auth.directory").warning("%s", message)
