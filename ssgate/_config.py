"""``ssgate.toml``: the schema, its defaults, and validation that names file, key and form.

The file is read with :mod:`tomllib`.  Every key is declared below with its type and
allowed form; an unknown key or a bad value is a :class:`ConfigError` whose message
names the file, the dotted key and what is allowed, so an operator can fix it at once.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CONFIG_FILE = "ssgate.toml"


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class GatewayConfig:
    listen: str = "tcp:8443"
    public_host: str = "localhost"
    public_port: int = 8443
    # On SIGTERM or 'ssgate node drain': how long moved sessions' open streams may finish.
    drain_seconds: float = 30.0


@dataclass(frozen=True)
class ConsoleConfig:
    listen: str = "tcp:8444:interface=127.0.0.1"
    idle_timeout_seconds: float = 900.0  # a staff session ends after this without a request
    max_lifetime_seconds: float = 28800.0  # and after this in all, active or not


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # empty: SQLite file ssgate.db in the state directory


@dataclass(frozen=True)
class AccountsConfig:
    realms: tuple[str, ...] = ("sxlss",)
    regions: tuple[str, ...] = ("330682", "330604")


@dataclass(frozen=True)
class PasswordsConfig:
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1


@dataclass(frozen=True)
class LockoutConfig:
    threshold: int = 5
    base_lock_seconds: float = 60.0
    max_lock_seconds: float = 3600.0
    hard_cap: int = 20
    source_window_seconds: float = 900.0
    source_max_failures: int = 30


@dataclass(frozen=True)
class TotpConfig:
    issuer: str = "ssgate"


@dataclass(frozen=True)
class PkiConfig:
    client_cert_days: int = 730
    server_cert_days: int = 365
    crl_next_update_days: int = 7


@dataclass(frozen=True)
class DeclareConfig:
    # Empty: a Unix socket declare.sock in the state directory, reachable only locally.
    listen: str = ""
    # Contribution rates and base limits per region, effective-dated (DOMAIN §2);
    # relative to the state directory.
    rates_file: str = "rates.toml"
    # The day of each month (1-28) on which 'serve' closes that month's contributions
    # (费款所属期) by itself, as 'ssgate declare close-month' does; 0: only by command.
    close_day: int = 0


@dataclass(frozen=True)
class AgencyConfig:
    # The 经办机构 named on vouchers (HTML and PDF).
    name: str = "社会保险经办机构"
    # V-WIN-01: the monthly acceptance window [first day, last day], e.g. [5, 25];
    # empty: none (filings are handled in the month they arrive).
    submission_window: tuple[int, ...] = ()


@dataclass(frozen=True)
class AccountPolicy:
    """What one channel account may do; ``[policy]`` holds the defaults."""

    max_sessions: int = 2
    idle_timeout_seconds: float = 1800.0
    max_lifetime_seconds: float = 43200.0
    allowed_sources: tuple[str, ...] = ()  # CIDR networks; empty: anywhere
    services: tuple[str, ...] = ("declare",)


@dataclass(frozen=True)
class PolicyConfig:
    default: AccountPolicy = field(default_factory=AccountPolicy)
    accounts: Mapping[str, AccountPolicy] = field(default_factory=dict)
    handshake_timeout_seconds: float = 10.0
    auth_timeout_seconds: float = 60.0

    def for_account(self, account: str) -> AccountPolicy:
        return self.accounts.get(account, self.default)


@dataclass(frozen=True)
class DirectoryConfig:
    """Where staff passwords are checked: ``sql`` (the stored hash) or ``ldap`` (a bind)."""

    backend: str = "sql"
    url: str = ""  # ldap://host[:port] or ldaps://host[:port]
    start_tls: bool = False
    ca_file: str = ""  # empty: the system's CAs; relative paths are in the state directory
    user_dn: str = ""  # e.g. "uid={name},ou=staff,dc=example,dc=cn"
    timeout_seconds: int = 5


@dataclass(frozen=True)
class AlertsConfig:
    """``[alerts]``: how often the rules run and their thresholds (audit.AlertThresholds)."""

    interval_seconds: float = 2.0
    brute_force_failures: int = 10
    brute_force_window_seconds: float = 900.0
    spray_accounts: int = 3
    spray_failures: int = 10
    spray_window_seconds: float = 900.0
    session_lookback_seconds: float = 43200.0
    unusual_hour_min_logins: int = 20
    export_rows: int = 10000
    probe_persons: int = 10
    probe_window_seconds: float = 3600.0


# 网络安全法 (Cybersecurity Law) Art. 21: network logs are kept at least six months.
MIN_RETENTION_DAYS = 180


@dataclass(frozen=True)
class AuditConfig:
    """``[audit]``: how long audit records stay in the database before retention moves
    them into the archives in the state directory (``audit-archive/``)."""

    retention_days: int = MIN_RETENTION_DAYS
    # Empty: audit-archive/ in the state directory.  Several nodes: one directory they
    # all mount, since any node's daily run may move records.
    archive_dir: str = ""


@dataclass(frozen=True)
class DisplayConfig:
    """How times are shown to people: the IANA zone of tables and ``--since/--until``."""

    time_zone: str = "Asia/Shanghai"

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class SyslogCollector:
    """One ``[[syslog.collector]]``: where audit events are forwarded, and how."""

    address: str  # "host:port" or "[v6]:port", as written
    host: str
    port: int
    name: str = ""  # empty: the address; the cursor in the database is kept under it
    protocol: str = "syslog"  # or "relp": rsyslog's acknowledged transport
    tls: bool = True
    ca_file: str = ""  # the CA that signed the collector's certificate (required with tls)
    server_name: str = ""  # the name its certificate must carry; empty: host
    cert_file: str = ""  # our client certificate, when the collector asks for one
    key_file: str = ""

    @property
    def key(self) -> str:
        """The name the delivered cursor is stored under."""
        return self.name or self.address

    @property
    def expected_name(self) -> str:
        return self.server_name or self.host


@dataclass(frozen=True)
class SyslogConfig:
    """``[syslog]``: forwarding every audit event to the collectors (none by default)."""

    hostname: str = ""  # HOSTNAME field of each message; empty: this machine's name
    app_name: str = "ssgate"
    sd_id: str = "ssgate@32473"
    facility: int = 13  # log audit
    interval_seconds: float = 1.0
    batch: int = 500
    collectors: tuple[SyslogCollector, ...] = ()


@dataclass(frozen=True)
class OpsConfig:
    """``[ops]``: the listener for health checks and Prometheus (``ssgate._ops``)."""

    listen: str = "tcp:8445:interface=127.0.0.1"
    # /readyz counts the database as down when SELECT 1 takes longer than this.
    readiness_timeout_seconds: float = 2.0
    # /metrics reads the database counts at most this often (and when scraped).
    metrics_refresh_seconds: float = 10.0


@dataclass(frozen=True)
class NodeConfig:
    """``[node]``: this node among those sharing the database (``ssgate._nodes``)."""

    # The operator's name for this node: its name in the registry, every log line and
    # audit event.  Empty: ``host:pid``.  With ``serve --workers N`` worker i is
    # ``<name>-<i>`` (or ``host:pid`` each while empty).
    name: str = ""


@dataclass(frozen=True)
class PortalConfig:
    """``[portal]``: the insured persons' portal (``portal/``, ``ssgate._portal``).

    Off by default (``listen = ""``): it is a public-facing site, so an operator turns
    it on deliberately — loopback for a first look, behind the balancer in production.
    Served with TLS and the server certificate whenever it listens.
    """

    listen: str = ""
    idle_timeout_seconds: float = 900.0
    max_lifetime_seconds: float = 28800.0

    @property
    def enabled(self) -> bool:
        return bool(self.listen)


@dataclass(frozen=True)
class RadiusClientConfig:
    """``[[radius.client]]``: one NAS of the carrier's dial-in equipment."""

    name: str
    sources: tuple[str, ...]  # CIDR networks its datagrams come from
    secret_file: str  # relative to the state directory, or absolute; never logged
    require_message_authenticator: bool = True
    disconnect_port: int = 3799  # where it takes Disconnect-Requests (RFC 5176)


