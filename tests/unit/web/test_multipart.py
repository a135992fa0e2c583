"""The streaming multipart reader: what browsers and curl send reads right in any
chunking; every malformed or over-cap body is a MultipartError (400, or 413 for the
file over its cap) raised as early as the bytes allow, never another exception; and
nothing but the file grows with the body."""

from __future__ import annotations

import random
import re
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from web._multipart import MultipartError, MultipartReader, Upload

CAP = 4096  # max_file_bytes in most tests: small, so caps are cheap to cross
B = "----WebKitFormBoundaryBu69iF0Unn8LMYLl"
CT = f"multipart/form-data; boundary={B}"
MARK = "EVIL"  # in the bodies below; an error message must never echo it


def reader(content_type: str = CT, **caps: Any) -> MultipartReader:
    caps.setdefault("max_file_bytes", CAP)
    return MultipartReader(content_type, **caps)


def read(body: bytes, chunks: Iterable[int] = (), content_type: str = CT, **caps: Any) -> Upload:
    """Feed *body* cut after each size in *chunks* (cycled), the rest at once."""
    r = reader(content_type, **caps)
    for piece in cut(body, list(chunks)):
        r.feed(piece)
    return r.finish()


def cut(body: bytes, sizes: list[int]) -> Iterator[bytes]:
    at, i = 0, 0
    while at < len(body):
        n = sizes[i % len(sizes)] if sizes else len(body)
        yield body[at : at + n]
        at, i = at + n, i + 1


def outcome(body: bytes, sizes: list[int], content_type: str = CT, **caps: Any) -> object:
    """The Upload, or the refusal's (status, code): what the HTTP answer depends on.

    Not the message: when a body breaks two rules at once, which one it names may
    depend on where the chunks fall (python-multipart checks a header line's size
    before its characters only when they arrive in one chunk).
    """
    try:
        return read(body, sizes, content_type, **caps)
    except MultipartError as e:
        assert e.status in (400, 413), e.status
        return (e.status, e.code)


def part(name: str | bytes, content: bytes, *headers: bytes, filename: str | None = None) -> bytes:
    raw_name = name.encode() if isinstance(name, str) else name
    disposition = b'Content-Disposition: form-data; name="' + raw_name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename.encode() + b'"'
    return b"\r\n".join([disposition, *headers, b"", content])


def body(*parts: bytes, boundary: str = B) -> bytes:
    dash = b"--" + boundary.encode()
    return b"".join(dash + b"\r\n" + p + b"\r\n" for p in parts) + dash + b"--\r\n"


FILE = "姓名,公民身份号码\r\n张三,110101199003070011\r\n".encode()
GOOD = body(
    part("csrf_token", f"tok-{MARK}".encode()),
    part("year", b"2024"),
    part("file", FILE, b"Content-Type: text/csv", filename="a.csv"),
)


def test_the_body_this_file_builds_reads_whole_and_byte_by_byte() -> None:
    expected = Upload([("csrf_token", f"tok-{MARK}"), ("year", "2024")], FILE, "a.csv")
    assert read(GOOD) == expected
    assert read(GOOD, [1]) == expected


# -- what Chromium and curl send ------------------------------------------------------------
# Captured on the wire from Chromium 156 (a <form enctype="multipart/form-data"> posted by
# Playwright) and curl 7.88.1 (-F), each to a socket that recorded the request.

CSV = FILE


def _wire(boundary: str, *parts: str | bytes) -> bytes:
    dash = f"--{boundary}".encode()
    encoded = [p.encode() if isinstance(p, str) else p for p in parts]
    return b"".join(dash + b"\r\n" + p + b"\r\n" for p in encoded) + dash + b"--\r\n"


