"""``ssgate backup`` and ``ssgate restore``: the database and the state directory in one
archive, written atomically, checked before anything is restored.

The archive is a gzip'd tar, mode 0600 from its first byte, holding:

* ``MANIFEST.json`` — format, ssgate version, when, the database kind and schema
  revision, the audit log's head (last seq and hash), and each member's size and
  SHA-256;
* ``state/…`` — every regular file of the state directory (configuration, the CA and
  its key, the server certificate and key, the CRL, the TOTP, identity and resume
  keys, the rates file, …) except the SQLite database, its journals, sockets, locks
  and half-written temporary files;
* ``database/ssgate.db`` (SQLite, a consistent copy by SQLite's online backup API,
  taken while the node runs) or ``database/ssgate.pgdump`` (PostgreSQL, ``pg_dump
  --format=custom``: one consistent snapshot, taken while the nodes run).

**It holds every secret of the installation** — the CA key signs client
certificates, the TOTP key opens every one-time-code secret, the identity key lets
its holder speak for any employer to the declaration service.  Keep it as the state
directory itself is kept: readable by the service account only, off the host,
encrypted at rest where it is stored.

Restore goes into a new or empty state directory (``--force`` moves a non-empty one
aside, never deletes it), refuses while a node runs on it, checks every member
against the manifest, puts the database back (SQLite: the file; PostgreSQL:
``pg_restore`` into the database the restored configuration names, which must have
no ssgate tables unless ``--force``), and then checks the result: the schema
revision, and the audit chain walked end to end up to the head the manifest names.
Both commands leave an audit record (``ops.backup`` before the snapshot, so the
archive holds it; ``ops.restore`` after).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL, make_url

import audit
from ssgate import __version__
from ssgate._config import CONFIG_FILE, ConfigError, parse_config
from ssgate._db import make_engine, sqlite_url
from ssgate._schema import schema_status
from ssgate._state import DIR_MODE, SECRET_MODE, StateDir

FORMAT = "ssgate-backup 1"
MANIFEST = "MANIFEST.json"
SQLITE_MEMBER = "database/ssgate.db"
PGDUMP_MEMBER = "database/ssgate.pgdump"
_SKIPPED_SUFFIXES = (".sock", ".lock", "-wal", "-shm", "-journal", ".tmp")
_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """The backup or restore was refused or failed; the message says why."""


class BackupInputError(ValueError):
    """Bad input: a file that is not an ssgate backup, a path that cannot be used."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    database: str  # "sqlite" or "postgresql"
    files: int
    audit_records: int
    not_included: tuple[str, ...] = ()  # files ssgate.toml names outside the state dir


@dataclass(frozen=True)
class RestoreResult:
    state: Path
    database: str
    files: int
    audit_records: int
    moved_aside: Path | None


# -- backup -------------------------------------------------------------------------------


def backup(
    state: StateDir,
    out: Path,
    *,
    actor: str,
    clock: Callable[[], float] = time.time,
    pg_dump: str = "pg_dump",
) -> BackupResult:
    """Write the archive of *state* and its database to *out*, atomically, mode 0600."""
    config = state.load_config()
    url = state.database_url(config)
    engine = make_engine(url)
    try:
        kind = engine.dialect.name
        revision, _ = schema_status(engine)
        with engine.begin() as conn:
            audit.append(
                conn,
                audit.AuditEvent(
                    at=clock(), actor=actor, action="ops.backup", subject=str(out), outcome="ok"
                ),
            )
        with tempfile.TemporaryDirectory(prefix="ssgate-backup-") as work:
            dump = Path(work) / "db"
            if kind == "sqlite":
                member = SQLITE_MEMBER
                _sqlite_copy(_sqlite_path(engine), dump)
                head = _audit_head(sqlite3.connect(dump))
            else:
                member = PGDUMP_MEMBER
                # Read before the dump: its snapshot holds this head or a newer one.
                head = _audit_head(engine.raw_connection())
                _pg_dump(engine.url, dump, pg_dump)
            files = dict(_state_files(state, exclude=_sqlite_files(engine, kind)))
            manifest = {
                "format": FORMAT,
                "ssgate": __version__,
                "created_at": clock(),
                "database": kind,
                "schema_revision": revision,
                "audit_head": {"last_seq": head[0], "last_hash": head[1]},
                "members": {
                    **{f"state/{name}": _describe(path) for name, path in files.items()},
                    member: _describe(dump),
                },
            }
            _write_archive(out, manifest, files, member, dump)
    finally:
        engine.dispose()
    return BackupResult(out, kind, len(files), head[0], _named_outside(state, config))


