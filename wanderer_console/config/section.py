"""The base of every settings section: unknown keys are errors, defaults are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A TOML table of the configuration."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
