"""Three hundred concurrent requests through one real session (issue 16, acceptance 6).

``ssgate serve`` and ``ssgate connect`` as real processes on loopback; 300 local
connections at once (three times the session's 100 streams) each send one request to
the declaration service.  Every one gets an HTTP answer — none is closed without a
response: those beyond the stream limit wait in the client's queue until a stream is
free (``gateway._client.StreamQueue``).
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel

pytestmark = [pytest.mark.slow]

CONCURRENT = 300
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def fetch(port: int, start: threading.Barrier, answers: list[bytes], index: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            start.wait(60)
            s.sendall(REQUEST)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        answers[index] = b"".join(chunks)
    except OSError as e:
        answers[index] = f"error: {e!r}".encode()


def reason_of(answer: bytes) -> str:
    """The X-Ssgate-Reason of a 503 the client wrote itself."""
    return answer.split(b"X-Ssgate-Reason: ", 1)[1].split(b"\r", 1)[0].decode()


def test_three_hundred_concurrent_requests_through_one_session_are_all_answered(
    channel: Channel,
) -> None:
    account = channel.open_account()
    channel.start()
    client = channel.connect(account)
    _session, port = channel.connected(client)

    answers = [b""] * CONCURRENT
    start = threading.Barrier(CONCURRENT)
    threads = [
        threading.Thread(target=fetch, args=(port, start, answers, i)) for i in range(CONCURRENT)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    status = [a.split(b"\r\n", 1)[0].decode("ascii", "replace") for a in answers]
    unanswered = [s for s in status if not s.startswith("HTTP/1.1 ")]
    assert unanswered == [], f"{len(unanswered)} without an answer: {unanswered[:5]}"
    reasons = [reason_of(a) for a in answers if b"X-Ssgate-Reason" in a]
    assert reasons == [], f"{len(reasons)} answered 503 by the client: {sorted(set(reasons))}"
    assert client.popen.poll() is None
