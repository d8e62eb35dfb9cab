"""Load the settings from TOML plus environment, reporting problems with file, line and key."""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

from wanderer_console.config.hygiene import (
    BOT_TOKEN,
    INGEST_KEY,
    WEBHOOK_URL,
    file_holds_secrets,
    misplaced_secrets,
    permission_warning,
)
from wanderer_console.config.legacy_env import legacy_overrides, legacy_sources
from wanderer_console.config.model import ENVIRON, Settings

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "LoadedConfig",
    "Problem",
    "default_config_path",
    "environment_overrides",
    "file_values",
    "load_settings",
    "overridden_keys",
    "parse_settings_text",
    "secret_warnings",
]

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")
_SETTINGS_ERROR_FIELD = re.compile(r'field "([^"]+)"')
ENV_PREFIX = "WANDERER_CONSOLE_"
"""What the variables of the settings start with (``WANDERER_CONSOLE_CONSOLE__DRY_RUN``)."""


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
    """Secret hygiene (a config file others can read, secrets in the wrong field) and keys of
    the file an environment variable overrides; never a value."""


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
    entries: dict[tuple[str, ...], int] = {}  # array-of-tables headers seen so far
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header and stripped.startswith("["):
            table = _split_dotted(header.group(1))
            lines.setdefault(tuple(table), number)
            if stripped.startswith("[["):
                # [[maps.home.trackers]]: the Nth one is entry N-1, as validation locates it.
                index = entries.get(tuple(table), 0)
                entries[tuple(table)] = index + 1
                table = [*table, str(index)]
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
        line, message = _syntax_problem(text, exc)
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
        variables = legacy_sources(env) if used else {}
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            key = ".".join(str(part) for part in loc) or "(root)"
            # A WANDERER_CONSOLE_* variable wins over the file and the notifier's variables.
            variable = _console_variable_for(loc, env) or _variable_for(loc, variables)
            if variable is not None:
                # The notifier variable set this key: name the variable, as the operator wrote it.
                message = f"{_describe(error)} (it sets {key})"
                problems.append(Problem("(environment)", None, variable, message))
                continue
            line = _locate(loc, key_lines)
            source = file if line is not None or not used else f"{file} (or legacy environment)"
            problems.append(Problem(source, line, key, _describe(error)))
        raise ConfigError(problems) from exc
    return settings, tuple(used)


def _variable_for(
    loc: tuple[str | int, ...], variables: Mapping[tuple[str, ...], str]
) -> str | None:
    """The notifier variable that set the key at ``loc`` (or the list it is an item of)."""
    path = tuple(str(part) for part in loc)
    while path:
        if path in variables:
            return variables[path]
        path = path[:-1]
    return None


def _console_variable_for(loc: tuple[str | int, ...], environ: Mapping[str, str]) -> str | None:
    """The ``WANDERER_CONSOLE_*`` variable that set the value at ``loc``: the key's own
    (``..._CONSOLE__DRY_RUN``), or a table's or list's whose JSON value holds it."""
    names = {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}
    parts = [str(part) for part in loc]
    for size in range(len(parts), 0, -1):
        name = names.get(ENV_PREFIX + "__".join(parts[:size]).upper())
        if name is not None and (size == len(parts) or _holds(environ[name], parts[size:])):
            return name
    return None


def _holds(raw: str, path: list[str]) -> bool:
    """Whether a variable's JSON value (a table or a list) has a value at ``path``."""
    try:
        node: Any = json.loads(raw)
    except ValueError:
        return False
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# -- what a validation error says -----------------------------------------------------------------

_SHOWN_LIMIT = 60
"""A value received is shown up to this many characters."""
_KNOWN_LISTED = 20
"""An unknown key with no near match lists at most this many known keys."""


def _describe(error: ErrorDetails) -> str:
    """The problem in the operator's words: an unknown key with the nearest known one (``did you
    mean 'kill'?``), anything else with the value received (never a secret's)."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc:
        return _unknown_key(str(loc[-1]), _known_keys(loc[:-1]))
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "missing" and "input" in error and _showable(loc, value):
        message += f" (got {_shown(value)})"
    return message


_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{16,}")


def _showable(loc: tuple[str | int, ...], value: Any) -> bool:
    """Whether the value received at ``loc`` may be printed: not a secret field's, and nothing
    that looks like a secret pasted into the wrong field (a webhook URL, a token, a key)."""
    if _is_secret(loc) or isinstance(value, dict | list):
        return False
    if not isinstance(value, str):
        return True
    if any(pattern.search(value) for pattern in (WEBHOOK_URL, BOT_TOKEN, INGEST_KEY)):
        return False
    token = _TOKEN_LIKE.fullmatch(value)
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return not (token and mixed)


def _unknown_key(name: str, known: list[str] | None) -> str:
    text = f"unknown key {name!r}"
    if not known:
        return text
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:
        close = [key for key in known if key.startswith(name) or name.startswith(key)][:1]
    if close:
        return f"{text} (did you mean {close[0]!r}?)"
    listed = sorted(known)
    more = ", …" if len(listed) > _KNOWN_LISTED else ""
    return f"{text}; the keys here are {', '.join(listed[:_KNOWN_LISTED])}{more}"


def _shown(value: Any) -> str:
    """``value`` as it was written (TOML-like): ``"maybe"``, ``3``, ``true``."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"


