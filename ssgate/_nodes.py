"""What the gateway nodes sharing one database agree on, and how a node joins them.

Issue 13: nothing a node must agree on with the others lives only in its state
directory.

* **The CRL.** The current CRL is a row in the database (``certs`` ``crls``).  Each node
  polls its number every second (:func:`crl_fetcher`, one primary-key read on the
  read pool) and, on a newer one, loads it into fresh TLS options for new connections
  and ends the live sessions whose certificate it lists
  (:class:`gateway.SharedCrlWatcher`).  The same poll renews the CRL once less than
  half its validity is left: whichever node gets there first re-signs it, the others
  see the new number (:func:`certs.renew_crl_if_due`).
* **The policy.** ``[policy]`` has one copy in the database (``policies``): the first
  node to start stores its own; a node whose file differs refuses to start with the
  differing keys named (:func:`check_policy`); ``ssgate node policy --replace``
  stores this node's file as the one every node must run with.
* **The node registry.** Each node has a row in ``nodes`` (name ``host:pid``, host,
  pid, start, version, ``draining``) and refreshes its heartbeat every
  :data:`HEARTBEAT_SECONDS`; any node that sees another silent for
  :data:`LOST_AFTER_SECONDS` marks it ``lost`` and ends its live sessions
  ``node-lost`` with their events (:class:`NodeRegistry`).  So a ``kill -9`` of a
  node costs its unresumed sessions at most about 20 s, not the 120 s stale period.
* **Joining.** ``ssgate node export --out FILE`` seals the state directory's keys and
  configuration with a passphrase (scrypt, AES-256-GCM); ``ssgate init --join FILE``
  unseals them into a new state directory on another host (:func:`export_node`,
  :func:`join_node`).  Never the database file, sockets, locks, logs or archives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

import audit
import certs
from gateway import SharedCrl, end_lost_node_sessions_recorded
from gateway import sessions_table as sessions
from ssgate import __version__
from ssgate._config import (
    CONFIG_FILE,
    ConfigError,
    PolicyConfig,
    parse_config,
    policy_differences,
    policy_document,
)
from ssgate._schema import nodes, policies
from ssgate._state import DIR_MODE, PUBLIC_MODE, SECRET_MODE, StateDir

P = ParamSpec("P")
T = TypeVar("T")

# Heartbeat every 5 s; silent for 15 s means gone.  Worst case from a kill to its
# sessions ending: 15 s of silence + up to one check period (5 s) + the write.
HEARTBEAT_SECONDS = 5.0
LOST_AFTER_SECONDS = 15.0


class Transactions(Protocol):
    """The database pools, as ``ssgate serve``'s runner offers them."""

    def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]: ...

    def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]: ...


# -- the shared CRL ------------------------------------------------------------------------


def _shared(stored: certs.StoredCrl) -> SharedCrl:
    return SharedCrl(stored.crl_number, stored.crl())


def _renew_window(next_update: timedelta) -> timedelta:
    """Renew once less than half the CRL's validity is left: days of margin for a
    7-day CRL, so a node (or the database) down for a while does not let it lapse."""
    return next_update / 2


def shared_crl_at_start(
    engine: Engine, ca: certs.CertificateAuthority, *, now: float, next_update: timedelta
) -> SharedCrl:
    """The current CRL for a starting node, signed now if the database has none yet (a
    database from before the CRL was shared: signed from the register of revocations,
    which is what every crl.pem was made from) or if it is due for renewal."""
    with engine.begin() as conn:
        certs.renew_crl_if_due(
            conn,
            ca,
            now=datetime.fromtimestamp(now, UTC),
            next_update=next_update,
            renew_before=_renew_window(next_update),
        )
        stored = certs.current_crl(conn)
    assert stored is not None  # renew_crl_if_due signs one when there is none
    return _shared(stored)


def _newer_crl(conn: Connection, known: int) -> SharedCrl | None:
    stored = certs.current_crl(conn)
    if stored is None or stored.crl_number == known:
        return None
    return _shared(stored)


