"""The personal portal: insured persons query their own records and print a verifiable
参保证明 (issue 18).

* :mod:`portal._accounts` — the counter's workflows (``ssgate persons enrol`` /
  ``reset-password``): the account, its initial password and TOTP enrolment.
* :mod:`portal._counter` — the same counter workflows as console pages (``/persons``).
* :mod:`portal._sessions` — browser sessions in the database.
* :mod:`portal._records` — the person's own data, across every unit, read from the
  declaration service's tables through its public read functions.
* :mod:`portal._certificates` — 参保证明: content, code, PDF, verification.
* :mod:`portal._site` — the routes, the gate and the pages (on the ``web`` shell).

Nothing here writes the declaration service's tables.
"""

from ._accounts import (
    PersonCounter,
    PersonInputError,
    PersonIssued,
    PersonRefused,
    normalise_id_number,
    principal_of,
)
from ._certificates import certificate_pdf, find_certificate, pdf_matches
from ._counter import persons_section
from ._records import LedgerRecords
from ._schema import metadata
from ._sessions import SessionPolicy, sweep_sessions
from ._site import PERSON, PUBLIC, PortalShell

__all__ = [
    "PERSON",
    "PUBLIC",
    "LedgerRecords",
    "PersonCounter",
    "PersonInputError",
    "PersonIssued",
    "PersonRefused",
    "PortalShell",
    "SessionPolicy",
    "certificate_pdf",
    "find_certificate",
    "metadata",
    "normalise_id_number",
    "pdf_matches",
    "persons_section",
    "principal_of",
    "sweep_sessions",
]
