"""Channel accounts for scripted logins: real TLS with each account's own client
certificate, spoken over the sans-IO :class:`gateway._machine.ClientMachine` (as the
benchmarks log in), without an ``ssgate connect`` process per login."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

import auth
import certs
import declare_app
from gateway._tls import CIPHERS
from ssgate._app import App
from ssgate._state import StateDir

REGION = "330682"
P12_PASSPHRASE = "e2e-bundle-pass-1"


@dataclass(frozen=True)
class Login:
    """One account, ready for a login over Python's ``ssl``."""

    name: str
    password: str
    totp_secret: str
    context: ssl.SSLContext

    @classmethod
    def from_bundle(
        cls,
        state: Path,
        bundle: Path,
        *,
        name: str,
        password: str,
        p12_passphrase: str,
        secret: str,
    ) -> Login:
        """The account whose enrolment bundle ``provision open`` wrote to *bundle*."""
        key, cert, _ = certs.load_pkcs12(
            (bundle / "client.p12").read_bytes(), p12_passphrase.encode()
        )
        cert_file, key_file = bundle / "client.pem", bundle / "client-key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(CIPHERS)
        context.load_verify_locations(cafile=str(state / "ca.pem"))
        context.load_cert_chain(str(cert_file), str(key_file))
        return cls(name, password, secret, context)

    def code(self, offset_steps: int = 0) -> str:
        """The one-time code *offset_steps* 30 s steps from now (the gateway takes ±1,
        and each step once: a second login soon after the first needs the next one)."""
        return auth.current_code(self.totp_secret, time.time() + 30 * offset_steps)

    def wrap(self, raw: socket.socket) -> ssl.SSLSocket:
        """*raw* as this account's TLS client (the handshake left to the caller)."""
        return self.context.wrap_socket(
            raw, server_hostname="localhost", do_handshake_on_connect=False
        )


def totp_secret(otp_uri: str) -> str:
    """The secret of an ``otpauth://`` URI."""
    return urllib.parse.parse_qs(urllib.parse.urlparse(otp_uri).query)["secret"][0]


def open_accounts(state: Path, out: Path, first_unit: int, count: int) -> list[Login]:
    """*count* accounts opened in-process by the same Provisioner as ``provision open``
    (a process per account would dominate a test's time)."""
    codes = [str(first_unit + i) for i in range(count)]
    app = App(StateDir(state))
    try:
        now = time.time()
        with app.engine.begin() as conn:
            for code in codes:
                declare_app.register_unit(
                    conn,
                    code,
                    name=f"测试单位{code}",
                    region=REGION,
                    credit_code=None,
                    actor="os:e2e",
                    now=now,
                )
                declare_app.approve_unit(conn, code, actor="os:e2e", now=now)
        provisioner = app.provisioner()

        def open_one(code: str) -> Login:
            name, password = f"{REGION}{code}@sxlss", f"Correct-Horse-{code}!"
            bundle = out / f"bundle-{code}"
            issued = provisioner.open(
                name, bundle, password=password, p12_passphrase=P12_PASSPHRASE
            )
            assert issued.otp_uri is not None
            secret = totp_secret(issued.otp_uri)
            return Login.from_bundle(
                state,
                bundle,
                name=name,
                password=password,
                p12_passphrase=P12_PASSPHRASE,
                secret=secret,
            )

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(open_one, codes))
    finally:
        app.close()
