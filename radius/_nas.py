"""The RADIUS clients (NAS): who may ask, with which shared secret, under which rules.

A datagram is attributed to a NAS by its source address only (RFC 2865 §3: the
shared secret is chosen by the source address).  Two NAS whose networks overlap would
make that choice ambiguous, so :class:`NasDirectory` refuses them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6614 §2.3 and the BlastRADIUS advisories: short secrets are guessable offline
# from one captured packet.  FreeRADIUS warns under 16; ssgate refuses.
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 128


class NasSettingsError(ValueError):
    """A NAS entry is unusable; the message names the NAS and the setting, never the
    secret."""


@dataclass(frozen=True)
class NasClient:
    """One NAS.  ``secret`` never appears in a repr or a message."""

    name: str
    networks: tuple[Network, ...]
    secret: bytes = field(repr=False)
    require_message_authenticator: bool = True
    disconnect_port: int = 3799  # its dynamic-authorization server (RFC 5176)

    def __post_init__(self) -> None:
        if not self.networks:
            raise NasSettingsError(f"NAS {self.name}: sources must name at least one network")
        if not MIN_SECRET_BYTES <= len(self.secret) <= MAX_SECRET_BYTES:
            raise NasSettingsError(
                f"NAS {self.name}: the shared secret must be {MIN_SECRET_BYTES} to "
                f"{MAX_SECRET_BYTES} bytes (it is {len(self.secret)})"
            )

    @property
    def actor(self) -> str:
        """The audit actor for what this NAS asked: ``radius:<name>``."""
        return f"radius:{self.name}"


def parse_networks(sources: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings as networks; host bits set are accepted (``10.0.0.1/24``)."""
    return tuple(ipaddress.ip_network(s, strict=False) for s in sources)


class NasDirectory:
    """The configured NAS, found by source address."""

    def __init__(self, clients: Iterable[NasClient]) -> None:
        self._clients = tuple(clients)
        names = [c.name for c in self._clients]
        for name in names:
            if names.count(name) > 1:
                raise NasSettingsError(f"NAS {name} is configured twice")
        for i, a in enumerate(self._clients):
            for b in self._clients[i + 1 :]:
                for na in a.networks:
                    for nb in b.networks:
                        if na.version == nb.version and na.overlaps(nb):
                            raise NasSettingsError(
                                f"NAS {a.name} ({na}) and NAS {b.name} ({nb}) overlap: "
                                "a source address must name one NAS"
                            )

    def __repr__(self) -> str:
        return f"NasDirectory({', '.join(c.name for c in self._clients)})"

    def __bool__(self) -> bool:
        return bool(self._clients)

    def __iter__(self) -> Iterator[NasClient]:
        return iter(self._clients)

    def by_name(self, name: str) -> NasClient | None:
        for client in self._clients:
            if client.name == name:
                return client
        return None

    def for_source(self, host: str) -> NasClient | None:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for client in self._clients:
            if any(address in net for net in client.networks):
                return client
        return None
