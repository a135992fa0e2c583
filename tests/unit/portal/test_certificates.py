"""参保证明 pieces without a database: codes, canonical content, the PDF."""

from __future__ import annotations

import hashlib
import itertools
import os
from datetime import datetime

import pytest

from declare_app._china_time import CHINA_TIME
from declare_app._voucher_pdf import voucher_font
from portal._certificates import (
    CertificateRecord,
    canonical,
    certificate_content,
    certificate_pdf,
    code_digest,
    content_sha256,
    new_code,
    normalise_code,
    pdf_matches,
)

ISSUED = datetime(2025, 4, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()


def _content() -> dict[str, object]:
    return certificate_content(
        name="张三",
        masked_id="330682********1233",
        from_month="2025-01",
        to_month="2025-03",
        enrolments=[
            {
                "unit_name": "上虞示范机械厂",
                "insurance_name": "失业保险",
                "start_month": "2025-01",
                "end_month": None,
                "status": "参保缴费",
            },
        ],
        paid_months={"210": 3, "110": 3},
        issued_at=ISSUED,
    )


def test_a_code_is_128_random_bits_in_26_base32_characters() -> None:
    counter = itertools.count()
    code = new_code(lambda n: bytes(next(counter) % 256 for _ in range(n)))
    assert len(code) == 26 and normalise_code(code) == code
    assert new_code(bytes) == "A" * 26  # all-zero bytes: the encoding, not the randomness
    assert len({new_code(os.urandom) for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "text", ["", "A" * 25, "A" * 27, "A" * 25 + "1", "A" * 25 + "=", "Ａ" * 26]
)
def test_malformed_codes_are_refused_before_any_lookup(text: str) -> None:
    assert normalise_code(text) is None


def test_a_code_typed_in_lower_case_or_with_spaces_around_is_the_same_code() -> None:
    code = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert normalise_code(f"  {code.lower()} ") == code


def test_the_database_keeps_a_digest_of_the_code_never_the_code() -> None:
    code = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert code not in code_digest(code) and len(code_digest(code)) == 64
    assert code_digest(code) != code_digest("BBCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_the_content_is_canonical_and_any_edit_changes_its_digest() -> None:
    content = _content()
    reordered = dict(reversed(list(content.items())))
    assert canonical(content) == canonical(reordered)
    assert content_sha256(content) == hashlib.sha256(canonical(content).encode()).hexdigest()
    edited = {**content, "name": "张四"}
    assert content_sha256(edited) != content_sha256(content)


def test_the_content_says_when_it_was_issued_in_china_time_and_until_when_it_is_valid() -> None:
    content = _content()
    assert content["issued"] == "2025-04-10T10:00:00+08:00"
    assert content["valid_until"] == "2025-07-09"
    assert list(content["paid_months"]) == ["110", "210"]  # type: ignore[call-overload]


def test_the_pdf_is_the_same_bytes_for_the_same_content_and_an_edit_does_not_match() -> None:
    content = _content()
    url = "https://portal.example/verify/ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pdf = certificate_pdf(content, code="ABCDEFGHIJKLMNOPQRSTUVWXYZ", verify_url=url)
    assert pdf.startswith(b"%PDF-") and pdf == certificate_pdf(
        content, code="ABCDEFGHIJKLMNOPQRSTUVWXYZ", verify_url=url
    )
    _, embedded = voucher_font()
    if embedded:
        assert b"/FontFile2" in pdf  # the CJK TrueType font travels with the certificate
    record = CertificateRecord(
        content=content,
        content_sha256=content_sha256(content),
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        issued_at=ISSUED,
        valid_until=ISSUED + 90 * 86400,
        intact=True,
    )
    assert pdf_matches(record, pdf)
    assert not pdf_matches(record, pdf[:-10] + b"%%EOF\n\n\n\n")
    assert record.valid(ISSUED + 1) and not record.valid(ISSUED + 90 * 86400)
