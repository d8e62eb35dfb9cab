"""Fake Discord, the bot application's REST side: gateway URL, commands, interaction answers.

Served by :class:`~wanderer_console.sim.discord.FakeDiscord` beside its message routes. Like
Discord: ``GET /gateway/bot`` and the command registration need the bot token; an interaction's
callback is accepted once, within 3 seconds of the interaction (later: 404 ``Unknown
interaction``, code 10062; twice: 400, code 40060); its original answer may then be edited
(``PATCH .../messages/@original``), which is how a deferred (type 5) answer gets its text.
The 3 seconds, and when an answer came (``answered_at``), are read on the injectable
:class:`~wanderer_console.domain.clock.Clock` the :class:`FakeDiscord` was given (the system
clock by default), so a test holds the window open until it moves a frozen clock: a wall-clock
window made a test fail whenever a loaded machine took 3 s over a few local requests.
The text of an answer and of an edit is held to Discord's message limits (2,000 characters of
content: a 400, code 50035, as Discord answers).
The interactions are those the fake gateway sent
(:meth:`~wanderer_console.sim.discord_gateway.FakeGateway.inject_interaction`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.sim.discord_gateway import Interaction
from wanderer_console.sim.discord_rules import validate_message

__all__ = ["FakeDiscordApp"]

_V = "/api/v10"


class FakeDiscordApp:
    """The routes and what they recorded."""

    def __init__(self, bot_token: str | None, *, clock: Clock | None = None) -> None:
        self.bot_token = bot_token
        self._clock = clock or SystemClock()
        """Read (wall time) for the answer window and ``answered_at``; the interactions'
        ``sent_at`` must come from the same clock (the fake gateway's ``clock=``)."""
        self.gateway_url: str | None = None
        """What ``GET /gateway/bot`` answers (the fake gateway's URL, once started)."""
        self.interactions: dict[str, Interaction] = {}
        """Shared with the fake gateway: the interactions it sent."""
        self.commands: dict[str, list[dict[str, Any]]] = {}
        """Registered commands by scope: ``"global"`` or ``"guild:<id>"``."""
        self.answer_window = 3.0
        """Seconds after ``sent_at`` an interaction's callback is still accepted (Discord: 3)."""
        self.late_answers = 0
        self.gateway_lookups = 0
        self.session_start_limit: dict[str, int] = {
            "total": 1000,
            "remaining": 999,
            "reset_after": 0,
            "max_concurrency": 1,
        }
        """What ``GET /gateway/bot`` says of the identifies left (``reset_after`` in ms)."""
        self.gateway_refusals = 0
        """``GET /gateway/bot`` answered 401 (a wrong bot token): Discord counts each of these
        toward its invalid-request ban."""

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes (mounted by :class:`FakeDiscord`)."""
        return [
            Route(f"{_V}/gateway/bot", self._gateway, methods=["GET"]),
            Route(f"{_V}/applications/{{app}}/commands", self._commands, methods=["PUT"]),
            Route(
                f"{_V}/applications/{{app}}/guilds/{{guild}}/commands",
                self._commands,
                methods=["PUT"],
            ),
            Route(
                f"{_V}/interactions/{{iid}}/{{token}}/callback", self._callback, methods=["POST"]
            ),
            Route(
                f"{_V}/webhooks/{{app}}/{{token}}/messages/@original",
                self._edit,
                methods=["PATCH"],
            ),
        ]

    def _authorized(self, request: Request) -> bool:
        if self.bot_token is None:
            return True
        return request.headers.get("authorization", "") == f"Bot {self.bot_token}"

    async def _gateway(self, request: Request) -> Response:
        if not self._authorized(request):
            self.gateway_refusals += 1
            return JSONResponse({"message": "401: Unauthorized", "code": 0}, status_code=401)
        if self.gateway_url is None:
            return JSONResponse({"message": "no gateway", "code": 0}, status_code=503)
        self.gateway_lookups += 1
        return JSONResponse(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": dict(self.session_start_limit),
            }
        )

    async def _commands(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"message": "401: Unauthorized", "code": 0}, status_code=401)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse({"message": "400: Bad Request", "code": 50109}, status_code=400)
        if not isinstance(body, list):
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=400)
        guild = request.path_params.get("guild")
        scope = f"guild:{guild}" if guild else "global"
        self.commands[scope] = body
        answer = [{**c, "id": str(1_700_000_000_000_000_000 + i)} for i, c in enumerate(body)]
        return JSONResponse(answer)

    def _interaction(self, request: Request) -> Interaction | None:
        found = self.interactions.get(request.path_params.get("iid", ""))
        token = request.path_params["token"]
        if found is None:
            found = next((i for i in self.interactions.values() if i.token == token), None)
        return found if found is not None and found.token == token else None

    async def _callback(self, request: Request) -> Response:
        interaction = self._interaction(request)
        if interaction is None:
            return JSONResponse({"message": "Unknown interaction", "code": 10062}, status_code=404)
        if self._clock.wall() - interaction.sent_at > self.answer_window:
            self.late_answers += 1
            return JSONResponse({"message": "Unknown interaction", "code": 10062}, status_code=404)
        if interaction.answered_at is not None:
            body = {"message": "Interaction has already been acknowledged.", "code": 40060}
            return JSONResponse(body, status_code=400)
        body = orjson.loads(await request.body())
        if not isinstance(body, dict) or body.get("type") not in (4, 5):
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=400)
        if body["type"] == 4 and (problem := validate_message(body.get("data"), webhook=False)):
            return JSONResponse(problem, status_code=400)
        interaction.answered_at = self._clock.wall()
        interaction.record(body)
        return Response(status_code=204)

    async def _edit(self, request: Request) -> Response:
        interaction = self._interaction(request)
        if interaction is None or interaction.answered_at is None:
            return JSONResponse({"message": "Unknown Webhook", "code": 10015}, status_code=404)
        body = orjson.loads(await request.body())
        if problem := validate_message(body, webhook=False):
            return JSONResponse(problem, status_code=400)
        interaction.record({"type": "edit", "data": body})
        return JSONResponse({"id": interaction.id, "content": body.get("content", "")})
