"""The TCP control endpoint's bearer token: made once, shown once, stored only as a hash.

``wanderer-console control token`` writes :data:`TOKEN_FILE` (mode 0600) in the data directory
with the SHA-256 of a new random token and prints the token; the engine keeps nothing else. A
token of 256 random bits needs no slow hash: nobody can guess it, and the file never holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["TOKEN_FILE", "TokenCheck", "new_token"]

TOKEN_FILE: Final = "control-token.sha256"
"""In the data directory: the hex SHA-256 of the current token."""
_PREFIX: Final = "wcc_"
_DIGEST: Final = re.compile(r"[0-9a-f]{64}")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(data_dir: Path, show: Callable[[str], None] | None = None) -> str:
    """Make a new token (replacing any earlier one), store its hash, and return it.

    ``data_dir`` must exist (an engine's): it is not created, so a mistyped one fails here
    rather than hold a token no engine reads. ``show`` (printing it) is called before the hash
    replaces the earlier one: when it raises (its reader went away), the earlier token stays
    the one that works, instead of one nobody saw."""
    token = _PREFIX + secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_hash(token) + "\n")
        if show is not None:
            show(token)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return token


class TokenCheck:
    """Compares a presented token with the stored hash (in constant time)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / TOKEN_FILE

    def configured(self) -> bool:
        """Whether a token was made for this data directory."""
        return self._stored() is not None

    def damaged(self) -> bool:
        """Whether the file is there but holds no token hash (edited, truncated, overwritten)."""
        return self.path.exists() and self._stored() is None

    def _stored(self) -> str | None:
        """The stored hash; ``None`` when there is none or the file holds anything else.

        Read as bytes: a damaged file (not UTF-8, not ASCII) stopped the engine at start, or
        made every check raise (a 500); it is no token, and no token is accepted."""
        try:
            raw = self.path.read_bytes()
        except OSError:
            return None
        value = raw.decode("ascii", errors="replace").strip().lower()
        return value if _DIGEST.fullmatch(value) else None

    def accepts(self, presented: str | None) -> bool:
        """True when ``presented`` is the current token (read afresh: a rotation applies now)."""
        stored = self._stored()
        if stored is None or not presented:
            return False
        return hmac.compare_digest(_hash(presented), stored)
