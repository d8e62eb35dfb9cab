"""Config texts without their secrets, for the audit history, and secrets put back on restore.

:func:`redact_config` replaces every secret value in a TOML text with :data:`PLACEHOLDER`, keeping
comments and layout. Secrets are found three ways, so none survives a shape the model did not
expect:

* structurally (tomlkit): every string at a key the settings model types ``SecretStr`` (``api_key``,
  ``bot_token``, ``webhook_secret``, every ``*_webhook_url``), or whose name says it is secret;
* by value: the secrets found that way, wherever else they appear (a comment, another field);
* by shape, over the whole text: ``key = "..."`` for a secret key name (commented-out keys, or a
  text that is not valid TOML, such as a rejected edit), Discord webhook URLs, bot tokens and
  ingest keys anywhere.

:func:`restore_secrets` fills the placeholders of a stored text back from the current config file
(same key) or leaves the key to the environment when the loader finds it there, and refuses, with
the keys named, when neither has it: a placeholder is never written into a live config as a value.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Final, Union, get_args, get_origin

import tomlkit
from pydantic import BaseModel, SecretStr
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Array, String, StringType

from wanderer_console.config.hygiene import BOT_TOKEN, INGEST_KEY, WEBHOOK_URL
from wanderer_console.config.loader import ConfigError, parse_settings_text
from wanderer_console.config.model import Settings

__all__ = [
    "PLACEHOLDER",
    "RestoredText",
    "UnresolvedSecrets",
    "redact_config",
    "restore_secrets",
    "secret_values",
]

PLACEHOLDER: Final = "«redacted»"
"""What a secret looks like in a stored config version; ``config restore`` fills it back."""

_SECRET_NAME = re.compile(
    r"^(?:api_key|bot_token|webhook_secret|ingest_keys?|[a-z0-9_]*_(?:secret|token)"
    r"|[a-z0-9_]*webhook_url)$"
)
_ASSIGNED_STRING = re.compile(
    r"(?<![A-Za-z0-9_\-])[\"']?(?P<key>[A-Za-z0-9_\-]+)[\"']?\s*=\s*"
    r"(?:\"(?P<basic>(?:[^\"\\\n]|\\.)*)\"|'(?P<literal>[^'\n]*)')"
)
_MIN_KNOWN: Final = 8
"""Shorter secrets are not searched for elsewhere: they would match ordinary words."""
_SIMPLE = re.compile(r"^[^'\"\\\n\x00-\x1f\x7f]*$")

_SECRET: Final = "secret"
Shape = type[BaseModel] | tuple[str, Any] | str | None
"""What a key holds: a model, ``("dict", shape)`` for any key, :data:`_SECRET`, or nothing."""


def _shape(annotation: Any) -> Shape:
    """The :data:`Shape` of a field's annotation (``X | None`` and ``Annotated`` unwrapped)."""
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        shapes = [_shape(arg) for arg in get_args(annotation) if arg is not type(None)]
        return next((s for s in shapes if s is not None), None)
    if origin is dict:
        return ("dict", _shape(get_args(annotation)[1]))
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return _SECRET
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _child(shape: Shape, key: str) -> Shape:
    if isinstance(shape, tuple):
        return shape[1]  # type: ignore[no-any-return]
    if isinstance(shape, type):
        field_info = shape.model_fields.get(key)
        return None if field_info is None else _shape(field_info.annotation)
    return None


def _is_secret(shape: Shape, key: str) -> bool:
    return shape == _SECRET or bool(_SECRET_NAME.match(key.lower()))


Hole = tuple[Any, str, String, tuple[str, ...]]
"""A secret string in a tomlkit document: its container, key, item and key path."""


def _secret_strings(node: Any, shape: Shape, path: tuple[str, ...]) -> Iterator[Hole]:
    """Every non-empty string a secret key holds (arrays of them too) under ``node``."""
    for key in list(node.keys()):
        item = node[key]
        child = _child(shape, str(key))
        if hasattr(item, "keys"):  # table, inline table or dotted-key proxy
            yield from _secret_strings(item, child, (*path, str(key)))
        elif isinstance(item, String) and _is_secret(child, str(key)):
            yield node, str(key), item, (*path, str(key))
        elif isinstance(item, Array) and _is_secret(child, str(key)):
            for index, element in enumerate(item):
                if isinstance(element, String):
                    yield item, str(index), element, (*path, str(key), str(index))


def _like(item: String, value: str) -> String:
    """``value`` as a TOML string of ``item``'s kind when it fits there, else a basic string."""
    kind = item.type if _SIMPLE.match(value) else StringType.SLB
    return String.from_raw(value, type_=kind)


def _put(container: Any, key: str, value: Any) -> None:
    if isinstance(container, Array):
        container[int(key)] = value
    else:
        container[key] = value


def redact_config(text: str) -> str:
    """``text`` with every secret value replaced by :data:`PLACEHOLDER` (layout kept)."""
    known: set[str] = set()
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError:
        pass  # not TOML (a rejected edit): the sweep below still finds secret-looking values
    else:
        for container, key, item, _path in list(_secret_strings(doc, Settings, ())):
            value = str(item)
            if value and value != PLACEHOLDER:
                known.add(value)
                _put(container, key, _like(item, PLACEHOLDER))
        text = doc.as_string()
    return redact_text(text, known)