def _renew_then_newer(
    conn: Connection,
    known: int,
    ca: certs.CertificateAuthority,
    now: float,
    next_update: timedelta,
) -> SharedCrl | None:
    certs.renew_crl_if_due(
        conn,
        ca,
        now=datetime.fromtimestamp(now, UTC),
        next_update=next_update,
        renew_before=_renew_window(next_update),
    )
    return _newer_crl(conn, known)


def crl_fetcher(
    db: Transactions,
    ca: certs.CertificateAuthority,
    clock: IReactorTime,
    *,
    next_update: timedelta,
) -> Callable[[int], Deferred[SharedCrl | None]]:
    """For :class:`gateway.SharedCrlWatcher`: given the CRL number in use, a newer CRL
    (or None).  Each call is one cheap read of (number, nextUpdate); only a changed
    number reads the CRL, and only a CRL due for renewal opens a write transaction."""
    renew_before = _renew_window(next_update).total_seconds()

    def fetch(known: int) -> Deferred[SharedCrl | None]:
        now = clock.seconds()
        d: Deferred[tuple[int, float] | None] = db.read(certs.current_crl_version)

        def decide(version: tuple[int, float] | None) -> Deferred[SharedCrl | None] | None:
            if version is None or version[1] - now <= renew_before:
                return db.run(_renew_then_newer, known, ca, now, next_update)
            if version[0] != known:
                return db.read(_newer_crl, known)
            return None

        return d.addCallback(decide)

    return fetch


# -- the shared policy ---------------------------------------------------------------------


class PolicyMismatch(RuntimeError):
    """This node's ``[policy]`` differs from the one stored for every node."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        shown = ", ".join(keys[:12]) + (f" and {len(keys) - 12} more" if len(keys) > 12 else "")
        super().__init__(
            f"{CONFIG_FILE} [policy] differs from the policy every node shares (stored in the "
            f"database) at: {shown}; make this file's [policy] match, or run "
            "'ssgate node policy --replace' to make this file's policy the one every node uses"
        )


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stored_policy(conn: Connection) -> dict[str, Any] | None:
    """The stored policy document, or None before any node stored one."""
    text = conn.execute(select(policies.c.document).where(policies.c.id == 1)).scalar()
    return None if text is None else dict(json.loads(text))


def check_policy(conn: Connection, policy: PolicyConfig, *, now: float, actor: str) -> bool:
    """Store *policy* if none is stored yet (True); else raise :class:`PolicyMismatch`
    unless the stored one is the same (False).  Two nodes starting at once with
    different files: one stores, the other compares with it and refuses."""
    document = policy_document(policy)
    text = _canonical(document)
    statement = _upsert(conn, policies).values(
        id=1,
        document=text,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        stored_at=now,
        stored_by=actor[:255],
    )
    inserted = conn.execute(
        statement.on_conflict_do_nothing(index_elements=["id"]).returning(policies.c.id)
    ).first()
    if inserted is not None:
        return True
    stored = stored_policy(conn) or {}
    differing = policy_differences(document, stored)
    if differing:
        raise PolicyMismatch(differing)
    return False


def replace_policy(conn: Connection, policy: PolicyConfig, *, now: float, actor: str) -> list[str]:
    """Make *policy* the one every node shares (audited ``node.policy-replace``); the
    keys that changed.  Running nodes keep theirs until restarted; a restart with an
    older file then refuses, naming the keys."""
    document = policy_document(policy)
    text = _canonical(document)
    differing = policy_differences(document, stored_policy(conn) or {})
    values = {
        "document": text,
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "stored_at": now,
        "stored_by": actor[:255],
    }
    statement = _upsert(conn, policies).values(id=1, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=actor[:255],
            action="node.policy-replace",
            subject="policy",
            outcome="ok",
            details={"keys": ", ".join(differing)[:2000]},
        ),
    )
    return differing


# -- the node registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class NodeRecord:
    """One row of ``nodes``; instants epoch seconds UTC."""

    name: str
    host: str
    pid: int
    started_at: float
    last_heartbeat_at: float
    version: str
    draining: bool
    stopped_at: float | None
    stop_reason: str | None


def register_node(
    conn: Connection, *, name: str, host: str, pid: int, version: str, now: float
) -> None:
    """This node is up (again: a reused name, as a container's pid is, starts afresh)."""
    values = {
        "name": name[:128],
        "host": host[:255],
        "pid": pid,
        "started_at": now,
        "last_heartbeat_at": now,
        "version": version[:32],
        "draining": False,
        "stopped_at": None,
        "stop_reason": None,
    }
    statement = _upsert(conn, nodes).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["name"], set_={k: v for k, v in values.items() if k != "name"}
        )
    )


