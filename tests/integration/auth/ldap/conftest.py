"""A real OpenLDAP slapd for the LDAP staff-directory tests.

:class:`Slapd` writes a ``slapd.conf`` in a temporary directory (core, cosine and
inetorgperson schemas from ``/etc/ldap/schema``, one mdb database), loads the entries
with ``slapadd`` while the server is down, and runs ``slapd -d 0`` in the foreground as
a child process listening on 127.0.0.1 port 0 twice: ``ldap://`` (StartTLS offered) and
``ldaps://``, with a server certificate from the project's own ``certs`` CA.  slapd
does not print the ports it got, so the kernel tells (its listening sockets in
``/proc``), and the one that completes a TLS handshake is ``ldaps://``.  A port is
never picked, released and handed to slapd: a restarted slapd gets new ports.
Teardown terminates and reaps it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
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


def listening_tcp_ports(pid: int) -> list[int]:
    """The TCP ports process *pid* listens on (Linux /proc): its socket inodes, matched
    against the listening sockets (state 0A) of its network namespace's tables."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):  # gone, or not started yet
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text(encoding="ascii").splitlines()
        except OSError:
            continue
        for line in lines[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                ports.add(int(local.rpartition(":")[2], 16))
    return sorted(ports)


def speaks_tls(port: int, ca: Path) -> bool:
    """Whether 127.0.0.1:*port* completes a TLS handshake with a certificate from *ca*."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=_READY_SECONDS) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


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
        self.port = 0  # both known once start() has asked the kernel
        self.tls_port = 0
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
        """Run slapd on two new loopback ports; :attr:`url` and :attr:`ldaps_url` then
        name them.  Returns once both listen (slapd binds them before serving)."""
        slapd = SLAPD or "/usr/sbin/slapd"
        urls = "ldap://127.0.0.1:0/ ldaps://127.0.0.1:0/"  # port 0: the kernel picks
        self.process = subprocess.Popen(
            [slapd, "-f", str(self.conf), "-h", urls, "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _READY_SECONDS
        while len(ports := listening_tcp_ports(self.process.pid)) < 2:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr else ""
                raise RuntimeError(f"slapd exited with {self.process.returncode}: {err}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"slapd did not listen on two ports (has {ports})")
            time.sleep(0.02)  # a readiness poll, not a test sleep
        tls = [port for port in ports if speaks_tls(port, self.ca)]
        if len(ports) != 2 or len(tls) != 1:
            self.stop()
            raise RuntimeError(f"slapd ports {ports}: expected one plain and one TLS")
        self.tls_port = tls[0]
        self.port = next(port for port in ports if port != self.tls_port)

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
