"""The 18-character citizen identity number (公民身份号码, GB 11643-1999), DOMAIN.md §1.1.

Owns rules ID-01 to ID-09: structure, the legacy 15-digit upgrade, the province prefix,
the birth date, the ISO 7064 MOD 11-2 check character, gender, and the comparisons with
what a form declares.  Pure functions: "today" and every declared value are parameters.

The same layout and check serve two other documents an employee may present
(DOMAIN §1.1): the 港澳台居民居住证 (address code 810000, 820000 or 830000) and the 2023
外国人永久居留身份证, whose first digit is 9.  :class:`PersonIdKind` tells them apart.

python-stdnum (``stdnum.cn.ric``) is not used for validation: it refuses a number whose
county code had not yet been created in the holder's birth year, but an address code
is the one in force when the number was *issued* and is never re-issued, so DOMAIN
says historic codes stay valid.  Its bundled division-code table (current and
historic codes) is used only for the ID-08 warning, ignoring its validity periods.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from declare_app._identifiers import Finding, IdentifierError

_DIGITS = frozenset("0123456789")  # str.isdigit() would accept full-width and other digits
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(18-i) mod 11
_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11)

# First two digits of a citizen number (GB/T 2260 provinces) as DOMAIN §1.1 lists them,
# plus 81/82/83 for the residence permits.  A new 永居证 is recognised by its first digit.
# fmt: off
PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34",
        "35", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52",
        "53", "54", "61", "62", "63", "64", "65", "71", "81", "82", "83",
    }
)
# fmt: on
RESIDENCE_PERMIT_REGIONS = frozenset({"810000", "820000", "830000"})
EARLIEST_BIRTH_DATE = date(1900, 1, 1)  # ID-04 plausibility floor
MINIMUM_EMPLOYMENT_AGE = 16  # ID-09, 劳动法 art. 15


class Gender(enum.Enum):
    """Gender as GB 11643 encodes it: the 17th digit is odd for men, even for women."""

    MALE = "男"
    FEMALE = "女"


class PersonIdKind(enum.Enum):
    """Which document an 18-character MOD 11-2 number belongs to (DOMAIN §1.1)."""

    CITIZEN = "公民身份号码"
    RESIDENCE_PERMIT = "港澳台居民居住证"
    FOREIGN_PERMANENT_RESIDENT = "外国人永久居留身份证"


@dataclass(frozen=True)
class PersonId:
    """A number that passed every error rule.

    ``number`` is the 18-character form with an upper-case ``X`` (a legacy 15-digit
    input is upgraded); ``region`` its first six characters, which for a 永居证 are not
    an administrative-division code.
    """

    number: str
    region: str
    birth_date: date
    gender: Gender
    kind: PersonIdKind


def _bilingual(zh: str, en: str) -> str:
    return f"{zh} / {en}"


def person_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for a 17-digit body."""
    if len(first17) != 17 or not set(first17) <= _DIGITS:
        raise ValueError("the body of an identity number is 17 ASCII digits")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def upgrade_legacy_id(number15: str) -> str:
    """The 18-character form of a GB 11643-1989 number: ``19`` inserted, check appended."""
    if len(number15) != 15 or not set(number15) <= _DIGITS:
        raise ValueError("a legacy identity number is 15 ASCII digits")
    first17 = number15[:6] + "19" + number15[6:]
    return first17 + person_id_check_char(first17)


def _kind(text: str, number: str) -> PersonIdKind:
    if len(text) == 15:  # GB 11643-1989 numbers were only ever citizen numbers
        return PersonIdKind.CITIZEN
    if number[:6] in RESIDENCE_PERMIT_REGIONS:
        return PersonIdKind.RESIDENCE_PERMIT
    if number[0] == "9":
        return PersonIdKind.FOREIGN_PERMANENT_RESIDENT
    return PersonIdKind.CITIZEN


@lru_cache(maxsize=4096)
def _region_known(region: str) -> bool:
    """Whether python-stdnum's division table lists *region* as a county in any period."""
    from stdnum import numdb

    return any("county" in props for _part, props in numdb.get("cn/loc").info(region))