def node_heartbeat(conn: Connection, *, name: str, now: float) -> None:
    """This node still runs.  A node marked lost while alive (its database link was
    down) shows as running again; its sessions were ended and its tunnels follow."""
    conn.execute(
        update(nodes)
        .where(nodes.c.name == name)
        .values(last_heartbeat_at=now, stopped_at=None, stop_reason=None)
    )


def node_stopped(conn: Connection, *, name: str, now: float) -> None:
    """This node stopped cleanly (its sessions' ends are already recorded)."""
    conn.execute(
        update(nodes)
        .where(nodes.c.name == name, nodes.c.stopped_at.is_(None))
        .values(stopped_at=now, stop_reason="stopped")
    )


def reap_lost_nodes(
    conn: Connection, *, me: str, now: float, lost_after: float = LOST_AFTER_SECONDS
) -> dict[str, int]:
    """Mark lost every other node silent for *lost_after* seconds, and end the live
    sessions of lost nodes (``node-lost``, each with its event); per node, how many.

    Marking is a conditional update on the heartbeat read, so of several nodes
    reaping at once one marks a node; ending is per session and conditional too
    (:func:`gateway._sessions.end_lost_node_sessions_recorded`), so none is ended
    twice, and one its client resumed elsewhere meanwhile is not ended at all."""
    silent = conn.execute(
        select(nodes.c.name, nodes.c.last_heartbeat_at).where(
            nodes.c.stopped_at.is_(None),
            nodes.c.last_heartbeat_at < now - lost_after,
            nodes.c.name != me,
        )
    ).all()
    for name, heartbeat in silent:
        conn.execute(
            update(nodes)
            .where(
                nodes.c.name == name,
                nodes.c.stopped_at.is_(None),
                nodes.c.last_heartbeat_at == heartbeat,
            )
            .values(stopped_at=now, stop_reason="lost")
        )
    # Lost nodes that still have live sessions (just marked, or more than a batch).
    holding = (
        conn.execute(
            select(sessions.c.node)
            .join(nodes, nodes.c.name == sessions.c.node)
            .where(sessions.c.status == "live", nodes.c.stop_reason == "lost")
            .distinct()
            .limit(20)
        )
        .scalars()
        .all()
    )
    ended: dict[str, int] = {}
    for name in holding:
        count = end_lost_node_sessions_recorded(conn, node=name, now=now, actor=f"gateway:{me}")
        if count:
            ended[name] = count
    return ended


def list_nodes(conn: Connection) -> list[NodeRecord]:
    """Every node ever registered, the most recently heard from first."""
    rows = conn.execute(select(nodes).order_by(nodes.c.last_heartbeat_at.desc(), nodes.c.name))
    return [
        NodeRecord(
            name=row.name,
            host=row.host,
            pid=int(row.pid),
            started_at=float(row.started_at),
            last_heartbeat_at=float(row.last_heartbeat_at),
            version=row.version,
            draining=bool(row.draining),
            stopped_at=row.stopped_at,
            stop_reason=row.stop_reason,
        )
        for row in rows
    ]