def _named_outside(state: StateDir, config: Any) -> tuple[str, ...]:
    """Files the configuration names by a path outside the state directory: not in
    the archive, so the operator must keep them some other way."""
    root = state.path.resolve()
    named = (config.declare.rates_file, config.directory.ca_file)
    outside = []
    for name in named:
        if name and not (root / name).resolve().is_relative_to(root):
            outside.append(str(root / name))
    return tuple(outside)


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("database.url is an in-memory SQLite database: nothing to back up")
    return Path(database)


def _sqlite_files(engine: Engine, kind: str) -> set[Path]:
    if kind != "sqlite":
        return set()
    main = _sqlite_path(engine).resolve()
    return {main, *(main.with_name(main.name + s) for s in ("-wal", "-shm", "-journal"))}


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy by SQLite's online backup API (writers may go on meanwhile)."""
    if not source.is_file():
        raise BackupError(f"{source}: the SQLite database does not exist")
    src = sqlite3.connect(source)  # read only by use: the backup API only reads
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        check = dst.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise BackupError(f"{source}: SQLite integrity check failed on the copy: {check}")
    finally:
        dst.close()
        src.close()


def _libpq_env(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for pg_dump/pg_restore: the password only in the
    environment (never on a command line others can read in ``ps``)."""
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    options = url.query.get("options")
    if isinstance(options, str):
        env["PGOPTIONS"] = options
    args += ["--dbname", url.database or "postgres"]
    return args, env


def _search_path_schema(url: URL) -> str | None:
    """The one schema a URL's ``options=-csearch_path=NAME`` confines ssgate to."""
    options = url.query.get("options")
    if not isinstance(options, str):
        return None
    for part in options.split():
        key, _, value = part.removeprefix("-c").partition("=")
        if key == "search_path" and value and "," not in value:
            return value
    return None


def _run(command: list[str], env: Mapping[str, str], what: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program, arguments from our config
            command, env=dict(env), capture_output=True, text=True, check=False, timeout=3600
        )
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} not found: install the PostgreSQL client tools "
            "(Debian: apt-get install postgresql-client) of the server's major version"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        detail = next((line for line in lines if "error:" in line), lines[-1])[:500]
        raise BackupError(f"{what} failed ({command[0]} exit {done.returncode}): {detail}")


def _pg_dump(url: URL, target: Path, program: str) -> None:
    args, env = _libpq_env(url)
    command = [program, "--format=custom", "--no-owner", "--no-privileges", "--file", str(target)]
    schema = _search_path_schema(url)
    if schema is not None:
        command += ["--schema", schema]
    _run(command + args, env, "pg_dump")


def _audit_head(conn: Any) -> tuple[int, str]:
    """(last seq, last hash) of the audit log on a DBAPI connection, then closed."""
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT last_seq, last_hash FROM audit_head")
        row = cursor.fetchone()
    finally:
        conn.close()
    return (int(row[0]), str(row[1])) if row is not None else (0, "")


def _state_files(state: StateDir, *, exclude: set[Path]) -> Iterator[tuple[str, Path]]:
    """(name relative to the state directory, path) of each file to keep."""
    root = state.path
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if (
            path.is_symlink()
            or not path.is_file()
            or path.resolve() in exclude
            or path.name.startswith(".")
            or name.endswith(_SKIPPED_SUFFIXES)
        ):
            continue
        yield name, path


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest(), "mode": path.stat().st_mode & 0o777}


