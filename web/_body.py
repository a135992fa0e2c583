"""The one body reader: a write's body by its type, and the CSRF token it carries.

Pages post ``application/x-www-form-urlencoded`` with the token in the
``csrf_token`` field; the API sends ``application/json`` (or nothing) with the token
in ``X-CSRF-Token``; routes declared ``multipart`` also take ``multipart/form-data``
(the token in the header or in the ``csrf_token`` part), read by the streaming
:class:`~web._multipart.MultipartReader` under the route's part caps.  Any other
type is 415, a charset other than UTF-8 is 415, an unreadable body is 400.

*check_token* is called with the presented token at the point where the site has
always checked it — before an API body is parsed, after a form is — and raises the
site's refusal; so a forged write costs no parsing of its JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.web.server import Request

from ._answers import HttpError
from ._csrf import CSRF_FIELD, CSRF_HEADER
from ._decode import media_type, parse_form_body, parse_json_body
from ._multipart import MultipartError, MultipartReader, Upload

READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class MultipartLimits:
    """The part caps of a route that takes a file."""

    max_file_bytes: int
    max_parts: int = 8
    max_field_bytes: int = 1024
    file_field: str = "file"


@dataclass
class Body:
    form: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    has_json: bool = False
    upload: Upload | None = None


def _form_token(form: list[tuple[str, str]]) -> str | None:
    presented = [v for k, v in form if k == CSRF_FIELD]
    return presented[0] if len(presented) == 1 else None


def read_body(
    request: Request,
    *,
    api: bool,
    multipart: MultipartLimits | None,
    check_token: Callable[[str | bytes | None], None],
) -> Body:
    """The body of a write on *request* (see the module docstring)."""
    content = request.content
    media, charset = media_type(request.getHeader(b"content-type"))
    if charset not in ("", "utf-8", "utf8"):
        raise HttpError(415, "unsupported-charset", "请求内容应为 UTF-8 编码")
    if media == "multipart/form-data" and multipart is not None:
        upload = _read_multipart(request, multipart)
        header = request.getHeader(CSRF_HEADER) if api else None
        presented = [v for k, v in upload.fields if k == CSRF_FIELD]
        token = header if header is not None or len(presented) != 1 else presented[0]
        check_token(token)
        return Body(form=list(upload.fields), upload=upload)
    body = content.read() if content is not None else b""
    if api:
        check_token(request.getHeader(CSRF_HEADER))
        if body.strip() == b"" and media in ("", "application/json"):
            return Body()
        if media != "application/json":
            raise HttpError(415, "unsupported-media-type", "请求内容类型应为 application/json")
        return Body(json=parse_json_body(body), has_json=True)
    if media != "application/x-www-form-urlencoded":
        raise HttpError(
            415, "unsupported-media-type", "表单内容类型应为 application/x-www-form-urlencoded"
        )
    form = parse_form_body(body)
    check_token(_form_token(form))
    return Body(form=form)


def _read_multipart(request: Request, limits: MultipartLimits) -> Upload:
    content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
    try:
        reader = MultipartReader(
            content_type,
            file_field=limits.file_field,
            max_file_bytes=limits.max_file_bytes,
            max_parts=limits.max_parts,
            max_field_bytes=limits.max_field_bytes,
        )
        content = request.content
        if content is not None:
            while chunk := content.read(READ_CHUNK):
                reader.feed(chunk)
        return reader.finish()
    except MultipartError as e:
        raise HttpError(e.status, e.code, e.message) from None
