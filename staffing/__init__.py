"""Staff administration: who may use the staff console, and in which role.

:class:`StaffAdministration` holds the administrator's workflows (list, show, add,
disable, enable, reset password, reset OTP, unlock), each one transaction with its
audit event; the ``ssgate staff`` command and the console pages of
:func:`staff_section` (role ``admin``) both call them.  ``ssgate`` mounts the section
in the console.
"""

from staffing._pages import staff_section
from staffing._workflows import (
    StaffAdministration,
    StaffInputError,
    StaffIssued,
    StaffRefused,
    StaffSettings,
    StaffView,
    StatusChange,
)

__all__ = [
    "StaffAdministration",
    "StaffInputError",
    "StaffIssued",
    "StaffRefused",
    "StaffSettings",
    "StaffView",
    "StatusChange",
    "staff_section",
]
