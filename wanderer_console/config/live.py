"""Which changed settings apply live and which wait for a restart; the running settings' holder.

Every field of the settings model declares, next to its type, :class:`~.section.Live` or
:class:`~.section.Restart` (with the reason). :func:`applies` walks the model along a changed
key (``maps.home.discord.webhook_url``, ``http.esi.timeout_seconds``, ``keymap.app.quit``) to the
field that declares it; a dict of sections (``maps``) says what adding or removing an entry
means, a dict of plain values (``http``, ``keymap``) answers for all its keys.
:func:`restart_keys` and :func:`restart_summary` list the restart-needing keys for the docs.

:class:`LiveSettings` holds the running :class:`~.model.Settings`. The runtime owns one;
components read :attr:`LiveSettings.current` (or call the holder) when they use a value, and
those that keep a derived value (the dispatcher's pacing, the log level) subscribe to
:meth:`LiveSettings.replace`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from wanderer_console.config.model import Settings
from wanderer_console.config.section import LIVE, Live, Restart, declared, is_section

__all__ = [
    "LiveSettings",
    "Subscriber",
    "applies",
    "apply_log_level",
    "declarations",
    "entries_changed",
    "restart_keys",
    "restart_summary",
]

ANY = "*"
"""Stands for any entry of a dict field in :func:`declarations` (``maps.*.url``)."""

Subscriber = Callable[[Settings, Settings], None]
"""Called with ``(old, new)`` after the running settings were replaced."""


def _entry_model(annotation: Any) -> type[BaseModel] | None:
    """The section a ``dict[str, Section]`` field holds per entry (``None`` for other types)."""
    if get_origin(annotation) is dict:
        value = get_args(annotation)[1]
        if is_section(value):
            return value
    return None


def _strictest(model: type[BaseModel], key: str) -> Live | Restart:
    """A whole section: restart when any field below it needs one."""
    for _path, marker in _walk(model, key):
        if isinstance(marker, Restart):
            return Restart(f"{key} holds keys that need a restart")
    return LIVE


def applies(key: str, *, entries_changed: Collection[str] = ()) -> Live | Restart:
    """Whether a change of ``key`` applies live or needs a restart (with the reason).

    ``entries_changed`` names the dict entries added or removed by the change (``maps.new``,
    from :func:`entries_changed`): a key under one of them answers with the declaration of the
    dict field itself (a map added or removed needs a restart). An unknown key needs a restart.
    """
    parts = key.split(".")
    model: type[BaseModel] = Settings
    i = 0
    while i < len(parts):
        field = model.model_fields.get(parts[i])
        if field is None:
            return Restart(f"{key} is not a setting this version knows")
        annotation = field.annotation
        if is_section(annotation):
            model = annotation
            if i + 1 == len(parts):
                return _strictest(model, key)
            i += 1
            continue
        marker = declared(field)
        if marker is None:  # check_declared makes this impossible for the shipped model
            return Restart(f"{key} declares neither Live nor Restart")
        entry = _entry_model(annotation)
        if entry is None or i + 2 >= len(parts):
            return marker  # a plain value, a dict of plain values, a whole dict or one entry
        if ".".join(parts[: i + 2]) in entries_changed:
            return marker
        model = entry
        i += 2
    return Restart(f"{key} is not a setting this version knows")


def entries_changed(old: Settings, new: Settings) -> set[str]:
    """Entries of dict-of-section fields added or removed (``{"maps.new"}``)."""
    out: set[str] = set()
    for name, field in Settings.model_fields.items():
        if _entry_model(field.annotation) is not None:
            before, after = getattr(old, name), getattr(new, name)
            out.update(f"{name}.{entry}" for entry in set(before) ^ set(after))
    return out


def _walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Live | Restart]]:
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        annotation = field.annotation
        if is_section(annotation):
            yield from _walk(annotation, path)
            continue
        marker = declared(field)
        if marker is None:
            raise TypeError(f"{path} declares neither Live nor Restart")
        entry = _entry_model(annotation)
        if entry is None:
            if get_origin(annotation) is dict:
                path = f"{path}.{ANY}"
            yield path, marker
        else:
            yield f"{path}.{ANY}", marker  # an entry added or removed
            yield from _walk(entry, f"{path}.{ANY}")


def declarations() -> list[tuple[str, Live | Restart]]:
    """Every key of the model (``*`` for any entry of a dict) with its declaration."""
    return list(_walk(Settings, ""))


def restart_keys() -> list[tuple[str, str]]:
    """``(key, why)`` for every key whose change needs a restart, in model order."""
    return [(key, marker.why) for key, marker in declarations() if isinstance(marker, Restart)]


def restart_summary() -> str:
    """The restart keys in short, for the docs: a top-level section whose every key needs a
    restart as ``[name]``, any other key by its dotted name (``*``: any entry)."""
    found = declarations()
    parts: list[str] = []
    for name in Settings.model_fields:
        under = [(k, m) for k, m in found if k == name or k.startswith(f"{name}.")]
        if all(isinstance(m, Restart) for _k, m in under):
            parts.append(f"[{under[0][0]}]" if len(under) == 1 else f"[{name}]")
        else:
            parts += [k for k, m in under if isinstance(m, Restart)]
    return ", ".join(parts)


def apply_log_level(old: Settings, new: Settings) -> None:
    """A :class:`LiveSettings` subscriber: the console's loggers follow ``console.log_level``."""
    if new.console.log_level != old.console.log_level:
        logging.getLogger("wanderer_console").setLevel(new.console.log_level)


class LiveSettings:
    """The running settings: one reference, read at use, replaced whole by a reload.

    Calling the holder returns :attr:`current`, so it serves wherever a
    ``Callable[[], Settings]`` getter is taken.
    """

    def __init__(self, settings: Settings) -> None:
        self._current = settings
        self._subscribers: list[Subscriber] = []

    @property
    def current(self) -> Settings:
        """The settings in force now."""
        return self._current

    def __call__(self) -> Settings:
        return self._current

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(old, new)`` after every :meth:`replace`, in subscription order."""
        self._subscribers.append(callback)

    def replace(self, new: Settings) -> Settings:
        """Make ``new`` the running settings, tell the subscribers, return the old settings.

        When a subscriber raises, the old settings are put back, every subscriber is told
        ``(new, old)`` (errors then are suppressed) and the error is raised.
        """
        old = self._current
        self._current = new
        try:
            for callback in self._subscribers:
                callback(old, new)
        except BaseException:
            self._current = old
            for callback in self._subscribers:
                with contextlib.suppress(Exception):
                    callback(new, old)
            raise
        return old
