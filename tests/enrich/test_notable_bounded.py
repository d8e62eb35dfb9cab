"""Notable loot never holds the pipeline: the engine awaits :meth:`NotableItems.prefetch` before
it decides the next event, so a Janice that does not answer must cost at most the appraisal's
own bound, not the HTTP client's timeouts and retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wanderer_console.config.model import JaniceSettings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.notable import APPRAISAL_PATH, NotableItems
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.server import AppServer

from .conftest import EsiEnv


class SilentJanice:
    """A Janice that takes requests and answers none until released."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        path = APPRAISAL_PATH.split("?")[0]
        self.app = Starlette(routes=[Route(path, self._appraisal, methods=["POST"])])

    async def _appraisal(self, request: Request) -> Response:
        await request.body()
        self.asked.set()
        await self.release.wait()
        return JSONResponse({"items": []})


@pytest.fixture
async def silent_janice() -> AsyncIterator[tuple[SilentJanice, str]]:
    janice = SilentJanice()
    server = AppServer(janice.app)
    await server.start()
    try:
        yield janice, server.url
    finally:
        janice.release.set()
        await server.stop()


async def test_a_janice_that_does_not_answer_does_not_hold_the_kill(
    esi_env: EsiEnv, silent_janice: tuple[SilentJanice, str]
) -> None:
    janice, url = silent_janice
    wire = esi_env.gen.make_killmail()
    kid = int(wire["killmail_id"])
    esi_env.fake.killmails[kid] = {
        "killmail_id": kid,
        "victim": {"items": [{"item_type_id": 587, "quantity_dropped": 1}]},
    }
    km = Killmail.from_wire(wire)
    settings = JaniceSettings(enabled=True, api_token=SecretStr("t"), url=url)
    # The client would wait a minute for Janice: the appraisal's own bound must end it first.
    http = HttpClient("janice", timeout=60.0)
    try:
        notable = NotableItems(
            lambda: settings, CacheFacade(esi_env.client()), esi_env.client(), http
        )
        notable.timeout = 0.5
        assert notable.wanted(km)
        await asyncio.wait_for(notable.prefetch(km), 30)  # a safety net, not the bound
        assert janice.asked.is_set()
        assert notable.failures == 1
        assert notable.peek(km) == []
        assert not notable.wanted(km)  # remembered: the re-render does not ask again
    finally:
        await http.aclose()
