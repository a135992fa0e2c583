"""Every action the gateway writes to a session's record has a Chinese label on the
officers' timeline (an unlabelled one would show its raw action name)."""

from __future__ import annotations

import re
from pathlib import Path

import gateway
from oversight._timeline import ACTIONS

# The session-scoped actions the gateway records; tls.refused has no session.
_ACTION = re.compile(r'"((?:session|stream|login)(?:\.[a-z-]+)?)"')


def test_every_session_action_the_gateway_writes_has_a_label() -> None:
    source = Path(gateway.__file__).parent
    written = {
        name
        for path in source.glob("*.py")
        for name in _ACTION.findall(path.read_text(encoding="utf-8"))
    }
    assert {"login", "session.end", "session.move", "stream.end"} <= written
    assert sorted(written - set(ACTIONS)) == []