def _birth_date(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def _age_on(birth: date, day: date) -> int:
    before_birthday = (day.month, day.day) < (birth.month, birth.day)
    return day.year - birth.year - before_birthday


def _normalise(text: str) -> tuple[str | None, list[Finding]]:
    """ID-01 and ID-02: the 18-character number, or the structural errors."""
    if len(text) == 15:
        if not set(text) <= _DIGITS:
            return None, [
                Finding(
                    "ID-02",
                    "error",
                    _bilingual(
                        "15位身份号码只能由数字组成", "a 15-digit number must be all digits"
                    ),
                )
            ]
        return upgrade_legacy_id(text), [
            Finding(
                "ID-01",
                "warning",
                _bilingual(
                    "15位旧号码，已升级为18位", "legacy 15-digit number, upgraded to 18 characters"
                ),
            )
        ]
    if len(text) != 18:
        return None, [
            Finding(
                "ID-01",
                "error",
                _bilingual(
                    f"身份号码应为18位，实际为{len(text)}位",
                    f"must be 18 characters, got {len(text)}",
                ),
            )
        ]
    number = text[:17] + ("X" if text[17] == "x" else text[17])
    if not set(number[:17]) <= _DIGITS or not (number[17] in _DIGITS or number[17] == "X"):
        return None, [
            Finding(
                "ID-02",
                "error",
                _bilingual(
                    "前17位须为数字，第18位须为数字或X",
                    "characters 1-17 must be digits, the 18th a digit or X",
                ),
            )
        ]
    return number, []


def check_person_id(
    text: str,
    *,
    today: date,
    declared_gender: Gender | None = None,
    declared_birth_date: date | None = None,
    employment_start: date | None = None,
) -> list[Finding]:
    """All findings for *text*; an empty list means valid with no warnings.

    *today* bounds the birth date (ID-04).  ID-06, ID-07 and ID-09 are checked only
    when the declared gender, declared birth date or employment start is given.
    A lower-case ``x`` check character is accepted as ``X``; whitespace is not
    stripped.
    """
    number, findings = _normalise(text)
    if number is None:
        return findings
    kind = _kind(text, number)
    province_known = kind is not PersonIdKind.CITIZEN or number[:2] in PROVINCE_CODES
    if not province_known:
        findings.append(
            Finding(
                "ID-03",
                "error",
                _bilingual(f"省级代码{number[:2]}不存在", f"unknown province code {number[:2]!r}"),
            )
        )
    birth = _birth_date(number)
    if birth is None:
        findings.append(
            Finding(
                "ID-04",
                "error",
                _bilingual(
                    f"出生日期{number[6:14]}不是有效日期",
                    f"birth date {number[6:14]} is not a calendar date",
                ),
            )
        )
    elif birth > today:
        findings.append(
            Finding(
                "ID-04",
                "error",
                _bilingual(
                    f"出生日期{birth.isoformat()}晚于今天",
                    f"birth date {birth.isoformat()} is in the future",
                ),
            )
        )
    elif birth < EARLIEST_BIRTH_DATE:
        findings.append(
            Finding(
                "ID-04",
                "error",
                _bilingual(
                    f"出生日期{birth.isoformat()}早于1900-01-01",
                    f"birth date {birth.isoformat()} is before 1900-01-01",
                ),
            )
        )
    expected = person_id_check_char(number[:17])
    if number[17] != expected:
        findings.append(
            Finding(
                "ID-05",
                "error",
                _bilingual(
                    f"校验码为{number[17]}，应为{expected}",
                    f"check character is {number[17]!r}, expected {expected!r}",
                ),
            )
        )
    gender = Gender.MALE if int(number[16]) % 2 else Gender.FEMALE
    if declared_gender is not None and declared_gender is not gender:
        findings.append(
            Finding(
                "ID-06",
                "error",
                _bilingual(
                    f"身份号码显示性别为{gender.value}，申报为{declared_gender.value}",
                    f"the number says {gender.name.lower()},"
                    f" declared {declared_gender.name.lower()}",
                ),
            )
        )
    if birth is not None:
        if declared_birth_date is not None and declared_birth_date != birth:
            findings.append(
                Finding(
                    "ID-07",
                    "error",
                    _bilingual(
                        f"身份号码中的出生日期为{birth.isoformat()}，申报为{declared_birth_date.isoformat()}",
                        f"the number says born {birth.isoformat()},"
                        f" declared {declared_birth_date.isoformat()}",
                    ),
                )
            )
        if (
            employment_start is not None
            and _age_on(birth, employment_start) < MINIMUM_EMPLOYMENT_AGE
        ):
            findings.append(
                Finding(
                    "ID-09",
                    "error",
                    _bilingual(
                        f"用工起始日{employment_start.isoformat()}时未满16周岁",
                        f"under 16 on the employment start {employment_start.isoformat()}",
                    ),
                )
            )
    if kind is PersonIdKind.CITIZEN and province_known and not _region_known(number[:6]):
        findings.append(
            Finding(
                "ID-08",
                "warning",
                _bilingual(
                    f"地址码{number[:6]}不在现行或历史行政区划代码中",
                    f"address code {number[:6]} is not a current or historic division code",
                ),
            )
        )
    return findings


def parse_person_id(
    text: str,
    *,
    today: date,
    declared_gender: Gender | None = None,
    declared_birth_date: date | None = None,
    employment_start: date | None = None,
) -> PersonId:
    """The :class:`PersonId` in *text*, or :class:`IdentifierError` listing every finding.

    Warnings (a legacy 15-digit number, an unknown address code) do not stop parsing;
    call :func:`check_person_id` to show them.
    """
    findings = check_person_id(
        text,
        today=today,
        declared_gender=declared_gender,
        declared_birth_date=declared_birth_date,
        employment_start=employment_start,
    )
    if any(f.severity == "error" for f in findings):
        raise IdentifierError(findings)
    number, _ = _normalise(text)
    birth = _birth_date(number) if number is not None else None
    assert number is not None and birth is not None  # no error finding means both parsed
    return PersonId(
        number=number,
        region=number[:6],
        birth_date=birth,
        gender=Gender.MALE if int(number[16]) % 2 else Gender.FEMALE,
        kind=_kind(text, number),
    )
