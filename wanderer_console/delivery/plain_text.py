"""The plain-text form of a notification, for targets configured to receive text only.

Wanderer Notifier could send a notification as a line of text instead of a rich embed
(PARITY.md §5.3, "Plain-text fallbacks"); some groups want that for a channel read on phones or
bridged to other chats. :func:`plain_text` turns a rendered message into one with no embeds:
its mentions first (as they were), then per embed its title (with its link in ``<…>``, so
Discord shows no preview), description, fields as ``Name: value`` lines and footer. The text
was escaped when the embed was rendered, ``@everyone``/``@here`` in it are neutralised again,
``allowed_mentions`` is kept, and the whole fits Discord's 2,000-character content limit
(the embeds' text is cut with an ellipsis, never the mentions before it). A map chooses
which routes get it (``maps.<key>.discord.text_only``).
"""

from __future__ import annotations

from typing import Any

from wanderer_console.domain.discord_limits import (
    CONTENT_MAX,
    neutralize_mass_mentions,
    truncate,
)

__all__ = ["plain_text"]


def _embed_lines(embed: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    title = str(embed.get("title") or "").strip()
    url = str(embed.get("url") or "").strip()
    if title:
        lines.append(f"**{title}**" + (f" <{url}>" if url else ""))
    description = str(embed.get("description") or "").strip()
    if description:
        lines.append(description)
    for field in embed.get("fields") or []:
        if not isinstance(field, dict):
            continue
        name = str(field.get("name") or "").strip()
        value = str(field.get("value") or "").strip()
        if "\n" in value:
            lines.append(f"{name}:" if name else "")
            lines.extend(value.split("\n"))
        elif name or value:
            lines.append(f"{name}: {value}" if name else value)
    footer = embed.get("footer")
    text = str(footer.get("text") or "").strip() if isinstance(footer, dict) else ""
    if text:
        lines.append(f"-# {text}")
    return lines


def plain_text(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a rendered message) as a content-only message (see the module docstring)."""
    prefix = str(body.get("content") or "").strip()
    blocks = ["\n".join(_embed_lines(embed)) for embed in body.get("embeds") or []]
    text = neutralize_mass_mentions("\n\n".join(block for block in blocks if block))
    # The embeds' text gives way to the mentions (already within the limit): a cut mention
    # would ping nobody.
    prefix = truncate(prefix, CONTENT_MAX)
    text = truncate(text, max(0, CONTENT_MAX - len(prefix) - (1 if prefix else 0)))
    content = f"{prefix}\n{text}" if prefix and text else prefix or text
    out = {key: value for key, value in body.items() if key not in ("embeds", "content")}
    out["content"] = content or "(empty notification)"
    return out
