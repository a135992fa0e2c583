"""TEMPORARY stand-in until the streaming reader lands (wt/multipart)."""

from __future__ import annotations

import re
from dataclasses import dataclass


class MultipartError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Upload:
    fields: list[tuple[str, str]]
    file: bytes | None
    filename: str

    def field(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)


class MultipartReader:
    def __init__(
        self,
        content_type: str,
        *,
        file_field: str = "file",
        max_file_bytes: int,
        max_parts: int = 8,
        max_field_bytes: int = 1024,
    ) -> None:
        self._ct = content_type
        self._data = bytearray()

    def feed(self, data: bytes) -> None:
        self._data += data

    def finish(self) -> Upload:
        return parse_multipart(bytes(self._data), self._ct)


MAX_PARTS = 8
MAX_FIELD_BYTES = 1024


def parse_multipart(body: bytes, content_type: str) -> Upload:
    """A strict multipart/form-data reader: at most :data:`MAX_PARTS` parts, text
    fields up to :data:`MAX_FIELD_BYTES` (UTF-8), one part named ``file``."""
    match = re.search(r'boundary="?([0-9A-Za-z\'()+_,./:=?-]{1,70})"?', content_type)
    if match is None:
        raise MultipartError(400, "bad-multipart", "上传内容格式不正确（缺少 boundary）")
    delimiter = b"--" + match.group(1).encode("ascii")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise MultipartError(400, "bad-multipart", "上传内容格式不正确")
    parts = chunks[1:-1]
    if len(parts) > MAX_PARTS:
        raise MultipartError(400, "bad-multipart", "上传内容的部分过多")
    fields: list[tuple[str, str]] = []
    file: bytes | None = None
    filename = ""
    for part in parts:
        disposition, content = _part(part)
        name = re.search(r'\bname="([^"]{1,64})"', disposition)
        if name is None:
            raise MultipartError(400, "bad-multipart", "上传内容格式不正确（缺少字段名）")
        if name.group(1) == "file":
            if file is not None:
                raise MultipartError(400, "bad-multipart", "一次只能上传一个文件")
            file = content
            given = re.search(r'\bfilename="([^"]{0,255})"', disposition)
            filename = given.group(1) if given else ""
            continue
        if len(content) > MAX_FIELD_BYTES:
            raise MultipartError(400, "bad-multipart", "表单字段过长")
        try:
            fields.append((name.group(1), content.decode("utf-8")))
        except UnicodeDecodeError:
            raise MultipartError(400, "bad-multipart", "表单字段应为 UTF-8 编码") from None
    return Upload(fields, file, filename)


def _part(part: bytes) -> tuple[str, bytes]:
    """A part's Content-Disposition value and its content."""
    if not part.startswith(b"\r\n") or not part.endswith(b"\r\n"):
        raise MultipartError(400, "bad-multipart", "上传内容格式不正确")
    head, sep, content = part[2:-2].partition(b"\r\n\r\n")
    if not sep:
        raise MultipartError(400, "bad-multipart", "上传内容格式不正确")
    disposition = ""
    for line in head.split(b"\r\n"):
        key, _, value = line.decode("utf-8", "replace").partition(":")
        if key.strip().lower() == "content-disposition":
            disposition = value
    return disposition, content
