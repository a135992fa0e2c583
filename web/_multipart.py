"""Streaming ``multipart/form-data`` reading for the upload routes (RFC 7578).

This module owns :class:`MultipartReader`: the body goes in, in whatever chunks the
HTTP layer reads, and an :class:`Upload` (small text fields and at most one file)
comes out.  :class:`MultipartError` is raised as soon as the bytes so far are
malformed or over a cap, so the caller stops reading there.  python-multipart's
low-level ``MultipartParser`` does the framing; this module applies the rules on top:
one boundary from the Content-Type, at most ``max_parts`` parts, each with a
``form-data`` Content-Disposition and a name, text fields short and strict UTF-8 with
no NUL, zero or one part named ``file_field``, no nested multipart, and caps on part
headers, preamble, epilogue and the whole body.  Memory held is bounded by the caps:
the file up to ``max_file_bytes``, everything else a few KiB.  Whether a body is
accepted, and with which status it is refused, does not depend on how it is chunked.

It imports nothing of ours.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final, Literal

from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["MultipartError", "MultipartReader", "Upload"]

# RFC 2046 §5.1.1 bchars: 1-70 characters, a space anywhere but last.  Refusing CR
# and LF here is also what python-multipart's boundary search relies on.
_BOUNDARY: Final = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PADDING: Final = 64  # transport padding allowed per delimiter, in the body cap
_IDENTITY_ENCODINGS: Final = frozenset({b"7bit", b"8bit", b"binary"})
_KEPT_HEADERS: Final = frozenset(
    {b"content-disposition", b"content-type", b"content-transfer-encoding"}
)

# python-multipart logs every malformed body at WARNING through stdlib logging, which
# has no handler in our process and would print each to stderr; the HTTP layer logs
# refusals itself.  A logger outside the logging tree, never enabled, silences it
# without touching the global logging configuration.
_SILENT: Final = logging.Logger("python_multipart.silenced", logging.CRITICAL + 1)


class MultipartError(Exception):
    """A body refused: ``status`` 400 (malformed) or 413 (the file over its cap).

    ``message`` is one Chinese sentence the user can act on; it never quotes the
    client's bytes.
    """

    def __init__(self, status: Literal[400, 413], code: str, message: str) -> None:
        super().__init__(message)
        self.status: Literal[400, 413] = status
        self.code = code
        self.message = message


def _bad(detail: str = "") -> MultipartError:
    return MultipartError(400, "bad-multipart", detail or "上传内容格式不正确，请重新上传")


@dataclass(frozen=True)
class Upload:
    """A multipart body: its small text fields, in order, and the one file."""

    fields: list[tuple[str, str]]
    file: bytes | None  # None: no part named file_field; b"": an empty one
    filename: str

    def field(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)


class MultipartReader:
    """One ``multipart/form-data`` body, fed in chunks, read into an :class:`Upload`.

    The constructor raises :class:`MultipartError` when the Content-Type has no
    usable boundary; :meth:`feed` when the bytes so far are malformed or over a cap;
    :meth:`finish` when the body ended before its closing boundary.  Once raised, the
    same error is raised again by every later call.

    Caps: ``max_file_bytes`` for the file part's content (over it: 413);
    ``max_parts`` parts; ``max_field_bytes`` for each text field; per part,
    ``max_headers`` header lines, ``max_header_bytes`` for any one line and for its
    header names and values together; ``max_name_bytes`` for a field name;
    ``max_preamble_bytes`` and ``max_epilogue_bytes`` of ignored bytes before the
    first delimiter and after the closing one; and :attr:`max_body_bytes`, derived
    from the others, for the whole body.  Over any cap but the file's: 400.
    """

    def __init__(
        self,
        content_type: str,
        *,
        file_field: str = "file",
        max_file_bytes: int,
        max_parts: int = 8,
        max_field_bytes: int = 1024,
        max_header_bytes: int = 2048,
        max_headers: int = 8,
        max_name_bytes: int = 64,
        max_preamble_bytes: int = 1024,
        max_epilogue_bytes: int = 1024,
    ) -> None:
        self.file_field = file_field
        self.max_file_bytes = max_file_bytes
        self.max_parts = max_parts
        self.max_field_bytes = max_field_bytes
        self.max_header_bytes = max_header_bytes
        self.max_name_bytes = max_name_bytes
        self.max_epilogue_bytes = max_epilogue_bytes
        boundary = _boundary(content_type)
        self._dash = b"--" + boundary
        self._close = b"\r\n" + self._dash + b"--"
        # Held until the first delimiter is found: a preamble, its CRLF, the delimiter.
        self._preamble: bytearray | None = bytearray()
        self._preamble_limit = max_preamble_bytes + 2 + len(self._dash)
        # The longest body these caps let through; only transport padding after a
        # delimiter (RFC 2046 LWSP, which python-multipart takes without limit) could
        # run past it, and so it is refused.  The HTTP layer may cap the body here.
        delimiter = 2 + len(self._dash) + _PADDING + 2
        part = delimiter + max_headers * (max_header_bytes + 2) + 2 + max_field_bytes
        self.max_body_bytes: Final = (
            self._preamble_limit
            + max_parts * part
            + max_file_bytes
            + len(self._close)
            + max_epilogue_bytes
        )
        self._read = 0
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
            max_header_count=max_headers,
            max_header_size=max_header_bytes,  # one line; _on_header_* cap the part's total
        )
        self._parser.logger = _SILENT
        self._tail = b""  # the stream's last len(_close) - 1 bytes, until the end
        self._epilogue = 0
        self._parts = 0
        self._ended = False
        self._finished = False
        self._error: MultipartError | None = None
        self._fields: list[tuple[str, str]] = []
        self._file: bytearray | None = None
        self._filename = ""
        # the part being read
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._name = ""
        self._is_file = False
        self._value = bytearray()

    # -- the caller's side ------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Read the next chunk of the body; raise as soon as it cannot be accepted."""
        if self._finished:
            raise RuntimeError("MultipartReader.feed after finish")
        if self._error is not None:
            raise self._error
        try:
            # Past the cap, only the bytes up to it are read, so that the first
            # error in the stream is raised whatever the chunking.
            over = len(data) > self.max_body_bytes - self._read
            if over:
                data = data[: self.max_body_bytes - self._read]
            self._read += len(data)
            if self._preamble is not None:
                data = self._skip_preamble(data)
            if data:
                self._write(data)
            if over:
                raise _bad("上传内容格式不正确（内容超出表单允许的长度）")
        except MultipartError as error:
            self._error = error
            raise

    def finish(self) -> Upload:
        """The body has ended: the upload, or why it is refused."""
        if self._error is not None:
            raise self._error
        if not self._ended:
            self._error = _bad("上传内容不完整（缺少结束分隔线），请重新上传")
            raise self._error
        self._finished = True
        file = bytes(self._file) if self._file is not None else None
        self._file = None
        return Upload(self._fields, file, self._filename)

    def _skip_preamble(self, data: bytes) -> bytes:
        """Hold the bytes before the first delimiter (RFC 2046: ``[preamble CRLF]
        dash-boundary``), up to the cap; return the body from that delimiter on.

        python-multipart skips a preamble only if it starts with a line break and its
        rest arrives in the same chunk, so its answer would depend on the chunking.
        """
        assert self._preamble is not None
        room = self._preamble_limit - len(self._preamble)
        self._preamble += data[:room]
        held = self._preamble
        if held.startswith(self._dash):
            at = 0
        elif self._dash.startswith(held):
            return b""  # may still become the delimiter
        else:
            at = held.find(b"\r\n" + self._dash)
            if at == -1:
                if len(held) >= self._preamble_limit:
                    raise _bad("上传内容格式不正确（找不到分隔线）")
                return b""
            at += 2
        self._preamble = None
        return bytes(held[at:]) + data[room:]

    def _write(self, chunk: bytes) -> None:
        if self._ended:
            self._add_epilogue(len(chunk))
            return
        try:
            self._parser.write(chunk)
        except ParseError as error:
            if str(error).startswith("Maximum header"):  # its size or count caps
                raise _headers_too_large() from None
            raise _bad() from None
        if self._ended:
            self._add_epilogue(len(chunk) - self._close_end(chunk))
        else:
            keep = len(self._close) - 1
            self._tail = (self._tail + chunk[-keep:])[-keep:]

    def _close_end(self, chunk: bytes) -> int:
        """Where the closing delimiter ends in *chunk*, the one that ended the body.

        Part data cannot hold it (python-multipart ends the body at the first), so
        its first occurrence is the one; it may start in the previous chunks.
        """
        keep = len(self._close) - 1
        joined = self._tail + chunk[:keep]
        at = joined.find(self._close)
        if at != -1:
            return at + len(self._close) - len(self._tail)
        at = chunk.find(self._close)
        return at + len(self._close) if at != -1 else 0

    def _add_epilogue(self, n: int) -> None:
        # RFC 2046 lets an epilogue follow the closing delimiter; nothing is kept of
        # it, but a long one is junk that the caller should stop reading.
        self._epilogue += n
        if self._epilogue > self.max_epilogue_bytes:
            raise _bad("上传内容格式不正确（结束分隔线之后的内容过多）")

    # -- python-multipart's callbacks -------------------------------------------------

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise _bad(f"上传内容的字段过多（最多 {self.max_parts} 个）")
        self._headers = {}
        self._header_bytes = 0
        self._name = ""
        self._is_file = False
        self._value = bytearray()

    def _count_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            raise _headers_too_large()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = bytes(self._header_name).lower()
        value = bytes(self._header_value).strip(b" \t")
        self._header_name.clear()
        self._header_value.clear()
        if name in _KEPT_HEADERS:
            if name in self._headers:  # two answers to one question: refuse, not guess
                raise _bad("上传内容格式不正确（分段头部重复）")
            self._headers[name] = value

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition"))
        raw_name = params.get(b"name")
        if disposition != b"form-data" or raw_name is None:
            raise _bad("上传内容格式不正确（每个分段都应有 form-data 字段名）")
        if not 0 < len(raw_name) <= self.max_name_bytes:
            raise _bad(f"上传内容格式不正确（字段名应为 1-{self.max_name_bytes} 字节）")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("上传内容格式不正确（字段名应为 UTF-8 编码）") from None
        if "\x00" in name:
            raise _bad("上传内容格式不正确（字段名不能包含空字符）")
        media, _ = parse_options_header(self._headers.get(b"content-type"))
        if media.startswith(b"multipart/"):
            raise _bad("上传内容格式不正确（不支持嵌套的 multipart）")
        encoding = self._headers.get(b"content-transfer-encoding")
        if encoding is not None and encoding.lower() not in _IDENTITY_ENCODINGS:
            # RFC 7578 §4.7: senders do not use it; decoding base64 here would only
            # widen what a client can make us do.
            raise _bad("上传内容格式不正确（不支持 Content-Transfer-Encoding）")
        self._name = name
        if name == self.file_field:
            if self._file is not None:
                raise _bad("一次只能上传一个文件")
            self._is_file = True
            self._file = bytearray()
            self._filename = _filename(params.get(b"filename"))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._is_file:
            assert self._file is not None
            if len(self._file) + n > self.max_file_bytes:
                raise MultipartError(
                    413,
                    "too-large",
                    f"文件过大（最大 {_size(self.max_file_bytes)}），请拆分后分批上传",
                )
            self._file += memoryview(data)[start:end]
            return
        if len(self._value) + n > self.max_field_bytes:
            raise _bad(f"表单字段过长（每个最多 {self.max_field_bytes} 字节）")
        self._value += memoryview(data)[start:end]

    def _on_part_end(self) -> None:
        if self._is_file:
            return
        try:
            value = self._value.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("表单字段应为 UTF-8 编码") from None
        if "\x00" in value:
            raise _bad("表单字段不能包含空字符")
        self._fields.append((self._name, value))
        self._value = bytearray()

    def _on_end(self) -> None:
        if self._parts == 0:  # "--boundary--" alone: RFC 2046 wants one part at least
            raise _bad("上传内容格式不正确（没有任何字段）")
        self._ended = True


