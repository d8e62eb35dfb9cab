"""What the engine says, made safe to show on the operator's terminal.

Names, errors and log lines reach the console from elsewhere (a map's systems and pilots, a
killmail, a Discord or HTTP answer). A control character among them was written to the terminal
as it came: an escape sequence from a remote payload could set the terminal's title, clear the
screen, move the cursor or write the clipboard (terminal injection). :func:`printable` shows each
one as a visible stand-in instead (``ESC`` as ``␛``), and :func:`printable_view` applies it to
every string of a view (a frame, an event page) as it comes in, once, so no screen has to.

Tab and line feed stay (the detail views show multi-line errors; a table cell keeps one line);
Textual drops a carriage return itself.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["printable", "printable_view"]

M = TypeVar("M")

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""C0 controls but tab, line feed and carriage return (Textual drops that one), DEL, and the C1
controls (``\\x9b`` is a CSI too)."""


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ␛ for ESC, ␇ for BEL
    if code == 0x7F:
        return "␡"
    return "\N{REPLACEMENT CHARACTER}"  # a C1 control has no picture of its own


def printable(text: str) -> str:
    """``text`` with each control character (but tab, line feed and carriage return) shown as a
    visible stand-in."""
    return _CONTROL.sub(_picture, text) if _CONTROL.search(text) else text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, BaseModel):
        return printable_view(value)
    if isinstance(value, tuple | list):
        items = [_clean(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if isinstance(value, dict):
        cleaned = {_clean(key): _clean(item) for key, item in value.items()}
        unchanged = all(
            new_key is old_key and new is old
            for (new_key, new), (old_key, old) in zip(cleaned.items(), value.items(), strict=True)
        )
        return value if unchanged and len(cleaned) == len(value) else cleaned
    return value


def printable_view(view: M) -> M:
    """``view`` (a pydantic view of the console API, or a tuple of them) with every string in it
    :func:`printable`; the same object when it holds no control character (the usual case:
    nothing is copied)."""
    if not isinstance(view, BaseModel):
        cleaned: M = _clean(view)
        return cleaned
    changes: dict[str, Any] = {}
    for name in type(view).model_fields:
        value = getattr(view, name)
        cleaned = _clean(value)
        if cleaned is not value:
            changes[name] = cleaned
    return view.model_copy(update=changes) if changes else view