def secret_values(text: str) -> set[str]:
    """Every non-empty string a key the settings model types ``SecretStr`` holds in ``text``,
    found by structure (``[store] url``, ``[hosted] map_api_key``, a map's ``api_key``, ...);
    empty when the text is not TOML."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError:
        return set()
    return {
        value for *_where, item, _path in _secret_strings(doc, Settings, ()) if (value := str(item))
    }


def redact_text(text: str, known: set[str] | frozenset[str] = frozenset()) -> str:
    """``text`` with known secrets and secret-looking values replaced (works on any text)."""
    # What secret keys hold is searched for elsewhere too (a text tomlkit could not read).
    known = {*known, *(_assigned_secret(match) for match in _ASSIGNED_STRING.finditer(text))}
    for value in sorted(known, key=len, reverse=True):
        if len(value) >= _MIN_KNOWN:
            text = text.replace(value, PLACEHOLDER)
    for pattern in (WEBHOOK_URL, BOT_TOKEN, INGEST_KEY):
        text = pattern.sub(PLACEHOLDER, text)
    return _ASSIGNED_STRING.sub(_mask_assignment, text)


def _assigned_secret(match: re.Match[str]) -> str:
    """The value of a ``key = "..."`` match when the key is secret, else ``""``."""
    body = match.group("basic") if match.group("basic") is not None else match.group("literal")
    return str(body) if _SECRET_NAME.match(match.group("key").lower()) else ""


def _mask_assignment(match: re.Match[str]) -> str:
    group = "basic" if match.group("basic") is not None else "literal"
    body = match.group(group)
    if not body or body == PLACEHOLDER or not _SECRET_NAME.match(match.group("key").lower()):
        return match.group(0)
    start, end = match.span(group)
    whole = match.group(0)
    return whole[: start - match.start()] + PLACEHOLDER + whole[end - match.start() :]


class UnresolvedSecrets(Exception):
    """Placeholders that neither the current config file nor the environment can fill."""

    def __init__(self, keys: list[str], *, secret: bool = True) -> None:
        self.keys = keys
        self.secret = secret
        """False when the placeholders sit at keys that are not secret fields."""
        super().__init__(", ".join(keys))


@dataclass(frozen=True, slots=True)
class RestoredText:
    """A stored config text with its secrets back, and where each came from."""

    text: str
    sources: dict[str, str] = field(default_factory=dict)
    """Dotted key → ``config file`` or ``environment``."""


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _string_leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _string_leaves(child, (*path, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _string_leaves(child, (*path, str(index)))
    elif isinstance(value, str):
        yield ".".join(path), value


def restore_secrets(
    stored: str, current: str, *, environ: Mapping[str, str] | None = None
) -> RestoredText:
    """Fill the placeholders of ``stored`` from ``current`` (the file as it is) or the environment.

    A secret the current file sets at the same key is copied from it. Otherwise the key is left
    out of the text, so the environment keeps supplying it (``WANDERER_CONSOLE_*`` or a legacy
    variable, exactly as the loader reads them) and no environment secret is copied into the
    file. Raises :class:`UnresolvedSecrets` naming every key that neither provides.
    """
    try:
        doc = tomlkit.parse(stored)
    except TOMLKitError:
        return RestoredText(stored)  # the caller's validation reports the syntax error
    try:
        now = tomllib.loads(current)
    except tomllib.TOMLDecodeError:
        now = {}  # a broken current file offers no secrets; the environment still may
    sources: dict[str, str] = {}
    left_out: list[str] = []
    holes = [hole for hole in _secret_strings(doc, Settings, ()) if str(hole[2]) == PLACEHOLDER]
    # Deepest and last first, so removing an array element does not shift the ones still to do.
    for container, key, item, path in reversed(holes):
        dotted = ".".join(path)
        value = _lookup(now, path)
        if isinstance(value, str) and value and PLACEHOLDER not in value:
            _put(container, key, _like(item, value))
            sources[dotted] = "config file"
        else:
            del container[int(key) if isinstance(container, Array) else key]
            left_out.append(dotted)
    text = doc.as_string()
    if left_out:
        missing = _missing_from_environment(text, left_out, environ)
        if missing:
            raise UnresolvedSecrets(sorted(missing))
        sources.update(dict.fromkeys(left_out, "environment"))
    leftover = [key for key, value in _string_leaves(tomllib.loads(text)) if PLACEHOLDER in value]
    if leftover:
        raise UnresolvedSecrets(leftover, secret=False)
    return RestoredText(text, dict(sorted(sources.items())))


def _missing_from_environment(
    text: str, keys: list[str], environ: Mapping[str, str] | None
) -> list[str]:
    """Which of ``keys`` the loader leaves unset for ``text`` plus the environment."""
    try:
        settings, _legacy = parse_settings_text(text, environ=environ)
    except ConfigError as exc:
        # A problem at the key itself says the environment lacks it (a required key); any other
        # problem is the version's own, reported by the caller's validation.
        problems = {problem.key for problem in exc.problems}
        flagged = [key for key in keys if key in problems]
        if not flagged:
            return []
        # Stand-ins at those keys let the rest validate, so the optional keys the environment
        # lacks are named in the same refusal. This text is never written anywhere.
        rest = [key for key in keys if key not in problems]
        return flagged + _missing_from_environment(_stand_ins(text, flagged), rest, environ)
    values = _flat_secrets(settings)
    return [key for key in keys if not values.get(key)]


def _stand_ins(text: str, keys: list[str]) -> str:
    doc = tomlkit.parse(text)
    for key in keys:
        node: Any = doc
        *parents, last = key.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, Array) else node[part]
        _put(node, last, PLACEHOLDER)
    return doc.as_string()


def _flat_secrets(settings: Settings) -> dict[str, str]:
    """Dotted key → value of every secret the settings hold."""
    out: dict[str, str] = {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, (*path, str(key)))
        elif isinstance(value, SecretStr):
            out[".".join(path)] = value.get_secret_value()

    walk(settings.model_dump(), ())
    return out
