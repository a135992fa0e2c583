"""A benchmark's world: a fresh state directory, accounts, and stunnel's configuration.

The state directory is made by the real ``ssgate init`` (so the TLS files, keys and
configuration are what a carrier gets); accounts are opened in-process through the
same :class:`provisioning.Provisioner` that ``ssgate provision open`` uses, because a
login benchmark needs one account per login (the TOTP replay guard accepts a
time-step once per account) and a process per account would dominate the set-up.

stunnel gets the gateway's own server certificate, CA and CRL, and the first
account's client certificate, with the gateway's TLS policy (TLS 1.2+, ECDHE+AEAD on
TLS 1.2, client certificate required and checked against the CA and the CRL).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

import audit
import auth
import certs
import declare_app
from gateway._tls import CIPHERS
from ssgate._app import App
from ssgate._state import StateDir

REGION = "330682"
FIRST_UNIT = 10000001
P12_PASSPHRASE = "bench-bundle-pass-1"


@dataclass(frozen=True)
class BenchAccount:
    """An opened channel account with everything a client needs to log in."""

    name: str
    unit_code: str
    password: str
    totp_secret: str
    bundle: Path
    cert_file: Path  # PEM: the client certificate
    key_file: Path  # PEM: its private key (unencrypted, inside the run's temp dir)
    password_file: Path
    p12_password_file: Path

    @property
    def profile(self) -> Path:
        return self.bundle / "profile.toml"


def ssgate_binary() -> str:
    """The ``ssgate`` command of this Python environment (else the one on PATH)."""
    return shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"


def init_state(ssgate: str, state: Path, *, env: dict[str, str]) -> None:
    """``ssgate init``, with the gateway on loopback port 0: the port it gets is read
    from its first line, and :func:`set_public_port` writes it for the profiles."""
    result = subprocess.run(
        [ssgate, "--state", str(state), "init", "--hostname", "localhost"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ssgate init failed:\n{result.stdout}{result.stderr}")
    config = state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    listen = 'listen = "tcp:0:interface=127.0.0.1"'
    text, listens = re.subn(r'(?m)^listen = "tcp:8443"$', listen, text)
    # The bench does not use the staff console: a socket in the state dir, not port 8444.
    console = f'listen = "unix:{state / "console.sock"}"'
    text, consoles = re.subn(r'(?m)^listen = "tcp:8444:interface=127.0.0.1"$', console, text)
    # The ops listener (/healthz, /readyz, /metrics): any free loopback port.
    text, ops = re.subn(r'(?m)^listen = "tcp:8445:interface=127.0.0.1"$', listen, text)
    if (listens, consoles, ops) != (1, 1, 1):
        raise RuntimeError(f"{config}: no [gateway]/[console]/[ops] listen defaults to replace")
    config.write_text(text, encoding="utf-8")


def set_public_port(state: Path, port: int) -> None:
    """``[gateway] public_port = port``: what every profile written after this dials."""
    config = state / "ssgate.toml"
    text, ports = re.subn(
        r"(?m)^public_port = 8443$", f"public_port = {port}", config.read_text(encoding="utf-8")
    )
    if ports != 1:
        raise RuntimeError(f"{config}: no [gateway] public_port default to replace")
    config.write_text(text, encoding="utf-8")


class _HashOnce(auth.PasswordHasher):
    """A hasher that hashes each password once (the hash carries its own salt, so
    accounts sharing a password may share it): opening thousands of accounts for the
    sessions benchmark would otherwise cost thousands of argon2id hashes."""

    def __init__(self, inner: auth.PasswordHasher) -> None:
        super().__init__(inner.params)
        self._done: dict[str, str] = {}

    def hash(self, password: str) -> str:
        if password not in self._done:
            self._done[password] = super().hash(password)
        return self._done[password]


def set_max_sessions(state: Path, limit: int) -> None:
    """``[policy] max_sessions = limit``: how many sessions each account may hold at once."""
    config = state / "ssgate.toml"
    text, found = re.subn(
        r"(?m)^max_sessions = 2$", f"max_sessions = {limit}", config.read_text(encoding="utf-8")
    )
    if found != 1:
        raise RuntimeError(f"{config}: no [policy] max_sessions default to replace")
    config.write_text(text, encoding="utf-8")


def open_accounts(
    state: Path, count: int, out: Path, *, workers: int, shared_password: bool = False
) -> list[BenchAccount]:
    """Register, approve and open *count* accounts (units 10000001…), *workers* at a time.

    *shared_password*: every account gets the same password, hashed once (the sessions
    benchmark opens thousands of accounts; their logins still verify it each time)."""
    with _app(state) as app:
        if shared_password:
            app.__dict__["hasher"] = _HashOnce(app.hasher)  # a cached_property
        codes = [str(FIRST_UNIT + i) for i in range(count)]
        now = time.time()
        with app.engine.begin() as conn:
            for code in codes:
                declare_app.register_unit(
                    conn,
                    code,
                    name=f"基准测试单位{code}",
                    region=REGION,
                    credit_code=None,
                    actor="os:bench",
                    now=now,
                )
                declare_app.approve_unit(conn, code, actor="os:bench", now=now)
            audit.append(
                conn,
                audit.AuditEvent(
                    at=now,
                    actor="os:bench",
                    action="units.register",
                    subject=f"{codes[0]}…{codes[-1]}",
                    outcome="ok",
                    details={"count": len(codes)},
                ),
            )
        provisioner = app.provisioner()

        def open_one(code: str) -> BenchAccount:
            name = f"{REGION}{code}@sxlss"
            password = "Bench-Horse-shared!" if shared_password else f"Bench-Horse-{code}!"
            bundle = out / f"bundle-{code}"
            issued = provisioner.open(
                name, bundle, password=password, p12_passphrase=P12_PASSPHRASE
            )
            assert issued.otp_uri is not None
            query = urllib.parse.urlparse(issued.otp_uri).query
            secret = urllib.parse.parse_qs(query)["secret"][0]
            key, cert, _ = certs.load_pkcs12(
                (bundle / "client.p12").read_bytes(), P12_PASSPHRASE.encode()
            )
            secrets_dir = out / f"secrets-{code}"
            secrets_dir.mkdir(mode=0o700)
            cert_file, key_file = secrets_dir / "client.pem", secrets_dir / "client-key.pem"
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            key_file.chmod(0o600)
            password_file = secrets_dir / "password"
            password_file.write_text(password + "\n", encoding="utf-8")
            p12_password_file = secrets_dir / "p12"
            p12_password_file.write_text(P12_PASSPHRASE + "\n", encoding="utf-8")
            return BenchAccount(
                name=name,
                unit_code=code,
                password=password,
                totp_secret=secret,
                bundle=bundle,
                cert_file=cert_file,
                key_file=key_file,
                password_file=password_file,
                p12_password_file=p12_password_file,
            )

        # argon2 releases the GIL: hashing runs in parallel, the SQLite writes queue.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(open_one, codes))


@contextmanager
def _app(state: Path) -> Iterator[App]:
    app = App(StateDir(state))
    try:
        yield app
    finally:
        app.close()


def password_hasher(state: Path) -> auth.PasswordHasher:
    """The hasher with the state's ``[passwords]`` parameters (what logins verify with)."""
    with _app(state) as app:
        return app.hasher