@dataclass(frozen=True)
class RadiusConfig:
    """``[radius]``: the dial-in access server; off while no client is configured."""

    interface: str = "127.0.0.1"
    auth_port: int = 1812
    accounting_port: int = 1813
    duplicate_window_seconds: float = 30.0
    challenge_timeout_seconds: float = 60.0
    clients: tuple[RadiusClientConfig, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.clients)


@dataclass(frozen=True)
class Config:
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    passwords: PasswordsConfig = field(default_factory=PasswordsConfig)
    lockout: LockoutConfig = field(default_factory=LockoutConfig)
    totp: TotpConfig = field(default_factory=TotpConfig)
    pki: PkiConfig = field(default_factory=PkiConfig)
    declare: DeclareConfig = field(default_factory=DeclareConfig)
    agency: AgencyConfig = field(default_factory=AgencyConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    radius: RadiusConfig = field(default_factory=RadiusConfig)
    portal: PortalConfig = field(default_factory=PortalConfig)
    node: NodeConfig = field(default_factory=NodeConfig)


# -- the schema: (section, key) -> (form description, checker) -----------------------------

Checker = Callable[[Any], bool]

_ENDPOINT = re.compile(r"^(tcp|unix|ssl|haproxy|systemd|tcp6):\S+$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[?[0-9A-Fa-f:.]+\]?$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$")
_REALM = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_REGION = re.compile(r"^[1-9][0-9]{5}$")


def _int_in(lo: int, hi: int) -> tuple[str, Checker]:
    return (
        f"an integer from {lo} to {hi}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
    )


def _number_in(lo: float, hi: float) -> tuple[str, Checker]:
    return (
        f"a number from {lo:g} to {hi:g}",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi,
    )


def _matching(pattern: re.Pattern[str], form: str) -> tuple[str, Checker]:
    return form, lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


def _list_of(pattern: re.Pattern[str], form: str) -> tuple[str, Checker]:
    return (
        f"a non-empty list of {form}",
        lambda v: (
            isinstance(v, list)
            and len(v) > 0
            and all(isinstance(x, str) and pattern.fullmatch(x) for x in v)
        ),
    )


def _is_network(value: object) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _is_dn_template(value: str) -> bool:
    from auth import ldap_settings_problem

    # Only the DN part is judged here; the URL is checked by its own key.
    return ldap_settings_problem("ldap://x", value, start_tls=False) is None


def _is_time_zone(value: object) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):  # unknown, or not a zone key at all
        return False
    return True