CHROMIUM = "----WebKitFormBoundaryBu69iF0Unn8LMYLl"
CURL = "------------------------84ff4fa323b8caab"
CAPTURED = {
    "chromium-chinese-filename": (
        CHROMIUM,
        _wire(
            CHROMIUM,
            'Content-Disposition: form-data; name="csrf_token"\r\n\r\ntok',
            'Content-Disposition: form-data; name="year"\r\n\r\n2024',
            'Content-Disposition: form-data; name="file"; filename="人员增加.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + CSV,
        ),
        Upload([("csrf_token", "tok"), ("year", "2024")], CSV, "人员增加.csv"),
    ),
    "chromium-no-file-chosen": (
        "----WebKitFormBoundaryQgZ28lHOezLT8pf6",
        _wire(
            "----WebKitFormBoundaryQgZ28lHOezLT8pf6",
            'Content-Disposition: form-data; name="csrf_token"\r\n\r\ntok',
            'Content-Disposition: form-data; name="year"\r\n\r\n年',
            'Content-Disposition: form-data; name="file"; filename=""\r\n'
            "Content-Type: application/octet-stream\r\n\r\n",
        ),
        Upload([("csrf_token", "tok"), ("year", "年")], b"", ""),
    ),
    "chromium-quote-in-filename": (
        "----WebKitFormBoundaryQJW4bmcVw8IaQXDT",
        _wire(
            "----WebKitFormBoundaryQJW4bmcVw8IaQXDT",
            'Content-Disposition: form-data; name="csrf_token"\r\n\r\ntok',
            'Content-Disposition: form-data; name="year"\r\n\r\n',
            'Content-Disposition: form-data; name="file"; filename="a%22b.csv"\r\n'
            "Content-Type: text/csv\r\n\r\nx",
        ),
        Upload([("csrf_token", "tok"), ("year", "")], b"x", "a%22b.csv"),
    ),
    "curl-chinese-filename": (
        CURL,
        _wire(
            CURL,
            'Content-Disposition: form-data; name="csrf_token"\r\n\r\nabc',
            'Content-Disposition: form-data; name="year"\r\n\r\n2024',
            'Content-Disposition: form-data; name="file"; filename="人员增加.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + CSV,
        ),
        Upload([("csrf_token", "abc"), ("year", "2024")], CSV, "人员增加.csv"),
    ),
    "curl-quote-in-filename": (
        "------------------------406295134a64ffdb",
        _wire(
            "------------------------406295134a64ffdb",
            'Content-Disposition: form-data; name="file"; filename="a%22b.csv"\r\n'
            "Content-Type: application/octet-stream\r\n\r\nx",
        ),
        Upload([], b"x", "a%22b.csv"),
    ),
}


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_what_chromium_and_curl_send_reads_to_its_fields_file_and_filename(name: str) -> None:
    """The quote Chromium and curl escape as %22 (the HTML form encoding) is kept as
    sent: undoing it would be ambiguous with a file really named a%22b.csv."""
    boundary, raw, expected = CAPTURED[name]
    ct = f"multipart/form-data; boundary={boundary}"
    for sizes in ([], [1], [7], [64, 3, 500]):
        assert read(raw, sizes, ct) == expected, sizes


def test_filename_star_is_ignored_as_rfc_7578_says_and_the_plain_filename_kept() -> None:
    """RFC 7578 §4.2 forbids ``filename*=``; python-multipart drops it, so the plain
    ``filename`` is what we get, and a file part with only ``filename*=`` has none."""
    both = b'Content-Disposition: form-data; name="file"; filename="a.csv"; filename*=UTF-8\'\'%E4%BA%BA.csv'
    only = b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E4%BA%BA.csv"
    assert read(body(both + b"\r\n\r\nx")).filename == "a.csv"
    assert read(body(only + b"\r\n\r\nx")) == Upload([], b"x", "")


def test_a_filename_keeps_only_its_last_path_segment() -> None:
    for sent in ("C:\\Users\\张三\\a.csv", "../../etc/a.csv", "dir/a.csv"):
        upload = read(body(part("file", b"x", filename=sent)))
        assert upload.filename == sent.replace("\\", "/").rsplit("/", 1)[-1]


def test_a_filename_that_is_not_utf8_is_kept_with_replacement_characters() -> None:
    """A GBK filename (curl on a Chinese Windows) is informational: not a refusal."""
    disposition = b'Content-Disposition: form-data; name="file"; filename="' + "人员.csv".encode(
        "gbk"
    )
    upload = read(body(disposition + b'"\r\n\r\nx'))
    assert upload.file == b"x" and upload.filename.endswith(".csv") and "\ufffd" in upload.filename


# -- today's cases (declare_app/web/_imports.py parse_multipart and the tests using it) ----------
# tests/unit/declare_app/web/test_imports.py builds its bodies with this helper; the
# cases below are its calls, test_isolation.py's forged import, test_robustness.py's
# multipart body and test_console.py's multipart post without a boundary.


def imports_multipart(fields: dict[str, str], file: bytes | None, filename: str = "a.csv") -> bytes:
    boundary = "----ssgate-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + file
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


IMPORTS_CT = "multipart/form-data; boundary=----ssgate-test-boundary"
IMPORT_CAP = 8 * 1024 * 1024  # declare_app._batch.MAX_FILE_BYTES


def test_imports_upload_with_token_and_file() -> None:
    csv = "姓名,公民身份号码\r\n张三,x\r\n".encode("gb18030")
    upload = read(imports_multipart({"csrf_token": "t"}, csv), content_type=IMPORTS_CT)
    assert upload == Upload([("csrf_token", "t")], csv, "a.csv") and upload.field("year") is None