def _boundary(content_type: str) -> bytes:
    try:
        content_type.encode("latin-1")
    except UnicodeEncodeError:  # not what an HTTP header decoded as latin-1 can be
        raise _bad("上传内容格式不正确（Content-Type 无效）") from None
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data":
        raise _bad("上传内容格式不正确（应为 multipart/form-data）")
    boundary = params.get(b"boundary")
    if boundary is None:
        raise _bad("上传内容格式不正确（缺少 boundary）")
    if not _BOUNDARY.fullmatch(boundary):
        raise _bad("上传内容格式不正确（boundary 无效）")
    return boundary


def _filename(raw: bytes | None) -> str:
    """The file's base name as the client sent it (Chromium and curl send UTF-8).

    Informational only, so bytes that are not UTF-8 become U+FFFD rather than
    refusing the upload; RFC 7578 §4.2 forbids ``filename*=``, which
    python-multipart ignores.
    """
    if raw is None:
        return ""
    name = raw.decode("utf-8", "replace")
    if "\x00" in name:
        raise _bad("文件名不能包含空字符")
    return name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]


def _headers_too_large() -> MultipartError:
    # 400, not 413: part headers are framing a conforming client keeps to a name and
    # a file name; 413 would tell the user to send a smaller file, which is not it.
    return _bad("上传内容格式不正确（分段头部过长），请缩短文件名后重试")


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} 字节"