_POLICY_KEYS: Mapping[str, tuple[str, Checker]] = {
    "max_sessions": _int_in(1, 100),
    "idle_timeout_seconds": _number_in(10, 7 * 86400),
    "max_lifetime_seconds": _number_in(60, 30 * 86400),
    "allowed_sources": (
        'a list of CIDR networks such as ["10.20.0.0/16"] (empty: anywhere)',
        lambda v: isinstance(v, list) and all(_is_network(x) for x in v),
    ),
    "services": (
        'a list of service names such as ["declare"]',
        lambda v: isinstance(v, list) and all(isinstance(x, str) and x == "declare" for x in v),
    ),
}

_PRINTUSASCII = re.compile(r"^[\x21-\x7e]+$")
_ADDRESS = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)):(?P<port>[0-9]{1,5})$"
)
_FILE = (
    "a PEM file name (relative to the state directory) or an absolute path",
    lambda v: isinstance(v, str) and 0 < len(v) <= 4096 and "\x00" not in v,
)


def _is_host_port(value: object) -> bool:
    if not isinstance(value, str):
        return False
    m = _ADDRESS.fullmatch(value)
    return m is not None and 1 <= int(m["port"]) <= 65535


_COLLECTOR_KEYS: Mapping[str, tuple[str, Checker]] = {
    "name": _matching(
        re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"),
        "1-64 letters, digits, '.', '_', ':', '@' or '-'",
    ),
    "address": (
        'host:port such as "logs.example.cn:6514" or "[2001:db8::5]:6514"',
        _is_host_port,
    ),
    "protocol": (
        '"syslog" (RFC 5425/6587) or "relp" (acknowledged)',
        lambda v: v in ("syslog", "relp"),
    ),
    "tls": ("true or false", lambda v: isinstance(v, bool)),
    "ca_file": _FILE,
    "server_name": _matching(_HOST, "the host name the collector's certificate carries"),
    "cert_file": _FILE,
    "key_file": _FILE,
}


def _is_ip_address(value: object) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


_FILE_NAME: tuple[str, Checker] = (
    "a file name (relative to the state directory) or an absolute path",
    lambda v: isinstance(v, str) and 0 < len(v) <= 4096 and "\x00" not in v,
)

_RADIUS_CLIENT_KEYS: Mapping[str, tuple[str, Checker]] = {
    "name": _matching(
        re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$"),
        'a NAS name: 1-63 lowercase letters, digits, ".", "_" or "-", such as "bras-shangyu-1"',
    ),
    "sources": (
        'a non-empty list of CIDR networks such as ["10.1.2.3/32"]',
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_network(x) for x in v),
    ),
    "secret_file": _FILE_NAME,
    "require_message_authenticator": ("true or false", lambda v: isinstance(v, bool)),
    "disconnect_port": _int_in(1, 65535),
}