def _unwrap(annotation: Any) -> list[Any]:
    """The types an annotation may hold (``Annotated``, ``Optional`` and unions opened)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _walk(loc: tuple[str | int, ...]) -> list[Any] | None:
    """The types the settings allow at ``loc`` (``None`` when the path leaves the model)."""
    current: list[Any] = [Settings]
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        following: list[Any] = []
        for kind in current:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                field = kind.model_fields.get(str(part))
                if field is None:
                    field = next((f for f in kind.model_fields.values() if f.alias == part), None)
                if field is not None:
                    following += _unwrap(field.annotation)
            elif get_origin(kind) is dict:
                following += _unwrap(get_args(kind)[1])
            elif get_origin(kind) is list:
                following += _unwrap(get_args(kind)[0])
        if not following:
            return None
        current = following
    return current


def _known_keys(loc: tuple[str | int, ...]) -> list[str] | None:
    """The keys a table at ``loc`` may hold, or ``None`` when any key may do (a map's name)."""
    kinds = _walk(loc)
    if not kinds:
        return None
    keys: list[str] = []
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            keys += [f.alias or name for name, f in kind.model_fields.items()]
    return keys or None


def _is_secret(loc: tuple[str | int, ...]) -> bool:
    """Whether the value at ``loc`` is a secret (a key, a token, a webhook URL): never shown."""
    kinds = _walk(loc)
    if kinds is None:  # unknown to the model: say nothing of it
        return True
    return any(kind is SecretStr for kind in kinds)


# -- where a syntax error is -----------------------------------------------------------------------

_UNCLOSED = ("Unclosed array", "Unclosed inline table")


def _syntax_problem(text: str, exc: tomllib.TOMLDecodeError) -> tuple[int | None, str]:
    """The line to blame for a TOML syntax error, and what to say.

    The parser stops where it noticed the error: for an array or inline table left open that is
    a later line (or the end of the file), so the line that opened it is named instead, when it
    is still open at the end of the file.
    """
    if text.startswith("\ufeff"):  # TOML takes none; the parser says only "Invalid statement"
        return 1, (
            "the file starts with an invisible byte-order mark (U+FEFF, written by some Windows"
            " editors): save it as UTF-8 without BOM"
        )
    raw = str(exc)
    match = _TOML_POSITION.search(raw)
    message = _TOML_POSITION.sub("", raw).replace("(at end of document)", "").strip()
    if match is not None:
        line, column = int(match.group(1)), int(match.group(2))
    else:
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    never_closed = set(_open_brackets(text))
    open_then = [b for b in _open_brackets(text, (line, column)) if b in never_closed]
    if open_then:
        opener, _column_at, kind = open_then[-1]
        what = "array" if kind == "[" else "inline table"
        closer = "]" if kind == "[" else "}"
        if opener == line:
            return line, f"{message}: the {what} is not closed; close it with {closer}"
        where = f"line {line}" if match is not None else "the end of the file"
        return opener, (
            f"{message}: the {what} opened on line {opener} is not closed (the parser stopped"
            f" at {where}); close it with {closer}"
        )
    if "Illegal character '\\n'" in message:
        message += ": a string is not closed on this line (close it with its quote)"
    return (line if match is not None else None), message


def _open_brackets(text: str, until: tuple[int, int] | None = None) -> list[tuple[int, int, str]]:
    """The arrays and inline tables still open at ``until`` (line, column; default: the end),
    outermost first, as ``(line, column, "[" or "{")``. Strings and comments are skipped; a ``[``
    opening a line outside a value is a table header."""
    stack: list[tuple[int, int, str]] = []
    number, index, in_value = 1, 0, False
    length = len(text)
    while index < length:
        if until is not None and (
            number > until[0] or (number == until[0] and _column(text, index) >= until[1])
        ):
            break
        char = text[index]
        if char == "\n":
            number += 1
            if not stack:
                in_value = False
            index += 1
            continue
        if char in " \t\r":
            index += 1
            continue
        if char == "#":
            while index < length and text[index] != "\n":
                index += 1
            continue
        if char in "\"'":
            index = _skip_string(text, index)
            continue
        if char == "=" and not stack:
            in_value = True
        elif char in "[{" and (stack or in_value or char == "{"):
            stack.append((number, _column(text, index), char))
        elif char in "]}" and stack:
            stack.pop()
        index += 1
    return stack


def _column(text: str, index: int) -> int:
    return index - (text.rfind("\n", 0, index) + 1) + 1


def _skip_string(text: str, index: int) -> int:
    """The index after the string starting at ``index`` (or the end of its line, unclosed)."""
    quote = text[index]
    triple = text.startswith(quote * 3, index)
    end_mark = quote * 3 if triple else quote
    position = index + len(end_mark)
    while position < len(text):
        if text.startswith(end_mark, position):
            return position + len(end_mark)
        if text[position] == "\\" and quote == '"':
            position += 2
            continue
        if text[position] == "\n" and not triple:
            return position
        position += 1
    return position


def _environment_problem(exc: SettingsError, environ: Mapping[str, str]) -> Problem:
    """A problem naming the ``WANDERER_CONSOLE_*`` variable whose JSON value does not parse.

    The value is never printed: a map table carries API keys and webhook URLs.
    """
    match = _SETTINGS_ERROR_FIELD.search(str(exc))
    field = match.group(1) if match else ""
    prefix = f"{ENV_PREFIX}{field.upper()}" if field else f"{ENV_PREFIX}*"
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
    warnings = secret_warnings(settings, text, found)
    if found is not None:
        warnings += environment_overrides(text, str(found), env)
    return LoadedConfig(settings, found, used, warnings)


def environment_overrides(text: str, file: str, environ: Mapping[str, str]) -> tuple[Problem, ...]:
    """A warning per key the file sets that an environment variable replaces, at the file's
    line and naming the variable (never either value: the key may be a secret).

    The environment wins over the file (``WANDERER_CONSOLE_*``, then the notifier's variables):
    without this the file shows one value, the engine runs on another, and an edit of that key
    changes nothing, with no sign of why.
    """
    key_lines = _key_lines(text)
    out: list[Problem] = []
    for loc, variable in overridden_keys(text, environ).items():
        out.append(
            Problem(
                file,
                _locate(loc, key_lines),
                ".".join(loc),
                f"overridden by the environment variable {variable}: the value here is not"
                f" used (unset {variable} to use it, or change it there)",
            )
        )
    return tuple(out)


def overridden_keys(text: str, environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """The key paths a config text sets that an environment variable overrides, each with the
    variable's name (``{}`` for a text that is not TOML: validation says what is wrong)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    _overrides, used = legacy_overrides(environ)
    variables = legacy_sources(environ) if used else {}
    out: dict[tuple[str, ...], str] = {}
    for loc in _leaves(data):
        variable = _console_variable_for(loc, environ) or _variable_for(loc, variables)
        if variable is not None:
            out[loc] = variable
    return out


def file_values(text: str | None) -> dict[tuple[str, ...], Any]:
    """Every value a config text sets, by key path (``{}`` for none, or a text not TOML)."""
    try:
        data = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError:
        return {}
    out: dict[tuple[str, ...], Any] = {}
    for loc in _leaves(data):
        node: Any = data
        for part in loc:
            node = node[part]
        out[loc] = node
    return out


def _leaves(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The key paths of a parsed TOML table's values (a list, even of tables, is one value)."""
    out: list[tuple[str, ...]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            out += _leaves(value, (*prefix, key))
        else:
            out.append((*prefix, key))
    return out


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


CONFIG_INVALID = "fix the configuration, or check it with: wanderer-console config check"
"""What a command says after the problems of a configuration it cannot load."""


def load_config(
    args: Any, *, refusal: Callable[[str, list[str]], object] | None = None
) -> LoadedConfig | None:
    """The settings ``--config`` (or the default places) give, for a command that needs them.

    Secret-hygiene warnings go to stderr before anything else is printed. When the configuration
    is invalid, its problems go to stderr, then :data:`CONFIG_INVALID` (through ``refusal``,
    with the problems, for a command that refuses in its own format: a JSON command's object on
    stdout) and the result is ``None`` (the command then exits 1).
    """
    path = getattr(args, "config", None)
    try:
        loaded = load_settings(path, required=path is not None)
    except ConfigError as exc:
        problems = [str(problem) for problem in exc.problems]
        for problem in problems:
            print(problem, file=sys.stderr)
        if refusal is not None:
            refusal(CONFIG_INVALID, problems)
        else:
            print(CONFIG_INVALID, file=sys.stderr)
        return None
    for warning in loaded.warnings:  # secret hygiene; before the UI or JSON logs start
        print(f"warning: {warning}", file=sys.stderr)
    return loaded