def test_imports_upload_without_a_file_has_file_none() -> None:
    upload = read(
        imports_multipart({"csrf_token": "t", "year": "2024"}, None), content_type=IMPORTS_CT
    )
    assert upload.file is None and upload.field("year") == "2024"


def test_imports_binary_file_and_no_token() -> None:
    upload = read(imports_multipart({}, b"\x00\x01binary"), content_type=IMPORTS_CT)
    assert upload == Upload([], b"\x00\x01binary", "a.csv")


def test_imports_file_over_1_mib_is_read_and_over_8_mib_is_413() -> None:
    big = b"\xb3\xa4" * 300 * 2_500  # about 1.5 MiB, as the import test's refused lines
    upload = read(
        imports_multipart({"csrf_token": "t"}, big), [65536], IMPORTS_CT, max_file_bytes=IMPORT_CAP
    )
    assert upload.file == big
    too_big = b"\r\n" * (9 * 1024 * 1024 // 2)
    with pytest.raises(MultipartError) as refused:
        read(imports_multipart({}, too_big), [65536], IMPORTS_CT, max_file_bytes=IMPORT_CAP)
    assert (refused.value.status, refused.value.code) == (413, "too-large")
    assert "8 MiB" in refused.value.message


def test_isolation_forged_import_reads_its_three_parts() -> None:
    boundary = "0123456789abcdef0123456789abcdef"  # a uuid4().hex
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\ntok\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="unit_code"\r\n\r\nB\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\na,b\r\n--{boundary}--\r\n"
    ).encode()
    upload = read(raw, [5], f"multipart/form-data; boundary={boundary}")
    assert upload == Upload([("csrf_token", "tok"), ("unit_code", "B")], b"a,b", "b.csv")


def test_robustness_body_reads_its_preamble_and_unquoted_name_as_rfc_2046_allows() -> None:
    """Today's parser refused this (400) for the unquoted name; RFC 2045 allows a token
    unquoted and RFC 2046 a preamble ending in CRLF, so it now reads (never a 500)."""
    raw = b"\r\n\r\n--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--"
    assert read(raw, [], "multipart/form-data; boundary=x") == Upload([("a", "1")], None, "")


def test_console_multipart_without_boundary_is_400_no_boundary() -> None:
    with pytest.raises(MultipartError) as refused:
        reader("multipart/form-data")
    assert (
        refused.value.status == 400
        and refused.value.message == "上传内容格式不正确（缺少 boundary）"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (body(*[part(f"f{i}", b"1") for i in range(9)]), "上传内容的字段过多（最多 8 个）"),
        (body(part("a", b"x" * 1025)), "表单字段过长（每个最多 1024 字节）"),
        (body(part("a", "中".encode("gbk"))), "表单字段应为 UTF-8 编码"),
        (body(part("file", b"1"), part("file", b"2")), "一次只能上传一个文件"),
        (
            body(b"Content-Disposition: form-data\r\n\r\nx"),
            "上传内容格式不正确（每个分段都应有 form-data 字段名）",
        ),
    ],
    ids=["nine-parts", "long-field", "gbk-field", "two-files", "no-name"],
)
def test_todays_refusals_hold_with_their_messages(raw: bytes, message: str) -> None:
    with pytest.raises(MultipartError) as refused:
        read(raw, [3])
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        400,
        "bad-multipart",
        message,
    )


def test_eight_parts_and_a_field_of_1024_bytes_are_accepted() -> None:
    upload = read(body(*[part(f"f{i}", b"x" * 1024) for i in range(7)], part("file", b"")))
    assert len(upload.fields) == 7 and upload.file == b""


# -- rules ------------------------------------------------------------------------------------


def refusal(
    raw: bytes, content_type: str = CT, sizes: Iterable[int] = (11,), **caps: Any
) -> MultipartError:
    with pytest.raises(MultipartError) as refused:
        read(raw, sizes, content_type, **caps)
    return refused.value


def test_a_file_of_exactly_the_cap_is_read_one_byte_more_is_413() -> None:
    assert read(body(part("file", b"a" * CAP))).file == b"a" * CAP
    error = refusal(body(part("file", b"a" * (CAP + 1))))
    assert (error.status, error.code, error.message) == (
        413,
        "too-large",
        "文件过大（最大 4 KiB），请拆分后分批上传",
    )


def test_part_headers_over_the_cap_are_400_and_name_the_file_name() -> None:
    """400, not 413: the user's remedy is a shorter file name, not a smaller file."""
    long_line = refusal(body(part("file", b"x", filename="长" * 700)))
    many_lines = refusal(body(part("a", b"x", *[b"X-H: " + b"v" * 300] * 7)))
    too_many = refusal(body(part("a", b"x", *[b"X-H: v"] * 8)))
    for error in (long_line, many_lines, too_many):
        assert error.status == 400 and "分段头部过长" in error.message