_SCHEMA: Mapping[str, Mapping[str, tuple[str, Checker]]] = {
    "gateway": {
        "listen": _matching(_ENDPOINT, 'a Twisted endpoint string such as "tcp:8443"'),
        "public_host": _matching(_HOST, "a host name or IP address clients dial"),
        "public_port": _int_in(1, 65535),
        "drain_seconds": _number_in(0, 3600),
    },
    "console": {
        "listen": _matching(
            _ENDPOINT, 'a Twisted endpoint string such as "tcp:8444:interface=127.0.0.1"'
        ),
        "idle_timeout_seconds": _number_in(60, 86400),
        "max_lifetime_seconds": _number_in(300, 7 * 86400),
    },
    "database": {
        "url": (
            '"" (SQLite in the state directory), sqlite:///PATH or postgresql+psycopg://…',
            lambda v: (
                isinstance(v, str)
                and (v == "" or v.startswith(("sqlite:///", "postgresql+psycopg://")))
            ),
        ),
    },
    "accounts": {
        "realms": _list_of(_REALM, 'lowercase realm names such as "sxlss"'),
        "regions": _list_of(_REGION, '6-digit region codes such as "330682"'),
    },
    "passwords": {
        # OWASP minimum for argon2id: m=19 MiB, t=2, p=1.
        "argon2_time_cost": _int_in(2, 20),
        "argon2_memory_kib": _int_in(19456, 4 * 1024 * 1024),
        "argon2_parallelism": _int_in(1, 16),
    },
    "lockout": {
        "threshold": _int_in(1, 100),
        "base_lock_seconds": _number_in(1, 86400),
        "max_lock_seconds": _number_in(1, 30 * 86400),
        "hard_cap": _int_in(1, 100),
        "source_window_seconds": _number_in(1, 86400),
        "source_max_failures": _int_in(1, 100000),
    },
    "totp": {
        "issuer": _matching(
            re.compile(r"^[A-Za-z0-9 ._-]{1,32}$"),
            "1-32 letters, digits, spaces, '.', '_' or '-' (no ':')",
        ),
    },
    "declare": {
        "listen": (
            '"" (a Unix socket in the state directory) or "tcp:PORT:interface=127.0.0.1"',
            lambda v: isinstance(v, str) and (v == "" or _ENDPOINT.fullmatch(v) is not None),
        ),
        "rates_file": (
            'a file name such as "rates.toml" (relative to the state directory) or an '
            "absolute path",
            lambda v: isinstance(v, str) and 0 < len(v) <= 4096 and "\x00" not in v,
        ),
        "close_day": _int_in(0, 28),
    },
    "agency": {
        "name": (
            "the agency's name, 1-100 characters",
            lambda v: isinstance(v, str) and 0 < len(v.strip()) <= 100 and v.isprintable(),
        ),
        "submission_window": (
            "[] or [FIRST_DAY, LAST_DAY] with 1 <= FIRST_DAY <= LAST_DAY <= 31",
            lambda v: (
                isinstance(v, list)
                and (
                    v == []
                    or (
                        len(v) == 2
                        and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                        and 1 <= v[0] <= v[1] <= 31
                    )
                )
            ),
        ),
    },
    "policy": {
        **_POLICY_KEYS,
        "handshake_timeout_seconds": _number_in(1, 120),
        "auth_timeout_seconds": _number_in(5, 600),
        "account": ("[[policy.account]] tables", lambda v: isinstance(v, list)),
    },
    "directory": {
        "backend": ('"sql" or "ldap"', lambda v: v in ("sql", "ldap")),
        "url": _matching(
            re.compile(r"^ldaps?://[A-Za-z0-9.\[\]:-]{1,300}/?$"),
            'an LDAP URL such as "ldaps://ldap.example.cn" or "ldap://10.0.0.5:389"',
        ),
        "start_tls": ("true or false", lambda v: isinstance(v, bool)),
        "ca_file": (
            'a PEM file name such as "ldap-ca.pem" (relative to the state directory) or an '
            "absolute path",
            lambda v: isinstance(v, str) and 0 < len(v) <= 4096 and "\x00" not in v,
        ),
        "user_dn": (
            'a DN template with {name} once, such as "uid={name},ou=staff,dc=example,dc=cn"',
            lambda v: isinstance(v, str) and 0 < len(v) <= 1024 and _is_dn_template(v),
        ),
        # Whole seconds: ldap3 sets the receive timeout as an integer socket option.
        "timeout_seconds": _int_in(1, 120),
    },
    "alerts": {
        # Within 10 s of the events (issue 10): at most 5 s between evaluations.
        "interval_seconds": _number_in(0.5, 5),
        "brute_force_failures": _int_in(2, 10000),
        "brute_force_window_seconds": _number_in(10, 86400),
        "spray_accounts": _int_in(2, 10000),
        "spray_failures": _int_in(2, 100000),
        "spray_window_seconds": _number_in(10, 86400),
        "session_lookback_seconds": _number_in(60, 30 * 86400),
        "unusual_hour_min_logins": _int_in(1, 100000),
        "export_rows": _int_in(1, 100_000_000),
        "probe_persons": _int_in(2, 100000),
        "probe_window_seconds": _number_in(10, 7 * 86400),
    },
    "display": {
        "time_zone": (
            'an IANA time zone name such as "Asia/Shanghai" or "UTC"',
            _is_time_zone,
        ),
    },
    "syslog": {
        "hostname": (
            '"" (this machine\'s name) or 1-255 printable ASCII characters without spaces',
            lambda v: (
                isinstance(v, str)
                and (v == "" or (len(v) <= 255 and bool(_PRINTUSASCII.fullmatch(v))))
            ),
        ),
        "app_name": (
            "1-48 printable ASCII characters without spaces",
            lambda v: isinstance(v, str) and len(v) <= 48 and bool(_PRINTUSASCII.fullmatch(v)),
        ),
        "sd_id": (
            'an SD-ID such as "ssgate@32473" (NAME@<your IANA enterprise number>)',
            lambda v: (
                isinstance(v, str)
                and re.fullmatch(r"[\x21-\x7e]{1,32}", v) is not None
                and not any(c in '= ]"' for c in v)
            ),
        ),
        "facility": _int_in(0, 23),
        "interval_seconds": _number_in(0.1, 60),
        "batch": _int_in(1, 10000),
        "collector": ("[[syslog.collector]] tables", lambda v: isinstance(v, list)),
    },
    "audit": {
        "retention_days": (
            f"an integer from {MIN_RETENTION_DAYS} to 36500 days: 网络安全法 (Cybersecurity "
            "Law) Art. 21 requires network logs to be kept at least six months",
            lambda v: (
                isinstance(v, int) and not isinstance(v, bool) and MIN_RETENTION_DAYS <= v <= 36500
            ),
        ),
        "archive_dir": (
            '"" (audit-archive/ in the state directory), a directory name relative to the '
            "state directory, or an absolute path (a mount every node shares)",
            lambda v: isinstance(v, str) and len(v) <= 4096 and "\x00" not in v,
        ),
    },
    "ops": {
        "listen": _matching(
            _ENDPOINT,
            'a Twisted endpoint string such as "tcp:8445:interface=127.0.0.1" '
            "(loopback unless a monitoring host must reach it)",
        ),
        "readiness_timeout_seconds": _number_in(0.1, 30),
        "metrics_refresh_seconds": _number_in(1, 3600),
    },
    "node": {
        "name": (
            '"" (host:pid) or a name of letters, digits, ".", "_" and "-" (up to 60), '
            "unique among the nodes sharing the database",
            lambda v: isinstance(v, str) and (v == "" or _NODE_NAME.fullmatch(v) is not None),
        ),
    },
    "portal": {
        "listen": (
            '"" (off) or a Twisted endpoint string such as "tcp:8446:interface=127.0.0.1" '
            "(TLS with the server certificate is added by ssgate)",
            lambda v: isinstance(v, str) and (v == "" or _ENDPOINT.fullmatch(v) is not None),
        ),
        "idle_timeout_seconds": _number_in(60, 86400),
        "max_lifetime_seconds": _number_in(300, 604800),
    },
    "radius": {
        "interface": ('an IP address to listen on, such as "127.0.0.1"', _is_ip_address),
        # 0: any free port (tests); the NAS must be told the real one.
        "auth_port": _int_in(0, 65535),
        "accounting_port": _int_in(0, 65535),
        # RFC 5080 §2.2.2: a duplicate is answered from cache within this window.
        "duplicate_window_seconds": _number_in(5, 300),
        "challenge_timeout_seconds": _number_in(10, 600),
        "client": ("[[radius.client]] tables", lambda v: isinstance(v, list)),
    },
    "pki": {
        "client_cert_days": _int_in(1, 825),
        "server_cert_days": _int_in(1, 366),
        "crl_next_update_days": _int_in(1, 30),
    },
}


