"""Channel account names: ``<6-digit region><8-digit unit code>@<realm>``.

The rules are strict on purpose (ARCHITECTURE §6): an account name is an identity that
the gateway, the certificate and the audit log all key on, so two strings that *look*
alike must never parse to names that compare differently.  Only ASCII digits ``0-9``
are digits here (not full-width ``３`` or other Unicode digits), whitespace is refused
anywhere, and the realm is compared exactly with the configured ones: no case folding,
no IDN, no look-alikes such as Cyrillic ``ѕ``.  Whatever parses prints back to exactly
the text that was parsed.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

REGION_DIGITS = 6
UNIT_CODE_DIGITS = 8
LOCAL_PART_DIGITS = REGION_DIGITS + UNIT_CODE_DIGITS

# GB/T 2260 administrative division codes never start with 0; same rule as the config.
_REGION = re.compile(r"[1-9][0-9]{5}")
_UNIT_CODE = re.compile(r"[0-9]{8}")
_REALM = re.compile(r"[a-z][a-z0-9-]{0,31}")
_ASCII_DIGITS = frozenset("0123456789")
_SHOWN_CHARS = 64  # longer input is shortened in messages


class AccountNameError(ValueError):
    """The text is not an acceptable account name; the message names the problem."""


def is_valid_region_code(code: str) -> bool:
    """True for a 6-digit ASCII region code that does not start with 0 (e.g. ``330682``)."""
    return _REGION.fullmatch(code) is not None


def is_valid_unit_code(code: str) -> bool:
    """True for an 8-digit ASCII unit social-insurance code (e.g. ``12345678``)."""
    return _UNIT_CODE.fullmatch(code) is not None


@dataclass(frozen=True)
class AccountName:
    """A parsed account name; ``str()`` gives ``33068212345678@sxlss``."""

    region: str
    unit_code: str
    realm: str

    def __post_init__(self) -> None:
        if not is_valid_region_code(self.region):
            raise AccountNameError(
                f"region {_show(self.region)} must be 6 ASCII digits not starting with 0"
            )
        if not is_valid_unit_code(self.unit_code):
            raise AccountNameError(f"unit code {_show(self.unit_code)} must be 8 ASCII digits")
        if _REALM.fullmatch(self.realm) is None:
            raise AccountNameError(
                f"realm {_show(self.realm)} must be lowercase ASCII letters, digits or '-'"
            )

    def __str__(self) -> str:
        return f"{self.region}{self.unit_code}@{self.realm}"


def parse_account_name(
    text: str, *, realms: Collection[str], regions: Collection[str]
) -> AccountName:
    """Parse *text* strictly against the configured *realms* and *regions*.

    Raises :class:`AccountNameError` naming the first problem found.
    """
    if not isinstance(text, str):
        raise AccountNameError(f"account name must be text, got {type(text).__name__}")
    where = f"account {_show(text)}"
    if not text:
        raise AccountNameError("account name is empty")
    for position, char in enumerate(text, start=1):
        if char.isspace() or not char.isprintable():
            raise AccountNameError(
                f"{where}: contains whitespace or a control character ({_describe(char)}) "
                f"at position {position}"
            )
    ats = text.count("@")
    if ats != 1:
        raise AccountNameError(
            f"{where}: must contain exactly one '@' between the digits and the realm, got {ats}"
        )
    local, realm = text.split("@")
    for position, char in enumerate(local, start=1):
        if char not in _ASCII_DIGITS:
            kind = "a non-ASCII digit" if char.isdigit() else "not a digit"
            raise AccountNameError(
                f"{where}: the part before '@' must be ASCII digits 0-9 only; "
                f"{_describe(char)} at position {position} is {kind}"
            )
    if len(local) != LOCAL_PART_DIGITS:
        raise AccountNameError(
            f"{where}: the part before '@' must be exactly {LOCAL_PART_DIGITS} digits "
            f"({REGION_DIGITS}-digit region + {UNIT_CODE_DIGITS}-digit unit code), "
            f"got {len(local)}"
        )
    if not realm:
        raise AccountNameError(f"{where}: the realm after '@' is empty")
    allowed_realms = frozenset(realms)
    if realm not in allowed_realms:
        hint = ""
        odd = [c for c in realm if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-")]
        if odd:
            hint = f" (contains {_describe(odd[0])}; realms are lowercase ASCII)"
        raise AccountNameError(
            f"{where}: unknown realm {_show(realm)}{hint}; allowed: {_listing(allowed_realms)}"
        )
    region, unit_code = local[:REGION_DIGITS], local[REGION_DIGITS:]
    allowed_regions = frozenset(regions)
    if region not in allowed_regions:
        raise AccountNameError(
            f"{where}: unknown region {region!r} (the first {REGION_DIGITS} digits); "
            f"allowed: {_listing(allowed_regions)}"
        )
    return AccountName(region=region, unit_code=unit_code, realm=realm)


def _show(text: str) -> str:
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + f"… ({len(text)} characters)"
    return repr(text)


def _describe(char: str) -> str:
    if " " < char < "\x7f":
        return repr(char)
    return f"U+{ord(char):04X}"


def _listing(values: frozenset[str]) -> str:
    return ", ".join(sorted(values)) if values else "(none configured)"
