"""Editing the config file on the engine's side: masking, one-key edits and atomic writes.

The engine owns its config file: an attached console sees it masked, sends edits back, and the
engine validates, writes and reloads them (see :mod:`wanderer_console.control.local`).

Secret masking is designed so that **a secret cannot be lost by editing a masked text**:

* :func:`mask_secrets` replaces every secret value (``api_key``, ``bot_token``, ``webhook_secret``,
  ingest keys, the token part of Discord webhook URLs, and whatever else the settings model types
  as a secret, such as ``[store] url`` and ``[hosted] map_api_key``) with a numbered placeholder
  such as ``«secret-3»`` and returns the real values, in placeholder order, next to the masked
  text.
* :func:`unmask_secrets` puts the real values back. It refuses (raises :class:`MaskError`) unless
  every placeholder is still present exactly once and no unknown placeholder appeared, so a secret
  can never be replaced by its mask, dropped, duplicated or moved to another key by a stray edit.
  To change or remove a secret, the operator edits the file on the engine's host.

The operator's text is otherwise written as typed, so comments and layout are kept verbatim.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from wanderer_console.config.redact import secret_values

__all__ = [
    "PLACEHOLDER",
    "MaskError",
    "MaskedText",
    "atomic_write_text",
    "digest",
    "set_value",
    "sync_directory",
    "is_secret_key",
    "mask_secrets",
    "unmask_secrets",
]

PLACEHOLDER = re.compile(r"«secret-(\d+)»")
"""What a masked value looks like in the editor; the number indexes :attr:`MaskedText.secrets`."""

_SECRET_KEY = re.compile(
    r"^(?:api_key|bot_token|webhook_secret|ingest_keys?|[a-z0-9_]*_(?:secret|token))$"
)
_WEBHOOK_KEY = re.compile(r"^[a-z0-9_]*webhook_url$")
_WEBHOOK_TOKEN = re.compile(r"^(https?://[^/]+/api(?:/v\d+)?/webhooks/\d+/)([^/?#\s]+)(.*)$")
# A key (the last part of a dotted one, maybe quoted) and ``=``; the value follows on the same line.
# The value is not consumed, so keys inside an inline table on that line are found too.
_ASSIGNMENT = re.compile(r"(?<![A-Za-z0-9_\-])[\"']?(?P<key>[A-Za-z0-9_\-]+)[\"']?\s*=(?!=)\s*")
_STRING = re.compile(r"\"(?P<basic>(?:[^\"\\\n]|\\.)*)\"|'(?P<literal>[^'\n]*)'")


class MaskError(ValueError):
    """A masked text whose placeholders no longer match the secrets it was made with."""


def is_secret_key(key: str) -> bool:
    """True for keys whose whole value is secret (webhook URLs are handled separately)."""
    return bool(_SECRET_KEY.match(key.lower()))


@dataclass(frozen=True, slots=True)
class MaskedText:
    """A config text with secrets replaced by placeholders, and the real values to restore."""

    text: str
    """What the editor shows."""
    secrets: tuple[str, ...]
    """The real value behind ``«secret-N»``, at index ``N - 1``."""


def _strings_in(value: str) -> list[tuple[int, int]]:
    """Spans of the string bodies at the start of a TOML value (one string, or an array of them)."""
    spans: list[tuple[int, int]] = []
    stripped = value.lstrip()
    offset = len(value) - len(stripped)
    if not stripped or stripped[0] not in "\"'[":
        return spans
    for match in _STRING.finditer(value, offset):
        if value[offset : match.start()].strip(" ,[\t") and spans:
            break
        group = "basic" if match.group("basic") is not None else "literal"
        spans.append(match.span(group))
        offset = match.end()
        if stripped[0] != "[":
            break
    return spans


def mask_secrets(text: str) -> MaskedText:
    """Replace every secret value in ``text`` with a numbered placeholder: the values of secret
    key names (commented-out ones too), the token of a webhook URL, and whatever else the
    settings model types as a secret (``[store] url``, ``[hosted] map_api_key``)."""
    typed = secret_values(text)
    secrets: list[str] = []
    pieces: list[str] = []
    cursor = 0
    for line_start, line in _lines(text):
        body = line  # commented-out keys are masked too: an old key in a comment is still secret
        for match in _ASSIGNMENT.finditer(body):
            key = match.group("key").lower()
            whole = is_secret_key(key)
            webhook = _WEBHOOK_KEY.match(key) is not None
            if not whole and not webhook and not typed:
                continue
            value_start = match.end()
            for start, end in _strings_in(body[value_start:]):
                real = body[value_start + start : value_start + end]
                if not real:
                    continue
                url = _WEBHOOK_TOKEN.match(real) if webhook and not whole else None
                if url is not None:
                    start += len(url.group(1))
                    end = start + len(url.group(2))
                    real = url.group(2)
                elif not whole and real not in typed:
                    continue  # not a secret (a webhook URL that is not one: validation says so)
                secrets.append(real)
                absolute = line_start + value_start + start
                pieces.append(text[cursor:absolute])
                pieces.append(f"«secret-{len(secrets)}»")
                cursor = line_start + value_start + end
    pieces.append(text[cursor:])
    return MaskedText("".join(pieces), tuple(secrets))


def unmask_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """Put the real values back; raise :class:`MaskError` when a placeholder was changed."""
    seen = [int(match.group(1)) for match in PLACEHOLDER.finditer(text)]
    unknown = sorted({n for n in seen if not 1 <= n <= len(secrets)})
    missing = [n for n in range(1, len(secrets) + 1) if n not in seen]
    repeated = sorted({n for n in seen if seen.count(n) > 1})
    if unknown or missing or repeated:
        parts = []
        if missing:
            parts.append(f"missing {_numbers(missing)}")
        if repeated:
            parts.append(f"repeated {_numbers(repeated)}")
        if unknown:
            parts.append(f"unknown {_numbers(unknown)}")
        raise MaskError(
            f"masked secrets were edited ({'; '.join(parts)}): undo that; a secret's value is"
            " changed in the file on the engine's host"
        )
    return PLACEHOLDER.sub(lambda match: secrets[int(match.group(1)) - 1], text)


def _numbers(numbers: list[int]) -> str:
    return ", ".join(f"«secret-{n}»" for n in numbers)


def _lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start = 0
    for line in text.splitlines(keepends=True):
        out.append((start, line))
        start += len(line)
    return out


def sync_directory(directory: Path) -> None:
    """Flush ``directory``'s entries to disk: a file created, renamed into it or removed is
    then still so after a power cut or a crash of the machine."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, keeping the file's mode,
    and its owner and group where this user may set them (root, running ``config restore``).

    A new file is created ``0600`` (it holds secrets); an existing file keeps its permissions
    (``root:wanderer 0640`` stays readable by the engine's group). Readers (the engine's watcher)
    see either the old or the new file, never half of one.

    A ``path`` that is a symlink (to a checkout, a mounted secret) is written through: the file
    it points at is replaced, the temporary file made beside it (a rename does not cross file
    systems), and the link stays. Renaming onto the link itself would turn it into a regular
    file and leave its target stale.
    """
    path = Path(os.path.realpath(path))
    owner: tuple[int, int] | None = None
    try:
        info = path.stat()
        mode, owner = stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
    except FileNotFoundError:
        mode = 0o600
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            with contextlib.suppress(PermissionError):  # another user's file: it becomes ours
                os.chown(tmp, *owner)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def digest(text: str) -> str:
    """A short fingerprint of a config text (what an edit started from)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def set_value(text: str, toml_path: tuple[str | int, ...], value: Any) -> str:
    """``text`` with one key set (tables created as needed), comments and layout kept.

    An integer in ``toml_path`` is an entry of an array of tables (``("maps", "home",
    "trackers", 1, "enabled")``: the second ``[[maps.home.trackers]]``), which must exist.
    Raises :class:`ValueError` when a part of the path is not a table, and tomlkit's parse error
    when ``text`` is not TOML.
    """
    document = tomlkit.parse(text)
    table: Any = document
    where = ".".join(str(part) for part in toml_path[:-1])
    for key in toml_path[:-1]:
        if isinstance(key, int):
            if not isinstance(table, AoT | list) or not 0 <= key < len(table):
                raise ValueError(f"{where}: no entry {key} in an array of tables")
        elif key not in table:
            table[key] = tomlkit.table()
        table = table[key]
        if not isinstance(table, Table | dict | AoT | list):
            raise ValueError(f"{where} is not a table")
    table[toml_path[-1]] = value
    return tomlkit.dumps(document)