_SECTIONS: Mapping[str, type[Any]] = {
    "gateway": GatewayConfig,
    "console": ConsoleConfig,
    "database": DatabaseConfig,
    "accounts": AccountsConfig,
    "passwords": PasswordsConfig,
    "lockout": LockoutConfig,
    "totp": TotpConfig,
    "pki": PkiConfig,
    "declare": DeclareConfig,
    "agency": AgencyConfig,
    "directory": DirectoryConfig,
    "alerts": AlertsConfig,
    "display": DisplayConfig,
    "audit": AuditConfig,
    "ops": OpsConfig,
    "portal": PortalConfig,
    "node": NodeConfig,
}


def parse_config(text: str, *, source: str) -> Config:
    """Parse and validate configuration text; *source* names the file in messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    sections: dict[str, Any] = {}
    for name, table in raw.items():
        if name not in _SCHEMA:
            raise ConfigError(
                f"{source}: unknown section [{name}]; known sections: {', '.join(_SCHEMA)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name} must be a table ([{name}])")
        values: dict[str, Any] = {}
        for key, value in table.items():
            spec = _SCHEMA[name].get(key)
            if spec is None:
                raise ConfigError(
                    f"{source}: unknown key {name}.{key}; "
                    f"[{name}] takes: {', '.join(_SCHEMA[name])}"
                )
            form, check = spec
            if not check(value):
                raise ConfigError(f"{source}: {name}.{key} = {value!r} is invalid; expected {form}")
            values[key] = tuple(value) if isinstance(value, list) else value
        parse = _TABLE_PARSERS.get(name)
        if parse is not None:  # sections with nested tables
            sections[name] = parse(values, source)
            continue
        sections[name] = _SECTIONS[name](**values)
    config = Config(**sections)
    lockout = config.lockout
    if lockout.hard_cap < lockout.threshold:
        raise ConfigError(
            f"{source}: lockout.hard_cap ({lockout.hard_cap}) must be at least "
            f"lockout.threshold ({lockout.threshold})"
        )
    if lockout.max_lock_seconds < lockout.base_lock_seconds:
        raise ConfigError(
            f"{source}: lockout.max_lock_seconds must be at least lockout.base_lock_seconds"
        )
    console = config.console
    if console.max_lifetime_seconds < console.idle_timeout_seconds:
        raise ConfigError(
            f"{source}: console.max_lifetime_seconds ({console.max_lifetime_seconds:g}) must be "
            f"at least console.idle_timeout_seconds ({console.idle_timeout_seconds:g})"
        )
    _check_directory(config.directory, source)
    alerts = config.alerts
    if alerts.spray_failures < alerts.spray_accounts:
        raise ConfigError(
            f"{source}: alerts.spray_failures ({alerts.spray_failures}) must be at least "
            f"alerts.spray_accounts ({alerts.spray_accounts}): each account fails at least once"
        )
    return config


def _check_directory(directory: DirectoryConfig, source: str) -> None:
    """The keys that only make sense together: an LDAP backend needs url and user_dn."""
    from auth import ldap_settings_problem

    if directory.backend != "ldap":
        return
    for key in ("url", "user_dn"):
        if not getattr(directory, key):
            raise ConfigError(
                f'{source}: directory.{key} is required with directory.backend = "ldap"'
            )
    problem = ldap_settings_problem(directory.url, directory.user_dn, start_tls=directory.start_tls)
    if problem is not None:
        raise ConfigError(f"{source}: directory.{problem}")


def _parse_policy(values: dict[str, Any], source: str) -> PolicyConfig:
    overrides = values.pop("account", ())
    timeouts = {
        k: values.pop(k)
        for k in list(values)
        if k.endswith("timeout_seconds") and k not in _POLICY_KEYS
    }
    default = AccountPolicy(**values)
    accounts: dict[str, AccountPolicy] = {}
    for i, table in enumerate(overrides):
        where = f"{source}: [[policy.account]] #{i + 1}"
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise ConfigError(f'{where} needs name = "<account>"')
        name = table["name"]
        own: dict[str, Any] = {}
        for key, value in table.items():
            if key == "name":
                continue
            spec = _POLICY_KEYS.get(key)
            if spec is None:
                raise ConfigError(
                    f"{where} ({name}): unknown key {key}; takes: name, {', '.join(_POLICY_KEYS)}"
                )
            form, check = spec
            if not check(value):
                raise ConfigError(
                    f"{where} ({name}): {key} = {value!r} is invalid; expected {form}"
                )
            own[key] = tuple(value) if isinstance(value, list) else value
        if name in accounts:
            raise ConfigError(f"{where}: account {name} appears twice")
        accounts[name] = replace(default, **own)
    return PolicyConfig(default=default, accounts=accounts, **timeouts)


def _parse_syslog(values: dict[str, Any], source: str) -> SyslogConfig:
    tables = values.pop("collector", ())
    collectors: list[SyslogCollector] = []
    for i, table in enumerate(tables):
        where = f"{source}: [[syslog.collector]] #{i + 1}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        own: dict[str, Any] = {}
        for key, value in table.items():
            spec = _COLLECTOR_KEYS.get(key)
            if spec is None:
                raise ConfigError(
                    f"{where}: unknown key syslog.collector.{key}; "
                    f"takes: {', '.join(_COLLECTOR_KEYS)}"
                )
            form, check = spec
            if not check(value):
                raise ConfigError(
                    f"{where}: syslog.collector.{key} = {value!r} is invalid; expected {form}"
                )
            own[key] = value
        if "address" not in own:
            raise ConfigError(f'{where} needs syslog.collector.address = "host:port"')
        m = _ADDRESS.fullmatch(own["address"])
        assert m is not None  # checked above
        collector = SyslogCollector(host=m["v6"] or m["host"], port=int(m["port"]), **own)
        if collector.tls and not collector.ca_file:
            raise ConfigError(
                f"{where} ({collector.key}): syslog.collector.ca_file is required with tls = true "
                "(the CA that signed the collector's certificate); plain TCP needs tls = false"
            )
        if bool(collector.cert_file) != bool(collector.key_file):
            raise ConfigError(
                f"{where} ({collector.key}): syslog.collector.cert_file and key_file go together"
            )
        if not collector.tls and (collector.cert_file or collector.server_name):
            raise ConfigError(
                f"{where} ({collector.key}): syslog.collector.cert_file and server_name need "
                "tls = true"
            )
        if any(c.key == collector.key for c in collectors):
            raise ConfigError(
                f"{where}: collector {collector.key} appears twice (give each a distinct name)"
            )
        collectors.append(collector)
    return SyslogConfig(**values, collectors=tuple(collectors))


def _parse_radius(values: dict[str, Any], source: str) -> RadiusConfig:
    tables = values.pop("client", ())
    clients: list[RadiusClientConfig] = []
    for i, table in enumerate(tables):
        where = f"{source}: [[radius.client]] #{i + 1}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        label = f"{where} ({table['name']})" if isinstance(table.get("name"), str) else where
        own: dict[str, Any] = {}
        for key, value in table.items():
            spec = _RADIUS_CLIENT_KEYS.get(key)
            if spec is None:
                raise ConfigError(
                    f"{label}: unknown key radius.client.{key}; "
                    f"takes: {', '.join(_RADIUS_CLIENT_KEYS)}"
                )
            form, check = spec
            if not check(value):
                raise ConfigError(
                    f"{label}: radius.client.{key} = {value!r} is invalid; expected {form}"
                )
            own[key] = tuple(value) if isinstance(value, list) else value
        for key in ("name", "sources", "secret_file"):
            if key not in own:
                raise ConfigError(f"{label}: radius.client.{key} is required")
        if any(c.name == own["name"] for c in clients):
            raise ConfigError(f"{label}: radius.client.name {own['name']!r} appears twice")
        clients.append(RadiusClientConfig(**own))
    return RadiusConfig(**values, clients=tuple(clients))


_TABLE_PARSERS: Mapping[str, Callable[[dict[str, Any], str], Any]] = {
    "policy": _parse_policy,
    "syslog": _parse_syslog,
    "radius": _parse_radius,
}


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; run 'ssgate init' first") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return parse_config(text, source=str(path))


def render_default_config(*, hostname: str) -> str:
    """The commented ``ssgate.toml`` that ``ssgate init`` writes."""
    return f"""\
