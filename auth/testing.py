"""Fakes of the auth interfaces, verified against them, for the tests of their users.

:class:`FakeDirectory` is a :class:`~auth.PasswordVerifier` that keeps staff passwords
in a dict and can be switched to *unavailable*, as an LDAP directory that is down.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from ._directory import PasswordCheck, PasswordVerifier
from ._store import LoginRecord


class FakeDirectory:
    """A directory of passwords in memory; ``available = False`` makes it unreachable."""

    stores_passwords = False

    def __init__(self, passwords: Mapping[str, str] | None = None) -> None:
        self._passwords = dict(passwords or {})
        self.available = True
        self.checked: list[str] = []  # principals asked about, in order

    def __repr__(self) -> str:
        return f"FakeDirectory({len(self._passwords)} entries)"

    def set_password(self, principal: str, password: str) -> None:
        self._passwords[principal] = password

    def check(self, login: LoginRecord, password: str) -> PasswordCheck:
        self.checked.append(login.principal)
        if not self.available:
            return PasswordCheck.UNAVAILABLE
        stored = self._passwords.get(login.principal)
        if password == "" or stored is None:
            return PasswordCheck.WRONG
        if hmac.compare_digest(stored.encode(), password.encode()):
            return PasswordCheck.RIGHT
        return PasswordCheck.WRONG


_verifier_check: type[PasswordVerifier] = FakeDirectory  # FakeDirectory satisfies the Protocol
