"""Evidence is judged by its content, never its name (issue 14, defect 8;
工伤保险条例 Art. 18 and DOMAIN §5.4/§5.6 ask for documents: PDF, JPEG or PNG)."""

from __future__ import annotations

import struct
import zlib

import pytest

from declare_app._evidence import MAX_FILE_BYTES, clean_filename, clean_label, sniff
from declare_app.interfaces import DeclarationError


def png(extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
        + extra
    )


def jpeg() -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">H", 11) + b"\x08\x00\x01\x00\x01\x01\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + app0 + sof0 + sos + b"\x12\x34" + b"\xff\xd9"


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\nstartxref\n0\n%%EOF\n"


def test_pdf_jpeg_and_png_are_known_by_their_content() -> None:
    assert sniff(PDF) == "application/pdf"
    assert sniff(jpeg()) == "image/jpeg"
    assert sniff(png()) == "image/png"


@pytest.mark.parametrize(
    "content",
    [
        b"<html><script>alert(1)</script></html>",  # an HTML page called 证明.pdf
        b"MZ\x90\x00\x03\x00\x00\x00",  # a Windows executable called scan.png
        b"PK\x03\x04" + b"\x00" * 40,  # a zip (docx/xlsx) called 合同.jpg
        b"GIF89a\x01\x00\x01\x00",  # an image, but not one of the three
        b"%!PS-Adobe-3.0\n",  # PostScript, not PDF
    ],
)
def test_other_content_is_refused_whatever_it_is_called(content: bytes) -> None:
    with pytest.raises(DeclarationError) as refused:
        sniff(content)
    assert refused.value.code == "bad-evidence"
    assert "与文件名无关" in refused.value.message


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (PDF[:-7], "PDF without %%EOF (cut short)"),
        (png()[:-12], "PNG without IEND"),
        (png(b"<script>"), "PNG with bytes after IEND (a polyglot)"),
        (png()[:41] + bytes([png()[41] ^ 0xFF]) + png()[42:], "PNG data changed: CRC off"),
        (jpeg()[:-2], "JPEG without EOI"),
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 6 + b"\xff\xd9", "JPEG scan with no frame"),
        (b"", "empty"),
    ],
)
def test_a_broken_or_hybrid_file_is_refused(content: bytes, why: str) -> None:
    with pytest.raises(DeclarationError):
        sniff(content)


def test_more_than_five_megabytes_is_refused() -> None:
    big = b"%PDF-1.7\n" + b"0" * MAX_FILE_BYTES + b"\n%%EOF\n"
    with pytest.raises(DeclarationError) as refused:
        sniff(big)
    assert refused.value.code == "too-large"
    assert MAX_FILE_BYTES == 5 * 1024 * 1024


def test_the_label_is_required_and_the_name_is_display_only() -> None:
    with pytest.raises(DeclarationError):
        clean_label("  ")
    with pytest.raises(DeclarationError):
        clean_label("证明\x00")
    assert clean_label(" 劳动合同 ") == "劳动合同"
    assert clean_filename("C:\\scans\\..\\诊断证明.pdf") == "诊断证明.pdf"
    assert clean_filename("../../etc/passwd\r\n") == "passwd"
    assert clean_filename("..") == "附件"