# ssgate configuration.  Every key is optional; the values below are the defaults
# (except public_host, set by 'ssgate init --hostname').  Unknown keys are refused.

[gateway]
# Where the gateway listens for employers' 'ssgate connect' (TLS is added by ssgate).
listen = "tcp:8443"
# The address written into each account's profile.toml.
public_host = "{hostname}"
public_port = 8443
# On SIGTERM or 'ssgate node drain', clients move to another node (no new login) and
# the streams they have open here get this long to finish before the node exits.
drain_seconds = 30

[console]
# Staff console (carriers, auditors, officers), TLS with the server certificate.
listen = "tcp:8444:interface=127.0.0.1"
# A staff session ends after 15 minutes without a request, and after 8 hours in all.
idle_timeout_seconds = 900
max_lifetime_seconds = 28800

[database]
# Empty: SQLite file ssgate.db in the state directory.  Several gateway nodes share
# one PostgreSQL: url = "postgresql+psycopg://user@db.example/ssgate"
url = ""

[accounts]
# Account names are <6-digit region><8-digit unit code>@<realm>.
realms = ["sxlss"]
regions = ["330682", "330604"]

[passwords]
# argon2id cost; the OWASP minimum (m=19 MiB, t=2, p=1) is the floor.
argon2_time_cost = 2
argon2_memory_kib = 19456
argon2_parallelism = 1

