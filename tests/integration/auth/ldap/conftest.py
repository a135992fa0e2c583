"""A real OpenLDAP slapd for the LDAP staff-directory tests.

:class:`Slapd` writes a ``slapd.conf`` in a temporary directory (core, cosine and
inetorgperson schemas from ``/etc/ldap/schema``, one mdb database), loads the entries
with ``slapadd`` while the server is down, and runs ``slapd -d 0`` in the foreground as
a child process on free 127.0.0.1 ports: ``ldap://`` (StartTLS offered) and ``ldaps://``,
with a server certificate from the project's own ``certs`` CA.  It is ready when both
ports accept a connection; teardown terminates and reaps it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import CertificateAuthority

SUFFIX = "dc=example,dc=cn"
STAFF_OU = f"ou=staff,{SUFFIX}"
USER_DN = "uid={name}," + STAFF_OU
SCHEMAS = ("core", "cosine", "inetorgperson")
_READY_SECONDS = 20.0


STAFF_PASSWORDS = {"zhang.wei": "Directory-Pass-1", "li.na": "Another-Pass-2"}


SLAPD = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _entry(name: str, password: str) -> str:
    return (
        f"dn: uid={name},{STAFF_OU}\n"
        "objectClass: inetOrgPerson\n"
        f"uid: {name}\ncn: {name}\nsn: {name}\n"
        f"userPassword: {password}\n"
    )


class Slapd:
    def __init__(self, root: Path, users: dict[str, str], *, tls: tuple[Path, Path, Path]) -> None:
        self.root = root
        self.users = dict(users)
        self.cert, self.key, self.ca = tls
        self.port = free_port()
        self.tls_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (root / "data").mkdir(parents=True)
        self.conf = root / "slapd.conf"
        self.conf.write_text(self._conf())
        ldif = root / "entries.ldif"
        ldif.write_text("\n".join(self._entries(users.items())))
        subprocess.run(
            [self._slapadd(), "-f", str(self.conf), "-l", str(ldif)],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def _conf(self) -> str:
        lines = [f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS]
        lines += [
            f"pidfile {self.root / 'slapd.pid'}",
            f"argsfile {self.root / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            f"TLSCertificateFile {self.cert}",
            f"TLSCertificateKeyFile {self.key}",
            f"TLSCACertificateFile {self.ca}",
            "database mdb",
            f'suffix "{SUFFIX}"',
            f'rootdn "cn=admin,{SUFFIX}"',
            f"directory {self.root / 'data'}",
            "maxsize 10485760",
            "access to attrs=userPassword by anonymous auth by * none",
            "access to * by * read",
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _entries(users: Iterable[tuple[str, str]]) -> list[str]:
        base = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\n",
            f"dn: {STAFF_OU}\nobjectClass: organizationalUnit\nou: staff\n",
        ]
        return base + [_entry(n, p) for n, p in users]

    @staticmethod
    def _slapadd() -> str:
        return shutil.which("slapadd") or shutil.which("slapadd", path="/usr/sbin") or "slapadd"

    def start(self) -> None:
        slapd = SLAPD or "/usr/sbin/slapd"
        urls = f"{self.url}/ {self.ldaps_url}/"
        self.process = subprocess.Popen(
            [slapd, "-f", str(self.conf), "-h", urls, "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _READY_SECONDS
        while True:  # ready when both ports accept (slapd binds them before serving)
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr else ""
                raise RuntimeError(f"slapd exited with {self.process.returncode}: {err}")
            try:
                for port in (self.port, self.tls_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("slapd did not start listening") from None
                time.sleep(0.02)  # a readiness poll, not a test sleep

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="session")
def ldap_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(server cert, server key, CA cert) PEM files for 127.0.0.1, from a test CA."""
    root = tmp_path_factory.mktemp("ldap-tls")
    now = datetime.now(UTC)
    ca = CertificateAuthority.create("ssgate test LDAP CA", now=now)
    server = ca.issue_server(["127.0.0.1", "localhost"], now=now)
    paths = (root / "server.pem", root / "server.key", root / "ca.pem")
    for path, pem in zip(paths, (server.cert_pem(), server.key_pem(), ca.cert_pem()), strict=True):
        path.write_bytes(pem)
    paths[1].chmod(0o600)
    return paths


@pytest.fixture
def slapd(tmp_path: Path, ldap_tls: tuple[Path, Path, Path]) -> Iterator[Slapd]:
    """A running slapd with the staff in :data:`STAFF_PASSWORDS`; stopped at teardown."""
    if SLAPD is None:
        pytest.skip("slapd not installed (apt-get install slapd ldap-utils)")
    server = Slapd(tmp_path / "slapd", STAFF_PASSWORDS, tls=ldap_tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
