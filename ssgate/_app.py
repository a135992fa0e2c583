"""Wiring: from a state directory to configured stores, keys and workflows."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Connection, Engine

import auth
import certs
import declare_app
import provisioning
import staffing
from ssgate._config import Config, ConfigError
from ssgate._db import make_engine
from ssgate._schema import schema_status
from ssgate._state import StateDir, StateError


class RegistryUnits:
    """The unit registry as provisioning's :class:`~provisioning.UnitDirectory`."""

    def unit_status(self, conn: Connection, unit_code: str) -> tuple[str, str] | None:
        unit = declare_app.get_unit(conn, unit_code)
        return None if unit is None else (unit.status, unit.region)


class RegistrySessions:
    """The session registry as provisioning's :class:`~provisioning.SessionTerminator`
    and :class:`~provisioning.SessionHistory`."""

    def end_sessions(
        self, conn: Connection, account: str, *, reason: str, now: float, actor: str
    ) -> int:
        from gateway import request_kill_account

        return request_kill_account(conn, account, reason=reason, actor=actor, now=now)

    def recent_sessions(
        self, conn: Connection, account: str, *, limit: int
    ) -> list[provisioning.SessionSummary]:
        from gateway import list_sessions

        return [
            provisioning.SessionSummary(
                id=r.id,
                peer=r.peer,
                node=r.node,
                status=r.status,
                started_at=r.started_at,
                ended_at=r.ended_at,
                end_reason=r.end_reason,
                bytes_in=r.bytes_in,
                bytes_out=r.bytes_out,
            )
            for r in list_sessions(conn, account=account, limit=limit)
        ]


def operator_name() -> str:
    """The audit actor for command-line actions: the operating-system user."""
    try:
        return "os:" + getpass.getuser()
    except (KeyError, OSError):
        return "os:unknown"


@dataclass
class App:
    """Everything a command needs, built lazily from the state directory."""

    state: StateDir
    clock: Callable[[], float] = time.time

    @cached_property
    def config(self) -> Config:
        return self.state.load_config()

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.state.database_url(self.config))
        current, head = schema_status(engine)
        if current != head:
            raise StateError(
                f"database schema is at {current or 'nothing'}, this ssgate needs {head}; "
                "run 'ssgate init' for a new state directory or 'ssgate db upgrade'"
            )
        return engine

    @cached_property
    def ca(self) -> certs.CertificateAuthority:
        try:
            return certs.CertificateAuthority.load(
                self.state.ca_cert_path.read_bytes(), self.state.read_secret("ca-key.pem")
            )
        except FileNotFoundError as e:
            raise StateError(f"{e.filename}: missing; the state directory is incomplete") from None

    @cached_property
    def box(self) -> auth.SecretBox:
        return auth.SecretBox(self.state.key("totp.key"))

    @cached_property
    def hasher(self) -> auth.PasswordHasher:
        p = self.config.passwords
        return auth.PasswordHasher(
            auth.Argon2Params(
                time_cost=p.argon2_time_cost,
                memory_kib=p.argon2_memory_kib,
                parallelism=p.argon2_parallelism,
            )
        )

    @cached_property
    def rate_table(self) -> declare_app.RateTable:
        """The contribution rates and base limits of ``[declare] rates_file``."""
        path = self.state.path / self.config.declare.rates_file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StateError(f"{path}: missing; [declare] rates_file names it") from None
        except (OSError, UnicodeDecodeError) as e:
            raise StateError(f"{path}: cannot read ({e})") from None
        try:
            return declare_app.load_rates_toml(text, source=str(path))
        except declare_app.RatesConfigError as e:
            raise ConfigError(str(e)) from None

    def provisioner(self) -> provisioning.Provisioner:
        c = self.config
        return provisioning.Provisioner(
            engine=self.engine,
            ca=self.ca,
            box=self.box,
            hasher=self.hasher,
            units=RegistryUnits(),
            settings=provisioning.ProvisioningSettings(
                realms=c.accounts.realms,
                regions=c.accounts.regions,
                gateway_host=c.gateway.public_host,
                gateway_port=c.gateway.public_port,
                totp_issuer=c.totp.issuer,
                client_cert_days=c.pki.client_cert_days,
                crl_next_update_days=c.pki.crl_next_update_days,
            ),
            publish_crl=lambda pem: self.state.write_public("crl.pem", pem),
            clock=self.clock,
            actor=operator_name(),
            sessions=RegistrySessions(),
            history=RegistrySessions(),
        )

    def staff_admin(self) -> staffing.StaffAdministration:
        """The administrator's staff workflows, acting as the operating-system user."""
        c = self.config
        return staffing.StaffAdministration(
            engine=self.engine,
            box=self.box,
            hasher=self.hasher,
            settings=staffing.StaffSettings(
                totp_issuer=c.totp.issuer,
                passwords_in_directory=c.directory.backend == "ldap",
            ),
            clock=self.clock,
            actor=operator_name(),
        )

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
