"""Process logs off a terminal are JSON lines: one object per line, no 0x1E."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger

from ssgate._serve import log_observer


def test_each_log_event_is_one_json_line_without_a_record_separator() -> None:
    out = io.StringIO()
    log = Logger(namespace="test", observer=log_observer(out))
    log.info("first {n}", n=1)
    log.warn("second {what}", what="x")
    text = out.getvalue()
    assert "\x1e" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    events = [json.loads(line) for line in lines]
    assert [e["log_format"] for e in events] == ["first {n}", "second {what}"]
