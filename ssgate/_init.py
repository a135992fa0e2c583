"""``ssgate init``: create a complete state directory, all or nothing."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import audit
import certs
from declare_app._ledger import rates_template
from ssgate._config import CONFIG_FILE, parse_config, render_default_config
from ssgate._db import DatabaseURLError, make_engine
from ssgate._schema import upgrade
from ssgate._state import DIR_MODE, KEY_FILES, StateDir, new_key

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*"
)


class InitInputError(ValueError):
    """Bad input to ``ssgate init``."""


class InitRefused(RuntimeError):
    """``ssgate init`` would change an existing state directory."""


def validate_hostname(hostname: str) -> str:
    try:
        ipaddress.ip_address(hostname)
        return hostname
    except ValueError:
        pass
    if not (hostname.isascii() and _HOSTNAME.fullmatch(hostname)):
        raise InitInputError(
            f"--hostname {hostname!r} is not a DNS name or IP address "
            "(letters, digits, '-' and '.', labels up to 63 characters)"
        )
    return hostname.lower()


def server_hostnames(hostname: str) -> list[str]:
    """The server certificate names: the public name plus loopback for the staff console."""
    names = [hostname]
    for extra in ("localhost", "127.0.0.1"):
        if extra not in names:
            names.append(extra)
    return names


def init_state(
    path: Path,
    *,
    hostname: str,
    database_url: str = "",
    gateway_listen: str = "",
    clock: Callable[[], float],
    actor: str,
) -> StateDir:
    """Create the state directory at *path*; refuse (changing nothing) if it is in use.

    *gateway_listen* replaces the default ``[gateway] listen`` (the demo's loopback)."""
    hostname = validate_hostname(hostname)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InitRefused(f"{path}: already exists and is not empty; nothing was changed")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.init-", dir=path.parent))
    try:
        os.chmod(staging, DIR_MODE)
        _populate(
            StateDir(staging),
            hostname=hostname,
            database_url=database_url,
            gateway_listen=gateway_listen,
            clock=clock,
            actor=actor,
        )
        if path.exists():
            path.rmdir()
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StateDir(path)


def _populate(
    state: StateDir,
    *,
    hostname: str,
    database_url: str,
    gateway_listen: str,
    clock: Callable[[], float],
    actor: str,
) -> None:
    text = render_default_config(hostname=hostname)
    if database_url:
        text = text.replace('url = ""', f'url = "{database_url}"', 1)
    if gateway_listen:
        text = text.replace('listen = "tcp:8443"', f'listen = "{gateway_listen}"', 1)
    config = parse_config(text, source=CONFIG_FILE)  # the template itself must validate
    state.write_secret(CONFIG_FILE, text.encode())

    now = datetime.fromtimestamp(clock(), UTC)
    ca = certs.CertificateAuthority.create(f"ssgate CA {hostname}", now=now)
    state.write_public("ca.pem", ca.cert_pem())
    state.write_secret("ca-key.pem", ca.key_pem())
    server = ca.issue_server(
        server_hostnames(hostname), now=now, validity_days=config.pki.server_cert_days
    )
    state.write_public("server.pem", server.cert_pem())
    state.write_secret("server-key.pem", server.key_pem())
    for name in KEY_FILES:
        state.write_secret(name, new_key())
    state.audit_signing_key()  # audit.key and audit-key.pub.pem: checkpoints
    # No figures: a new installation refuses every month until the agency installs its
    # own ('ssgate declare rates --install FILE'); only 'ssgate demo' installs demo ones.
    state.write_public(config.declare.rates_file, rates_template().encode())

    try:
        engine = make_engine(state.database_url(config))
    except DatabaseURLError as e:
        raise InitInputError(str(e)) from None
    try:
        upgrade(engine)
        with engine.begin() as conn:
            certs.record_certificate(
                conn, ca.certificate, kind="ca", subject=ca_subject(ca), now=now
            )
            certs.record_certificate(
                conn,
                server.certificate,
                kind="server",
                subject=",".join(server_hostnames(hostname)),
                now=now,
            )
            # Stored as the current CRL, which every node sharing the database uses.
            crl = certs.sign_crl(
                conn, ca, now=now, next_update=timedelta(days=config.pki.crl_next_update_days)
            )
            for action, subject in (
                ("pki.create-ca", ca_subject(ca)),
                ("pki.issue-server", ",".join(server_hostnames(hostname))),
            ):
                audit.append(
                    conn,
                    audit.AuditEvent(
                        at=clock(), actor=actor, action=action, subject=subject, outcome="ok"
                    ),
                )
        state.write_public("crl.pem", certs.crl_pem(crl))
    finally:
        engine.dispose()
    if not database_url:
        os.chmod(state.db_path, 0o600)


def ca_subject(ca: certs.CertificateAuthority) -> str:
    return ca.certificate.subject.rfc4514_string()
