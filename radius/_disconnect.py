"""Disconnect-Request (RFC 5176) packets, without I/O.

:func:`disconnect_request` names the session as the NAS knows it (User-Name,
Acct-Session-Id, Framed-IP-Address when known), carries an Event-Timestamp (RFC 5176
§3.5: the NAS may refuse stale requests) and a Message-Authenticator; its Request
Authenticator is the MD5 of the packet and the secret (pyrad's ``CoAPacket``).
:func:`disconnect_outcome` reads the NAS's answer: ``ack``, ``nak:<Error-Cause>`` or
None when the datagram is not a valid answer to that request.
"""

from __future__ import annotations

from typing import Any

from pyrad import packet as pyrad_packet

from radius._packets import radius_dictionary
from radius._wire import MalformedPacket, scan_request

DISCONNECT_ACK = 41
DISCONNECT_NAK = 42
ERROR_CAUSE = 101


def disconnect_request(
    *,
    secret: bytes,
    identifier: int,
    account: str,
    acct_session_id: str,
    framed_ip: str | None,
    now: float,
) -> tuple[Any, bytes]:
    """(the pyrad request, its bytes)."""
    request = pyrad_packet.CoAPacket(
        code=pyrad_packet.DisconnectRequest,
        id=identifier,
        secret=secret,
        dict=radius_dictionary(),
        message_authenticator=True,
    )
    request.AddAttribute("User-Name", account)
    request.AddAttribute("Acct-Session-Id", acct_session_id)
    if framed_ip:
        request.AddAttribute("Framed-IP-Address", framed_ip)
    request.AddAttribute("Event-Timestamp", int(now))
    return request, request.RequestPacket()


def disconnect_outcome(request: Any, data: bytes) -> str | None:
    """``ack``, ``nak:<cause>`` or None (not an authentic answer to *request*)."""
    try:
        scan_request(data)
        reply = pyrad_packet.CoAPacket(secret=request.secret, dict=radius_dictionary(), packet=data)
    except (MalformedPacket, Exception):
        return None
    if reply.code not in (DISCONNECT_ACK, DISCONNECT_NAK) or not request.VerifyReply(reply, data):
        return None
    if reply.code == DISCONNECT_ACK:
        return "ack"
    causes = reply.get(ERROR_CAUSE) or [b""]
    cause = int.from_bytes(causes[0]) if len(causes[0]) == 4 else 0
    return f"nak:{cause}"
