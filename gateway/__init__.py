"""The secure channel: the gateway that employers dial, and ``ssgate connect`` that dials it.

The public face of the gateway package, for ``ssgate`` to assemble and run it:

* the gateway — :class:`GatewayNode` (the live tunnels of one process, each a
  session in the registry) over a :class:`GatewayContext`; channel logins through
  :func:`channel_portal` (twisted.cred: certificate binding, source policy, password
  + TOTP, concurrent-session limit) with each account's policy read through
  :func:`policy_view`;
* TLS — :func:`load_state_server_tls` reads the server material from the state
  directory, :class:`ReloadingServerTLS` swaps it for new connections, and
  :func:`state_crl_watcher` reloads the files and the CRL;
* the session registry (tables in :data:`metadata`) for the command line:
  :func:`list_sessions`, :func:`request_kill`, :func:`request_kill_account`;
  :func:`kill_session` (an officer's kill with its audit event, for the command line and
  the console) and :class:`SessionRegistryView` (what the officers' pages read);
  :func:`start_session`, :func:`heartbeat` and :func:`end_session` for sessions held
  elsewhere (dial-in sessions that RADIUS accounting reports, ``ssgate._radius``);
* the client — :func:`load_profile`, :func:`load_identity`, :func:`parse_listen` and
  :class:`ConnectClient`; :class:`Reason` is every end and refusal with its code, and
  :data:`REASON_WORDS` every code the gateway records in the words staff read.

The frame codec and state machines (``_frames``, ``_machine``) are sans-IO and
private; :mod:`gateway.testing` has the in-memory network and a whole test channel.
"""

from ._client import (
    EXIT_SETUP,
    EXIT_UNREACHABLE,
    ClientIdentity,
    ClientSetupError,
    ConnectClient,
    Profile,
    load_identity,
    load_profile,
    parse_listen,
)
from ._cred import AccountPolicyView
from ._limits import count_open_descriptors
from ._portal import AccountPolicySettings, channel_portal, policy_view
from ._reasons import REASON_WORDS, Reason
from ._schema import metadata
from ._schema import sessions as sessions_table
from ._service import (
    GatewayContext,
    GatewayNode,
    GatewayObserver,
    NoObserver,
    default_node_name,
)
from ._sessions import (
    SessionRecord,
    SessionRegistryView,
    end_lost_node_sessions_recorded,
    end_session,
    heartbeat,
    kill_session,
    list_sessions,
    request_kill,
    request_kill_account,
    search_sessions,
    start_session,
)
from ._tls import (
    ReloadingServerTLS,
    ServerTLSMaterial,
    SharedCrl,
    SharedCrlWatcher,
    load_state_server_tls,
    state_crl_watcher,
)

__all__ = [
    "EXIT_SETUP",
    "EXIT_UNREACHABLE",
    "REASON_WORDS",
    "AccountPolicySettings",
    "AccountPolicyView",
    "ClientIdentity",
    "ClientSetupError",
    "ConnectClient",
    "GatewayContext",
    "GatewayNode",
    "GatewayObserver",
    "NoObserver",
    "Profile",
    "Reason",
    "ReloadingServerTLS",
    "ServerTLSMaterial",
    "SessionRecord",
    "SessionRegistryView",
    "SharedCrl",
    "SharedCrlWatcher",
    "channel_portal",
    "count_open_descriptors",
    "default_node_name",
    "end_lost_node_sessions_recorded",
    "end_session",
    "heartbeat",
    "kill_session",
    "list_sessions",
    "load_identity",
    "load_profile",
    "load_state_server_tls",
    "metadata",
    "parse_listen",
    "policy_view",
    "request_kill",
    "request_kill_account",
    "search_sessions",
    "sessions_table",
    "start_session",
    "state_crl_watcher",
]
