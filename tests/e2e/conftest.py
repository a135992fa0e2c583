"""End-to-end helpers: run the real ``ssgate`` command in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SSGATE = shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run("provision", "open", ...)`` against a state directory in tmp_path."""

    def _run(*args: str, state: Path | None = None, check_rc: int | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
        result = subprocess.run(
            [SSGATE, "--state", str(state or tmp_path / "state"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check_rc is not None:
            assert result.returncode == check_rc, (result.stdout, result.stderr)
        return result

    return _run
