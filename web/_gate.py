"""The checks at the gate of both sites' request handlers: the staff console's and the
people's portal's.

A path whose segments are not clean UTF-8, a cookie that is not a token's shape, a
write that comes from another origin or without the session's CSRF token: each is
refused the same way on both sites, so the rule is written once, here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from ._csrf import CSRF_FIELD, same_token
from ._decode import MalformedInput, media_type, parse_form_body, parse_query, single_values
from ._origin import origin_allowed

TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 256 bits, unpadded base64url


def check_path(path: bytes) -> None:
    """Refuse (:class:`MalformedInput`, ``bad-path``) path segments that are not UTF-8
    or that smuggle a separator, a control character or a dot segment."""
    for raw in path.split(b"/"):
        if not raw:
            continue
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInput("bad-path", "bad path") from None
        if any(c < " " or c in "/\\\x7f" for c in segment) or segment in (".", ".."):
            raise MalformedInput("bad-path", "bad path")


def client_source(request: Any) -> str:
    """The client's address for the audit log, ``local`` where there is none."""
    host = getattr(request.getClientAddress(), "host", None)
    return str(host) if host else "local"


def log_text(value: bytes | None) -> str:
    """*value* (a method, a path) safe to put in a log line: ASCII, 200 characters."""
    return (value or b"").decode("ascii", "replace")[:200]


def token_cookie(request: Any, name: str) -> str:
    """The cookie *name* if it has a token's shape, else ``""``."""
    raw = request.getCookie(name.encode())
    if raw is None:
        return ""
    value = raw.decode("ascii", "replace")
    return value if TOKEN_SHAPE.fullmatch(value) else ""


def query_values(uri: bytes, *, max_fields: int) -> Mapping[str, str]:
    """The query string of *uri*, one value a name."""
    pairs = [(k, v) for k, values in parse_query(uri).items() for v in values]
    return single_values(pairs, max_fields=max_fields)


def read_form(request: Any, *, max_body: int, max_fields: int) -> Mapping[str, str]:
    """The request's urlencoded UTF-8 form, one value a name; anything else is
    :class:`MalformedInput`."""
    media, charset = media_type(request.getHeader(b"content-type"))
    if media != "application/x-www-form-urlencoded" or charset not in ("", "utf-8"):
        raise MalformedInput("not-a-form", "not a form")
    content = request.content
    body = content.read(max_body + 1) if content is not None else b""
    return single_values(parse_form_body(body), max_fields=max_fields)


def write_refusal(request: Any, csrf_token: str, form: Mapping[str, str]) -> str | None:
    """Why a write is refused (``cross-origin``, ``csrf-token``), or None when its origin
    is ours and *form* carries the session's *csrf_token*."""
    cross = not origin_allowed(
        request.getHeader(b"origin"), request.getHeader(b"referer"), request.getHeader(b"host")
    )
    if cross:
        return "cross-origin"
    if not same_token(csrf_token, form.get(CSRF_FIELD, "")):
        return "csrf-token"
    return None
