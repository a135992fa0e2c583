"""The access log: one short line per request, in its own file, naming nobody (issue 11).

Pure masking first, then the file, then a real :class:`web.WebSite` on a
``StringTransport`` writing its lines.
"""

from __future__ import annotations

import stat
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

import web

ID_NUMBER = "33068219900101123X"
NAME = "%E5%BC%A0%E4%B8%89"  # 张三, as a browser sends it in a GET form
DECLARATION = "c73df94516d90b288a6a7eee864a0703"


def test_query_values_are_masked_and_their_names_kept() -> None:
    target = web.masked_target(
        f"/queries/roster?id_number={ID_NUMBER}&name={NAME}&status=1&insurance=".encode()
    )
    assert target == "/queries/roster?id_number=*&name=*&status=*&insurance="


def test_path_segments_that_could_name_a_person_are_masked() -> None:
    assert web.masked_target(f"/persons/{ID_NUMBER}/x".encode()) == "/persons/*/x"
    assert web.masked_target(f"/by-name/{NAME}".encode()) == "/by-name/*"
    assert web.masked_target("/by-name/张三".encode()) == "/by-name/*"
    assert web.masked_target(b"/p/13812345678") == "/p/*"  # a mobile number
    assert web.masked_target(b"/p/33068200000063") == "/p/*"  # a 个人编号


def test_declaration_ids_account_names_and_unit_codes_stay_readable() -> None:
    path = f"/declarations/{DECLARATION}/voucher.pdf"
    assert web.masked_target(path.encode()) == path
    assert web.masked_target(b"/accounts/33068212345678@sxlss") == "/accounts/33068212345678@sxlss"
    assert web.masked_target(b"/units/12345678") == "/units/12345678"


def test_a_line_is_short_and_printable_whatever_was_sent() -> None:
    line = web.request_line(b"GET", b"/" + b"a" * 5000 + b"\x1b[31m", 404, 12)
    assert len(line) < 340 and "\x1b" not in line
    assert line.startswith("GET /aaa") and line.endswith("… 404 12")
    assert web.request_line(b"G\x00T", b"/", 400, 0) == "? / 400 0"


def test_the_file_gets_one_line_per_request_with_time_and_site(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "access.log"
    log = web.AccessLog(path, clock=lambda: 1_780_000_000.0)
    log.startService()
    log.writer("employer")("GET / 200 10")
    log.writer("console")("POST /login 303 0")
    log.stopService()
    log.writer("employer")("GET /late 200 1")  # after the stop: dropped, no error
    assert path.read_text().splitlines() == [
        "2026-05-28T20:26:40Z employer GET / 200 10",
        "2026-05-28T20:26:40Z console POST /login 303 0",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


class _Page(Resource):
    isLeaf = True

    def render_GET(self, request: object) -> bytes:
        return b"ok"


def test_a_site_writes_the_masked_line_of_each_request(tmp_path: Path) -> None:
    lines: list[str] = []
    site = web.WebSite(
        _Page(),
        reactor=MemoryReactorClock(),
        body_limit=lambda path: 1024,
        too_large=lambda path, limit: web.plain(413, "too large"),
        security_headers=(),
        access_log=lines.append,
    )
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    channel = site.buildProtocol(peer)
    assert channel is not None
    channel.makeConnection(StringTransport(peerAddress=peer))
    channel.dataReceived(
        f"GET /queries/roster?id_number={ID_NUMBER}&name={NAME} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n\r\n".encode()
    )
    assert lines == ["GET /queries/roster?id_number=*&name=* 200 2"]


def test_a_body_refused_from_its_headers_has_its_413_line() -> None:
    lines: list[str] = []
    site = web.WebSite(
        _Page(),
        reactor=MemoryReactorClock(),
        body_limit=lambda path: 1024,
        too_large=lambda path, limit: web.plain(413, "too large"),
        security_headers=(),
        access_log=lines.append,
    )
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    channel = site.buildProtocol(peer)
    assert channel is not None
    channel.makeConnection(StringTransport(peerAddress=peer))
    channel.dataReceived(
        f"POST /queries/roster?name={NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Length: 99999\r\n\r\n".encode()
    )
    assert lines == ["POST /queries/roster?name=* 413 10"]