def _write_archive(
    out: Path, manifest: Mapping[str, Any], files: Mapping[str, Path], member: str, dump: Path
) -> None:
    if out.is_dir():
        raise BackupInputError(f"--out {out}: is a directory; name the archive file")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BackupInputError(f"--out {out}: directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)  # 0600
    try:
        os.fchmod(fd, SECRET_MODE)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
                _add_bytes(tar, MANIFEST, body)
                for name, path in files.items():
                    _add_file(tar, f"state/{name}", path)
                _add_file(tar, member, dump)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = SECRET_MODE
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = SECRET_MODE
    with path.open("rb") as f:
        tar.addfile(info, f)


# -- restore ------------------------------------------------------------------------------


def restore(
    archive: Path,
    state: StateDir,
    *,
    force: bool,
    actor: str,
    database_url: str = "",
    clock: Callable[[], float] = time.time,
    pg_restore: str = "pg_restore",
) -> RestoreResult:
    """Restore *archive* into *state* (new or empty; with *force*, the old one is moved
    aside); verify members, schema and audit chain before returning."""
    target = state.path
    _refuse_running(target)
    if target.exists() and not target.is_dir():
        raise BackupInputError(f"--state {target}: exists and is not a directory")
    busy = target.exists() and any(target.iterdir())
    if busy and not force:
        raise BackupError(
            f"{target}: not empty; restore into a new directory, or pass --force to move "
            "this one aside (it is kept, renamed, never deleted)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    moved: Path | None = None
    try:
        os.chmod(staging, DIR_MODE)
        manifest, files, dump, member = _unpack(archive, staging)
        if member != (SQLITE_MEMBER if manifest.get("database") == "sqlite" else PGDUMP_MEMBER):
            raise BackupInputError(f"{archive}: the manifest's database kind and its dump disagree")
        staged = StateDir(staging)
        kind = str(manifest["database"])
        if database_url:
            if kind != "postgresql":
                raise BackupInputError(
                    "--database-url: the archive holds an SQLite database; it restores into "
                    "the state directory (a PostgreSQL URL needs a PostgreSQL archive)"
                )
            _set_database_url(staged, database_url)
        config = _restored_config(staged)
        url = config.database.url
        elsewhere = _sqlite_elsewhere(url) if kind == "sqlite" else None
        _put_database(staged, kind, url, dump, pg_restore, force=force)
        (staging / "database").rmdir()
        check_url = sqlite_url(staged.db_path) if kind == "sqlite" else url
        records = _check_restored(check_url, manifest, target, actor=actor, clock=clock)
        if busy:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock()))
            moved = target.with_name(f"{target.name}.before-restore-{stamp}")
            os.rename(target, moved)
        elif target.exists():
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if elsewhere is not None:  # checked in the state directory, then put where it belongs
        main = StateDir(target).db_path
        for suffix in ("", "-wal", "-shm"):  # the journal too, if a checkpoint left one
            if main.with_name(main.name + suffix).exists():
                shutil.move(str(main) + suffix, str(elsewhere) + suffix)
    return RestoreResult(target, kind, len(files), records, moved)


def _sqlite_elsewhere(url: str) -> Path | None:
    """The file a ``sqlite:///PATH`` database.url names, or None for the state
    directory's own ``ssgate.db``; refuses to overwrite an existing file."""
    if not url:
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"database.url {url!r} is not an SQLite file to restore into")
    path = Path(database)
    if path.exists():
        raise BackupError(
            f"{path}: exists (database.url names it); move it away, then restore again"
        )
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent}: no such directory (database.url names {path})")
    return path


def _put_database(
    staged: StateDir, kind: str, url: str, dump: Path, pg_restore: str, *, force: bool
) -> None:
    """The dump back where the restored configuration says the database is."""
    if kind == "sqlite":
        if url and not url.startswith("sqlite"):
            raise BackupError(
                f"the archive holds an SQLite database but its ssgate.toml names {url!r}"
            )
        shutil.move(str(dump), staged.db_path)
        os.chmod(staged.db_path, SECRET_MODE)
    elif kind == "postgresql":
        if not url.startswith("postgresql"):
            raise BackupError("a PostgreSQL archive whose ssgate.toml names no PostgreSQL URL")
        _pg_restore(make_url(url), dump, pg_restore, force=force)
        dump.unlink()
    else:
        raise BackupInputError(f"unknown database kind {kind!r} in the archive's manifest")


