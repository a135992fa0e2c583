"""Malformed uploads through the employer site (issue 9, acceptance 4): 200 broken
``multipart/form-data`` bodies on the batch import routes answer 400 or 413, never
500, store nothing and log no failure; a body over the route's cap is refused from
its headers, before any of it is read.

The bodies are built here from a well-formed upload by breaking it in the ways a
client, a proxy or an attacker does; the reader's own corpus (chunking, Hypothesis)
is in ``tests/unit/web/test_multipart.py``.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from twisted.logger import LogEvent, globalLogPublisher

from declare_app._batch import MAX_FILE_BYTES
from declare_app.web._imports import IMPORT_MAX_BODY
from declare_app.web.testing import ALICE, GuardedClient, MemoryWorkflow, csrf_for

B = "x9Yt3kQz"
CSV = "身份证号,姓名\n11010519491231002X,张三\n".encode()
ROUTES = ("/declarations/new/person-add/import", "/api/v1/declarations/import?type=person-add")


def part(name: str, value: bytes, *, filename: str | None = None, head: bytes = b"") -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return f"--{B}\r\n{disposition}\r\n".encode() + head + b"\r\n" + value + b"\r\n"


def good(token: str) -> bytes:
    return (
        part("csrf_token", token.encode())
        + part("file", CSV, filename="a.csv")
        + f"--{B}--\r\n".encode()
    )


def malformed(token: str) -> list[tuple[str, bytes, str]]:
    """(what, body, content type) — each one broken in its own way."""
    ok = good(token)
    ct = f"multipart/form-data; boundary={B}"
    out: list[tuple[str, bytes, str]] = []
    # truncated anywhere but at the very end
    for cut in sorted({*range(1, len(ok) - 4, max(1, len(ok) // 60)), len(ok) - 3}):
        out.append((f"truncated at {cut}", ok[:cut], ct))
    out += [
        ("wrong boundary", ok, "multipart/form-data; boundary=other"),
        ("no boundary", ok, "multipart/form-data"),
        ("empty boundary", ok, 'multipart/form-data; boundary=""'),
        (
            "boundary of 200 characters",
            ok.replace(B.encode(), b"b" * 200),
            "multipart/form-data; boundary=" + "b" * 200,
        ),
        ("empty body", b"", ct),
        ("only the closing boundary", f"--{B}--\r\n".encode(), ct),
        ("garbage", bytes(range(256)) * 4, ct),
        ("no closing boundary", ok.replace(f"--{B}--".encode(), b""), ct),
        ("LF line ends", ok.replace(b"\r\n", b"\n"), ct),
        (
            "huge part header",
            part("csrf_token", token.encode(), head=b"X-Pad: " + b"a" * 20000 + b"\r\n")
            + part("file", CSV, filename="a.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "header without colon",
            part("file", CSV, filename="a.csv", head=b"nonsense\r\n") + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "no content-disposition",
            f"--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--\r\n".encode(),
            ct,
        ),
        (
            "no name",
            f'--{B}\r\nContent-Disposition: form-data; filename="a.csv"\r\n\r\nx\r\n--{B}--\r\n'.encode(),
            ct,
        ),
        (
            "nested multipart",
            part(
                "file",
                b"--inner\r\n\r\nx\r\n--inner--\r\n",
                filename="a.csv",
                head=b"Content-Type: multipart/mixed; boundary=inner\r\n",
            )
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "two files",
            part("csrf_token", token.encode())
            + part("file", CSV, filename="a.csv")
            + part("file", CSV, filename="b.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "too many parts",
            part("csrf_token", token.encode())
            + b"".join(part(f"f{i}", b"1") for i in range(20))
            + part("file", CSV, filename="a.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "field not UTF-8",
            part("csrf_token", token.encode())
            + part("year", b"\xff\xfe")
            + part("file", CSV, filename="a.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "field too long",
            part("csrf_token", token.encode())
            + part("year", b"9" * 5000)
            + part("file", CSV, filename="a.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "NUL in a name",
            part("csrf\x00token", token.encode())
            + part("file", CSV, filename="a.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        (
            "file over its cap",
            part("csrf_token", token.encode())
            + part("file", b"a" * (MAX_FILE_BYTES + 1), filename="a.csv")
            + f"--{B}--\r\n".encode(),
            ct,
        ),
        ("missing token", part("file", CSV, filename="a.csv") + f"--{B}--\r\n".encode(), ct),
    ]
    # bytes flipped at random places (seeded: the same bodies every run)
    rng = random.Random(9)
    while len(out) < 200:
        body = bytearray(ok)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.choice(b'\r\n-\x00\xff"=;:')
        if bytes(body) != ok:
            out.append((f"flipped {len(out)}", bytes(body), ct))
    return out


@pytest.fixture
def logged() -> Any:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_200_malformed_uploads_are_400_or_413_never_500(
    client: GuardedClient, workflow: MemoryWorkflow, logged: list[LogEvent]
) -> None:
    token = csrf_for(ALICE)
    cases = malformed(token)
    assert len(cases) >= 200
    statuses: dict[int, int] = {}
    for (what, body, ct), path in zip(cases, itertools.cycle(ROUTES), strict=False):
        headers = {"Content-Type": ct, "Origin": "http://127.0.0.1:8080"}
        if path.startswith("/api/"):
            headers["X-CSRF-Token"] = token
        r = client.request("POST", path, body=body, headers=headers)
        statuses[r.status] = statuses.get(r.status, 0) + 1
        # A flipped byte may land where the framing survives (in the CSV, a header's
        # value, the token): then the upload is read and the batch or the CSRF check
        # answers for itself.
        if what.startswith("flipped") and r.status in (200, 201, 403, 422):
            continue
        assert r.status in (400, 403, 413), (what, r.status, r.body[:200])
        if what != "missing token":
            assert r.status != 403, (what, r.body[:200])
    assert statuses.get(500, 0) == 0
    assert not [e for e in logged if e.get("log_failure") is not None]
    assert statuses.get(400, 0) > 100


def test_the_well_formed_upload_is_read(client: GuardedClient) -> None:
    """The unbroken body passes the multipart reader: the batch itself answers (its
    CSV lacks the template's columns, so the batch refuses it whole, 422 bad-header)."""
    token = csrf_for(ALICE)
    r = client.request(
        "POST",
        ROUTES[1],
        body=good(token),
        headers={"Content-Type": f"multipart/form-data; boundary={B}", "X-CSRF-Token": token},
    )
    assert (r.status, r.json()["error"]) == (422, "bad-header"), r.body[:300]


def test_an_upload_over_the_cap_is_refused_from_its_headers_unread(
    client: GuardedClient,
) -> None:
    """Content-Length one byte over the import cap: 413 at once; the bytes that follow
    are dropped, never taken in (the connection closes once they have all come)."""
    guard, transport = client.connect()
    guard.dataReceived(
        (
            f"POST {ROUTES[0]} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
            f"Content-Type: multipart/form-data; boundary={B}\r\n"
            f"Content-Length: {IMPORT_MAX_BODY + 1}\r\n\r\n"
        ).encode()
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert not transport.disconnecting
    channel = guard._wrapped
    [request] = channel.requests
    guard.dataReceived(b"a" * 1024 * 1024)
    assert request.too_large and request.body_read == 0
    assert request.content.getvalue() == b""