class NodeRegistry(Service):
    """Keeps this node's row in ``nodes`` and ends the sessions of nodes that died.

    Registers at start, beats every *interval* seconds, and each time also reaps the
    nodes silent for *lost_after* (:func:`reap_lost_nodes`).  A failing database is
    logged once per outage; the next beat tries again.  At stop the row says so.
    """

    log = Logger()

    def __init__(
        self,
        db: Transactions,
        clock: IReactorTime,
        *,
        name: str,
        host: str,
        pid: int,
        version: str = __version__,
        interval: float = HEARTBEAT_SECONDS,
        lost_after: float = LOST_AFTER_SECONDS,
    ) -> None:
        self._db = db
        self._clock = clock
        self.node_name = name
        self._host = host
        self._pid = pid
        self._version = version
        self._interval = interval
        self._lost_after = lost_after
        self._loop: LoopingCall | None = None
        self._busy = False
        self._failing = False
        self._registered = False

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        loop = LoopingCall(self.beat)
        loop.clock = self._clock
        loop.start(self._interval, now=True).addErrback(
            lambda f: self.log.failure("node registry loop stopped", f)
        )
        self._loop = loop

    def stopService(self) -> Deferred[None]:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()  # type: ignore[no-untyped-call]
        d: Deferred[None] = self._db.run(
            node_stopped, name=self.node_name, now=self._clock.seconds()
        )
        return d.addErrback(
            lambda f: self.log.warn("could not record this node's stop: {e}", e=str(f.value))
        )

    def beat(self) -> Deferred[None] | None:
        """One heartbeat and one reaping round (none while the last is still running)."""
        if self._busy:
            return None
        self._busy = True
        now = self._clock.seconds()
        if not self._registered:
            # Registering only: the gateway's own start-up recovery, queued just before,
            # ends the sessions of this host's dead processes first, as a restart
            # (``ended_by: "restart"``); reaping starts one interval later.
            d: Deferred[Any] = self._db.run(
                register_node,
                name=self.node_name,
                host=self._host,
                pid=self._pid,
                version=self._version,
                now=now,
            )
            d.addCallback(lambda _: setattr(self, "_registered", True))
            d.addCallback(lambda _: {})
        else:
            d = self._db.run(node_heartbeat, name=self.node_name, now=now)

            def reap(_: object) -> Deferred[dict[str, int]]:
                return self._db.run(
                    reap_lost_nodes, me=self.node_name, now=now, lost_after=self._lost_after
                )

            d.addCallback(reap)
        d.addCallbacks(self._reaped, self._failed)
        d.addBoth(self._done)
        return d

    def _reaped(self, ended: dict[str, int]) -> None:
        if self._failing:
            self._failing = False
            self.log.info("node registry: the database answers again")
        for name, count in ended.items():
            self.log.warn(
                "node {lost} stopped reporting: ended {count} of its sessions (node-lost)",
                lost=name,
                count=count,
            )

    def _failed(self, failure: Any) -> None:
        if not self._failing:
            self._failing = True
            self.log.warn(
                "node registry heartbeat failed: {error}",
                error=str(failure.value) or type(failure.value).__name__,
            )

    def _done(self, _: object) -> None:
        self._busy = False


def node_host() -> str:
    """This machine's name, as the registry's ``host`` column and a node name carry it."""
    return socket.gethostname()


# -- export and join -----------------------------------------------------------------------

EXPORT_FORMAT = "ssgate-node-export 1"
# scrypt at 2**15 × 8 × 1: ~32 MiB and a fraction of a second per attempt, so a stolen
# export is slow to guess at; the parameters travel with the file (and are authenticated).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SKIPPED_SUFFIXES = (".sock", ".lock", "-wal", "-shm", "-journal", ".tmp", ".pid")
_MAX_EXPORT_BYTES = 64 * 1024 * 1024


class NodeExportError(RuntimeError):
    """Export or join refused or failed; the message says why (exit 1)."""


class NodeExportInputError(ValueError):
    """A file that is not an export, a wrong passphrase, a tampered file (exit 2)."""


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _exported_files(state: StateDir) -> dict[str, tuple[int, bytes]]:
    """Every regular file at the top of the state directory a node needs: the
    configuration, CA and its key, server certificate and key, keys, rates, secrets.
    Not the SQLite database or its journals, sockets, locks, temporary files, nor the
    directories (logs, archives, checkpoints: each node's own or a shared mount)."""
    files: dict[str, tuple[int, bytes]] = {}
    for path in sorted(state.path.iterdir()):
        name = path.name
        if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
            continue
        if name == state.db_path.name or name.startswith(state.db_path.name + "-"):
            continue
        if not path.is_file() or path.is_symlink():
            continue
        mode = SECRET_MODE if os.stat(path).st_mode & 0o077 == 0 else PUBLIC_MODE
        files[name] = (mode, path.read_bytes())
    if CONFIG_FILE not in files:
        raise NodeExportError(f"{state.path}: no {CONFIG_FILE}; nothing to export")
    return files


