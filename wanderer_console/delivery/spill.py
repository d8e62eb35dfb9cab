"""Confirmations the store refused at a graceful stop, kept on disk for the next start.

Discord confirmed a message, but the store could not record it (SQLite on a full disk,
PostgreSQL unreachable) and the engine is stopping: held only in memory, the confirmation was
lost with the process, its rows stayed claimed, and the next start re-sent them as uncertain, so
a webhook message Discord had accepted was posted twice. The stop now writes such confirmations
into :data:`SPILL_FILE` in the data directory, and the next start of the same engine marks their
rows sent before it recovers the claims left in flight.

The file is written full of zeros (and synced) when the engine starts, so writing into it at the
stop needs no new disk block: a full disk does not refuse it. Records go in place
(``os.pwrite``, then ``fsync``), each framed as ``MAGIC | length | crc32 | payload``: a record
cut by a crash or damaged on disk fails its checksum and is ignored (its rows are re-sent as
uncertain, as before), never applied wrongly; reading stops at the first frame that is not one.
A confirmation is applied only to rows still claimed by the same send (see
:meth:`~wanderer_console.store.base.Store.mark_sent_if_claimed`), so a record read twice, or
one whose rows another engine took over meanwhile, changes nothing.

The file holds :data:`SPILL_SIZE` bytes (about a thousand messages); what does not fit is lost
as before and said at ERROR. Copy-on-write file systems (btrfs, ZFS) may need new blocks even
to rewrite a file in place: there a full disk can still refuse the spill, which is then said.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from wanderer_console.config.edit import sync_directory
from wanderer_console.store.base import LeaseFence, SentMessage

__all__ = ["SPILL_FILE", "SPILL_SIZE", "ConfirmationSpill"]

log = logging.getLogger("wanderer_console.delivery.dispatcher")

SPILL_FILE: Final = "unrecorded-confirmations.bin"
"""The spill, in the data directory (always present once an engine has started there)."""
SPILL_SIZE: Final = 256 * 1024
"""Bytes written at start: room for about a thousand confirmed messages."""

_MAGIC: Final = b"WCS1"
_HEADER: Final = struct.Struct(">4sII")
"""A record's frame: magic, payload length, CRC-32 of the length and the payload."""
_MAX_PAYLOAD: Final = 64 * 1024
_CHUNK: Final = 64 * 1024


def _checksum(length: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "big")))


def _encode(message: SentMessage) -> bytes:
    fence = None if message.fence is None else list(message.fence)
    payload = json.dumps(
        {
            "rows": list(message.row_ids),
            "sent_at": message.sent_at,
            "message_id": message.message_id,
            "send_id": message.send_id,
            "fence": fence,
        },
        separators=(",", ":"),
    ).encode()
    return _HEADER.pack(_MAGIC, len(payload), _checksum(len(payload), payload)) + payload


def _decode(payload: bytes) -> SentMessage:
    data = json.loads(payload)
    fence = data["fence"]
    return SentMessage(
        [int(row) for row in data["rows"]],
        float(data["sent_at"]),
        None if data["message_id"] is None else str(data["message_id"]),
        str(data["send_id"]),
        None if fence is None else LeaseFence(str(fence[0]), str(fence[1]), int(fence[2])),
    )


