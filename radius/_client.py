"""The built-in RADIUS client's packets (``ssgate radius test``), without I/O.

:func:`build_access_request` makes a PAP Access-Request as a NAS would, always with a
Message-Authenticator; :func:`read_reply` accepts a reply only if it answers that
request: identifier, Response Authenticator, a valid Message-Authenticator (required)
and no Proxy-State that was not sent — pyrad's ``VerifyReply`` with ``enforce_ma``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from pyrad import packet as pyrad_packet

from radius._packets import radius_dictionary
from radius._wire import MalformedPacket, scan_request

CODE_NAMES = {
    pyrad_packet.AccessAccept: "Access-Accept",
    pyrad_packet.AccessReject: "Access-Reject",
    pyrad_packet.AccessChallenge: "Access-Challenge",
}


@dataclass(frozen=True)
class AccessReply:
    code: int
    reply_message: str
    state: bytes | None = field(repr=False)
    session_class: str
    session_timeout: int | None
    idle_timeout: int | None

    @property
    def code_name(self) -> str:
        return CODE_NAMES.get(self.code, f"code {self.code}")


def build_access_request(
    *,
    secret: bytes,
    user_name: str,
    password: str,
    state: bytes | None = None,
    calling_station: str | None = None,
    nas_identifier: str = "ssgate-radius-test",
    identifier: int | None = None,
    message_authenticator: bool = True,
) -> tuple[Any, bytes]:
    """(the pyrad request, its bytes): PAP, signed with a Message-Authenticator unless
    told not to (only tests of the refusal want that)."""
    request = pyrad_packet.AuthPacket(
        code=pyrad_packet.AccessRequest,
        id=secrets.randbelow(256) if identifier is None else identifier,
        secret=secret,
        dict=radius_dictionary(),
        message_authenticator=message_authenticator or None,
    )
    request.authenticator = request.CreateAuthenticator()
    request.AddAttribute("User-Name", user_name)
    request.AddAttribute("User-Password", request.PwCrypt(password))
    request.AddAttribute("NAS-Identifier", nas_identifier)
    if calling_station is not None:
        request.AddAttribute("Calling-Station-Id", calling_station)
    if state is not None:
        request.AddAttribute("State", state)
    return request, request.RequestPacket()


def read_reply(request: Any, data: bytes) -> AccessReply | None:
    """The reply in *data* if it is a valid answer to *request*, else None."""
    try:
        scan_request(data)  # bounded structure first
        reply = pyrad_packet.AuthPacket(
            secret=request.secret, dict=radius_dictionary(), packet=data
        )
    except (MalformedPacket, Exception):
        return None
    if not request.VerifyReply(reply, data, enforce_ma=True):
        return None

    def first(name: str) -> Any:
        values = reply.get(name) or [None]
        return values[0]

    session_class = first("Class")
    return AccessReply(
        code=reply.code,
        reply_message=first("Reply-Message") or "",
        state=first("State"),
        session_class=session_class.decode("ascii", "replace") if session_class else "",
        session_timeout=first("Session-Timeout"),
        idle_timeout=first("Idle-Timeout"),
    )
