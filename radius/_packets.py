"""pyrad for what it is good at: the dictionary, decoding attributes, the
Message-Authenticator (HMAC-MD5, compared in constant time) and encoding replies with
their Response Authenticator, Message-Authenticator and echoed Proxy-State.

Only :mod:`pyrad.packet` and :mod:`pyrad.dictionary` are imported: ``pyrad.curved``
would install the default reactor as a side effect of the import.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib.resources import as_file, files
from typing import Any

from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary

from radius._wire import MalformedPacket, ScannedPacket

AttributeValue = str | bytes | int


@functools.cache
def radius_dictionary() -> Any:
    """The attributes ssgate knows (``radius/dictionary``), read once."""
    with as_file(files("radius") / "dictionary") as path:
        return Dictionary(str(path))


def decode_request(scanned: ScannedPacket, secret: bytes) -> Any:
    """The pyrad ``AuthPacket`` of a scanned request, for verifying and replying."""
    try:
        return pyrad_packet.AuthPacket(
            secret=secret, dict=radius_dictionary(), packet=scanned.packet
        )
    except Exception as e:  # pyrad raises PacketError, and struct/Index errors on junk
        raise MalformedPacket("undecodable", type(e).__name__) from None


def message_authenticator_valid(request: Any) -> bool:
    """True if the request's Message-Authenticator is the HMAC-MD5 of the packet under
    its secret (pyrad compares with ``hmac.compare_digest``)."""
    try:
        return bool(request.verify_message_authenticator())
    except Exception:  # no Message-Authenticator, or a packet pyrad cannot re-encode
        return False


def encode_reply(
    request: Any, code: int, attributes: Sequence[tuple[str, AttributeValue]] = ()
) -> bytes:
    """A reply to *request*: Response Authenticator, a Message-Authenticator first (as
    RFC 3579 and the BlastRADIUS advice want), the request's Proxy-State echoed in order
    (RFC 2865 §5.33), then *attributes*."""
    reply = request.CreateReply()  # signs Access-* replies with a Message-Authenticator
    reply.code = code
    for name, value in attributes:
        reply.AddAttribute(name, value)
    data: bytes = reply.ReplyPacket()
    return data