class ConfirmationSpill:
    """The pre-allocated file of confirmations kept at a stop (see the module docstring)."""

    def __init__(self, path: Path, size: int = SPILL_SIZE) -> None:
        self.path = path
        self.size = size
        self.kept: list[SentMessage] = []
        """Confirmations read at start (or kept since) and not applied yet."""
        self.damaged = 0
        """Records found at start whose frame or content failed its check (ignored)."""
        self._end = 0
        """Where the next record goes: after the last frame read or written."""
        self._used = 0
        """How far the file holds frames (valid or not), zeroed when the spill is cleared."""
        self.room = True
        """The file was filled to its size at start: a stop can keep confirmations in it."""
        self._notes: list[tuple[int, str, dict[str, object]]] = []
        self._announced = False

    @classmethod
    def open(cls, data_dir: Path, size: int = SPILL_SIZE) -> ConfirmationSpill:
        """Read what the last stop kept, then make sure the file has its full size on disk.
        When it cannot (a read-only data directory, a full disk), what was read is still
        applied; the stop keeps nothing (:attr:`room` is False), said at WARNING."""
        spill = cls(data_dir / SPILL_FILE, size)
        try:
            spill._read()
            spill._allocate()
        except OSError as exc:
            spill.room = False
            spill.say(
                logging.WARNING,
                "no room kept for confirmations at stop: if the store cannot write when the"
                " engine stops, a webhook message confirmed then may post twice",
                {"path": str(spill.path), "error": f"{type(exc).__name__}: {exc}"},
            )
        if spill.damaged:
            spill.say(
                logging.WARNING,
                "damaged confirmations ignored in the spill: their notifications are re-sent as"
                " uncertain",
                {"file": str(spill.path), "damaged": spill.damaged},
            )
        return spill

    def say(self, level: int, message: str, ctx: dict[str, object]) -> None:
        """Log a line of the engine's start about the spill: held until :meth:`announce`, as
        it comes before the engine's log ring is installed (the console's activity log)."""
        if self._announced:
            log.log(level, message, extra={"ctx": ctx})
        else:
            self._notes.append((level, message, ctx))

    def announce(self) -> None:
        """Log the lines held so far (the engine's logs are now read), and later ones at once."""
        self._announced = True
        for level, message, ctx in self._notes:
            log.log(level, message, extra={"ctx": ctx})
        self._notes.clear()

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            magic, length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if magic != _MAGIC or length > _MAX_PAYLOAD or end > len(data):
                break  # no frame here: the zeros after the last record, or a damaged frame
            payload = data[offset + _HEADER.size : end]
            offset = end
            try:
                if _checksum(length, payload) != crc:
                    raise ValueError("checksum")
                self.kept.append(_decode(payload))
            except (ValueError, KeyError, TypeError, IndexError):
                self.damaged += 1
        if offset < len(data) and any(data[offset : offset + _HEADER.size]):
            self.damaged += 1  # a frame cut or overwritten: what follows it is not read
        self._end = offset
        self._used = max(offset, len(data.rstrip(b"\0")))

    def _allocate(self) -> None:
        """Zeros up to :attr:`size`, on disk (file and directory synced)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            have = os.fstat(fd).st_size
            self.size = max(self.size, have)
            while have < self.size:
                chunk = min(_CHUNK, self.size - have)
                have += os.pwrite(fd, b"\0" * chunk, have)
            os.fsync(fd)
        finally:
            os.close(fd)
        sync_directory(self.path.parent)

    def keep(self, messages: Sequence[SentMessage]) -> int:
        """Write ``messages`` after the records already kept, as many as fit; how many were
        written (0 if the file refuses, or has no :attr:`room`). Only a message bound to a send
        id can be applied safely later: one without is not kept."""
        if not self.room:
            return 0
        frames: list[bytes] = []
        room = self.size - self._end
        for message in messages:
            if message.send_id is None:
                break
            frame = _encode(message)
            if len(frame) > room:
                break
            frames.append(frame)
            room -= len(frame)
        if not frames:
            return 0
        blob = b"".join(frames)
        fd = os.open(self.path, os.O_RDWR)
        try:
            written = os.pwrite(fd, blob, self._end)
            if written != len(blob):
                raise OSError(f"short write: {written} of {len(blob)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._end += len(blob)
        self._used = max(self._used, self._end)
        self.kept.extend(messages[: len(frames)])
        return len(frames)

    def clear(self) -> None:
        """Forget the records (applied): the used part of the file is zeroed and synced."""
        used, self._used = self._used, 0
        self.kept = []
        self.damaged = 0
        self._end = 0
        if used:
            fd = os.open(self.path, os.O_RDWR)
            try:
                os.pwrite(fd, b"\0" * used, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
