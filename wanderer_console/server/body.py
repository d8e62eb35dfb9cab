"""Reading request bodies under a size limit while still learning the actual size."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

__all__ = ["MEASURE_CAP", "TooLarge", "read_body"]

MEASURE_CAP: Final = 16 * 1024 * 1024
"""Past this many bytes an oversized body is no longer read, just reported as "at least"."""


class TooLarge(Exception):
    """The body is over the limit; ``size`` is its size (or a lower bound when ``at_least``)."""

    def __init__(self, limit: int, size: int, *, at_least: bool = False) -> None:
        self.limit = limit
        self.size = size
        self.at_least = at_least
        bound = "at least " if at_least else ""
        super().__init__(
            f"request body is {bound}{size} bytes; the limit is {limit} bytes ({limit // 1024} KiB)"
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`TooLarge` naming the limit and the actual size."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > MEASURE_CAP:
            raise TooLarge(limit, size, at_least=True)
    if size > limit:
        raise TooLarge(limit, size)
    return b"".join(chunks)
