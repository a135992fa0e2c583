"""The dial-in access server: RADIUS (RFC 2865 PAP, RFC 3579 Message-Authenticator)
for the carrier's access equipment (NAS), with the channel's accounts and rules.

* :class:`AccessServer` — sans-IO: a datagram, its source and the time in; a
  :class:`Drop`, a :class:`Send` or an :class:`Evaluate` out; replies to evaluated
  attempts from :meth:`~AccessServer.accept` / :meth:`~AccessServer.reject`;
* :class:`NasClient` / :class:`NasDirectory` — the configured NAS and their secrets;
* :class:`DialInLogin` — the channel's checks through ``auth`` on the runner's pools,
  and the ``login`` audit event of each verdict;
* :class:`AccountingServer` — sans-IO accounting (RFC 2866): a verified report is a
  :class:`Record` of :class:`Usage`, stored by :func:`record_usage` into the session
  registry (:class:`DialInSessions`) and ``radius_sessions`` (tables in
  :data:`metadata`); :func:`keep_alive` keeps open dial-in sessions from being reaped;
* disconnect (RFC 5176): :func:`claim_disconnects` finds the dial-in sessions an
  officer killed (or whose account was suspended), :class:`DisconnectSender` sends the
  Disconnect-Requests (:func:`disconnect_request`), :class:`DisconnectPoller` runs a
  round, :func:`finish_disconnect` records the answer;
* :class:`RadiusAuthProtocol`, :class:`RadiusAccountingProtocol` — the UDP adapters;
* :mod:`radius._client` pieces for the built-in test client (``ssgate radius test``):
  :func:`build_access_request`, :func:`read_reply`.

Packets are encoded, decoded and signed with pyrad (``pyrad.packet``; never
``pyrad.curved``, whose import installs a reactor).
"""

from ._access import (
    QUIET_DROPS,
    AccessServer,
    Attempt,
    Drop,
    Evaluate,
    Send,
    split_password_and_code,
)
from ._accounting import AccountingServer, Record, Usage
from ._client import AccessReply, build_access_request, read_reply
from ._disconnect import disconnect_outcome, disconnect_request
from ._login import DialInLogin, DialInPolicy, Verdict, login_event, source_allowed
from ._nas import NasClient, NasDirectory, NasSettingsError, parse_networks
from ._packets import radius_dictionary
from ._protocol import (
    DisconnectPoller,
    DisconnectSender,
    RadiusAccountingProtocol,
    RadiusAuthProtocol,
)
from ._reports import DropReport, DropReports
from ._schema import metadata
from ._usage_store import (
    DialInSessions,
    DisconnectTarget,
    claim_disconnects,
    finish_disconnect,
    keep_alive,
    record_usage,
)
from ._wire import MAX_ATTRIBUTES, MAX_PACKET, MalformedPacket, scan_request

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_PACKET",
    "QUIET_DROPS",
    "AccessReply",
    "AccessServer",
    "AccountingServer",
    "Attempt",
    "DialInLogin",
    "DialInPolicy",
    "DialInSessions",
    "DisconnectPoller",
    "DisconnectSender",
    "DisconnectTarget",
    "Drop",
    "DropReport",
    "DropReports",
    "Evaluate",
    "MalformedPacket",
    "NasClient",
    "NasDirectory",
    "NasSettingsError",
    "RadiusAccountingProtocol",
    "RadiusAuthProtocol",
    "Record",
    "Send",
    "Usage",
    "Verdict",
    "build_access_request",
    "claim_disconnects",
    "disconnect_outcome",
    "disconnect_request",
    "finish_disconnect",
    "keep_alive",
    "login_event",
    "metadata",
    "parse_networks",
    "radius_dictionary",
    "read_reply",
    "record_usage",
    "scan_request",
    "source_allowed",
    "split_password_and_code",
]