[lockout]
# 'threshold' consecutive failures lock an account for a growing period; 'hard_cap'
# failures since the last reset lock it until a carrier resets it (at most 100).
threshold = 5
base_lock_seconds = 60
max_lock_seconds = 3600
hard_cap = 20
source_window_seconds = 900
source_max_failures = 30

[totp]
issuer = "ssgate"

[declare]
# The declaration service, reached only by the gateway.  Empty: a Unix socket
# declare.sock in the state directory.
listen = ""
# Contribution rates and base floor/ceiling per region, effective-dated.  'ssgate init'
# writes it with no figures: install the agency's own with
# 'ssgate declare rates --install FILE' (each entry with its source and verified flag).
rates_file = "rates.toml"
# The day of each month (1-28) on which 'serve' closes that month's contributions by
# itself ('ssgate declare close-month YYYY-MM' does it by hand); 0: only by hand.
close_day = 0

[agency]
# The 经办机构 named on vouchers.
name = "社会保险经办机构"
# V-WIN-01: the monthly acceptance window, e.g. [5, 25] (filings outside it are
# accepted with a warning that they count toward the next month); []: none.
submission_window = []

[policy]
# Defaults for every channel account; override per account with [[policy.account]].
max_sessions = 2
idle_timeout_seconds = 1800
max_lifetime_seconds = 43200
allowed_sources = []        # CIDR networks, e.g. ["10.20.0.0/16"]; empty: anywhere
services = ["declare"]
handshake_timeout_seconds = 10
auth_timeout_seconds = 60

# [[policy.account]]
# name = "33068212345678@sxlss"
# max_sessions = 1
# allowed_sources = ["10.20.30.0/24"]

# [directory]
# Where staff passwords are checked.  "sql" (the default): the hash ssgate stores.
# "ldap": a simple bind as the staff member's DN; TOTP, lockout and the staff record
# (role, status) stay in ssgate.  Channel accounts always use ssgate's own passwords.
# backend = "ldap"
# url = "ldaps://ldap.example.cn"        # or "ldap://…" with start_tls = true
# start_tls = false
# ca_file = "ldap-ca.pem"                 # relative to the state directory; empty: system CAs
# user_dn = "uid={{name}},ou=staff,dc=example,dc=cn"
# timeout_seconds = 5                     # whole seconds: the connect and each reply

[alerts]
# The officers' alert rules, evaluated every interval_seconds (once across every node
# sharing the database).  Windows are in seconds.
interval_seconds = 2
# Brute force: this many failed logins of one account within the window.
brute_force_failures = 10
brute_force_window_seconds = 900
# Spraying: failed logins of at least spray_accounts accounts (and spray_failures
# failures in all) from one source address within the window.
spray_accounts = 3
spray_failures = 10
spray_window_seconds = 900
# One account live from two addresses: how far back a live session's login may lie
# (the longest session lifetime of [policy]).
session_lookback_seconds = 43200
# A login at an hour (Beijing time) the account never used, after this many logins.
unusual_hour_min_logins = 20
# A staff export of at least this many rows (or of the whole log) is a bulk export.
export_rows = 10000
# A unit whose queries name this many persons not its own within the window.
probe_persons = 10
probe_window_seconds = 3600

[display]
# The time zone people read and type times in ('ssgate audit' tables, --since and
# --until without an offset).  JSON and CSV carry ISO 8601 with the offset.
time_zone = "Asia/Shanghai"

# [syslog]
# Every audit event, as it is recorded, to each collector below: RFC 5424 messages with
# every field (and the audit sequence number seq) as structured data, over TCP with
# octet counting (RFC 6587), TLS 1.2+ (RFC 5425) unless tls = false.  Nothing is lost
# while a collector is down: the audit log is the queue, and each collector's
# delivered position is kept in the database; after a broken connection the events
# since the last one known delivered are sent again (a repeat has the same seq).  A
# new collector first receives the whole log.  One node at a time forwards to each
# collector.  See docs/operations.md for an rsyslog receiver.
# hostname = ""                          # HOSTNAME of the messages; empty: this machine's
# app_name = "ssgate"
# sd_id = "ssgate@32473"                 # NAME@<your IANA enterprise number>
# facility = 13                          # log audit
# interval_seconds = 1                   # how often new events are looked for
# batch = 500                            # events read and sent at a time
#
# [[syslog.collector]]
# address = "logs.example.cn:6514"
# protocol = "syslog"                    # or "relp": acknowledged, exact delivery
# tls = true                             # false: plain TCP (a trusted network only)
# ca_file = "syslog-ca.pem"              # the CA of the collector's certificate
# server_name = "logs.example.cn"        # the name it must carry; empty: the address's host
# cert_file = "syslog-client.pem"        # optional client certificate and its key
# key_file = "syslog-client.key"
# name = "soc"                           # optional; the delivered position is kept under it

