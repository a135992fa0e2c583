"""docs/protocol.md and the code say the same: frame types, reasons, legal frames."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from gateway._frames import Frame, FrameType
from gateway._machine import ClientMachine, GatewayMachine, State
from gateway._reasons import Reason

SPEC = (Path(__file__).parents[3] / "docs" / "protocol.md").read_text(encoding="utf-8")

_CLASSES: dict[FrameType, type] = {cls.TYPE: cls for cls in get_args(Frame)}


def section(number: str) -> str:
    start = SPEC.index(f"\n## {number}. ")
    end = SPEC.find("\n## ", start + 1)
    return SPEC[start : end if end != -1 else None]


def rows(text: str) -> list[list[str]]:
    found = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            found.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return found[1:]  # without the heading row


def test_the_reason_table_is_the_reason_enum() -> None:
    table = rows(section("8"))
    assert [int(code) for code, *_ in table] == [r.code for r in Reason]
    for code, slug, exit_code, english, chinese in table:
        reason = Reason.from_code(int(code))
        assert (slug, int(exit_code), english, chinese) == (
            reason.slug,
            reason.exit_code,
            reason.english,
            reason.chinese,
        )


def test_the_frame_type_table_is_the_frame_type_enum() -> None:
    table = rows(section("4"))
    assert {name: int(code, 16) for code, name, *_ in table} == {t.name: int(t) for t in FrameType}


def _frame_classes(cell: str) -> set[type]:
    if cell.startswith("("):  # "(everything ignored)", "(nothing)"
        return set()
    return {_CLASSES[FrameType[name]] for name in re.split(r",\s*", cell)}


def test_the_state_table_is_what_the_machines_accept() -> None:
    table = rows(section("7").split("### 7.1")[1].split("###")[0])
    for state_name, gateway_cell, client_cell in table:
        state = State(state_name)
        assert _frame_classes(gateway_cell) == set(GatewayMachine.LEGAL.get(state, ())), state
        assert _frame_classes(client_cell) == set(ClientMachine.LEGAL.get(state, ())), state
