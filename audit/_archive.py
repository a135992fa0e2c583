"""Retention: the oldest records move out of the database into compressed archives,
and the chain is verified across the archives and into the database.

An archive is two files in the archive directory, named by the records they hold::

    audit-000000000001-000000004711.jsonl.gz        the records, gzip JSON Lines
    audit-000000000001-000000004711.manifest.json   what the file must hold

Each line of the ``.jsonl.gz`` is one record in the form of :func:`audit.export_jsonl`
(``at`` as the hashed float, ``details`` as an object, ``prev_hash`` and ``hash``), so
any copy of a file can be checked again with the chain's rules alone.  The manifest
gives the first and last ``seq``, the hash before the first record, the last hash, the
count, the time span and the SHA-256 of the compressed file.  The database keeps the
same facts in ``audit_archives`` (the catalogue): a deleted file, a deleted manifest or
a file whose records no longer match is found against it, and the chain's part in the
database starts after the newest catalogued record (:func:`audit.archived_base`).

Moving is crash-safe: within one transaction (the caller's) the archiver takes the
archiving lock, writes and ``fsync``-s the archive and then its manifest (each
atomically), records the catalogue row and deletes the records.  A crash before the
commit leaves the records in the database and, at most, files no catalogue row names;
the next run replaces them.  A crash after the commit leaves nothing half done.

Nothing here imports Twisted: callers run these functions on the database pool.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from audit._chain import GENESIS_HASH, canonical_bytes, canonical_json, digest
from audit._events import VerifyReport
from audit._export import export_jsonl
from audit._files import ensure_directory, write_atomically, write_bytes_atomically
from audit._log import _COLUMNS, _exact_floats, _record, archived_base
from audit._log import verify as verify_database
from audit._schema import HEAD_ID, audit_archives, audit_events, audit_head

# At most this many records per archive file: one file is one transaction, so a
# first run over years of records proceeds in bounded steps.  On SQLite the transaction
# holds the write lock, and appends wait for it: 10,000 records took 0.9 s here
# (50,000 took 6.6 s), well inside ssgate's 10 s busy timeout.
ARCHIVE_FILE_RECORDS: Final = 10_000
READ_CHUNK: Final = 1000
ARCHIVE_MODE: Final = 0o600  # records name people and units: owner only
MANIFEST_VERSION: Final = 1
# pg_advisory_xact_lock key for "one archiver at a time" (ASCII "ssga" "rchv").
_PG_LOCK_KEY: Final = 0x73736761_72636876

_NAME = re.compile(r"^audit-(\d{12})-(\d{12})\.(jsonl\.gz|manifest\.json)$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class ArchiveError(RuntimeError):
    """Archiving was refused (the chain is damaged, a file cannot be written); the
    message says why, and nothing was moved."""


@dataclass(frozen=True)
class ArchiveManifest:
    """One archive file, as its manifest and the catalogue row describe it."""

    file: str
    first_seq: int
    last_seq: int
    count: int
    prev_hash: str
    last_hash: str
    first_at: float
    last_at: float
    sha256: str
    archived_at: float
    node: str

    @property
    def manifest_file(self) -> str:
        return manifest_name(self.first_seq, self.last_seq)


def archive_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:012d}-{last_seq:012d}.jsonl.gz"


def manifest_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:012d}-{last_seq:012d}.manifest.json"


# -- archiving ------------------------------------------------------------------------


def archive_batch(
    conn: Connection,
    directory: Path,
    *,
    before: float,
    now: float,
    node: str,
    limit: int = ARCHIVE_FILE_RECORDS,
) -> ArchiveManifest | None:
    """Move the oldest records with ``at < before`` (at most *limit*) into one archive.

    Only a prefix of the chain moves: records up to, not including, the first one at or
    after *before*, so the database part stays one unbroken stretch.  Returns what was
    archived, or ``None`` when nothing is old enough.  Raises :class:`ArchiveError`
    (nothing moved) if a record to be archived is damaged or a file cannot be written.
    Run it in its own transaction; call again until it returns ``None``.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    _lock_archiving(conn)
    _exact_floats(conn)
    base_seq, base_hash = archived_base(conn)
    try:
        ensure_directory(directory)
        _remove_leftovers(directory, base_seq)
    except OSError as e:
        raise ArchiveError(f"archive directory {directory}: {e}") from None
    last_seq = _archivable_end(conn, base_seq, before, limit)
    if last_seq is None:
        return None

    first_seq = base_seq + 1
    name = archive_name(first_seq, last_seq)
    summary = _Summary(expected_seq=first_seq, last_hash=base_hash)
    try:
        write_atomically(
            directory / name,
            lambda f: _write_records(f, conn, first_seq, last_seq, summary),
            mode=ARCHIVE_MODE,
        )
    except OSError as e:
        raise ArchiveError(f"archive {directory / name} cannot be written: {e}") from None
    if summary.count != last_seq - first_seq + 1:  # pragma: no cover - checked per row
        raise ArchiveError(f"records {first_seq} to {last_seq} changed while archiving")
    manifest = ArchiveManifest(
        file=name,
        first_seq=first_seq,
        last_seq=last_seq,
        count=summary.count,
        prev_hash=base_hash,
        last_hash=summary.last_hash,
        first_at=summary.first_at,
        last_at=summary.last_at,
        sha256=summary.sha256,
        archived_at=now,
        node=node,
    )
    try:
        write_bytes_atomically(
            directory / manifest.manifest_file,
            (json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n").encode(),
            mode=ARCHIVE_MODE,
        )
    except OSError as e:
        raise ArchiveError(f"archive manifest in {directory} cannot be written: {e}") from None
    conn.execute(insert(audit_archives).values(**asdict(manifest)))
    conn.execute(
        delete(audit_events).where(audit_events.c.seq >= first_seq, audit_events.c.seq <= last_seq)
    )
    return manifest


def _lock_archiving(conn: Connection) -> None:
    """One archiver at a time, across processes and nodes, without stopping appends
    on PostgreSQL; SQLite has one writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:key AS BIGINT))"), {"key": _PG_LOCK_KEY}
        )
    else:
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == HEAD_ID)
            .values(last_seq=audit_head.c.last_seq)
        )


def _remove_leftovers(directory: Path, base_seq: int) -> None:
    """Files of a run that never committed: they start after the catalogued part."""
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match is not None and int(match.group(1)) > base_seq:
            path.unlink()


def _archivable_end(conn: Connection, base_seq: int, before: float, limit: int) -> int | None:
    head = conn.execute(
        select(audit_head.c.last_seq).where(audit_head.c.id == HEAD_ID)
    ).scalar_one_or_none()
    if head is None or head <= base_seq:
        return None
    first_young = conn.execute(
        select(func.min(audit_events.c.seq)).where(
            audit_events.c.seq > base_seq, audit_events.c.at >= before
        )
    ).scalar_one_or_none()
    end = int(head) if first_young is None else int(first_young) - 1
    end = min(end, base_seq + limit)
    return end if end > base_seq else None


@dataclass
class _Summary:
    expected_seq: int
    last_hash: str
    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    sha256: str = ""


class _HashingWriter:
    """The compressed bytes go to the file and through SHA-256 on their way."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _write_records(
    raw: BinaryIO, conn: Connection, first_seq: int, last_seq: int, summary: _Summary
) -> None:
    sink = _HashingWriter(raw)
    # mtime=0 and no file name: the same records always compress to the same bytes.
    with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, filename="") as gz:
        for row in _rows(conn, first_seq, last_seq):
            seq = int(row.seq)
            if seq != summary.expected_seq:
                raise ArchiveError(
                    f"audit record {summary.expected_seq} is missing; nothing was archived "
                    "(run 'ssgate audit verify')"
                )
            problem = _row_problem(row, summary.last_hash)
            if problem:
                raise ArchiveError(
                    f"audit record {seq} {problem}; nothing was archived "
                    "(run 'ssgate audit verify')"
                )
            try:
                record = _record(row)
            except ValueError as e:  # pragma: no cover - a damaged row fails its hash first
                raise ArchiveError(f"{e}; nothing was archived") from None
            for line in export_jsonl([record]):
                gz.write(line.encode("utf-8"))
            if not summary.count:
                summary.first_at = record.event.at
            summary.count += 1
            summary.last_at = record.event.at
            summary.last_hash = record.hash
            summary.expected_seq += 1
    if summary.expected_seq != last_seq + 1:
        raise ArchiveError(
            f"audit record {summary.expected_seq} is missing; nothing was archived "
            "(run 'ssgate audit verify')"
        )
    summary.sha256 = sink.hexdigest()


