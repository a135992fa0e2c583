"""What a handler answers, and the refusals every site maps the same way.

A handler returns a :class:`Response` (status, body, type, extra headers, cookies) or
raises :class:`HttpError`; a download too large to hold (an export) is a
:class:`Streamed` response, built by :func:`download`, whose body the route layer
pulls piece by piece as the client takes it.  How an error looks is the site's
choice of two: an HTML page (the site renders it in its layout) or, under ``/api/``, an RFC 9457
``application/problem+json`` document built by :func:`problem`.  Our problem documents
carry, besides ``type``/``title``/``status``/``detail``, the members ``error`` (our
refusal code), ``message`` (the same text as ``detail``, for the clients written
against the first API) and ``findings``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

HTML = b"text/html; charset=utf-8"
JSON = b"application/json; charset=utf-8"
PROBLEM_JSON = b"application/problem+json; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"

# Reason phrases twisted.web.http.RESPONSES lacks.
REASONS: Mapping[int, bytes] = {422: b"Unprocessable Content"}

# Chinese titles of the statuses both sites answer with.
TITLES: Mapping[int, str] = {
    400: "请求有误",
    403: "拒绝访问",
    404: "页面不存在",
    405: "不支持的请求方法",
    409: "无法办理",
    413: "内容过大",
    415: "不支持的内容类型",
    422: "内容有误",
    500: "服务器内部错误",
    501: "暂未开放",
    503: "服务暂不可用",
}


@dataclass(frozen=True)
class Cookie:
    """A cookie to set: HttpOnly, SameSite=Strict and path ``/`` always; ``Secure``
    when the site is served over TLS.  *max_age* 0 deletes it; None is a browser
    session cookie."""

    name: str
    value: str
    max_age: int | None = None

    def __repr__(self) -> str:  # the value is a session secret
        return f"Cookie({self.name!r}, <value>, max_age={self.max_age!r})"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = HTML
    headers: tuple[tuple[bytes, bytes], ...] = ()
    cookies: tuple[Cookie, ...] = ()


class HttpError(Exception):
    """A refusal with an HTTP status, shown as a page or as a problem document.

    *findings* are the site's own values (each with ``rule``/``field``/``severity``/
    ``message`` attributes) listed beside the message.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        findings: Sequence[Any] = (),
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.findings = tuple(findings)
        self.headers = headers


def finding_json(f: Any) -> dict[str, str]:
    return {"rule": f.rule, "field": f.field, "severity": f.severity, "message": f.message}


def problem(
    status: int,
    code: str,
    message: str,
    findings: Sequence[Any] = (),
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Response:
    """An RFC 9457 problem document for an API refusal."""
    document = {
        "type": "about:blank",
        "title": TITLES.get(status, "请求未能完成"),
        "status": status,
        "detail": message,
        "error": code,
        "message": message,
        "findings": [finding_json(f) for f in findings],
    }
    body = json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
    return Response(status, body, PROBLEM_JSON, headers)


def plain(status: int, message: str) -> Response:
    """A text answer that needs no template (before anyone is known, or when rendering
    the error page itself failed)."""
    return Response(status, (message + "\n").encode("utf-8"), TEXT)


def see_other(location: str, *, cookies: tuple[Cookie, ...] = ()) -> Response:
    """303 See Other to one of our own paths (post/redirect/get)."""
    # Only our own paths: never an absolute or scheme-relative URL (open redirect).
    if not location.startswith("/") or location.startswith("//"):
        raise ValueError(f"redirect location must be a path of this site, got {location!r}")
    if any(c in location for c in "\r\n\x00\\"):
        raise ValueError("redirect location contains a forbidden character")
    target = quote(location, safe="/?=&-_.~%")
    body = f'<!doctype html><meta charset="utf-8"><a href="{escape(target)}">继续</a>\n'
    return Response(
        303, body.encode("utf-8"), headers=((b"Location", target.encode("ascii")),), cookies=cookies
    )


_FILENAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_MEDIA = re.compile(r"[a-z]+/[a-z0-9.+-]+(; ?charset=[a-z0-9-]+)?")


def attachment(content_type: str, filename: str, data: bytes) -> Response:
    """A file to save (an export, an enrolment bundle), served as an attachment.
    *filename* is plain ASCII (letters, digits, ``.``, ``_``, ``-``)."""
    if _FILENAME.fullmatch(filename) is None or filename.strip(".") == "":
        raise ValueError(f"download filename must be plain ASCII, got {filename!r}")
    if _MEDIA.fullmatch(content_type) is None:
        raise ValueError(f"bad content type {content_type!r}")
    disposition = b'attachment; filename="' + filename.encode("ascii") + b'"'
    return Response(
        200, data, content_type.encode("ascii"), ((b"Content-Disposition", disposition),)
    )


ChunkSource = Callable[[], Awaitable[bytes]]
"""The next piece of a streamed body; ``b""`` when there is no more."""


@dataclass(frozen=True)
class Streamed(Response):
    """A response whose body is written piece by piece (``body`` stays empty).

    The route layer calls *chunks* for the next piece only when the client's
    connection wants more (a push producer on the request, paused by the transport),
    so one piece is held at a time however long the body.  *ended* is told, once,
    whether the whole body went out (True) or not (False: the client left, a piece
    failed, or a HEAD request wanted none); it may return a Deferred.
    """

    chunks: ChunkSource = field(kw_only=True, compare=False, repr=False)
    ended: Callable[[bool], object] | None = field(
        default=None, kw_only=True, compare=False, repr=False
    )


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def content_disposition(filename: str) -> bytes:
    """``attachment`` with *filename* as RFC 6266 says: a plain-ASCII ``filename``
    for old clients (anything else becomes ``_``) and, when that differs, the exact
    name as ``filename*=UTF-8''…`` (RFC 8187).  A name with a path separator, a
    control character or nothing but dots is refused (``ValueError``)."""
    if (
        not 0 < len(filename) <= 128
        or any(c in "/\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in filename)
        or filename.strip(".") == ""
    ):
        raise ValueError(f"download filename {filename!r} is not a plain file name")
    fallback = _UNSAFE_NAME.sub("_", filename)
    value = 'attachment; filename="' + fallback + '"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe="")
    return value.encode("ascii")


def download(
    content_type: str,
    filename: str,
    chunks: ChunkSource,
    *,
    ended: Callable[[bool], object] | None = None,
) -> Streamed:
    """A streamed file to save (see :class:`Streamed` and :func:`content_disposition`)."""
    if _MEDIA.fullmatch(content_type) is None:
        raise ValueError(f"bad content type {content_type!r}")
    return Streamed(
        200,
        b"",
        content_type.encode("ascii"),
        ((b"Content-Disposition", content_disposition(filename)),),
        chunks=chunks,
        ended=ended,
    )
