"""The requests of the last few seconds: duplicates answered from cache, replays caught.

RFC 5080 §2.2.2: a request with the same source port, identifier and Request
Authenticator as one answered recently is a retransmission and gets the same answer,
without being evaluated again.  The same Request Authenticator in any other packet of
the same NAS within the window is a replay and is dropped.  Entries expire after
``window`` seconds; at most ``limit`` are kept (then new requests are refused as busy).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

AUTHENTICATOR_REPLAY = "authenticator-replay"
DUPLICATE_PENDING = "duplicate-pending"
BUSY = "busy"

Key = tuple[str, bytes]  # (NAS name, Request Authenticator)


@dataclass
class _Entry:
    port: int
    identifier: int
    digest: bytes
    expires: float
    reply: bytes | None = None


@dataclass(frozen=True)
class Seen:
    """What a request is: ``reply`` (the cached answer to send again) or ``refusal``
    (a drop reason); both None for a new request, now tracked."""

    reply: bytes | None = None
    refusal: str | None = None


class RecentRequests:
    def __init__(self, *, window: float, limit: int) -> None:
        self._window = window
        self._limit = limit
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def look(self, key: Key, *, port: int, identifier: int, packet: bytes, now: float) -> Seen:
        """Classify a verified request; a new one is remembered (without an answer)."""
        self._expire(now)
        digest = hashlib.sha256(packet).digest()
        entry = self._entries.get(key)
        if entry is not None:
            if (entry.port, entry.identifier, entry.digest) != (port, identifier, digest):
                return Seen(refusal=AUTHENTICATOR_REPLAY)
            if entry.reply is None:
                return Seen(refusal=DUPLICATE_PENDING)
            return Seen(reply=entry.reply)
        if len(self._entries) >= self._limit:
            return Seen(refusal=BUSY)
        self._entries[key] = _Entry(port, identifier, digest, now + self._window)
        return Seen()

    def answer(self, key: Key, reply: bytes) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.reply = reply

    def forget(self, key: Key) -> None:
        self._entries.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]
