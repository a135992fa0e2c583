"""Answers that must not get lost in the tunnel (issue 11): a body over the declaration
service's cap is answered 413 by the service, and that 413 reaches the client through
the real ``ssgate connect`` and gateway — not a connection reset while it still sends.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel

pytestmark = [pytest.mark.slow]

CURL = shutil.which("curl")
MIB = 1024 * 1024


def _post(port: int, body: Path, *, expect_continue: bool) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    return subprocess.run(
        [
            CURL,
            "-sS",
            "-m",
            "60",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
            # Without "Expect: 100-continue" the body follows the headers at once, as a
            # browser sends it; with it, the answer comes before any of the body.
            *([] if expect_continue else ["-H", "Expect:"]),
            "--data-binary",
            f"@{body}",
            f"http://127.0.0.1:{port}/api/v1/declarations",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CURL is None, reason="curl not installed")
@pytest.mark.parametrize("size", [2 * MIB, 8 * MIB], ids=["2MiB", "8MiB"])
@pytest.mark.parametrize("expect_continue", [False, True], ids=["sent-at-once", "100-continue"])
def test_a_body_over_the_cap_gets_the_services_413_through_the_tunnel(
    channel: Channel, size: int, expect_continue: bool
) -> None:
    channel.start()
    account = channel.open_account()
    client = channel.connect(account)
    _, port = channel.connected(client)
    body = channel.tmp / "big.json"
    body.write_bytes(b'{"type": "person-add", "payload": {"remark": "' + b"x" * size + b'"}}')
    for _ in range(3):  # and again: the tunnel and the session are still fine after it
        result = _post(port, body, expect_continue=expect_continue)
        assert (result.returncode, result.stdout, result.stderr) == (0, "413", "")
    assert client.popen.poll() is None, client.output
