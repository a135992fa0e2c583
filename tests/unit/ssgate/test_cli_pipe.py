"""``ssgate … | head -1``: a reader that goes away ends the command quietly, exit 0."""

from __future__ import annotations

import io

import pytest

from ssgate.cli import main


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_is_a_quiet_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes"], out=ClosedPipe()) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