def _rows(conn: Connection, first_seq: int, last_seq: int) -> Iterator[Any]:
    after = first_seq - 1
    while after < last_seq:
        rows = conn.execute(
            select(*_COLUMNS)
            .where(audit_events.c.seq > after, audit_events.c.seq <= last_seq)
            .order_by(audit_events.c.seq)
            .limit(READ_CHUNK)
        ).all()
        if not rows:
            return
        yield from rows
        after = int(rows[-1].seq)


def _row_problem(row: Any, expected_prev: str) -> str:
    computed = digest(
        canonical_bytes(
            seq=int(row.seq),
            at=float(row.at),
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            outcome=row.outcome,
            reason=row.reason,
            unit=row.unit,
            session_id=row.session_id,
            details_json=row.details,
            prev_hash=row.prev_hash,
        )
    )
    if computed != row.hash:
        return "was altered: its hash does not match its contents"
    if row.prev_hash != expected_prev:
        return "is not linked to the record before it"
    return ""


# -- the catalogue --------------------------------------------------------------------


def list_archives(conn: Connection) -> list[ArchiveManifest]:
    """The catalogue, oldest archive first."""
    _exact_floats(conn)
    rows = conn.execute(select(audit_archives).order_by(audit_archives.c.first_seq)).all()
    return [
        ArchiveManifest(**{name: row._mapping[name] for name in ArchiveManifest.__annotations__})
        for row in rows
    ]


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying archives and database together.

    ``archived`` counts the archived records found intact, ``files`` the archives
    checked, ``database`` the database's report (``None`` when an archive failed first);
    ``problem`` names the first bad file or record.
    """

    ok: bool
    archived: int
    files: int
    database: VerifyReport | None
    problem: str

    @property
    def checked(self) -> int:
        return self.archived + (self.database.checked if self.database else 0)


def verify_with_archives(conn: Connection, directory: Path) -> ChainReport:
    """The whole chain: every catalogued archive in *directory* in order from record 1,
    then the database's part (:func:`audit.verify`), linked to the last archive.

    Reports (the first found): a catalogue gap (records no archive holds, a deleted
    catalogue row), a missing archive file or manifest, a manifest that disagrees with
    the catalogue, an archived line that was altered, removed, added or re-linked
    (naming the file and the record's ``seq``), and a file whose SHA-256 differs from
    its manifest.  Files no catalogue row names are ignored (a run that did not commit).
    """
    archives = list_archives(conn)
    expected_seq, expected_prev = 1, GENESIS_HASH
    archived = 0
    for index, manifest in enumerate(archives):
        problem = _catalogue_problem(manifest, expected_seq, expected_prev, archives, index)
        if problem is None:
            problem = _file_problem(directory, manifest)
        if problem is not None:
            return ChainReport(False, archived, index, None, problem)
        archived += manifest.count
        expected_seq, expected_prev = manifest.last_seq + 1, manifest.last_hash
    database = verify_database(conn)
    if not database.ok:
        return ChainReport(False, archived, len(archives), database, database.problem)
    return ChainReport(True, archived, len(archives), database, "")


def _catalogue_problem(
    manifest: ArchiveManifest,
    expected_seq: int,
    expected_prev: str,
    archives: list[ArchiveManifest],
    index: int,
) -> str | None:
    if manifest.first_seq > expected_seq:
        after = f"after archive {archives[index - 1].file}" if index else "before the first archive"
        return (
            f"audit records {expected_seq} to {manifest.first_seq - 1} are missing: no "
            f"archive holds them ({after}; the next is {manifest.file})"
        )
    if manifest.first_seq < expected_seq:
        return f"archive {manifest.file} overlaps the archive before it in the catalogue"
    if manifest.prev_hash != expected_prev:
        return (
            f"archive {manifest.file} is not linked to the archive before it: the catalogue's "
            f"hash before record {manifest.first_seq} differs"
        )
    return None


def _file_problem(directory: Path, manifest: ArchiveManifest) -> str | None:
    path = directory / manifest.file
    records = f"records {manifest.first_seq} to {manifest.last_seq}"
    if not path.is_file():
        return f"archive file {path} ({records}, archived on node {manifest.node}) is missing"
    problem = _manifest_problem(directory / manifest.manifest_file, manifest)
    if problem is not None:
        return problem
    problem = _lines_problem(path, manifest)
    if problem is not None:
        return problem
    if _file_sha256(path) != manifest.sha256:
        return (
            f"archive file {path} was altered: its SHA-256 is not the one in its manifest "
            "(the records in it still chain; the file was rewritten)"
        )
    return None


def _manifest_problem(path: Path, manifest: ArchiveManifest) -> str | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"archive manifest {path} is missing"
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"archive manifest {path} cannot be read: {e}"
    expected = asdict(manifest)
    if not isinstance(stored, dict):
        return f"archive manifest {path} is not a JSON object"
    for key, value in expected.items():
        if stored.get(key) != value:
            return (
                f"archive manifest {path} disagrees with the database's catalogue: its "
                f"{key} is {stored.get(key)!r}, the catalogue holds {value!r}"
            )
    return None


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def archived_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, parsed object or the reason it is not one)`` for each line.

    Raises ``OSError``, ``EOFError`` or ``zlib.error`` (via gzip) for a damaged file.
    """
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            try:
                value = json.loads(line)
            except ValueError:
                yield number, "is not JSON"
                continue
            yield number, (value if isinstance(value, dict) else "is not a JSON object")


def _lines_problem(path: Path, manifest: ArchiveManifest) -> str | None:  # noqa: PLR0911 - one return per kind of damage
    expected_seq, expected_prev = manifest.first_seq, manifest.prev_hash
    try:
        for number, value in archived_lines(path):
            where = f"archive {path}, line {number}"
            if isinstance(value, str):
                return f"{where} {value}: the file was altered"
            seq = value.get("seq")
            if seq != expected_seq or isinstance(seq, bool):
                if expected_seq > manifest.last_seq:
                    return f"{where}: a record beyond {manifest.last_seq} was added"
                return f"{where}: audit record {expected_seq} is missing (found seq {seq!r} there)"
            where = f"archive {path}, record {seq}"
            problem = _line_problem(value, expected_prev)
            if problem is not None:
                return f"{where} {problem}"
            expected_seq += 1
            expected_prev = value["hash"]
    except (OSError, EOFError, UnicodeDecodeError) as e:  # gzip's BadGzipFile is an OSError
        return f"archive file {path} cannot be read: {e}"
    except Exception as e:  # zlib.error and friends: damage, reported never raised
        return f"archive file {path} cannot be read: {type(e).__name__}: {e}"
    if expected_seq <= manifest.last_seq:
        return (
            f"archive {path}: audit records {expected_seq} to {manifest.last_seq} are "
            "missing (the file ends early)"
        )
    if expected_prev != manifest.last_hash:  # pragma: no cover - implied by the chain
        return f"archive {path}: its last hash differs from its manifest"
    return None


_LINE_TEXT = ("actor", "action", "subject", "outcome", "reason", "unit", "session_id")


def _line_problem(value: dict[str, Any], expected_prev: str) -> str | None:  # noqa: PLR0911 - one return per kind of damage
    for name in (*_LINE_TEXT, "prev_hash", "hash"):
        if not isinstance(value.get(name), str):
            return f"was altered: its {name} is not text"
    at = value.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float):
        return "was altered: its at is not a number"
    details = value.get("details")
    if not isinstance(details, dict):
        return "was altered: its details is not an object"
    try:
        details_json = canonical_json(details)
    except ValueError:
        return "was altered: its details cannot be encoded"
    computed = digest(
        canonical_bytes(
            seq=value["seq"],
            at=float(at),
            details_json=details_json,
            prev_hash=value["prev_hash"],
            **{name: value[name] for name in _LINE_TEXT},
        )
    )
    if computed != value["hash"]:
        return "was altered: its hash does not match its contents"
    if value["prev_hash"] != expected_prev:
        return "is not linked to the record before it: its prev_hash differs"
    return None