def test_a_filename_of_600_chinese_characters_fits_the_header_cap() -> None:
    assert (
        read(body(part("file", b"x", filename="长" * 600 + ".csv"))).filename == "长" * 600 + ".csv"
    )


def test_nested_multipart_is_refused() -> None:
    inner = body(part("a", b"1"), boundary="inner")
    error = refusal(body(part("a", inner, b"Content-Type: multipart/mixed; boundary=inner")))
    assert error.message == "上传内容格式不正确（不支持嵌套的 multipart）"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (b"", "字段名应为 1-64 字节"),
        (b"n" * 65, "字段名应为 1-64 字节"),
        (b"a\x00b", "字段名不能包含空字符"),
        (b"\xff", "字段名应为 UTF-8 编码"),
    ],
)
def test_field_names_are_1_to_64_bytes_of_utf8_without_nul(name: bytes, message: str) -> None:
    assert message in refusal(body(part(name, b"1"))).message


def test_nul_in_a_field_value_or_a_filename_is_refused() -> None:
    assert refusal(body(part("a", b"x\x00y"))).message == "表单字段不能包含空字符"
    assert refusal(body(part("file", b"x", filename="a\x00.csv"))).message == "文件名不能包含空字符"


def test_content_transfer_encoding_other_than_identity_is_refused() -> None:
    for encoding in (b"base64", b"quoted-printable", b"x-gzip"):
        error = refusal(body(part("a", b"MQ==", b"Content-Transfer-Encoding: " + encoding)))
        assert "Content-Transfer-Encoding" in error.message
    assert read(body(part("a", b"1", b"Content-Transfer-Encoding: binary"))).field("a") == "1"


def test_a_repeated_content_disposition_or_content_type_is_refused() -> None:
    twice = b'Content-Disposition: form-data; name="b"'
    assert "分段头部重复" in refusal(body(part("a", b"1", twice))).message
    assert (
        "分段头部重复"
        in refusal(body(part("a", b"1", b"Content-Type: a/b", b"Content-Type: c/d"))).message
    )


def test_a_body_with_no_part_is_refused() -> None:
    assert "没有任何字段" in refusal(f"--{B}--\r\n".encode()).message


def test_a_preamble_and_an_epilogue_are_ignored_up_to_1_kib_each() -> None:
    expected = read(GOOD)
    assert read(b"p" * 1024 + b"\r\n" + GOOD + b"e" * 1022, [13]) == expected
    assert "分隔线" in refusal(b"p" * 1025 + b"\r\n" + GOOD).message
    assert "结束分隔线之后" in refusal(GOOD + b"e" * 1023).message


def test_the_boundary_comes_from_the_content_type_and_follows_rfc_2046() -> None:
    assert read(
        body(part("a", b"1"), boundary="a b"), content_type='multipart/form-data; boundary="a b"'
    )
    assert read(
        body(part("a", b"1"), boundary="x" * 70),
        content_type="multipart/form-data; boundary=" + "x" * 70,
    )
    for bad in ("x" * 71, "", '"a "', "a@b", "中"):
        with pytest.raises(MultipartError) as refused:
            reader("multipart/form-data; boundary=" + bad)
        assert refused.value.status == 400, bad
    for not_form in ("multipart/mixed; boundary=x", "text/plain", ""):
        with pytest.raises(MultipartError):
            reader(not_form)


def test_an_error_is_raised_again_by_every_later_call() -> None:
    r = reader()
    with pytest.raises(MultipartError) as first:
        r.feed(f"--{B}garbage".encode())
    for call in (lambda: r.feed(GOOD), r.finish):
        with pytest.raises(MultipartError) as again:
            call()
        assert again.value is first.value


def test_python_multipart_warnings_about_bad_bodies_stay_off_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Its logger would print each malformed body through logging's last resort."""
    with pytest.raises(MultipartError):
        reader().feed(f"--{B}garbage".encode())
    assert capfd.readouterr().err == ""


def test_feeding_after_finish_is_a_programming_error() -> None:
    r = reader()
    r.feed(GOOD)
    r.finish()
    with pytest.raises(RuntimeError):
        r.feed(b"")


# -- refusing early: the caller stops reading at the first bad chunk ------------------------


@dataclass
class Source:
    """A body handed out chunk by chunk, counting what the reader took."""

    data: bytes
    size: int
    taken: int = 0

    def __iter__(self) -> Iterator[bytes]:
        for at in range(0, len(self.data), self.size):
            piece = self.data[at : at + self.size]
            self.taken += len(piece)
            yield piece


