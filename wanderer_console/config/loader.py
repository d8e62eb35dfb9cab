"""Load the settings from TOML plus environment, reporting problems with file, line and key."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from wanderer_console.config.hygiene import (
    file_holds_secrets,
    misplaced_secrets,
    permission_warning,
)
from wanderer_console.config.legacy_env import legacy_overrides
from wanderer_console.config.model import ENVIRON, Settings

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "Problem",
    "default_config_path",
    "load_settings",
    "parse_settings_text",
    "secret_warnings",
]

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")
_SETTINGS_ERROR_FIELD = re.compile(r'field "([^"]+)"')
_ENV_PREFIX = "WANDERER_CONSOLE_"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, located as precisely as we can."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every located issue."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Validated settings plus where they came from."""

    settings: Settings
    path: Path | None
    legacy_variables: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()
    """Secret hygiene: a config file others can read, secrets in the wrong field (no values)."""


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$WANDERER_CONSOLE_CONFIG``, else ``$XDG_CONFIG_HOME/wanderer-console/config.toml``."""
    env = os.environ if environ is None else environ
    if env.get("WANDERER_CONSOLE_CONFIG"):
        return Path(env["WANDERER_CONSOLE_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wanderer-console" / "config.toml"


def _split_dotted(text: str) -> list[str]:
    parts: list[str] = []
    for match in re.finditer(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', text):
        parts.append(next(g for g in match.groups() if g is not None))
    return parts


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map every table header and key path in a TOML text to its line number (1-based)."""
    lines: dict[tuple[str, ...], int] = {}
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header and stripped.startswith("["):
            table = _split_dotted(header.group(1))
            lines.setdefault(tuple(table), number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            path = (*table, *_split_dotted(assign.group(1)))
            lines.setdefault(path, number)
    return lines


def _locate(loc: tuple[str | int, ...], key_lines: dict[tuple[str, ...], int]) -> int | None:
    path = tuple(str(part) for part in loc)
    # A table only written as sub-tables ([http.esi]) is located at its first sub-table.
    nested = [line for key, line in key_lines.items() if key[: len(path)] == path]
    if path and path not in key_lines and nested:
        return min(nested)
    while path:
        if path in key_lines:
            return key_lines[path]
        path = path[:-1]
    return None


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_settings_text(
    text: str,
    *,
    file: str = "<config>",
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, tuple[str, ...]]:
    """Validate a TOML text (plus environment); raise :class:`ConfigError` with located problems."""
    env = dict(os.environ if environ is None else environ)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        line = int(match.group(1)) if match else None
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise ConfigError([Problem(file, line, "(syntax)", f"invalid TOML: {message}")]) from exc
    overrides, used = legacy_overrides(env)
    data = _merge(data, overrides)
    try:
        settings = _build(data, env)
    except SettingsError as exc:
        # pydantic-settings parses a table-valued variable as JSON before validation and raises
        # this (no variable named) when it is not JSON; name the variable and the fix instead.
        raise ConfigError([_environment_problem(exc, env)]) from exc
    except ValidationError as exc:
        key_lines = _key_lines(text)
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            key = ".".join(str(part) for part in loc) or "(root)"
            line = _locate(loc, key_lines)
            source = file if line is not None or not used else f"{file} (or legacy environment)"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(Problem(source, line, key, message))
        raise ConfigError(problems) from exc
    return settings, tuple(used)


def _environment_problem(exc: SettingsError, environ: Mapping[str, str]) -> Problem:
    """A problem naming the ``WANDERER_CONSOLE_*`` variable whose JSON value does not parse.

    The value is never printed: a map table carries API keys and webhook URLs.
    """
    match = _SETTINGS_ERROR_FIELD.search(str(exc))
    field = match.group(1) if match else ""
    prefix = f"{_ENV_PREFIX}{field.upper()}" if field else f"{_ENV_PREFIX}*"
    candidates = sorted(
        name for name in environ if name.upper() == prefix or name.upper().startswith(f"{prefix}__")
    )
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        exact = [name for name in candidates if environ[name] == cause.doc]
        candidates = exact or candidates
        detail = f"invalid JSON ({cause.msg} at line {cause.lineno} column {cause.colno})"
    else:
        detail = f"cannot be read ({cause or exc})"
    name = candidates[0] if candidates else prefix
    advice = (
        f'it must hold valid JSON (a table is an object: {name}=\'{{"key": "value"}}\', a'
        f' list is ["a", "b"]), or set table keys one by one ({name}__KEY=value);'
        " fix it or unset it"
    )
    return Problem("(environment)", None, name, f"{detail}; {advice}")


def _build(data: dict[str, Any], environ: Mapping[str, str]) -> Settings:
    token = ENVIRON.set(environ)
    try:
        return Settings(**data)
    finally:
        ENVIRON.reset(token)


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    required: bool = False,
) -> LoadedConfig:
    """Load the config file at ``path`` (or the default location) plus environment overrides.

    A missing file is fine unless ``required`` (an explicit ``--config``): the environment alone
    can configure a map, as with the notifier.
    """
    env = os.environ if environ is None else environ
    chosen = path if path is not None else default_config_path(env)
    text = ""
    if chosen.exists():
        try:
            text = chosen.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [Problem(str(chosen), None, "(file)", f"cannot read: {exc}")]
            ) from exc
    elif required or path is not None:
        raise ConfigError([Problem(str(chosen), None, "(file)", "file not found")])
    settings, used = parse_settings_text(text, file=str(chosen), environ=env)
    found = chosen if chosen.exists() else None
    return LoadedConfig(settings, found, used, secret_warnings(settings, text, found))


def secret_warnings(settings: Settings, text: str, path: Path | None) -> tuple[Problem, ...]:
    """Located secret-hygiene warnings for loaded settings (never carrying a secret's value)."""
    out: list[Problem] = []
    file = str(path) if path is not None else "(environment)"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = {}
        opened = permission_warning(path) if file_holds_secrets(data) else None
        if opened is not None:
            out.append(Problem(file, None, "(file)", opened))
    key_lines = _key_lines(text) if path is not None else {}
    for loc, message in misplaced_secrets(settings):
        line = key_lines.get(loc) or (key_lines.get(loc[:-1]) if loc[-1].isdigit() else None)
        where = file if line or _in_file(data, loc) else "(environment)"
        out.append(Problem(where, line, ".".join(loc), message))
    return tuple(out)


def _in_file(data: Any, loc: tuple[str, ...]) -> bool:
    """True when the parsed file itself sets the value at ``loc`` (not the environment)."""
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def load_config(args: Any) -> LoadedConfig | None:
    """The settings ``--config`` (or the default places) give, for a command that needs them.

    Secret-hygiene warnings go to stderr before anything else is printed. When the configuration
    is invalid, its problems and the advice to run ``config check`` go to stderr and the result
    is ``None`` (the command then exits 1).
    """
    path = getattr(args, "config", None)
    try:
        loaded = load_settings(path, required=path is not None)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(
            "fix the configuration, or check it with: wanderer-console config check",
            file=sys.stderr,
        )
        return None
    for warning in loaded.warnings:  # secret hygiene; before the UI or JSON logs start
        print(f"warning: {warning}", file=sys.stderr)
    return loaded
