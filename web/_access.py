"""The access log: one short line per request, naming nobody.

An access line has the time, the site, the method, the target, the status and the size
of the answer: ``2026-12-03T13:35:10Z employer GET /queries/roster?id_number=*&name=*
200 5123``.  The target is masked first (:func:`masked_target`), because the employer's
query forms are GET forms whose values are ID numbers and names, and any path can be
typed by hand: every query value becomes ``*``, and a path segment that could name a
person — non-ASCII text such as a name, or a run of 11 or more digits such as an ID
number, a 个人编号 or a mobile number — becomes ``*`` too.  Declaration ids (32 hex
digits) and channel account names (``33068212345678@sxlss``) stay readable: they name
no person, and an operator needs them to follow a request into the audit log.

:class:`AccessLog` appends the lines to a file (``STATE/logs/access.log`` in ``ssgate
serve``), not to the process log, so that a terminal running the demo stays readable.
Like twisted.web's own access log it writes on the reactor thread, one short line per
request; the file rotates by size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes

from twisted.application.service import Service
from twisted.python.logfile import LogFile

MAX_TARGET = 300  # characters of the masked target kept on a line
MASK = "*"

_HEX_ID = re.compile(r"[0-9a-f]{32}")
_ACCOUNT = re.compile(r"\d{14}@[a-z][a-z0-9]*")
_LONG_DIGITS = re.compile(r"\d{11,}")


def masked_target(uri: bytes) -> str:
    """*uri* (path and query, as sent) with every query value and every path segment that
    could name a person replaced by ``*``."""
    text = uri.decode("latin-1")
    path, mark, query = text.partition("?")
    segments = [_masked_segment(segment) for segment in path.split("/")]
    target = "/".join(segments)
    if mark:
        fields = []
        for field in query.split("&"):
            name, has_value, value = field.partition("=")
            name = _masked_segment(name)
            fields.append(f"{name}={MASK if value else ''}" if has_value else name)
        target += "?" + "&".join(fields)
    printable = "".join(c if " " < c < "\x7f" else "?" for c in target)
    return printable if len(printable) <= MAX_TARGET else printable[: MAX_TARGET - 1] + "…"


def _masked_segment(segment: str) -> str:
    if _HEX_ID.fullmatch(segment) or _ACCOUNT.fullmatch(segment):
        return segment
    raw = unquote_to_bytes(segment)
    if any(byte >= 0x80 for byte in raw) or _LONG_DIGITS.search(raw.decode("latin-1")):
        return MASK
    return segment


def request_line(method: bytes, uri: bytes, status: int, size: int) -> str:
    """``GET /masked/target 200 5123``: the part of an access line a request gives."""
    verb = method.decode("latin-1")[:16]
    if not verb.isalpha():
        verb = "?"
    return f"{verb} {masked_target(uri)} {status} {size}"


class AccessLog(Service):
    """An access log file, rotated by size; :meth:`writer` gives each site its lines.

    The file is created with mode 0600 in a directory created with mode 0700: the lines
    are masked, but who used the service when is still nobody else's business.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float],
        rotate_bytes: int = 10_000_000,
        keep_rotated: int = 5,
    ) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._file = LogFile(
            path.name,
            str(path.parent),
            rotateLength=rotate_bytes,
            defaultMode=0o600,
            maxRotatedFiles=keep_rotated,
        )
        os.chmod(path, 0o600)  # an existing file keeps its mode otherwise
        self._closed = False

    def writer(self, site: str) -> Callable[[str], None]:
        """What a :class:`web.WebSite` takes as ``access_log``: lines of *site*."""

        def write(line: str) -> None:
            if self._closed:  # a request that ends while the process stops
                return
            at = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._file.write(f"{at} {site} {line}\n")
            self._file.flush()

        return write

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if not self._closed:
            self._closed = True
            self._file.close()
