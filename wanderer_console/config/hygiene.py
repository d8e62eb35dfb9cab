"""Secret hygiene: config files other users can read, and secrets pasted into the wrong field.

Both checks report where (a key path, or the file) and what to do, never the secret itself.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from wanderer_console.config.model import Settings

__all__ = [
    "BOT_TOKEN",
    "INGEST_KEY",
    "WEBHOOK_URL",
    "file_holds_secrets",
    "misplaced_secrets",
    "permission_warning",
]

WEBHOOK_URL: Final = re.compile(r"https?://[^\s/]+/api(?:/v\d+)?/webhooks/\d+/[A-Za-z0-9_\-.]+")
"""A Discord webhook URL (its last segment is the token)."""
BOT_TOKEN: Final = re.compile(r"[A-Za-z0-9_\-]{23,28}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}")
"""A Discord bot token: base64 user id, timestamp and HMAC separated by dots."""
INGEST_KEY: Final = re.compile(r"\bwci_[A-Za-z0-9_\-]{8,}")
"""A console ingest API key (``wanderer-console tenant add`` prints them)."""

_SECRET_KEYS: Final = frozenset({"api_key", "bot_token", "webhook_secret"})


def _is_secret_key(key: str) -> bool:
    return key in _SECRET_KEYS or key.endswith("webhook_url")


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, str(index)))
    else:
        yield path, value


def file_holds_secrets(data: dict[str, Any]) -> bool:
    """True when parsed TOML sets a non-empty API key, bot token, webhook URL or secret."""
    return any(
        _is_secret_key(path[-1]) and isinstance(value, str) and value.strip()
        for path, value in _leaves(data)
        if path
    )


def permission_warning(path: Path) -> str | None:
    """Why ``path`` (a config file holding secrets) is too open, with the fix; else ``None``."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    who = " and ".join(name for bit, name in ((0o070, "group"), (0o007, "others")) if mode & bit)
    if _kubernetes_volume(path):
        fix = (
            "it comes from a Kubernetes ConfigMap or Secret volume, whose files the kubelet"
            " makes (a chmod is refused on the read-only mount, or undone at the next update):"
            " set defaultMode: 0600 (or 0400) on the volume in the pod spec"
        )
    else:
        fix = f"restrict it with: chmod 600 {path}"
    return f"holds secrets but is readable by {who} (mode {mode:04o}); {fix}"


def _kubernetes_volume(path: Path) -> bool:
    """Whether ``path`` is a file of a mounted ConfigMap or Secret: it resolves into a
    timestamped ``..2026_…`` directory that the volume's ``..data`` link points at."""
    try:
        real = Path(os.path.realpath(path))
        data = real.parent.parent / "..data"
        return real.parent.name.startswith("..") and os.readlink(data) == real.parent.name
    except OSError:
        return False


def _kind(text: str) -> str | None:
    """What kind of secret ``text`` looks like, if any."""
    if WEBHOOK_URL.search(text):
        return "a Discord webhook URL (it contains the webhook's token)"
    if BOT_TOKEN.search(text):
        return "a Discord bot token"
    if INGEST_KEY.search(text):
        return "a console ingest key (wci_...)"
    return None


def _advice(key: str, kind: str) -> str:
    if kind.startswith("a Discord webhook URL"):
        home = "put it in a discord *_webhook_url field"
    elif kind == "a Discord bot token":
        home = "put it in a bot_token field"
    else:
        home = (
            "ingest keys authenticate tools that post to this console and belong in those"
            " tools, not in the map config"
        )
    if _is_secret_key(key):
        return f"looks like {kind}, not a {key}; {home}"
    return (
        f"looks like {kind} in a field that is not secret (shown and logged in clear); {home},"
        " and rotate it if this file was shared"
    )


def misplaced_secrets(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    """``(key path, message)`` for every value that looks like a secret of another field.

    A webhook URL in a channel id or ``url``, a bot token outside ``bot_token``, a webhook URL
    or ingest key in ``api_key``, an ingest key anywhere under ``maps``.
    """
    out: list[tuple[tuple[str, ...], str]] = []
    for path, value in _leaves(settings.model_dump()):
        if not path:
            continue
        secret = isinstance(value, SecretStr)
        text = value.get_secret_value() if secret else value
        if not isinstance(text, str) or not text:
            continue
        kind = _kind(text)
        if kind is None:
            continue
        key = path[-1] if not path[-1].isdigit() else path[-2]
        if key.endswith("webhook_url") and kind.startswith("a Discord webhook URL"):
            continue
        if key == "bot_token" and kind == "a Discord bot token":
            continue
        if key == "webhook_secret" and not kind.startswith("a Discord webhook URL"):
            continue  # a random secret can look like anything but a URL
        out.append((path, _advice(key, kind)))
    return out