def archived_hash(directory: Path, manifest: ArchiveManifest, seq: int) -> str | None:
    """The hash record *seq* carries in its archive (verified before), or ``None``."""
    if seq == manifest.last_seq:
        return manifest.last_hash
    try:
        for _, value in archived_lines(directory / manifest.file):
            if isinstance(value, dict) and value.get("seq") == seq:
                found = value.get("hash")
                return found if isinstance(found, str) and _HASH.match(found) else None
    except (OSError, EOFError, ValueError):
        return None
    return None


def hash_at(conn: Connection, directory: Path, seq: int) -> str | None:
    """The hash the chain holds at *seq* (archives or database), ``None`` if it holds
    no record *seq*.  Seq 0 is the genesis hash."""
    if seq == 0:
        return GENESIS_HASH
    base_seq, _ = archived_base(conn)
    if seq <= base_seq:
        for manifest in list_archives(conn):
            if manifest.first_seq <= seq <= manifest.last_seq:
                return archived_hash(directory, manifest, seq)
        return None
    try:
        found = conn.execute(
            select(audit_events.c.hash).where(audit_events.c.seq == seq)
        ).scalar_one_or_none()
    except SQLAlchemyError:  # pragma: no cover - a seq too large for the column
        return None
    return found if isinstance(found, str) else None