def export_node(state: StateDir, out: Path, passphrase: str, *, now: float, actor: str) -> int:
    """Seal the state directory's keys and configuration into *out* (mode 0600, written
    atomically); how many files.  Refused for a database inside the state directory
    (SQLite by default): a node on another host could not share it."""
    config = state.load_config()
    if not config.database.url:
        raise NodeExportError(
            f"{state.path}: the database is SQLite inside this state directory, which another "
            "node cannot share; set [database] url to the PostgreSQL every node uses first"
        )
    if len(passphrase) < 8:
        raise NodeExportInputError("the passphrase must be at least 8 characters")
    files = _exported_files(state)
    payload = json.dumps(
        {
            "format": EXPORT_FORMAT,
            "version": __version__,
            "exported_at": now,
            "files": {
                name: {"mode": mode, "data": base64.b64encode(data).decode("ascii")}
                for name, (mode, data) in files.items()
            },
        }
    ).encode()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header = {
        "format": EXPORT_FORMAT,
        "kdf": "scrypt",
        "n": _SCRYPT_N,
        "r": _SCRYPT_R,
        "p": _SCRYPT_P,
        "salt": base64.b64encode(salt).decode("ascii"),
        "nonce": base64.b64encode(nonce).decode("ascii"),
    }
    key = _kdf(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, payload, _canonical(header).encode())
    document = {**header, "ciphertext": base64.b64encode(sealed).decode("ascii")}
    text = json.dumps(document, indent=1).encode() + b"\n"
    out = out.absolute()
    if not out.parent.is_dir():
        raise NodeExportInputError(f"--out {out}: the directory {out.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        os.fchmod(fd, SECRET_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _audit_offline(
        config.database.url,
        audit.AuditEvent(
            at=now,
            actor=actor,
            action="node.export",
            subject=str(out)[:255],
            outcome="ok",
            details={"files": ", ".join(sorted(files))},
        ),
    )
    return len(files)