def _refuse_running(target: Path) -> None:
    """A node serving from *target* holds the declare socket's lock: refuse."""
    from twisted.python.lockfile import FilesystemLock

    for lock_path in target.glob("*.sock.lock") if target.is_dir() else ():
        lock = FilesystemLock(str(lock_path))
        if not lock.lock():
            raise BackupError(
                f"{target}: a node is running on this state directory ({lock_path.name} is "
                "held); stop it before restoring"
            )
        lock.unlock()


def _unpack(archive: Path, staging: Path) -> tuple[Mapping[str, Any], list[str], Path, str]:
    """Extract the members into *staging* (state files at its top, the dump under
    ``database/``), each checked against the manifest."""
    try:
        tar = tarfile.open(archive, mode="r:gz")  # noqa: SIM115 - closed by `with tar` below
    except FileNotFoundError:
        raise BackupInputError(f"{archive}: no such file") from None
    except (tarfile.TarError, OSError) as e:
        raise BackupInputError(f"{archive}: not an ssgate backup ({e})") from None
    with tar:
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise BackupInputError(f"{archive}: not an ssgate backup (no {MANIFEST} first)")
            source = tar.extractfile(first)
            manifest = json.loads(source.read(1 << 20)) if source is not None else None
        except (tarfile.TarError, OSError, ValueError) as e:
            raise BackupInputError(f"{archive}: not an ssgate backup ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BackupInputError(f"{archive}: not an {FORMAT!r} archive")
        expected: dict[str, Any] = dict(manifest.get("members") or {})
        seen: list[str] = []
        dump: Path | None = None
        member = ""
        (staging / "database").mkdir(mode=DIR_MODE)
        try:
            for info in tar:
                if info is first:  # iteration starts again at the manifest
                    continue
                _check_member_name(archive, info, expected)
                if info.name.startswith("state/"):
                    path = staging / info.name.removeprefix("state/")
                else:
                    path = staging / info.name
                    dump, member = path, info.name
                path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                _extract(tar, info, path, expected[info.name], archive)
                seen.append(info.name)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BackupInputError(f"{archive}: damaged ({e})") from None
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise BackupInputError(f"{archive}: incomplete; missing {', '.join(missing[:5])}")
    if dump is None:
        raise BackupInputError(f"{archive}: holds no database")
    return manifest, [n for n in seen if n.startswith("state/")], dump, member


def _check_member_name(archive: Path, info: tarfile.TarInfo, expected: Mapping[str, Any]) -> None:
    name = info.name
    parts = name.split("/")
    if (
        not info.isfile()
        or name not in expected
        or name.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or not (name.startswith("state/") or name in (SQLITE_MEMBER, PGDUMP_MEMBER))
    ):
        raise BackupInputError(f"{archive}: unexpected member {name!r}; refusing to restore")


def _extract(
    tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path, want: Mapping[str, Any], archive: Path
) -> None:
    source = tar.extractfile(info)
    if source is None:
        raise BackupInputError(f"{archive}: member {info.name} cannot be read")
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    with os.fdopen(fd, "wb") as f:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    if size != want.get("size") or digest.hexdigest() != want.get("sha256"):
        raise BackupInputError(
            f"{archive}: member {info.name} does not match the manifest (damaged archive)"
        )
    mode = int(want.get("mode", SECRET_MODE)) & 0o644  # never more than it had; never exec
    os.chmod(path, mode)


_DATABASE_SECTION = re.compile(r"(?ms)^\[database\][ \t]*\n(.*?)(?=^\[|\Z)")
_URL_LINE = re.compile(r"(?m)^url[ \t]*=.*$")


def _set_database_url(staged: StateDir, url: str) -> None:
    """Point the restored ``ssgate.toml`` at *url* (``[database] url``), keeping the
    rest of the file, comments included, as it was."""
    if not url.startswith("postgresql+psycopg://") or any(c in url for c in '"\n\\'):
        raise BackupInputError(f"--database-url: write postgresql+psycopg://…, not {url!r}")
    path = staged.path / CONFIG_FILE
    text = path.read_text(encoding="utf-8")
    line = f'url = "{url}"'
    section = _DATABASE_SECTION.search(text)
    if section is None:
        text = text.rstrip("\n") + f"\n\n[database]\n{line}\n"
    elif _URL_LINE.search(section.group(1)):
        body = _URL_LINE.sub(lambda _: line, section.group(1), count=1)
        text = text[: section.start(1)] + body + text[section.end(1) :]
    else:
        text = text[: section.start(1)] + line + "\n" + text[section.start(1) :]
    path.write_text(text, encoding="utf-8")


def _restored_config(staged: StateDir) -> Any:
    path = staged.path / CONFIG_FILE
    if not path.is_file():
        raise BackupInputError(f"the archive holds no {CONFIG_FILE}")
    try:
        return parse_config(path.read_text(encoding="utf-8"), source=f"(archive) {CONFIG_FILE}")
    except ConfigError as e:
        raise BackupInputError(str(e)) from None


def _pg_restore(url: URL, dump: Path, program: str, *, force: bool) -> None:
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        schema = _search_path_schema(url)
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names(schema=schema)
            schemas = set(inspect(conn).get_schema_names())
        if tables and not force:
            raise BackupError(
                f"database {url.render_as_string(hide_password=True)}: already holds "
                f"{len(tables)} table(s); restore into an empty database, or pass --force "
                "to replace them"
            )
    finally:
        engine.dispose()
    args, env = _libpq_env(url)
    # Leave out the creation of schemas the database already has (public, or the
    # schema a search_path option names), so --exit-on-error stops only on real errors.
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as listing:
        listed = subprocess.run(  # noqa: S603
            [program, "--list", str(dump)], capture_output=True, text=True, check=False
        )
        if listed.returncode != 0:
            raise BackupInputError(f"the database dump cannot be read: {listed.stderr.strip()}")
        for line in listed.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[3] == "SCHEMA" and fields[5] in schemas:
                continue
            listing.write(line + "\n")
    try:
        command = [
            program,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--use-list",
            listing.name,
        ]
        if tables and force:
            command += ["--clean", "--if-exists"]
        _run([*command, *args, str(dump)], env, "pg_restore")
    finally:
        os.unlink(listing.name)


def _check_restored(
    url: str,
    manifest: Mapping[str, Any],
    target: Path,
    *,
    actor: str,
    clock: Callable[[], float],
) -> int:
    """The restored database is at the archived schema and its audit chain is intact up
    to the archived head; then the restore is recorded."""
    engine = make_engine(url)
    try:
        current, head = schema_status(engine)
        if current != manifest.get("schema_revision"):
            raise BackupError(
                f"restored database is at schema {current}, the archive says "
                f"{manifest.get('schema_revision')}"
            )
        with engine.begin() as conn:
            report = audit.verify(conn)
            if not report.ok:
                raise BackupError(f"restored audit log NOT intact: {report.problem}")
            want = manifest.get("audit_head") or {}
            row = conn.exec_driver_sql("SELECT last_seq, last_hash FROM audit_head").fetchone()
            got_seq = int(row[0]) if row is not None else 0
            if got_seq < int(want.get("last_seq", 0)):
                raise BackupError(
                    f"restored audit log ends at record {got_seq}, the archive's at "
                    f"{want.get('last_seq')}"
                )
            audit.append(
                conn,
                audit.AuditEvent(
                    at=clock(),
                    actor=actor,
                    action="ops.restore",
                    subject=str(target),
                    outcome="ok",
                    details={
                        "archive_created_at": manifest.get("created_at"),
                        "schema_revision": current,
                        "newest_schema": head,
                    },
                ),
            )
        return report.checked
    finally:
        engine.dispose()
