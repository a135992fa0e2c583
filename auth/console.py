"""Who works in the staff console: the staff member and the names of the roles.

The console's shell (:class:`web.ConsoleShell`) and the features' console sections
(the auditors' review in ``declare_app.web``, the officers' and carriers' pages in
theirs) meet on these values, in the bottom layer that already knows staff and
roles.  Nothing here imports Twisted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._store import STAFF_ROLES

# Chinese names of the roles, as the console shows them.
ROLE_TITLES: Mapping[str, str] = {
    "carrier": "电信运营人员",
    "auditor": "经办审核员",
    "officer": "安全审计员",
    "admin": "系统管理员",
}
assert set(ROLE_TITLES) == set(STAFF_ROLES)


@dataclass(frozen=True)
class StaffMember:
    """The logged-in staff member, as re-read from the store for this request."""

    name: str
    role: str

    @property
    def audit_actor(self) -> str:
        """The ``actor`` of this member's audit events: ``staff:<name>``."""
        return f"staff:{self.name}"

    @property
    def role_title(self) -> str:
        return ROLE_TITLES.get(self.role, self.role)
