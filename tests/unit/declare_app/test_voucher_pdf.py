"""The 办理凭证 PDF: a valid one-page A4 document in Chinese, byte-for-byte deterministic,
identity numbers masked, and hostile values (huge, control characters, markup) unable
to break it or to leak past its bounds."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declare_app._voucher_pdf import FOOTER, VoucherView, mask_id_number, voucher_pdf
from declare_app.interfaces import DeclarationType

ID_NUMBER = "330682199001011234"
APPLIED = datetime(2026, 3, 15, 2, 30, 5, tzinfo=UTC)  # 10:30:05 in Shanghai


def make(**changes: object) -> VoucherView:
    values: dict[str, object] = {
        "voucher_no": "PZ-330682-20260315-000123",
        "declaration_id": "d_9f8e7d6c5b4a3f21",
        "declaration_type": DeclarationType.PERSON_ADD,
        "unit_code": "33068200012",
        "unit_name": "绍兴市上虞区示例机械制造有限公司",
        "applied_at": APPLIED,
        "auditor": "王审核",
        "session_id": "sess-7c1e2a",
        "details": [
            ("姓名", "张三"),
            ("公民身份号码", mask_id_number(ID_NUMBER)),
            ("参保年月", "2026-03"),
        ],
    }
    values.update(changes)
    return VoucherView(**values)  # type: ignore[arg-type]


def read(data: bytes) -> pypdf.PdfReader:
    return pypdf.PdfReader(io.BytesIO(data), strict=True)


def text_of(data: bytes) -> str:
    """The page's text, by pypdf and, where poppler is installed, by pdftotext too
    (both must see the same words, so the two are joined for the assertions)."""
    reader = read(data)
    assert len(reader.pages) == 1
    texts = [reader.pages[0].extract_text()]
    pdftotext = shutil.which("pdftotext")
    if pdftotext is not None:
        texts.append(
            subprocess.run(
                [pdftotext, "-q", "-", "-"], input=data, capture_output=True, check=True
            ).stdout.decode("utf-8")
        )
    return "\n".join(texts)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_is_a_one_page_a4_pdf() -> None:
    data = voucher_pdf(make())
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    reader = read(data)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_shows_voucher_number_type_unit_time_and_footer_in_chinese() -> None:
    text = text_of(voucher_pdf(make()))
    for expected in (
        "办理凭证",
        "PZ-330682-20260315-000123",
        "人员增加",
        "d_9f8e7d6c5b4a3f21",
        "33068200012",
        "绍兴市上虞区示例机械制造有限公司",
        "2026-03-15 10:30:05",  # Asia/Shanghai, not UTC
        "王审核",
        "sess-7c1e2a",
        "参保年月",
        FOOTER,
    ):
        assert squeeze(expected) in squeeze(text), expected


@pytest.mark.parametrize("declaration_type", list(DeclarationType))
def test_every_type_shows_its_chinese_name(declaration_type: DeclarationType) -> None:
    text = text_of(voucher_pdf(make(declaration_type=declaration_type)))
    assert declaration_type.chinese in squeeze(text)


def test_metadata_dates_are_the_applied_time_in_shanghai() -> None:
    metadata = read(voucher_pdf(make())).metadata
    assert metadata is not None
    assert metadata["/CreationDate"] == "D:20260315103005+08'00'"
    assert metadata["/ModDate"] == "D:20260315103005+08'00'"
    assert metadata.title == "办理凭证 PZ-330682-20260315-000123"


def test_same_voucher_gives_the_same_bytes() -> None:
    assert voucher_pdf(make()) == voucher_pdf(make())


def test_same_voucher_gives_the_same_bytes_in_another_process() -> None:
    """No clock, hash seed or process state leaks into the bytes."""
    program = (
        "import sys, hashlib\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_voucher_pdf import make\n"
        "from declare_app._voucher_pdf import voucher_pdf\n"
        "print(hashlib.sha256(voucher_pdf(make())).hexdigest())\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, check=True, env=env, text=True
    ).stdout.strip()
    assert out == hashlib.sha256(voucher_pdf(make())).hexdigest()


def test_different_vouchers_get_different_document_ids() -> None:
    one = read(voucher_pdf(make())).trailer["/ID"]
    other = read(voucher_pdf(make(voucher_no="PZ-330682-20260315-000124"))).trailer["/ID"]
    assert one != other


def test_same_instant_in_any_zone_gives_the_same_bytes() -> None:
    elsewhere = APPLIED.astimezone(timezone(timedelta(hours=-5)))
    assert voucher_pdf(make(applied_at=elsewhere)) == voucher_pdf(make())


def test_naive_applied_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(applied_at=datetime(2026, 3, 15, 10, 30))


def test_details_are_copied_into_the_frozen_value() -> None:
    rows = [("姓名", "张三")]
    voucher = make(details=rows)
    rows.append(("姓名", "李四"))
    assert voucher.details == (("姓名", "张三"),)


@pytest.mark.parametrize(
    ("id_number", "masked"),
    [
        ("330682199001011234", "330682********1234"),
        ("33068219900101123X", "330682********123X"),
        ("330682900101123", "330682*****1123"),  # 15-digit legacy number
        (" 330682 199001011234 ", "330682********1234"),
        ("12345678901", "123456*8901"),
        ("1234567890", "**********"),  # 6 + 4 would show it all: hide it all
        ("123", "***"),
        ("", ""),
    ],
)
def test_mask_id_number_keeps_first_6_and_last_4(id_number: str, masked: str) -> None:
    assert mask_id_number(id_number) == masked


def test_the_full_id_number_is_not_in_the_pdf() -> None:
    data = voucher_pdf(make())
    text = squeeze(text_of(data))
    assert "330682********1234" in text
    assert ID_NUMBER not in text
    assert ID_NUMBER.encode() not in data


def test_very_long_values_are_cut_and_stay_on_one_page() -> None:
    huge = "很长的单位名称" * 150_000  # ~1 M characters
    started = time.monotonic()
    data = voucher_pdf(
        make(
            unit_name=huge,
            voucher_no="X" * 10_000,
            auditor="A" * 10_000,
            details=[("备注" * 500, huge), ("参保年月", "2026-03")],
        )
    )
    assert time.monotonic() - started < 5
    assert len(data) < 50_000
    text = text_of(data)
    assert "…" in text
    assert "参保年月" in text  # the row after the huge one is still there
    assert FOOTER in squeeze(text)


def test_control_and_formatting_characters_are_removed() -> None:
    data = voucher_pdf(
        make(
            unit_name="示例\x00公司\x1b[31m\u202e反向\u200b\r\n第二行\x7f",
            details=[("姓\x07名", "张\x08三\ud800")],
        )
    )
    text = text_of(data)
    for bad in ("\x00", "\x1b", "\u202e", "\u200b", "\x07", "\x08", "\x7f", "\ud800"):
        assert bad not in text
    assert "示例公司[31m反向 第二行" in text
    assert "姓名" in text
    assert "张三" in text


def test_markup_is_drawn_as_plain_text() -> None:
    html = '<script>alert("x")</script><b>粗</b>&amp;'
    text = text_of(voucher_pdf(make(unit_name=html, details=[("<i>标签</i>", html)])))
    assert squeeze(html) in squeeze(text)
    assert "<i>标签</i>" in text


def test_characters_beyond_the_font_are_replaced() -> None:
    text = text_of(voucher_pdf(make(unit_name="示例😀公司𠀀")))
    assert "示例〓公司〓" in text


def test_too_many_detail_rows_are_summarised_on_the_one_page() -> None:
    rows = [(f"项目{i}", f"值{i}") for i in range(500)]
    text = text_of(voucher_pdf(make(details=rows)))
    assert "项目0" in text
    assert "项目499" not in text
    match = re.search(r"另有 (\d+) 项因篇幅未列出", text)
    assert match is not None
    shown = len(set(re.findall(r"项目(\d+)", text)))
    assert shown + int(match.group(1)) == 500


def test_rows_that_fit_are_all_shown_without_a_summary() -> None:
    rows = [(f"项目{i}", f"值{i}") for i in range(20)]
    text = text_of(voucher_pdf(make(details=rows)))
    assert "项目19" in text
    assert "另有" not in text


def test_no_details_shows_an_empty_marker() -> None:
    assert "（无）" in text_of(voucher_pdf(make(details=[], session_id=None)))


@settings(max_examples=40, deadline=None)
@given(
    unit_name=st.text(max_size=400),
    label=st.text(max_size=80),
    value=st.text(max_size=600),
    voucher_no=st.text(max_size=100),
)
def test_any_text_gives_a_valid_one_page_pdf(
    unit_name: str, label: str, value: str, voucher_no: str
) -> None:
    data = voucher_pdf(
        make(unit_name=unit_name, voucher_no=voucher_no, details=[(label, value)] * 3)
    )
    assert data.startswith(b"%PDF-")
    assert len(read(data).pages) == 1


PDFFONTS = shutil.which("pdffonts")


@pytest.mark.skipif(PDFFONTS is None, reason="pdffonts (poppler-utils) not installed")
def test_pdffonts_shows_the_cjk_font_embedded_as_a_subset() -> None:
    """Issue 11, acceptance 5: the voucher prints the same in any viewer — every font
    on it is embedded, and it is a subset of the free CJK font .ci/run installs."""
    assert PDFFONTS is not None
    data = voucher_pdf(make())
    listing = subprocess.run(
        [PDFFONTS, "-"], input=data, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    fonts = listing.splitlines()[2:]  # after the heading and its rule
    assert fonts, listing
    for line in fonts:
        name, *_, emb, sub, _uni, _obj, _gen = line.split()
        assert (emb, sub) == ("yes", "yes"), listing
        assert re.fullmatch(r"[A-Z]{6}\+WenQuanYi[\w-]+", name), listing


def test_the_font_is_the_embedded_cjk_one_where_it_is_installed() -> None:
    from declare_app._voucher_pdf import EMBEDDED_FONTS, voucher_font

    installed = [name for name, path, _ in EMBEDDED_FONTS if path.is_file()]
    if not installed:
        pytest.skip("fonts-wqy-microhei not installed")
    assert voucher_font() == (installed[0], True)
