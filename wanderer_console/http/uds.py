"""Unix socket addresses of any length.

A Unix socket's address holds at most 107 bytes on Linux (``sun_path``, less its NUL), so a
socket in a data directory with a long path (``/srv/…/instances/…/data/control.sock``) can be
neither bound nor reached by its path: ``bind`` fails with "AF_UNIX path too long" and the
console cannot attach. Over that length the socket is addressed through its directory instead:
an ``O_PATH`` descriptor of the directory, named ``/proc/self/fd/N/<name>``, which the kernel
resolves like the long path. The descriptor stays open while the address is in use.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = ["SUN_PATH_MAX", "SocketPathTooLong", "UnixAddress"]

SUN_PATH_MAX: Final = 107
"""Bytes a Unix socket path may have on Linux (``sizeof(sun_path)`` less the NUL)."""

_PROC_FD: Final = Path("/proc/self/fd")


class SocketPathTooLong(OSError):
    """A socket path over the limit on a system without ``/proc/self/fd``."""


class UnixAddress:
    """The address to bind or connect for the socket at ``path``, whatever its length."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __str__(self) -> str:
        """The path itself when it fits, else the short name through the directory's descriptor.

        Raises :class:`SocketPathTooLong` (or the ``OSError`` of opening the directory) when the
        path is too long and cannot be shortened.
        """
        if len(os.fsencode(self.path)) <= SUN_PATH_MAX:
            return str(self.path)
        if not _PROC_FD.is_dir():
            raise SocketPathTooLong(
                f"socket path {self.path} is {len(os.fsencode(self.path))} bytes, over the"
                f" {SUN_PATH_MAX} a Unix socket allows: use a data directory with a shorter path"
            )
        if self._fd is None:
            self._fd = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"{_PROC_FD}/{self._fd}/{self.path.name}"

    def close(self) -> None:
        """Close the directory's descriptor, if one was opened."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
