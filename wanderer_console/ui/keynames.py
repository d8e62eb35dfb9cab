"""The key names a ``[keymap]`` entry may use: Textual's, checked before they are applied.

Textual takes any string as a binding's key, so ``ctrl+shfit+x`` (or ``F2``: key names are
lower case) took the binding's key away for one no terminal ever sends, without a word.
:func:`key_problem` says what is wrong with one entry's keys, in the words of the toast.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from textual import _keyboard_protocol as keyboard_protocol
from textual.keys import KEY_NAME_REPLACEMENTS, Keys, _character_to_key, key_to_character

__all__ = ["MODIFIERS", "key_problem", "valid_key"]

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
"""The modifiers Textual reports (``ctrl+shift+up``), in the order the toast names them."""

_COMMON = (
    "f1-f35, enter, escape, tab, space, backspace, delete, insert, home, end, pageup, pagedown,"
    " up, down, left, right"
)
_VALID_MODIFIERS = f"modifiers: {', '.join(MODIFIERS)}"
VALID_KEYS = f"keys: a character, {_COMMON}, or a name such as question_mark; {_VALID_MODIFIERS}"
"""What a key may be, as the toast says it."""


@lru_cache(1)
def _names() -> frozenset[str]:
    """Every named key Textual can report (without modifiers)."""
    names = {key.value.rpartition("+")[2] for key in Keys}
    names |= set(keyboard_protocol.FUNCTIONAL_KEYS.values())
    names |= set(keyboard_protocol.MODIFIER_FUNCTIONAL_KEYS)
    names |= {_character_to_key(chr(code)) for code in range(33, 127)}
    names |= set(KEY_NAME_REPLACEMENTS.values())
    names |= {"space", "newline"}
    return frozenset(name for name in names if name and not name.startswith("<"))


def _known_key(name: str) -> bool:
    if len(name) == 1:
        return unicodedata.category(name)[0] not in "CZ" or name == " "
    return name in _names() or key_to_character(name) is not None


def _problem(key: str) -> str | None:
    """Why one key (``ctrl+o``) is not one, ``None`` when it is."""
    *modifiers, name = key.split("+")
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            shown = modifier or "an empty name"
            return f"{shown} is not a modifier ({_VALID_MODIFIERS})"
    if len(set(modifiers)) < len(modifiers):
        return f"{key} names a modifier twice"
    if not _known_key(name):
        return f"{name or 'an empty name'} is not a key name ({VALID_KEYS})"
    return None


def valid_key(key: str) -> bool:
    """True when ``key`` (one key, ``ctrl+o``) is a key Textual can report."""
    return _problem(key) is None


def key_problem(keys: str) -> str | None:
    """What is wrong with one entry's keys (``"f3,ctrl+o"``, comma-separated), ``None`` when
    each of them is a key; the first problem found."""
    parts = [part.strip() for part in keys.split(",")]
    if not any(parts):
        return "no key given"
    for part in parts:
        if not part:
            continue
        if len(part) == 1:  # a single character (``+`` or ``,`` too), as Textual reads it
            if not _known_key(part):
                return f"{part!r} is not a key name ({VALID_KEYS})"
            continue
        problem = _problem(part)
        if problem is not None:
            return problem
    return None