_STUNNEL_COMMON = (
    "foreground = yes",
    "pid =",
    "syslog = no",
    "debug = notice",
)


def stunnel_server_config(run_dir: Path, state: Path, *, target_port: int) -> Path:
    """server.conf: port 0 on loopback (the runner asks the kernel which port it got)
    → the target, with the gateway's server certificate and TLS policy."""
    server = [
        *_STUNNEL_COMMON,
        "[ssgate-bench-server]",
        "accept = 127.0.0.1:0",
        f"connect = 127.0.0.1:{target_port}",
        f"cert = {state / 'server.pem'}",
        f"key = {state / 'server-key.pem'}",
        f"CAfile = {state / 'ca.pem'}",
        f"CRLfile = {state / 'crl.pem'}",
        "verifyChain = yes",  # client certificate required, chained to our CA
        "sslVersionMin = TLSv1.2",
        f"ciphers = {CIPHERS}",
    ]
    path = run_dir / "stunnel-server.conf"
    path.write_text("\n".join(server) + "\n", encoding="utf-8")
    return path


def stunnel_client_config(
    run_dir: Path, state: Path, account: BenchAccount, *, server_port: int
) -> Path:
    """client.conf: port 0 on loopback → the stunnel server, with *account*'s certificate."""
    client = [
        *_STUNNEL_COMMON,
        "[ssgate-bench-client]",
        "client = yes",
        "accept = 127.0.0.1:0",
        f"connect = 127.0.0.1:{server_port}",
        f"cert = {account.cert_file}",
        f"key = {account.key_file}",
        f"CAfile = {state / 'ca.pem'}",
        "verifyChain = yes",
        "checkHost = localhost",
        "sni = localhost",
        "sslVersionMin = TLSv1.2",
        f"ciphers = {CIPHERS}",
    ]
    path = run_dir / "stunnel-client.conf"
    path.write_text("\n".join(client) + "\n", encoding="utf-8")
    return path
