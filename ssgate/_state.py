"""The state directory: its layout, file modes, atomic writes and secret keys.

Layout (directory mode 0700; secrets 0600; public PEM files 0644)::

    ssgate.toml          configuration
    ssgate.db            SQLite database (when database.url is empty)
    ca.pem  ca-key.pem   the private CA
    server.pem  server-key.pem
    crl.pem              the current certificate revocation list
    totp.key             AES-256-GCM key sealing TOTP secrets in the database
    identity.key         HMAC key for the identity assertion sent to services
    resume.key           HMAC key for the client's resume tokens
    logs/access.log      one masked line per request to the declaration service and
                         the staff console (written by 'ssgate serve')
    audit.key            Ed25519 private key (32 raw bytes) signing audit checkpoints
    audit-key.pub.pem    its public key (0644), also copied beside the checkpoints
    audit-archive/       retention's audit archives (gzip JSON Lines + manifests)
    checkpoints/         signed audit checkpoints, one JSON file each
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ssgate._config import CONFIG_FILE, Config, load_config

STATE_ENV = "SSGATE_STATE"
DEFAULT_STATE = "ssgate-state"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
DIR_MODE = 0o700
KEY_FILES = ("totp.key", "identity.key", "resume.key")
AUDIT_KEY = "audit.key"
AUDIT_PUBLIC_KEY = "audit-key.pub.pem"


class StateError(RuntimeError):
    """The state directory is missing, unsafe or inconsistent."""


def resolve_state_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE)


def atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    """Write *data* to *path* so readers see the old or the new file, never a part.

    The temporary file is created with *mode* from the start, so a secret is never
    briefly readable by others.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class StateDir:
    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def db_path(self) -> Path:
        return self.path / "ssgate.db"

    @property
    def ca_cert_path(self) -> Path:
        return self.path / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.path / "ca-key.pem"

    @property
    def server_cert_path(self) -> Path:
        return self.path / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.path / "server-key.pem"

    @property
    def crl_path(self) -> Path:
        return self.path / "crl.pem"

    def archive_dir(self, config: Config) -> Path:
        """``[audit] archive_dir``, relative to the state directory (default
        ``audit-archive``); an absolute path stays as it is."""
        return self.path / (config.audit.archive_dir or "audit-archive")

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def audit_signing_key(self) -> Ed25519PrivateKey:
        """The audit checkpoint key, created (mode 0600) if this state directory has
        none yet (one made before checkpoints existed); its public key is written
        beside it.  Two processes creating it at once end up with the same key: the
        file appears by a hard link, which fails if the other was first."""
        path = self.path / AUDIT_KEY
        if not path.exists():
            self._create_exclusively(AUDIT_KEY, new_key())
        key = Ed25519PrivateKey.from_private_bytes(self.key(AUDIT_KEY))
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public = self.path / AUDIT_PUBLIC_KEY
        if not public.exists() or public.read_bytes() != pem:
            self.write_public(AUDIT_PUBLIC_KEY, pem)
        return key

    def _create_exclusively(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            os.fchmod(fd, SECRET_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path / name)
        finally:
            os.unlink(tmp)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def is_initialised(self) -> bool:
        return self.config_path.exists()

    def require(self) -> None:
        """Refuse to work on a missing or group/world-accessible state directory."""
        if not self.is_initialised():
            raise StateError(
                f"{self.path}: not an ssgate state directory (no {CONFIG_FILE}); "
                "run 'ssgate init' or pass --state DIR"
            )
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise StateError(
                f"{self.path}: mode {mode:04o} lets other users in; run: chmod 700 {self.path}"
            )

    def load_config(self) -> Config:
        self.require()
        return load_config(self.config_path)

    def database_url(self, config: Config) -> str:
        return config.database.url or f"sqlite:///{self.db_path}"

    def read_secret(self, name: str) -> bytes:
        """Read a secret file, refusing one that others could read."""
        path = self.path / name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise StateError(f"{path}: missing; the state directory is incomplete") from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise StateError(
                f"{path}: mode {stat.S_IMODE(st.st_mode):04o} is readable by others; "
                f"run: chmod 600 {path}"
            )
        return path.read_bytes()

    def key(self, name: str) -> bytes:
        data = self.read_secret(name)
        if len(data) != 32:
            raise StateError(f"{self.path / name}: expected a 32-byte key, found {len(data)} bytes")
        return data

    def write_secret(self, name: str, data: bytes) -> None:
        atomic_write(self.path / name, data, mode=SECRET_MODE)

    def write_public(self, name: str, data: bytes) -> None:
        atomic_write(self.path / name, data, mode=PUBLIC_MODE)


def new_key() -> bytes:
    return secrets.token_bytes(32)
