"""Console themes: ``themes/*.toml`` files turned into Textual ``Theme`` objects.

A theme file holds Textual's base colours at the top level and the console's domain colours
(``health-ok``, ``breaker-open``, ``cache-hit``, ...) under ``[variables]``. A missing or invalid
file never stops the console: :func:`select_theme` falls back to the dark theme, and if even that
file is unreadable, to a built-in copy of it.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

__all__ = [
    "DEFAULT_THEME",
    "DOMAIN_VARIABLES",
    "ThemeProblem",
    "default_theme_dir",
    "load_theme",
    "load_themes",
    "select_theme",
]

log = logging.getLogger(__name__)

DEFAULT_THEME = "wanderer-dark"
"""The theme used when the configured one is missing or invalid."""

DOMAIN_VARIABLES: dict[str, str] = {
    "health-ok": "#4CC38A",
    "health-degraded": "#E5B53B",
    "health-down": "#E05252",
    "breaker-closed": "#4CC38A",
    "breaker-half-open": "#E5B53B",
    "breaker-open": "#E05252",
    "cache-hit": "#4FA3D9",
    "engine-lost": "#E05252",
    "store-fault": "#E05252",
    "discord-pause": "#E5B53B",
    "target-dead": "#E05252",
    "chart-events": "#4FA3D9",
    "chart-notifications": "#F2A541",
}
"""Every domain variable with its dark default; themes may override any of them."""

_COLOUR_FIELDS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)

_BUILTIN_DARK = Theme(
    name=DEFAULT_THEME,
    primary="#4FA3D9",
    secondary="#7E8CE0",
    accent="#F2A541",
    warning="#E5B53B",
    error="#E05252",
    success="#4CC38A",
    foreground="#D8DEE9",
    background="#10141A",
    surface="#171C24",
    panel="#1F2631",
    dark=True,
    variables=dict(DOMAIN_VARIABLES),
)


@dataclass(frozen=True, slots=True)
class ThemeProblem(Exception):
    """A theme file that could not be used, with the file and the offending key."""

    file: Path
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


def default_theme_dir() -> Path:
    """The ``themes/`` folder at the top of a source checkout."""
    return Path(__file__).resolve().parents[2] / "themes"


def _colour(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ThemeProblem(path, key, "must be a colour string")
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ThemeProblem(path, key, f"not a colour: {value!r}") from exc
    return value


def load_theme(path: Path) -> Theme:
    """Read one theme file; raises :class:`ThemeProblem` when it is unusable."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThemeProblem(path, "-", f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ThemeProblem(path, "-", f"invalid TOML: {exc}") from exc
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ThemeProblem(path, "name", "must be a non-empty string")
    if "primary" not in data:
        raise ThemeProblem(path, "primary", "is required")
    colours = {key: _colour(path, key, data[key]) for key in _COLOUR_FIELDS if key in data}
    raw_vars = data.get("variables", {})
    if not isinstance(raw_vars, dict):
        raise ThemeProblem(path, "variables", "must be a table")
    variables = dict(DOMAIN_VARIABLES)
    variables.update({key: _colour(path, f"variables.{key}", v) for key, v in raw_vars.items()})
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeProblem(path, "dark", "must be true or false")
    return Theme(
        name=name,
        primary=colours["primary"],
        secondary=colours.get("secondary"),
        accent=colours.get("accent"),
        warning=colours.get("warning"),
        error=colours.get("error"),
        success=colours.get("success"),
        foreground=colours.get("foreground"),
        background=colours.get("background"),
        surface=colours.get("surface"),
        panel=colours.get("panel"),
        boost=colours.get("boost"),
        dark=dark,
        variables=variables,
    )


def load_themes(directories: Iterable[Path] | None = None) -> dict[str, Theme]:
    """Every valid theme in ``directories`` (default: :func:`default_theme_dir`), by name.

    Invalid files are logged and skipped; the built-in dark theme is always present.
    """
    themes = {DEFAULT_THEME: _BUILTIN_DARK}
    for directory in directories or [default_theme_dir()]:
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = load_theme(path)
            except ThemeProblem as problem:
                log.warning("theme skipped", extra={"ctx": {"problem": str(problem)}})
                continue
            themes[theme.name] = theme
    return themes


def select_theme(themes: dict[str, Theme], name: str | None) -> Theme:
    """The theme called ``name``, else the dark default."""
    if name and name in themes:
        return themes[name]
    if name:
        log.warning("unknown theme; using the default", extra={"ctx": {"theme": name}})
    return themes.get(DEFAULT_THEME, _BUILTIN_DARK)
