"""Long-lived streams and short requests of one service in two connection pools.

httpcore's pool looks at every connection it holds, and at every request it is serving, each
time a request starts and each time a response is closed (``_assign_requests_to_connections``:
several calls per connection). The map client holds one event stream per map for hours, so at
1,000 maps every REST call (a system's static information when one is added, a map's pilots)
walked a thousand streaming connections twice: 2-5 ms of the event loop per call, held from
everything else the engine was doing, a fan-out's deliveries included. Streams go to a pool of
their own here (:data:`~wanderer_console.http.errors.STREAM`, set by
:func:`~wanderer_console.http.sse.open_sse`), short requests to one that holds only what they
use, so a REST call costs the same beside a thousand streams as beside none.

Written here rather than found: httpx mounts transports by URL pattern only, and a map's stream
and its REST calls share their origin; httpcore has no per-request pool choice.
"""

from __future__ import annotations

import httpx

from wanderer_console.http.errors import STREAM

__all__ = ["SplitTransport"]


class SplitTransport(httpx.AsyncBaseTransport):
    """Requests carrying :data:`STREAM` to ``streams``, every other one to ``requests``."""

    def __init__(
        self, *, streams: httpx.AsyncBaseTransport, requests: httpx.AsyncBaseTransport
    ) -> None:
        self.streams = streams
        self.requests = requests

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self.streams if request.extensions.get(STREAM) else self.requests
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        try:
            await self.streams.aclose()
        finally:
            await self.requests.aclose()