[audit]
# Audit records older than this move from the database into compressed, hash-chained
# archives in the state directory (audit-archive/), daily under 'ssgate serve' or now
# with 'ssgate audit archive'; 'ssgate audit verify' checks archives and database as
# one chain.  At least 180: 网络安全法 (Cybersecurity Law) Art. 21 requires network
# logs to be kept six months.  Archives are never deleted by ssgate.
retention_days = 180
# Where the archives go: empty is audit-archive/ in the state directory.  With several
# gateway nodes, any node's daily run may archive: name one directory they all mount.
archive_dir = ""
# Signed checkpoints: daily under 'serve' and with 'ssgate audit checkpoint' the chain
# head is signed with the Ed25519 audit key audit.key (mode 0600, created by
# 'ssgate init' or on first use) and written to checkpoints/ beside its public key
# audit-key.pub.pem; each is also an audit.checkpoint event, so syslog carries it off
# the host.  Pin the key id that 'ssgate audit checkpoint' prints, keep a copy of
# checkpoints/ off the host, and check with 'ssgate audit verify --checkpoints DIR'.

[node]
# This node's name in the node registry, log lines and audit events; empty: host:pid.
# With 'ssgate serve --workers N' each worker is a node of its own, named <name>-<i>.
name = ""

[ops]
# Health checks and metrics without login: /healthz, /readyz (for the balancer's check)
# and /metrics (Prometheus).  Loopback by default; another address is allowed (no
# personal data is shown) but logged as a warning at every start.
listen = "tcp:8445:interface=127.0.0.1"
readiness_timeout_seconds = 2
metrics_refresh_seconds = 10

[radius]
# The dial-in access server for the carrier's NAS (LNS/BRAS): RADIUS over UDP.  Off
# until at least one [[radius.client]] is configured.  Every NAS must send a
# Message-Authenticator (BlastRADIUS, CVE-2024-3596) unless its entry says otherwise.
interface = "127.0.0.1"
auth_port = 1812
accounting_port = 1813
duplicate_window_seconds = 30
challenge_timeout_seconds = 60

# [[radius.client]]
# name = "bras-shangyu-1"
# sources = ["10.1.2.3/32"]                # where its datagrams come from
# secret_file = "radius-bras-shangyu-1.secret"   # 16+ bytes; relative to the state directory
# require_message_authenticator = true
# disconnect_port = 3799                  # its Disconnect-Request (RFC 5176) port

[pki]
client_cert_days = 730
server_cert_days = 365
crl_next_update_days = 7

[portal]
# The insured persons' portal (参保人员个人服务): login with ID number + password +
# one-time code (accounts opened at the counter with 'ssgate persons enrol'), own
# records only, and /verify/CODE for anyone checking a 参保证明.  Off while empty;
# TLS with the server certificate is added by ssgate.  For a first look on this host
# only, the endpoint "tcp:8446:interface=127.0.0.1"; in production behind the balancer.
listen = ""
idle_timeout_seconds = 900
max_lifetime_seconds = 28800
"""


# -- [policy] as one comparable document (issue 13) --------------------------------------
#
# Every node sharing a database must apply the same [policy]: the database keeps one
# copy (ssgate._nodes) and a node whose file differs refuses to start, naming the keys.
# The document is of the parsed values, so formatting, comments, key order, 2 vs 2.0
# and [[policy.account]] order never count as a difference.


def policy_document(policy: PolicyConfig) -> dict[str, Any]:
    """*policy* flattened to dotted keys as the file spells them, values JSON-ready:
    ``policy.max_sessions``, ``policy.account[NAME].services``, …"""
    document: dict[str, Any] = {
        "policy.handshake_timeout_seconds": float(policy.handshake_timeout_seconds),
        "policy.auth_timeout_seconds": float(policy.auth_timeout_seconds),
    }
    document.update(_account_policy_keys("policy", policy.default))
    for name in sorted(policy.accounts):
        document.update(_account_policy_keys(f"policy.account[{name}]", policy.accounts[name]))
    return document


def _account_policy_keys(prefix: str, policy: AccountPolicy) -> dict[str, Any]:
    return {
        f"{prefix}.max_sessions": int(policy.max_sessions),
        f"{prefix}.idle_timeout_seconds": float(policy.idle_timeout_seconds),
        f"{prefix}.max_lifetime_seconds": float(policy.max_lifetime_seconds),
        f"{prefix}.allowed_sources": sorted(policy.allowed_sources),
        f"{prefix}.services": sorted(policy.services),
    }


def policy_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two :func:`policy_document` results
    (a key only one of them has counts), sorted."""
    return sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