def read_until_refused(source: Source, **caps: Any) -> MultipartError:
    r = reader(**caps)
    with pytest.raises(MultipartError) as refused:
        for piece in source:
            r.feed(piece)
        r.finish()
    return refused.value


def test_the_chunk_that_takes_the_file_over_its_cap_is_the_last_one_read() -> None:
    cap = 256 * 1024
    raw = body(part("file", b"A" * (1024 * 1024), filename="a.csv"))
    head = raw.index(b"A")
    source = Source(raw, 16 * 1024)
    error = read_until_refused(source, max_file_bytes=cap)
    assert error.status == 413
    crossing = head + cap + 1  # the first byte over the cap is in this chunk
    assert source.taken == -(-crossing // source.size) * source.size < len(raw)


def test_a_9_mib_upload_of_line_breaks_stops_within_one_chunk_of_the_8_mib_cap() -> None:
    """CRLFs in the file may be held back as a possible delimiter: at most one chunk later."""
    raw = imports_multipart({}, b"\r\n" * (9 * 1024 * 1024 // 2))
    source = Source(raw, 65536)
    r = MultipartReader(IMPORTS_CT, max_file_bytes=IMPORT_CAP)
    with pytest.raises(MultipartError) as refused:
        for piece in source:
            r.feed(piece)
    assert refused.value.status == 413
    assert source.taken <= IMPORT_CAP + 2 * source.size


@pytest.mark.parametrize(
    ("stream", "bound"),
    [
        (b"x" * 100_000, 2048),  # never a delimiter: the preamble cap
        (f"--{B}\r\nX-Long: ".encode() + b"v" * 100_000, 4096),  # one endless header line
        (f"--{B}\r\n".encode() + b"X-A: b\r\n" * 10_000, 4096),  # endless header lines
        (
            f"--{B}\r\nContent-Disposition: form-data; name=a\r\n\r\n".encode() + b"v" * 100_000,
            4096,
        ),
        (GOOD + b"e" * 100_000, 8192),  # the epilogue cap
        (f"--{B}\r\n".encode() + part("a", b"1") + f"\r\n--{B}".encode() + b" " * 1_000_000, 0),
    ],
    ids=["preamble", "header-line", "header-lines", "field", "epilogue", "padding"],
)
def test_an_endless_stream_is_refused_after_a_bounded_number_of_bytes(
    stream: bytes, bound: int
) -> None:
    """Whatever the bytes, feeding raises within the caps; transport padding, which
    python-multipart takes without limit, is stopped by :attr:`max_body_bytes`."""
    source = Source(stream, 1024)
    error = read_until_refused(source)
    assert error.status == 400
    limit = bound or reader().max_body_bytes + 1024
    assert source.taken <= limit < len(stream)


def test_max_body_bytes_is_above_the_longest_body_the_caps_let_through() -> None:
    """Every cap filled: 1 KiB preamble; eight parts of eight 2048-byte header lines
    (leading spaces count toward python-multipart's line cap, not our names+values
    total), seven 1 KiB fields and the file at its cap; 64 bytes of transport padding
    after each delimiter but the first (python-multipart allows none there); 1 KiB of
    epilogue."""
    dash = f"--{B}".encode()

    def line(name: bytes, value: bytes) -> bytes:
        return name + b":" + b" " * (2048 - len(name) - 1 - len(value)) + value

    def fat(name: bytes, content: bytes) -> bytes:
        lines = [line(b"Content-Disposition", b'form-data; name="' + name + b'"')]
        lines += [line(b"X", b"v")] * 7
        return b"\r\n".join([*lines, b"", content])

    parts = [fat(b"f%d" % i, b"x" * 1024) for i in range(7)] + [fat(b"file", b"a" * CAP)]
    longest = b"p" * 1024 + b"\r\n" + dash + b"\r\n" + parts[0]
    longest += b"".join(b"\r\n" + dash + b" " * 64 + b"\r\n" + p for p in parts[1:])
    longest += b"\r\n" + dash + b"--" + b"e" * 1024
    upload = read(longest, [4096])
    assert len(upload.fields) == 7 and upload.file == b"a" * CAP
    assert len(longest) <= reader().max_body_bytes


def test_memory_held_while_reading_is_the_file_and_a_few_kib() -> None:
    cap = 2 * 1024 * 1024
    head = f"--{B}\r\n".encode() + part("file", b"", filename="a.csv")
    tail = f"\r\n--{B}--\r\n".encode()
    chunk = b"A" * 65536
    r = reader(max_file_bytes=cap)
    tracemalloc.start()
    try:
        r.feed(head)
        for _ in range(cap // len(chunk)):
            r.feed(chunk)
        r.feed(tail)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < cap * 1.15 + 256 * 1024, peak
    assert r.finish().file == b"A" * cap


# -- a corpus of malformed bodies -------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    name: str
    raw: bytes
    status: int = 400
    content_type: str = CT


def _gen_corpus() -> list[Bad]:
    rng = random.Random(9)
    dash = f"--{B}".encode()
    out: list[Bad] = []
    # truncated at every offset before the closing delimiter ends
    end = GOOD.rindex(b"--") + 2
    out += [Bad(f"truncated-{k}", GOOD[:k]) for k in range(0, end, 2)]
    out += [Bad(f"truncated-{k}", GOOD[:k]) for k in range(end - 12, end, 1) if k % 2]
    # wrong or missing boundary
    for i, ct in enumerate(
        (
            "multipart/form-data; boundary=other",
            f"multipart/form-data; boundary={B[:-1]}",
            f"multipart/form-data; boundary={B}x",
            f"multipart/form-data; boundary={B.lower()}",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            'multipart/form-data; boundary=""',
            "multipart/form-data; boundary=" + "x" * 71,
            "multipart/form-data; boundary=a@b",
            "multipart/form-data; boundary=中",
            f"multipart/mixed; boundary={B}",
            "application/x-www-form-urlencoded",
            "",
        )
    ):
        out.append(Bad(f"content-type-{i}", GOOD, content_type=ct))
    # huge or broken part headers
    cd = b'Content-Disposition: form-data; name="a"'
    for n in (2049, 5000, 100_000):
        out.append(Bad(f"header-line-{n}", body(part("a", b"1", b"X-Long: " + b"v" * n))))
        out.append(Bad(f"header-name-{n}", body(part("a", b"1", b"X" * n + b": v"))))
    out.append(Bad("filename-3000", body(part("file", b"1", filename="f" * 3000))))
    out.append(Bad("headers-total", body(part("a", b"1", *[b"X-H: " + b"v" * 500] * 5))))
    out.append(Bad("headers-count", body(part("a", b"1", *[b"X-H: v"] * 20))))
    for line in (b"Bad Header: v", b": v", b"NoColon", b" folded", b"X-H:\rv", b"X\x00: v"):
        out.append(
            Bad(
                f"header-syntax-{line!r}",
                dash + b"\r\n" + cd + b"\r\n" + line + b"\r\n\r\n1\r\n" + dash + b"--",
            )
        )
    out.append(Bad("no-disposition", body(b"Content-Type: text/plain\r\n\r\n1")))
    out.append(Bad("attachment", body(b'Content-Disposition: attachment; name="a"\r\n\r\n1')))
    out.append(Bad("no-name", body(b"Content-Disposition: form-data\r\n\r\n1")))
    out.append(Bad("empty-name", body(part("", b"1"))))
    out.append(Bad("long-name", body(part("n" * 65, b"1"))))
    out.append(Bad("two-dispositions", body(part("a", b"1", cd))))
    out.append(Bad("base64", body(part("a", b"MQ==", b"Content-Transfer-Encoding: base64"))))
    out.append(Bad("no-headers", body(b"\r\n1")))
    # nested multipart
    inner = body(part("a", b"1"), boundary="inner")
    for media in (
        b"multipart/mixed; boundary=inner",
        b"Multipart/Form-Data; boundary=inner",
        b"multipart/alternative",
    ):
        out.append(Bad(f"nested-{media[:20]!r}", body(part("a", inner, b"Content-Type: " + media))))
        out.append(
            Bad(
                f"nested-file-{media[:20]!r}",
                body(part("file", inner, b"Content-Type: " + media, filename="a")),
            )
        )
    # too many parts, two files
    for n in (9, 10, 50):
        out.append(Bad(f"parts-{n}", body(*[part(f"f{i}", b"1") for i in range(n)])))
    out.append(
        Bad("two-files", body(part("file", b"1", filename="a"), part("file", b"2", filename="b")))
    )
    out.append(
        Bad("two-files-no-filename", body(part("file", b"1"), part("a", b"x"), part("file", b"")))
    )
    # fields that are not UTF-8, or hold NUL, or are too long
    for bad in (
        b"\xff",
        b"\xc0\x80",
        b"\xed\xa0\x80",
        "中文".encode("gbk"),
        "é".encode("latin-1"),
        b"\xe4\xb8",
        b"a\x00",
    ):
        out.append(Bad(f"field-{bad!r}", body(part("a", bad))))
        out.append(Bad(f"name-{bad!r}", body(part(bad, b"1"))))
    out.append(Bad("filename-nul", body(part("file", b"1", filename="a\x00b"))))
    for n in (1025, 5000):
        out.append(Bad(f"field-{n}", body(part("a", b"x" * n))))
    # over the file cap: 413
    for n in (CAP + 1, CAP * 3):
        out.append(Bad(f"file-{n}", body(part("file", b"A" * n, filename="a.csv")), 413))
        out.append(
            Bad(
                f"file-last-{n}",
                body(part("a", b"1"), part("file", b"\r\n" * n, filename="a.csv")),
                413,
            )
        )
    # line breaks other than CRLF
    for old, new in ((b"\r\n", b"\n"), (b"\r\n", b"\r"), (b"\r\n", b"\n\r")):
        out.append(Bad(f"breaks-{new!r}", GOOD.replace(old, new)))
    out.append(Bad("lf-after-first-delimiter", GOOD.replace(dash + b"\r\n", dash + b"\n", 1)))
    out.append(Bad("lf-header-end", GOOD.replace(b'"year"\r\n\r\n', b'"year"\n\n')))
    out.append(Bad("lf-before-close", GOOD.replace(b"\r\n" + dash + b"--", b"\n" + dash + b"--")))
    # empty, near-empty and delimiters only
    for raw in (
        b"",
        b"\r\n",
        b"--",
        dash,
        dash + b"\r\n",
        dash + b"--",
        dash + b"--\r\n",
        dash + b" \r\n" + cd + b"\r\n\r\n1\r\n" + dash + b"--",
        dash + b"X\r\n",
    ):
        out.append(Bad(f"delimiters-{raw[:60]!r}", raw))
    # preamble and epilogue over their caps; padding over the body cap
    out.append(Bad("preamble", b"p" * 2000 + b"\r\n" + GOOD))
    out.append(Bad("preamble-lf", b"p" * 2000 + b"\n" + GOOD))
    out.append(Bad("epilogue", GOOD + b"e" * 2000))
    out.append(
        Bad(
            "padding",
            GOOD.replace(b"\r\n" + dash + b"\r\n", b"\r\n" + dash + b" " * 200_000 + b"\r\n", 1),
        )
    )
    # garbage
    for i in range(30):
        out.append(Bad(f"random-{i}", rng.randbytes(rng.randint(1, 3000))))
    for i in range(10):
        noise = bytearray(GOOD)
        for _ in range(3):
            noise[rng.randrange(len(noise))] = rng.choice(b'\x00-\r\n"x')
        if isinstance(outcome(bytes(noise), []), tuple):  # some flips still read
            out.append(Bad(f"flipped-{i}", bytes(noise)))
    for raw in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b'{"csrf_token": "x"}',
        b"csrf_token=x&year=2024",
        "上传".encode() * 100,
        bytes(range(256)) * 4,
    ):
        out.append(Bad(f"other-{raw[:20]!r}", raw))
    return out


CORPUS = _gen_corpus()


def test_the_corpus_has_over_200_bodies_with_distinct_names() -> None:
    assert len(CORPUS) >= 200 and len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_every_malformed_body_is_refused_the_same_way_in_any_chunking(case: Bad) -> None:
    """Whole, byte by byte and in random chunks: a MultipartError with the expected
    status and code, and a Chinese message that echoes nothing of the body."""
    rng = random.Random(case.name)
    chunkings = [[], [rng.randint(1, 97) for _ in range(20)]]
    if len(case.raw) <= 20_000:
        chunkings.append([1])
    for sizes in chunkings:
        error = refusal(case.raw, case.content_type, sizes)
        assert error.status == case.status, (sizes, error.message)
        assert error.code == ("too-large" if case.status == 413 else "bad-multipart")
        assert re.search(r"[\u4e00-\u9fff]", error.message)
        assert MARK not in error.message and B not in error.message


# -- properties -----------------------------------------------------------------------------


def cuts(data: st.DataObject, n: int) -> list[int]:
    return data.draw(st.lists(st.integers(1, max(n, 1)), min_size=1, max_size=12))


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=3000), data=st.data())
def test_any_bytes_in_any_chunking_give_an_upload_or_a_multipart_error(
    raw: bytes, data: st.DataObject
) -> None:
    outcome(raw, cuts(data, len(raw)))  # outcome() lets only MultipartError through


FRAGMENTS = [
    f"--{B}".encode(),
    f"--{B}--".encode(),
    f"\r\n--{B}".encode(),
    b"\r\n",
    b"\r",
    b"\n",
    b"--",
    b" ",
    b":",
    b"\x00",
    b"\xff",
    "中".encode(),
    b"A" * 700,
]
AFTER_DELIMITER = [b" \r\n", b"\t\r\n", b"\n", b"--", b"x\r\n", b""]
HEADERS = [
    b'Content-Disposition: form-data; name="file"; filename="a.csv"',
    'Content-Disposition: form-data; name="f"; filename="中.csv"'.encode(),
    b"Content-Disposition: form-data; name=b",
    b'Content-Disposition: form-data; name=""',
    b"Content-Disposition: form-data",
    b"Content-Disposition: attachment",
    b"Content-Type: text/plain",
    b"Content-Type: multipart/mixed; boundary=x",
    b"Content-Transfer-Encoding: base64",
    b"X-H: " + b"v" * 200,
    b"X-H:",
    b"Bad Header: x",
    b": x",
]
CONTENTS = [
    b"",
    b"1",
    "中".encode(),
    b"\xff",
    b"\x00",
    b"A" * 700,
    b"\r\n-",
    b"\r",
    f"\r\n--{B}x".encode(),
]


def mostly(good: bytes, bad: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.sampled_from([good] * (3 * len(bad)) + bad)


@st.composite
def near_multipart(draw: st.DrawFn) -> bytes:
    """A body that is mostly well-formed multipart, then perhaps cut or spoiled: it
    reaches every state of the reader, where random bytes stop at the first line."""
    dash = f"--{B}".encode()
    out = [draw(mostly(b"", [b"\r\n", b"preamble\r\n", b"\n"]))]
    for i in range(draw(st.integers(0, 5))):
        out.append((b"\r\n" if i else b"") + dash + draw(mostly(b"\r\n", AFTER_DELIMITER)))
        name = draw(st.sampled_from([b'"a"', b'"file"', b'"file"; filename="a.csv"']))
        first = draw(mostly(b"Content-Disposition: form-data; name=" + name, HEADERS))
        extra = draw(st.sampled_from([0, 0, 0, 1, 2]))
        headers = [first, *draw(st.lists(st.sampled_from(HEADERS), min_size=extra, max_size=extra))]
        out.append(b"".join(h + b"\r\n" for h in headers) + draw(mostly(b"\r\n", [b"\n", b""])))
        out.append(draw(st.sampled_from(CONTENTS) | st.binary(max_size=40)))
    out.append(b"\r\n" + dash + draw(mostly(b"--\r\n", [b"--", b"-", b"", b"--" + b"e" * 60])))
    raw = b"".join(out)
    at = draw(st.integers(0, len(raw)))
    mutation = draw(st.sampled_from(["none", "none", "cut", "insert", "replace"]))
    if mutation == "cut":
        raw = raw[:at]
    elif mutation == "insert":
        raw = raw[:at] + draw(st.sampled_from(FRAGMENTS) | st.binary(max_size=8)) + raw[at:]
    elif mutation == "replace" and at < len(raw):
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=1)) + raw[at + 1 :]
    return raw


