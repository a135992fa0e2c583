"""Identifier rules from DOMAIN.md §1: the unified social credit code (GB 32100-2015).

Each check has the rule id from DOMAIN.md so a message can cite it.  python-stdnum's
``cn.uscc`` is used as a cross-check in the tests only: it requires the first eight
characters to be digits, which wrongly refuses codes issued by registration
authorities A, N and Y.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, Z, S, V
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# Rule for a code already registered to another unit: its own id, not USCC-03 (the
# check character), so an auditor sees which problem it is (issue 14 defect 4).
USCC_TAKEN = "USCC-06"

# Registration authority (position 1) -> allowed organisation categories (position 2).
_USCC_CATEGORIES: dict[str, str] = {
    "1": "1239",
    "2": "19",
    "3": "1239",
    "4": "19",
    "5": "1239",
    "6": "19",
    "7": "129",
    "8": "19",
    "9": "123",
    "A": "19",
    "N": "1239",
    "Y": "1",
}


@dataclass(frozen=True)
class Finding:
    """One rule outcome: ``severity`` is ``"error"`` or ``"warning"``."""

    rule: str
    severity: str
    message: str


class IdentifierError(ValueError):
    """An identifier broke an error-severity rule; ``findings`` lists every finding."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(f"{f.rule}: {f.message}" for f in findings))


def normalise_uscc(text: str) -> str:
    """A credit code as typed, read the way ID numbers are: full-width characters
    (Chinese input methods) as ASCII (NFKC), spaces removed, letters upper-cased.
    Checking happens after this, on what will be stored."""
    return "".join(unicodedata.normalize("NFKC", text).split()).upper()


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters.

    Written with the outer ``mod 31`` (DOMAIN §1.2): when the weighted sum is a multiple
    of 31 the check character is ``0``, not an index past the end of the alphabet.
    """
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 organisation-code check character (positions 9-16 of a USCC)."""
    values = [int(c) if c.isdigit() else ord(c) - ord("A") + 10 for c in first8]
    c = 11 - sum(v * w for v, w in zip(values, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def check_uscc(code: str) -> list[Finding]:
    """All findings for *code*; an empty list means valid with no warnings."""
    if len(code) != 18:
        return [Finding("USCC-01", "error", f"must be 18 characters, got {len(code)}")]
    if code != code.upper():
        return [Finding("USCC-01", "error", "must be upper case")]
    bad = sorted({c for c in code if c not in USCC_CHARSET})
    if bad:
        return [
            Finding(
                "USCC-02",
                "error",
                f"contains {''.join(bad)!r}; allowed are digits and letters except I, O, Z, S, V",
            )
        ]
    findings: list[Finding] = []
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        findings.append(
            Finding("USCC-03", "error", f"check character is {code[17]!r}, expected {expected!r}")
        )
    allowed = _USCC_CATEGORIES.get(code[0])
    if allowed is None:
        findings.append(
            Finding("USCC-04", "warning", f"unknown registration authority {code[0]!r}")
        )
    elif code[1] not in allowed:
        findings.append(
            Finding("USCC-04", "warning", f"category {code[1]!r} unusual for authority {code[0]!r}")
        )
    if not code[2:8].isdigit():
        findings.append(Finding("USCC-04", "warning", "positions 3-8 should be a region code"))
    org = code[8:16]
    if all(c.isdigit() or "A" <= c <= "Z" for c in org) and org_code_check_char(org) != code[16]:
        findings.append(
            Finding("USCC-05", "warning", "embedded organisation code check character mismatch")
        )
    return findings


def validate_uscc(code: str) -> list[Finding]:
    """Raise :class:`IdentifierError` on any error finding; return the warnings."""
    findings = check_uscc(code)
    if any(f.severity == "error" for f in findings):
        raise IdentifierError(findings)
    return findings
