"""The snapshot files of one node: written aside, made durable, then renamed into place.

Why it exists: the log can be compacted only once a snapshot covering its prefix is durable, and
a follower that fell behind the leader's log receives a snapshot as a stream of chunks. Both must
survive a crash at any point without leaving a half-written file that looks complete.

Layout of the directory (the store owns it; it touches only files with its own names):

- ``snap-<index>-<term>.snap``: the state machine's snapshot bytes, as it wrote them.
- ``snap-<index>-<term>.meta``: the sidecar: index, term, configuration, size and crc32 of the data,
  with a crc32 of its own. The sidecar is written last: it is the commit point, so a ``.snap``
  without a valid sidecar (or whose size disagrees with it) is a crash leftover.
- ``tmp-*.part`` (a local snapshot being written, or a sidecar being written) and
  ``incoming-<index>-<term>.part`` (a snapshot being received): crash leftovers once the store is
  reopened.

Finalizing: fsync the data, rename it into place, write the sidecar to a temporary file, fsync it,
rename it into place, fsync the directory. Opening the store deletes every leftover.

Concurrency: a ``SnapshotStore`` is used from one thread at a time (the driver may move a call to
a worker thread, but not run two at once). A ``SnapshotReader`` has its own file descriptor: it
may stream from another thread, and ``prune`` does not disturb it (a removed file stays readable
through a descriptor already open). One store per directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import uuid
import zlib

import attrs

from raft_zmq.core.configcodec import ConfigDecodeError, decode_config, encode_config
from raft_zmq.core.types import SnapshotMeta

logger = logging.getLogger(__name__)

SNAPSHOT_READ_BYTES_MAX = 16 * 2**20  # most bytes one read_at() returns (one streamed chunk)
CRC_BLOCK_BYTES = 2**20  # the block size for checksumming a whole file
SIDECAR_FORMAT_VERSION = 1
PRUNE_KEEP_MIN = 1  # prune never removes the newest snapshot

_DATA_SUFFIX = ".snap"
_META_SUFFIX = ".meta"
_PART_SUFFIX = ".part"
_TEMP_PREFIX = "tmp-"
_INCOMING_PREFIX = "incoming-"
_NAME = re.compile(r"^snap-(\d{20})-(\d{20})\.(snap|meta)$")


class SnapshotError(Exception):
    """A snapshot operation cannot be done as asked."""


class SnapshotCorruptError(SnapshotError):
    """A snapshot file does not match its recorded size or checksum."""


class SnapshotStagingError(SnapshotError):
    """An incoming chunk was refused (a gap, past the announced size, or staging has ended)."""


@attrs.frozen
class Snapshot:
    """A durable snapshot: what it covers, where its bytes are, and how to check them."""

    meta: SnapshotMeta
    path: str
    size_bytes: int
    crc32: int


def _base_name(meta: SnapshotMeta) -> str:
    return f"snap-{meta.index:020d}-{meta.term:020d}"


def _encode_sidecar(meta: SnapshotMeta, size_bytes: int, crc32: int) -> bytes:
    body = {
        "v": SIDECAR_FORMAT_VERSION,
        "index": meta.index,
        "term": meta.term,
        "config": encode_config(meta.config).decode(),
        "size_bytes": size_bytes,
        "crc32": crc32,
    }
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return payload + b"\n" + f"{zlib.crc32(payload):08x}".encode()


def _decode_sidecar(raw: bytes) -> tuple[SnapshotMeta, int, int]:
    """(meta, size_bytes, crc32); ``ValueError`` if the sidecar is torn or not ours."""
    payload, _, check = raw.rpartition(b"\n")
    if not payload or check != f"{zlib.crc32(payload):08x}".encode():
        raise ValueError("sidecar checksum mismatch")
    try:
        body = json.loads(payload)
        if body["v"] != SIDECAR_FORMAT_VERSION:
            raise ValueError(f"sidecar format {body['v']!r}")
        config = decode_config(body["config"].encode())
        meta = SnapshotMeta(index=int(body["index"]), term=int(body["term"]), config=config)
        return meta, int(body["size_bytes"]), int(body["crc32"])
    except (KeyError, TypeError, AttributeError, ConfigDecodeError) as exc:
        raise ValueError(f"sidecar malformed: {exc}") from exc


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_crc32(path: str) -> tuple[int, int]:
    """(size in bytes, crc32) of a whole file."""
    crc = 0
    size = 0
    with open(path, "rb") as f:
        while block := f.read(CRC_BLOCK_BYTES):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return size, crc


class SnapshotReader:
    """Random access to one snapshot's bytes, for streaming it to a follower chunk by chunk."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._fd: int | None = os.open(snapshot.path, os.O_RDONLY)

    def read_at(self, offset: int, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` from ``offset``; empty at the end of the snapshot."""
        if self._fd is None:
            raise SnapshotError(f"reader of {self.snapshot.path} is closed")
        if not 0 <= offset <= self.snapshot.size_bytes:
            raise ValueError(f"offset {offset} outside 0..{self.snapshot.size_bytes}")
        if not 0 < max_bytes <= SNAPSHOT_READ_BYTES_MAX:
            raise ValueError(f"max_bytes {max_bytes} outside 1..{SNAPSHOT_READ_BYTES_MAX}")
        return os.pread(self._fd, min(max_bytes, self.snapshot.size_bytes - offset), offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class IncomingSnapshot:
    """A snapshot arriving from the leader in chunks, staged until the last byte is in. Chunks
    must arrive in order: a chunk already held is ignored (a duplicate), one that starts past
    what is held is refused (a gap) and changes nothing."""

    def __init__(self, store: SnapshotStore, meta: SnapshotMeta, total_bytes: int, path: str):
        self.meta = meta
        self.total_bytes = total_bytes
        self.path = path
        self._store = store
        self._received_bytes = 0
        self._crc32 = 0
        self._file = open(path, "wb")  # noqa: SIM115 - open until finalize() or abort()

    @property
    def received_bytes(self) -> int:
        return self._received_bytes

    @property
    def active(self) -> bool:
        return not self._file.closed

    def write_chunk(self, offset: int, data: bytes) -> int:
        """Stage ``data`` found at ``offset`` of the snapshot; return the bytes now held."""
        if not self.active:
            raise SnapshotStagingError(f"staging of {self.path} has ended")
        end = offset + len(data)
        if offset < 0 or end > self.total_bytes:
            raise SnapshotStagingError(
                f"chunk {offset}..{end} outside the snapshot's {self.total_bytes} bytes"
            )
        if offset > self._received_bytes:
            raise SnapshotStagingError(
                f"gap: {self._received_bytes} bytes held, chunk starts at {offset}"
            )
        fresh = data[self._received_bytes - offset :]  # empty for a duplicate
        if fresh:
            self._file.write(fresh)
            self._crc32 = zlib.crc32(fresh, self._crc32)
            self._received_bytes += len(fresh)
        return self._received_bytes

    def finalize(self) -> Snapshot:
        """Make the complete snapshot durable and visible; staging ends."""
        if not self.active:
            raise SnapshotStagingError(f"staging of {self.path} has ended")
        if self._received_bytes != self.total_bytes:
            raise SnapshotStagingError(
                f"incomplete: {self._received_bytes} of {self.total_bytes} bytes received"
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._store._install(self.path, self.meta, self.total_bytes, self._crc32)

    def abort(self) -> None:
        """Drop what was staged; idempotent."""
        if self.active:
            self._file.close()
            os.unlink(self.path)


class SnapshotStore:
    """The snapshots of one node in ``directory`` (created if missing; leftovers of a crash are
    deleted on construction)."""

    def __init__(self, directory: str) -> None:
        self._directory = os.path.abspath(directory)
        os.makedirs(self._directory, exist_ok=True)
        self._snapshots: dict[tuple[int, int], Snapshot] = {}
        self._incoming: IncomingSnapshot | None = None
        self._recover()

    @property
    def directory(self) -> str:
        return self._directory

    # local snapshots ----------------------------------------------------------------------------
    def new_temp_path(self) -> str:
        """A fresh path in the store's directory for a new snapshot to be written into; hand it to
        ``finalize`` (or ``discard_temp``) afterwards."""
        return os.path.join(self._directory, f"{_TEMP_PREFIX}{uuid.uuid4().hex}{_PART_SUFFIX}")

    def discard_temp(self, tmp_path: str) -> None:
        """Remove a temporary file that will not be finalized (missing is fine)."""
        self._check_temp_path(tmp_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)

    def finalize(self, tmp_path: str, meta: SnapshotMeta) -> Snapshot:
        """Make the snapshot written to ``tmp_path`` durable and visible as covering ``meta``."""
        self._check_temp_path(tmp_path)
        if not os.path.isfile(tmp_path):
            raise SnapshotError(f"no snapshot file at {tmp_path}")
        size_bytes, crc32 = _file_crc32(tmp_path)
        _fsync_path(tmp_path)
        return self._install(tmp_path, meta, size_bytes, crc32)

    def _check_temp_path(self, tmp_path: str) -> None:
        # rename is atomic only within one file system: the file must be in the store's directory
        path = os.path.abspath(tmp_path)
        name = os.path.basename(path)
        if os.path.dirname(path) != self._directory or not name.startswith(_TEMP_PREFIX):
            raise ValueError(f"{tmp_path} is not a temporary path of {self._directory}")

    # incoming snapshots -------------------------------------------------------------------------
    def begin_incoming(self, meta: SnapshotMeta, total_bytes: int) -> IncomingSnapshot:
        """Start staging a snapshot received from the leader (``total_bytes`` long). Only one is
        staged at a time: a staging already in progress is aborted."""
        if total_bytes < 0:
            raise ValueError(f"total_bytes must not be negative, got {total_bytes}")
        if self._incoming is not None:
            self._incoming.abort()
        name = f"{_INCOMING_PREFIX}{meta.index}-{meta.term}{_PART_SUFFIX}"
        self._incoming = IncomingSnapshot(
            self, meta, total_bytes, os.path.join(self._directory, name)
        )
        return self._incoming

    @property
    def incoming(self) -> IncomingSnapshot | None:
        """The snapshot being staged, if any."""
        if self._incoming is not None and not self._incoming.active:
            self._incoming = None
        return self._incoming

    # reading ------------------------------------------------------------------------------------
    def snapshots(self) -> list[Snapshot]:
        """Every durable snapshot, oldest first."""
        return [self._snapshots[key] for key in sorted(self._snapshots)]

    def latest(self) -> Snapshot | None:
        """The newest durable snapshot (highest index), if any."""
        return self._snapshots[max(self._snapshots)] if self._snapshots else None

    def find(self, index: int, term: int) -> Snapshot | None:
        return self._snapshots.get((index, term))

    def open(self, snapshot: Snapshot) -> SnapshotReader:
        """A reader for streaming ``snapshot`` by offset; close it (or use ``with``)."""
        return SnapshotReader(snapshot)

    def verify(self, snapshot: Snapshot) -> None:
        """Read the whole file and check its size and crc32; ``SnapshotCorruptError`` if not."""
        size_bytes, crc32 = _file_crc32(snapshot.path)
        if (size_bytes, crc32) != (snapshot.size_bytes, snapshot.crc32):
            raise SnapshotCorruptError(
                f"{snapshot.path}: {size_bytes} bytes crc32 {crc32:08x}, recorded "
                f"{snapshot.size_bytes} bytes crc32 {snapshot.crc32:08x}"
            )

    def prune(self, keep: int = 2) -> list[Snapshot]:
        """Remove all but the newest ``keep`` snapshots; return the removed ones."""
        if keep < PRUNE_KEEP_MIN:
            raise ValueError(f"keep must be at least {PRUNE_KEEP_MIN}, got {keep}")
        removed = self.snapshots()[:-keep]
        for snapshot in removed:
            # the sidecar first: without it the data file is a leftover, never a snapshot
            os.unlink(self._meta_path(snapshot.meta))
            os.unlink(snapshot.path)
            del self._snapshots[(snapshot.meta.index, snapshot.meta.term)]
        return removed

    # internals ----------------------------------------------------------------------------------
    def _data_path(self, meta: SnapshotMeta) -> str:
        return os.path.join(self._directory, _base_name(meta) + _DATA_SUFFIX)

    def _meta_path(self, meta: SnapshotMeta) -> str:
        return os.path.join(self._directory, _base_name(meta) + _META_SUFFIX)

    def _install(self, path: str, meta: SnapshotMeta, size_bytes: int, crc32: int) -> Snapshot:
        """Rename durable data at ``path`` into place and commit it with its sidecar."""
        data_path = self._data_path(meta)
        os.replace(path, data_path)
        sidecar_tmp = os.path.join(
            self._directory, f"{_TEMP_PREFIX}{_base_name(meta)}{_META_SUFFIX}{_PART_SUFFIX}"
        )
        with open(sidecar_tmp, "wb") as f:
            f.write(_encode_sidecar(meta, size_bytes, crc32))
            f.flush()
            os.fsync(f.fileno())
        os.replace(sidecar_tmp, self._meta_path(meta))
        _fsync_path(self._directory)
        snapshot = Snapshot(meta=meta, path=data_path, size_bytes=size_bytes, crc32=crc32)
        self._snapshots[(meta.index, meta.term)] = snapshot
        return snapshot

    def _recover(self) -> None:
        """Load the complete snapshots and delete everything a crash left half-done."""
        names = os.listdir(self._directory)
        for name in names:
            if name.endswith(_PART_SUFFIX) and name.startswith((_TEMP_PREFIX, _INCOMING_PREFIX)):
                logger.info("%s: removing %s, left by an interrupted write", self._directory, name)
                os.unlink(os.path.join(self._directory, name))
        for name in names:
            match = _NAME.match(name)
            if match and match.group(3) == "meta":
                self._load_sidecar(name, int(match.group(1)), int(match.group(2)))
        for name in names:
            match = _NAME.match(name)
            if match and match.group(3) == "snap":
                key = (int(match.group(1)), int(match.group(2)))
                if key not in self._snapshots:
                    logger.warning(
                        "%s: removing %s, it has no valid sidecar", self._directory, name
                    )
                    os.unlink(os.path.join(self._directory, name))

    def _load_sidecar(self, name: str, index: int, term: int) -> None:
        path = os.path.join(self._directory, name)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            snapshot = self._snapshot_from_sidecar(raw, index, term)
        except ValueError as exc:
            logger.warning("%s: removing snapshot sidecar %s: %s", self._directory, name, exc)
            os.unlink(path)
            return
        self._snapshots[(index, term)] = snapshot

    def _snapshot_from_sidecar(self, raw: bytes, index: int, term: int) -> Snapshot:
        meta, size_bytes, crc32 = _decode_sidecar(raw)
        if (meta.index, meta.term) != (index, term):
            raise ValueError(f"it describes snapshot {meta.index}-{meta.term}")
        data_path = self._data_path(meta)
        if not os.path.isfile(data_path) or os.path.getsize(data_path) != size_bytes:
            raise ValueError("its data file is missing or has the wrong size")
        return Snapshot(meta=meta, path=data_path, size_bytes=size_bytes, crc32=crc32)
