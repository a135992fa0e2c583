"""The accounting server without I/O (RFC 2866): a datagram in, a step out.

An Accounting-Request is accepted only from a configured NAS, bounded and well formed
(:func:`radius._wire.scan_request`), with a Request Authenticator that is the MD5 of
the packet and the shared secret (RFC 2866 §3, pyrad's ``VerifyAcctRequest``, compared
in constant time) and, when present, a valid Message-Authenticator.  Duplicates get
the cached Accounting-Response (:mod:`radius._recent`).

What it carries becomes a :class:`Usage` to :class:`Record`; the caller stores it off
the reactor and then calls :meth:`AccountingServer.acknowledge` for the response (sent
only once the record is stored: a NAS keeps retrying until then, RFC 2866 §2).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pyrad import packet as pyrad_packet

from radius._access import Drop, Send
from radius._nas import NasClient, NasDirectory
from radius._packets import message_authenticator_valid, radius_dictionary
from radius._recent import RecentRequests
from radius._wire import (
    ACCOUNTING_REQUEST,
    ACCT_INPUT_GIGAWORDS,
    ACCT_INPUT_OCTETS,
    ACCT_OUTPUT_GIGAWORDS,
    ACCT_OUTPUT_OCTETS,
    ACCT_SESSION_ID,
    ACCT_SESSION_TIME,
    ACCT_STATUS_TYPE,
    ACCT_TERMINATE_CAUSE,
    CALLING_STATION_ID,
    CLASS,
    FRAMED_IP_ADDRESS,
    NAS_PORT,
    USER_NAME,
    MalformedPacket,
    ScannedPacket,
    decode_integer,
    decode_text,
    scan_request,
)

UNKNOWN_NAS = "unknown-nas"
NOT_ACCOUNTING_REQUEST = "not-accounting-request"
BAD_REQUEST_AUTHENTICATOR = "bad-request-authenticator"
BAD_MESSAGE_AUTHENTICATOR = "bad-message-authenticator"
UNSUPPORTED_STATUS = "unsupported-status"
NO_SESSION_ID = "no-acct-session-id"

# Acct-Status-Type (RFC 2866 §5.1, RFC 2867).
STATUS_NAMES = {1: "start", 2: "stop", 3: "interim", 7: "accounting-on", 8: "accounting-off"}

# Acct-Terminate-Cause (RFC 2866 §5.10) as end reasons of the session registry.
TERMINATE_CAUSES = {
    1: "nas-user-request",
    2: "nas-lost-carrier",
    3: "nas-lost-service",
    4: "idle-timeout",
    5: "max-lifetime",
    6: "nas-admin-reset",
    7: "nas-admin-reboot",
    8: "nas-port-error",
    9: "nas-error",
    10: "nas-request",
    11: "nas-reboot",
    12: "nas-port-unneeded",
    13: "nas-port-preempted",
    14: "nas-port-suspended",
    15: "nas-service-unavailable",
    16: "nas-callback",
    17: "nas-user-error",
    18: "nas-host-request",
}


@dataclass(frozen=True)
class Usage:
    """One accounting report from a NAS."""

    nas: NasClient
    source: tuple[str, int]
    status: str  # a value of STATUS_NAMES
    account: str  # User-Name ("" for accounting-on/off)
    session_id: str  # the Class of our Access-Accept ("" if the NAS did not echo it)
    acct_session_id: str
    nas_port: int | None
    framed_ip: str | None
    calling_station: str | None
    bytes_in: int  # octets from the user (Acct-Input-Octets + Gigawords)
    bytes_out: int
    session_time: int | None
    end_reason: str | None  # from Acct-Terminate-Cause, on stop
    key: tuple[str, bytes] = field(default=("", b""), repr=False)
    request: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Record:
    usage: Usage


AccountingStep = Drop | Send | Record


class AccountingServer:
    """Sans-IO RADIUS accounting (RFC 2866)."""

    def __init__(
        self, nas: NasDirectory, *, duplicate_window: float = 30.0, max_tracked: int = 16384
    ) -> None:
        self._nas = nas
        self._recent = RecentRequests(window=duplicate_window, limit=max_tracked)
        self.drops: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"AccountingServer({self._nas!r}, tracked={len(self._recent)})"

    def receive(self, data: bytes, source: tuple[str, int], now: float) -> AccountingStep:
        host, port = source
        nas = self._nas.for_source(host)
        if nas is None:
            return self._drop(UNKNOWN_NAS, host)
        try:
            scanned, request = _verified(data, nas)
            usage = _usage(scanned, request, nas, source)
        except MalformedPacket as e:
            return self._drop(e.reason, host, nas)
        seen = self._recent.look(
            usage.key, port=port, identifier=scanned.identifier, packet=scanned.packet, now=now
        )
        if seen.refusal is not None:
            return self._drop(seen.refusal, host, nas)
        if seen.reply is not None:
            return Send(seen.reply, seen.reply[0])
        return Record(usage)

    def acknowledge(self, usage: Usage) -> bytes:
        """The Accounting-Response, once the report is stored (cached for duplicates)."""
        reply = usage.request.CreateReply()  # Proxy-State echoed
        data: bytes = reply.ReplyPacket()
        self._recent.answer(usage.key, data)
        return data

    def abandon(self, usage: Usage) -> None:
        """Not stored: no response, so the NAS sends it again and it is stored then."""
        self._recent.forget(usage.key)

    def _drop(self, reason: str, host: str, nas: NasClient | None = None) -> Drop:
        self.drops[reason] += 1
        return Drop(reason, host, None if nas is None else nas.name)


def _verified(data: bytes, nas: NasClient) -> tuple[ScannedPacket, Any]:
    scanned = scan_request(data)
    if scanned.code != ACCOUNTING_REQUEST:
        raise MalformedPacket(NOT_ACCOUNTING_REQUEST)
    try:
        request = pyrad_packet.AcctPacket(
            secret=nas.secret, dict=radius_dictionary(), packet=scanned.packet
        )
    except Exception as e:  # pyrad raises PacketError, and struct/Index errors on junk
        raise MalformedPacket("undecodable", type(e).__name__) from None
    if not request.VerifyAcctRequest():
        raise MalformedPacket(BAD_REQUEST_AUTHENTICATOR)
    if scanned.has_message_authenticator and not message_authenticator_valid(request):
        raise MalformedPacket(BAD_MESSAGE_AUTHENTICATOR)
    return scanned, request


def _usage(scanned: ScannedPacket, request: Any, nas: NasClient, source: tuple[str, int]) -> Usage:
    status = STATUS_NAMES.get(decode_integer(scanned.first(ACCT_STATUS_TYPE)) or 0)
    if status is None:
        raise MalformedPacket(UNSUPPORTED_STATUS)
    acct_session_id = decode_text(scanned.first(ACCT_SESSION_ID), limit=64) or ""
    if not acct_session_id and status in ("start", "interim", "stop"):
        raise MalformedPacket(NO_SESSION_ID)
    framed = scanned.first(FRAMED_IP_ADDRESS)
    cause = decode_integer(scanned.first(ACCT_TERMINATE_CAUSE))
    return Usage(
        nas=nas,
        source=source,
        status=status,
        account=decode_text(scanned.first(USER_NAME)) or "",
        session_id=_session_id(scanned.first(CLASS)),
        acct_session_id=acct_session_id,
        nas_port=decode_integer(scanned.first(NAS_PORT)),
        framed_ip=str(ipaddress.IPv4Address(framed)) if framed and len(framed) == 4 else None,
        calling_station=decode_text(scanned.first(CALLING_STATION_ID), limit=64),
        bytes_in=_octets(scanned, ACCT_INPUT_OCTETS, ACCT_INPUT_GIGAWORDS),
        bytes_out=_octets(scanned, ACCT_OUTPUT_OCTETS, ACCT_OUTPUT_GIGAWORDS),
        session_time=decode_integer(scanned.first(ACCT_SESSION_TIME)),
        end_reason=TERMINATE_CAUSES.get(cause or 0, "nas-other") if status == "stop" else None,
        key=(nas.name, scanned.authenticator),
        request=request,
    )


def _session_id(value: bytes | None) -> str:
    """Our session ids are 32 lowercase hex characters; anything else is not ours."""
    text = decode_text(value, limit=64) or ""
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else ""


def _octets(scanned: ScannedPacket, octets: int, gigawords: int) -> int:
    return (decode_integer(scanned.first(gigawords)) or 0) * 2**32 + (
        decode_integer(scanned.first(octets)) or 0
    )