def open_export(path: Path, passphrase: str) -> dict[str, tuple[int, bytes]]:
    """The files sealed in export *path*: name → (mode, bytes).  Raises
    :class:`NodeExportInputError` naming the problem: not an export, a wrong
    passphrase or a changed file (AES-GCM cannot tell those two apart)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise NodeExportInputError(f"{path}: cannot read ({e.strerror})") from None
    if len(raw) > _MAX_EXPORT_BYTES:
        raise NodeExportInputError(f"{path}: too large to be a node export")
    try:
        document = json.loads(raw)
        header = {k: document[k] for k in ("format", "kdf", "n", "r", "p", "salt", "nonce")}
        sealed = base64.b64decode(document["ciphertext"], validate=True)
        salt = base64.b64decode(header["salt"], validate=True)
        nonce = base64.b64decode(header["nonce"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise NodeExportInputError(
            f"{path}: not a node export (write one with 'ssgate node export --out FILE')"
        ) from None
    if header["format"] != EXPORT_FORMAT or header["kdf"] != "scrypt":
        raise NodeExportInputError(f"{path}: not a node export of a format this ssgate reads")
    n, r, p = header["n"], header["r"], header["p"]
    if not all(isinstance(v, int) for v in (n, r, p)) or not (
        2**14 <= n <= 2**20 and 1 <= r <= 16 and 1 <= p <= 4 and len(nonce) == 12
    ):
        raise NodeExportInputError(f"{path}: the export's key-derivation parameters are invalid")
    key = _kdf(passphrase, salt, n, r, p)
    try:
        payload = AESGCM(key).decrypt(nonce, sealed, _canonical(header).encode())
    except InvalidTag:
        raise NodeExportInputError(
            f"{path}: wrong passphrase, or the file was changed since it was exported"
        ) from None
    try:
        content = json.loads(payload)
        files = {
            name: (int(entry["mode"]), base64.b64decode(entry["data"], validate=True))
            for name, entry in content["files"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise NodeExportInputError(f"{path}: the export's content is malformed") from None
    for name, (mode, _) in files.items():
        if (
            "/" in name
            or name in ("", ".", "..")
            or name.startswith(".")
            or mode
            not in (
                SECRET_MODE,
                PUBLIC_MODE,
            )
        ):
            raise NodeExportInputError(f"{path}: the export names a file it may not: {name!r}")
    if CONFIG_FILE not in files:
        raise NodeExportInputError(f"{path}: the export holds no {CONFIG_FILE}")
    return files


def join_node(target: Path, export: Path, passphrase: str, *, now: float, actor: str) -> str:
    """Create state directory *target* from *export*, all or nothing; the database URL
    it uses.  The new node takes its own name (``host:pid``) when it starts; the
    database must be reachable and migrated (it is the one the exporting node uses)."""
    from ssgate._db import DatabaseURLError, make_engine
    from ssgate._schema import schema_status

    files = open_export(export, passphrase)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise NodeExportError(f"{target}: already exists and is not empty; nothing was changed")
    try:
        config = parse_config(files[CONFIG_FILE][1].decode("utf-8"), source=CONFIG_FILE)
    except (ConfigError, UnicodeDecodeError) as e:
        raise NodeExportInputError(f"{export}: its {CONFIG_FILE} is not valid: {e}") from None
    url = config.database.url
    if not url:
        raise NodeExportInputError(f"{export}: its configuration names no shared database")
    try:
        engine = make_engine(url)
    except DatabaseURLError as e:
        raise NodeExportInputError(str(e)) from None
    try:
        try:
            current, head = schema_status(engine)
        except Exception as e:  # any connection failure: say which database
            raise NodeExportError(
                f"the database in the exported configuration cannot be reached: {type(e).__name__}"
            ) from None
        if current != head:
            raise NodeExportError(
                f"the shared database is at schema {current}, this ssgate needs {head}: "
                "upgrade it first ('ssgate db upgrade' on a node of this version)"
            )
    finally:
        engine.dispose()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.join-", dir=target.parent))
    try:
        os.chmod(staging, DIR_MODE)
        staged = StateDir(staging)
        for name, (mode, data) in sorted(files.items()):
            if mode == SECRET_MODE:
                staged.write_secret(name, data)
            else:
                staged.write_public(name, data)
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _audit_offline(
        url,
        audit.AuditEvent(
            at=now,
            actor=actor,
            action="node.join",
            subject=str(target)[:255],
            outcome="ok",
            details={"host": node_host(), "files": ", ".join(sorted(files))},
        ),
    )
    return url


def _audit_offline(url: str, event: audit.AuditEvent) -> None:
    """*event* in the audit log, from a command (no pools: the reactor is not running)."""
    from ssgate._db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            audit.append(conn, event)
    finally:
        engine.dispose()


def _upsert(conn: Connection, table: Any) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


def read_passphrase(path: str | None, *, confirm: bool, prompt: Callable[[str], str]) -> str:
    """The passphrase from the first line of *path*, or asked for without echo (twice
    when *confirm*).  Raises :class:`NodeExportInputError` on a mismatch or nothing."""
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                line = f.readline().rstrip("\r\n")
        except OSError as e:
            raise NodeExportInputError(
                f"cannot read passphrase file {path}: {e.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise NodeExportInputError(f"passphrase file {path} is not UTF-8 text") from None
        if not line:
            raise NodeExportInputError(f"passphrase file {path} is empty (the first line is used)")
        return line
    first = prompt("export passphrase: ")
    if confirm and prompt("again: ") != first:
        raise NodeExportInputError("the passphrases differ")
    if not first:
        raise NodeExportInputError("an empty passphrase is not allowed")
    return first
