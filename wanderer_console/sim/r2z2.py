"""Fake zKillboard R2Z2 feed (PROTOCOLS.md §8) that enforces the feed's limits.

Serves ``/ephemeral/sequence.json`` and ``/ephemeral/<sequence>.json`` (404 until published) as a
Starlette app; run it with :class:`~wanderer_console.sim.server.AppServer`. It is strict on
purpose so tests prove a client behaves:

- two requests closer than ``min_interval`` → 429 with ``Retry-After`` (whole seconds, rounded
  up; ``retry_after=None`` omits the header);
- the same missing sequence asked again sooner than ``miss_cooldown`` after its 404 → 403 and a
  ban of ``ban_seconds`` during which every request is 403'd;
- no or blank ``User-Agent`` → 403.

Defaults are the real limits (15 requests/s, 6 s after a miss, 1 h ban); tests shrink them.
Fault flags make the next requests fail: ``fail_next`` (500), ``garbage_next`` (200 with a
non-JSON body), ``throttle_next`` (429), ``forbid_next`` (403).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wanderer_console.sim.generator import DataGenerator

__all__ = ["FakeR2z2", "R2z2Request", "package_from_killmail"]

_NAME_KEYS: Final = (
    "character_name",
    "corporation_name",
    "corporation_ticker",
    "alliance_name",
    "alliance_ticker",
    "ship_name",
)


@dataclass(frozen=True, slots=True)
class R2z2Request:
    """One request the fake answered."""

    at: float
    path: str
    status: int
    user_agent: str


def _esi_party(party: dict[str, Any]) -> dict[str, Any]:
    # ESI killmails carry ids only: names and tickers are the killstream's enrichment.
    return {k: v for k, v in party.items() if k not in _NAME_KEYS}


def package_from_killmail(
    killmail: dict[str, Any], sequence: int, *, uploaded_at: float | None = None
) -> dict[str, Any]:
    """An R2Z2 package for a killstream-shape killmail (generator output, PROTOCOLS.md §4)."""
    killmail_id = int(killmail["killmail_id"])
    zkb = dict(killmail.get("zkb") or {})
    digest = hashlib.sha1(str(killmail_id).encode(), usedforsecurity=False).hexdigest()
    hash_ = str(zkb.get("hash") or digest)
    zkb["hash"] = hash_
    attackers = [_esi_party(a) for a in killmail.get("attackers") or []]
    zkb.setdefault("attackerCount", killmail.get("attacker_count", len(attackers)))
    zkb["href"] = f"https://esi.evetech.net/killmails/{killmail_id}/{hash_}/"
    victim = _esi_party(dict(killmail.get("victim") or {}))
    victim.setdefault("items", [])
    esi: dict[str, Any] = {
        "killmail_id": killmail_id,
        "killmail_time": killmail.get("kill_time", killmail.get("killmail_time")),
        "solar_system_id": killmail.get("system_id", killmail.get("solar_system_id")),
    }
    for key in ("moon_id", "war_id"):
        if killmail.get(key) is not None:
            esi[key] = killmail[key]
    esi["victim"] = victim
    esi["attackers"] = attackers
    return {
        "killmail_id": killmail_id,
        "hash": hash_,
        "esi": esi,
        "zkb": zkb,
        "uploaded_at": int(time.time() if uploaded_at is None else uploaded_at),
        "sequence_id": sequence,
    }


class FakeR2z2:
    """The R2Z2 static-file feed, with its rate limits enforced."""

    def __init__(
        self,
        generator: DataGenerator | None = None,
        *,
        start_sequence: int = 1,
        min_interval: float = 1 / 15,
        miss_cooldown: float = 6.0,
        ban_seconds: float = 3600.0,
        retry_after: float | None = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.generator = generator or DataGenerator(1)
        self.min_interval = min_interval
        self.miss_cooldown = miss_cooldown
        self.ban_seconds = ban_seconds
        self.retry_after = retry_after
        """``Retry-After`` seconds on 429 answers; ``None`` sends no header."""
        self.sequence_hint: int | None = None
        """What ``sequence.json`` says; ``None``: the last published sequence (else the next)."""
        self.fail_next = 0
        self.garbage_next = 0
        self.throttle_next = 0
        self.forbid_next = 0
        self.broken: set[int] = set()
        """Sequences whose file is answered 500 every time (a damaged object in the bucket)."""
        self.requests: list[R2z2Request] = []
        self.status_counts: Counter[int] = Counter()
        self.banned_until: float | None = None
        self._clock = clock
        self._files: dict[int, bytes] = {}
        self._next = start_sequence
        self._last_request: float | None = None
        self._misses: dict[int, float] = {}
        self.app = Starlette(routes=[Route("/ephemeral/{name:str}", self._serve)])

    # -- publishing ------------------------------------------------------------------------
    @property
    def head(self) -> int:
        """The last published sequence (``next_sequence - 1``)."""
        return self._next - 1

    @property
    def next_sequence(self) -> int:
        """The sequence the next :meth:`publish` gets."""
        return self._next

    def publish(self, killmail: dict[str, Any], *, sequence_updated: int | None = None) -> int:
        """Publish a killmail as the next sequence; return that sequence."""
        seq = self._next
        package = package_from_killmail(killmail, seq)
        if sequence_updated is not None:
            package["sequence_updated"] = sequence_updated
        return self.publish_raw(orjson.dumps(package))

    def publish_kill(self, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """Generate a killmail (``DataGenerator.make_killmail`` arguments), publish it."""
        killmail = self.generator.make_killmail(**kwargs)
        return self.publish(killmail), killmail

    def publish_raw(self, body: bytes) -> int:
        """Publish any bytes (malformed files too) as the next sequence."""
        seq = self._next
        self._files[seq] = body
        self._misses.pop(seq, None)
        self._next += 1
        return seq

    def overwrite(self, sequence: int, killmail: dict[str, Any]) -> None:
        """Re-publish an older sequence with changed data (announce with ``sequence_updated``)."""
        self._files[sequence] = orjson.dumps(package_from_killmail(killmail, sequence))

    def expire(self, before: int) -> int:
        """Delete every file below ``before`` (files live about 24 h); return how many."""
        old = [seq for seq in self._files if seq < before]
        for seq in old:
            del self._files[seq]
        return len(old)

    def skip_to(self, sequence: int) -> None:
        """Jump the numbering forward (sequences published elsewhere and already expired)."""
        self._next = max(self._next, sequence)

    # -- inspection ------------------------------------------------------------------------
    def count(self, status: int) -> int:
        """Requests answered with ``status``."""
        return self.status_counts[status]

    def fetched(self, sequence: int) -> int:
        """How often ``<sequence>.json`` was asked for."""
        path = f"/ephemeral/{sequence}.json"
        return sum(1 for r in self.requests if r.path == path)

    # -- serving ---------------------------------------------------------------------------
    async def _serve(self, request: Request) -> Response:
        now = self._clock()
        response = self._answer(request, now)
        self._last_request = now
        self.status_counts[response.status_code] += 1
        self.requests.append(
            R2z2Request(
                now, request.url.path, response.status_code, request.headers.get("user-agent", "")
            )
        )
        return response

    def _answer(self, request: Request, now: float) -> Response:
        if not request.headers.get("user-agent", "").strip():
            return _json(403, {"error": "a User-Agent with a contact is required"})
        if self.banned_until is not None and now < self.banned_until:
            return _json(403, {"error": "banned"})
        if self.forbid_next > 0:
            self.forbid_next -= 1
            return _json(403, {"error": "forbidden"})
        if self._last_request is not None and now - self._last_request < self.min_interval:
            return self._throttled()
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return self._throttled()
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(b"upstream error", status_code=500, media_type="text/plain")
        if self.garbage_next > 0:
            self.garbage_next -= 1
            return Response(b"<html>oops</html>", status_code=200, media_type="text/html")
        name = request.path_params["name"]
        if name == "sequence.json":
            return _json(200, {"sequence": self._hint()})
        stem = name.removesuffix(".json")
        if not stem.isdigit() or stem == name:
            return _json(404, {"error": "not found"})
        seq = int(stem)
        if seq in self.broken:
            return Response(b"upstream error", status_code=500, media_type="text/plain")
        body = self._files.get(seq)
        if body is None:
            missed = self._misses.get(seq)
            if missed is not None and now - missed < self.miss_cooldown:
                self.banned_until = now + self.ban_seconds
                return _json(403, {"error": "asked again too soon after a 404"})
            self._misses[seq] = now
            return _json(404, {"error": "not found"})
        return Response(body, status_code=200, media_type="application/json")

    def _hint(self) -> int:
        if self.sequence_hint is not None:
            return self.sequence_hint
        return self.head if self._files.get(self.head) is not None else self._next

    def _throttled(self) -> Response:
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(0, math.ceil(self.retry_after)))
        return Response(b"rate limited", status_code=429, headers=headers)


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
