"""An event another tool posts through the ingest API (``POST /api/v1/events``).

The HTTP surface validates each posted event with :class:`IngestEvent` and stores it, as
validated, in the event log; ``replay`` reads it back through the same model.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["IngestEvent"]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class IngestEvent(BaseModel):
    """One posted event (type ``custom``)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$"
    )
    """Idempotency key; generated when absent."""
    schema_version: str = "1.0.0"
    """Semantic version of the event schema the sender speaks."""
    type: Literal["custom"] = "custom"
    tenant: str | None = None
    """Optional; when given it must be the key's own tenant."""
    title: str = Field(min_length=1, max_length=256)
    body: str = Field(default="", max_length=4096)
    severity: Literal["info", "success", "warning", "critical"] = "info"
    notification_type: Literal["kill", "system", "character", "rally"] = "system"
    """Which switch and which configured Discord target apply."""

    @field_validator("title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Discord shows no title at all for one made of spaces: the event would go untitled.
        if not value.strip():
            raise ValueError("title is blank: give it some text (at most 256 characters)")
        return value

    @field_validator("schema_version")
    @classmethod
    def _semver(cls, value: str) -> str:
        # fullmatch: the pattern's ``$`` alone also matches before a final newline.
        if not _SEMVER.fullmatch(value):
            raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        return value
