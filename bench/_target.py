"""The service every benchmark path leads to: upload sink, download source, echo.

One process, two listeners on loopback, the same code behind both:

- ``plain``: what the direct path and stunnel's server connect to;
- ``guarded``: what the gateway's ``declare`` service points at during the benchmark.
  Each connection must start with the gateway's signed identity header, read and
  verified with :class:`auth.IdentityHeaderReader` as a real service does; the
  bytes after it are the benchmark's own.

After that, a connection is one command (a byte and an 8-byte big-endian count):

- ``U n``: the client sends *n* bytes; the target answers ``K`` after the last one.
- ``D n``: the target sends *n* bytes.
- ``E 0``: echo everything until end of file.

Blocking sockets, a thread per connection: ``recv_into``/``sendall`` release the GIL,
so the target is never what limits a path (the direct path shows its ceiling).

Run: ``python bench/_target.py STATE_DIR``; it prints
``target listening plain=PORT guarded=PORT`` once both listeners accept.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import struct
import sys
import threading
import time
from pathlib import Path

import auth

COMMAND = struct.Struct("!cQ")
CHUNK = 1 << 20
_PAYLOAD = memoryview(os.urandom(CHUNK))  # random: nothing on the way can compress it


class _Connection:
    """A socket with the bytes already read ahead of the command (after the header)."""

    def __init__(self, sock: socket.socket, early: bytes = b"") -> None:
        self.sock = sock
        self.early = bytearray(early)

    def read_exact(self, n: int) -> bytes:
        while len(self.early) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("end of file before the command")
            self.early += chunk
        data, self.early = bytes(self.early[:n]), self.early[n:]
        return data

    def discard(self, n: int) -> None:
        """Read and drop *n* bytes (the upload)."""
        taken = min(n, len(self.early))
        del self.early[:taken]
        left = n - taken
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while left:
            got = self.sock.recv_into(view, min(left, CHUNK))
            if not got:
                raise ConnectionError(f"end of file with {left} bytes still to come")
            left -= got

    def send_count(self, n: int) -> None:
        while n:
            take = min(n, CHUNK)
            self.sock.sendall(_PAYLOAD[:take])
            n -= take

    def echo(self) -> None:
        if self.early:
            self.sock.sendall(self.early)
            self.early.clear()
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            self.sock.sendall(data)


def serve_commands(conn: _Connection) -> None:
    command, count = COMMAND.unpack(conn.read_exact(COMMAND.size))
    if command == b"U":
        conn.discard(count)
        conn.sock.sendall(b"K")
    elif command == b"D":
        conn.send_count(count)
    elif command == b"E":
        conn.echo()
    else:
        raise ValueError(f"unknown command {command!r}")


class _PlainHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A client that went away mid-run: nothing to report.
        with contextlib.suppress(ConnectionError, OSError, ValueError):
            serve_commands(_Connection(sock))


class _GuardedHandler(socketserver.BaseRequestHandler):
    """Verify the gateway's identity header first, as the declaration service does."""

    identity_key = b""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = auth.IdentityHeaderReader(key=self.identity_key)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                verified = reader.feed(data, now=time.time())
                if verified is not None:
                    _identity, rest = verified
                    break
            serve_commands(_Connection(sock, rest))
        except auth.IdentityHeaderError as e:
            sys.stderr.write(f"target: refused a connection without a valid header: {e}\n")
        except (ConnectionError, OSError, ValueError):
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python bench/_target.py STATE_DIR\n")
        return 2
    key = (Path(argv[0]) / "identity.key").read_bytes()

    class Guarded(_GuardedHandler):
        identity_key = key

    plain = _Server(("127.0.0.1", 0), _PlainHandler)
    guarded = _Server(("127.0.0.1", 0), Guarded)
    for server in (plain, guarded):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(
        f"target listening plain={plain.server_address[1]} guarded={guarded.server_address[1]}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
