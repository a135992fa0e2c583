"""Request bodies and query strings, decoded strictly (sans-IO).

One decoder for both sites: ``application/x-www-form-urlencoded`` bodies and query
strings as ordered (name, value) pairs (strict UTF-8, a bounded number of fields),
JSON without NaN, duplicate keys or runaway nesting.  A body that cannot be read at
all is a :class:`MalformedInput`, which both sites answer with 400.  Whether a name
may repeat is the page's business: :func:`single_values` is the strict view for
pages whose fields never repeat.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

MAX_FORM_FIELDS = 500
MAX_JSON_DEPTH = 8  # {"payload": {"lines": [{...}]}} is 4


class MalformedInput(Exception):
    """The request body or query cannot be read at all (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_pairs(text: bytes, what: str) -> list[tuple[str, str]]:
    try:
        ascii_text = text.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedInput("bad-encoding", f"{what}含有未经编码的字符") from None
    try:
        return parse_qsl(
            ascii_text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise MalformedInput("bad-encoding", f"{what}不是有效的 UTF-8 编码") from None
    except ValueError:
        raise MalformedInput("too-many-fields", f"{what}字段过多") from None


def parse_form_body(body: bytes) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body as (name, value) pairs."""
    return _parse_pairs(body, "表单内容")


def parse_query(uri: bytes) -> dict[str, list[str]]:
    """The query string of *uri*, each name with its values in order."""
    _, _, query = uri.partition(b"?")
    result: dict[str, list[str]] = {}
    for name, value in _parse_pairs(query, "查询参数"):
        result.setdefault(name, []).append(value)
    return result


def single_values(
    pairs: Sequence[tuple[str, str]], *, max_fields: int = MAX_FORM_FIELDS
) -> dict[str, str]:
    """*pairs* as a mapping, refusing a repeated name, a NUL anywhere or more than
    *max_fields* fields: the view for forms whose fields are each sent once (the
    staff console's)."""
    if len(pairs) > max_fields:
        raise MalformedInput("too-many-fields", "表单字段过多")
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedInput("repeated-field", "表单字段重复")
        if "\x00" in key or "\x00" in value:
            raise MalformedInput("bad-character", "表单内容含有不允许的字符")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(value: Any, limit: int) -> bool:
    """True if *value* nests no deeper than *limit* containers."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return True


def parse_json_body(body: bytes) -> Any:
    """A JSON body (UTF-8), refusing NaN/Infinity, duplicate keys and deep nesting."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedInput("bad-encoding", "请求内容不是有效的 UTF-8 编码") from None
    try:
        value = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as e:  # RecursionError: deep nesting
        detail = "键重复" if "duplicate key" in str(e) else "格式错误"
        raise MalformedInput("bad-json", f"请求内容不是有效的 JSON（{detail}）") from None
    if not _depth(value, MAX_JSON_DEPTH):
        raise MalformedInput("bad-json", "JSON 嵌套层次过深")
    return value


def media_type(value: bytes | None) -> tuple[str, str]:
    """(media type, charset) of a Content-Type header, lower-case; ("", "") if absent."""
    if value is None:
        return "", ""
    text = value.decode("latin-1")
    media, _, params = text.partition(";")
    charset = ""
    for param in params.split(";"):
        key, _, val = param.strip().partition("=")
        if key.lower() == "charset":
            charset = val.strip().strip('"').lower()
    return media.strip().lower(), charset


# Tab and line breaks are text in a typed note; every other control character is not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def note_problem(text: str, *, what: str, max_chars: int) -> str:
    """What is wrong with a note a staff member typed (a reason, a return text), in
    Chinese, or ``""``: over *max_chars* characters, or a control character.  Whether
    it may be empty is the caller's rule."""
    if len(text) > max_chars:
        return f"{what}不能超过 {max_chars} 字"
    if _CONTROL.search(text):
        return f"{what}不能含控制字符"
    return ""