SMALL_CAPS: dict[str, Any] = {
    "max_file_bytes": 1000,
    "max_parts": 4,
    "max_header_bytes": 300,
    "max_preamble_bytes": 50,
    "max_epilogue_bytes": 50,
}


@settings(max_examples=500, deadline=None)
@given(raw=near_multipart(), data=st.data())
def test_near_multipart_bodies_give_the_same_answer_in_any_chunking(
    raw: bytes, data: st.DataObject
) -> None:
    """Where the cuts fall never changes the answer: the same Upload, or a refusal
    with the same status and code, as the body fed whole."""
    assert outcome(raw, cuts(data, len(raw)), **SMALL_CAPS) == outcome(raw, [], **SMALL_CAPS)


BCHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=? "
names = st.text("abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=20).filter(
    lambda n: n != "file"
)
values = st.text(max_size=200).filter(lambda v: "\x00" not in v)


@settings(max_examples=300, deadline=None)
@given(
    boundary=st.text(BCHARS, min_size=1, max_size=70).filter(lambda b: not b.endswith(" ")),
    fields=st.lists(st.tuples(names, values), max_size=7),
    file=st.none() | st.binary(max_size=3000),
    filename=st.text(max_size=40).filter(lambda f: not set(f) & set('"\\/\r\n\x00')),
    at=st.integers(0, 7),
    data=st.data(),
)
def test_well_formed_bodies_read_to_their_fields_and_file_in_any_chunking(
    *,
    boundary: str,
    fields: list[tuple[str, str]],
    file: bytes | None,
    filename: str,
    at: int,
    data: st.DataObject,
) -> None:
    parts = [part(n, v.encode()) for n, v in fields]
    if file is not None:
        parts.insert(
            min(at, len(parts)), part("file", file, b"Content-Type: text/csv", filename=filename)
        )
    assume(parts)
    raw = body(*parts, boundary=boundary)
    assume(all(f"\r\n--{boundary}".encode() not in p for p in parts))
    ct = f'multipart/form-data; boundary="{boundary}"'
    expected = Upload(fields, file, filename if file is not None else "")
    assert read(raw, cuts(data, len(raw)), ct) == expected
