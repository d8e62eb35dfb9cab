"""The console's lean HTTP/1.1 transport (the Discord client's): what it must do beyond the
conformance shared with aiohttp's (tests/http/test_aio_transport.py), over real sockets on
127.0.0.1: every way an answer's body may end, connections kept or not as the answer says, a
connection the server closed while idle, a cancelled request, TLS, and the pool's limit."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from tests.support import read_http_request, wait_for
from wanderer_console.http import h1
from wanderer_console.http.h1 import H1Transport

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Server:
    """A TCP (or TLS) server on 127.0.0.1 answering each request with what ``answer`` gives
    (``None``: close without answering), counting connections."""

    def __init__(self, answers: Callable[[int], bytes | None]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []
        self.ended = asyncio.Event()
        """Set when a connection ends from the client's side (its EOF read)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    request = await read_http_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.ended.set()
                    return
                self.requests.append(request)
                answer = self.answers(len(self.requests))
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serving(
    answers: Callable[[int], bytes | None], tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(answers)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()


async def _post_twice(url: str) -> list[httpx.Response]:
    """Two posts to ``url``, one after the other, through one client and transport."""
    async with httpx.AsyncClient(transport=H1Transport()) as client:
        return [await client.post(url, json={}) for _ in range(2)]


async def _post(transport: H1Transport, url: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(url, json={"embeds": []}, **kwargs)  # type: ignore[arg-type]


async def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n"
        b'\r\n5\r\n{"id"\r\n6\r\n: "1"}\r\n0\r\n\r\n'
    )
    async with serving(lambda n: chunked) as (server, url):
        answers = await _post_twice(f"{url}/x")
    assert [a.json() for a in answers] == [{"id": "1"}] * 2
    assert server.connections == 1


async def test_an_answer_ending_with_the_connection_is_read_to_its_end_and_not_reused() -> None:
    until_close = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nall of it"
    )
    async with serving(lambda n: until_close) as (server, url):
        transport = H1Transport()
        first = await _post(transport, f"{url}/x")
        second = await _post(transport, f"{url}/x")
    assert first.content == second.content == b"all of it"
    assert first.status_code == second.status_code == 200
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_http_request(reader)
        writer.write(OK)  # keep-alive, as far as the answer says ...
        await writer.drain()
        writer.close()  # ... but the server drops it while it is idle

    listener = await asyncio.start_server(handler, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    transport = H1Transport()
    client = httpx.AsyncClient(transport=transport)
    try:
        await client.post(f"{url}/x", json={})
        (kept,) = transport._idle.values()
        for _ in range(500):  # the loop reads the server's FIN
            if kept[0].closed:
                break
            await asyncio.sleep(0.01)
        # Not "may have been sent" on a dead connection: a new one, and the answer.
        second = await client.post(f"{url}/x", json={})
    finally:
        await client.aclose()
        listener.close()
    assert second.content == b"ok"
    assert connections == 2


async def test_an_idle_connection_past_its_keepalive_is_closed_and_a_new_one_opened() -> None:
    async with serving(lambda n: OK) as (server, url):
        transport = H1Transport(keepalive_seconds=0.05)
        client = httpx.AsyncClient(transport=transport)
        try:
            await client.post(f"{url}/x", json={})
            await asyncio.sleep(0.1)  # the keep-alive time itself passing
            await client.post(f"{url}/x", json={})
            await asyncio.wait_for(server.ended.wait(), 5)  # the stale one was closed
        finally:
            await client.aclose()
    assert server.connections == 2


async def test_a_cancelled_request_closes_its_connection() -> None:
    hold = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_http_request(reader)
        hold.set()
        try:
            await reader.read()  # until the client closes
        finally:
            writer.close()
            closed.set()

    closed = asyncio.Event()
    listener = await asyncio.start_server(handler, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    transport = H1Transport()
    try:
        request = asyncio.create_task(_post(transport, f"{url}/x"))
        await asyncio.wait_for(hold.wait(), 5)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait_for(closed.wait(), 5)
        assert transport._open == 0
    finally:
        listener.close()


async def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with serving(lambda n: interim) as (_server, url):
        answer = await _post(H1Transport(), f"{url}/x")
    assert answer.status_code == 200
    assert answer.content == b"ok"


async def test_an_answer_over_the_limit_is_a_read_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h1, "MAX_RESPONSE", 64)
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 200\r\n\r\n" + b"x" * 200
    async with serving(lambda n: big) as (_server, url):
        with pytest.raises(httpx.ReadError, match="over 64 bytes"):
            await _post(H1Transport(), f"{url}/x")


async def test_an_answer_that_is_not_http_may_have_been_sent() -> None:
    async with serving(lambda n: b"SSH-2.0-OpenSSH_9.2\r\n") as (_server, url):
        with pytest.raises(httpx.RemoteProtocolError, match=r"not an HTTP/1\.1 answer"):
            await _post(H1Transport(), f"{url}/x")


async def test_a_full_pool_closes_an_idle_connection_of_another_host_for_room() -> None:
    async with serving(lambda n: OK) as (first, one), serving(lambda n: OK) as (second, two):
        transport = H1Transport(max_connections=1)
        client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(1.0))
        try:
            await client.post(f"{one}/x", json={})
            answer = await client.post(f"{two}/x", json={})  # not a pool timeout
            await asyncio.wait_for(first.ended.wait(), 5)  # room made by closing the idle one
        finally:
            await client.aclose()
    assert answer.content == b"ok"
    assert (first.connections, second.connections) == (1, 1)


async def test_tls_with_a_trusted_certificate_and_refused_with_an_unknown_one() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with serving(lambda n: OK, tls=server_context) as (server, url):
        trusted = await _post(H1Transport(ssl_context=client_context), f"{url}/x")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await _post(H1Transport(), f"{url}/x")  # the public bundle does not know it
    assert trusted.content == b"ok"
    assert server.requests[0].startswith(b"POST /x HTTP/1.1\r\n")


async def test_a_url_it_cannot_send_to_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await _post(H1Transport(), "ftp://127.0.0.1/x")


async def test_a_second_answer_in_the_same_write_is_not_mixed_into_the_first() -> None:
    """A server that answers twice to one request (pipelining garbage): the first answer is
    handed up as it came, and the connection, out of step, is not used again."""
    two = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-first: 1\r\n\r\nok"
        b"HTTP/1.1 201 Created\r\ncontent-length: 3\r\nx-second: 2\r\n\r\nbad"
    )
    async with serving(lambda n: two) as (server, url):
        answers = await _post_twice(f"{url}/x")
    for answer in answers:
        assert (answer.status_code, answer.reason_phrase, answer.content) == (200, "OK", b"ok")
        assert answer.headers.raw == [(b"content-length", b"2"), (b"x-first", b"1")]
    assert server.connections == 2


async def test_a_waiter_cancelled_as_the_pool_wakes_it_passes_the_room_on() -> None:
    """One connection, two requests waiting for it: the first woken is cancelled before it
    runs (its caller gave up in the same turn); the second must get the connection, not wait
    for ever (no pool timeout) or until its pool timeout says "not sent" with room free."""
    answer_now = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_http_request(reader)
                await answer_now.wait()
                writer.write(OK)
                await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handler, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
    untimed = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"))}
    transport = H1Transport(max_connections=1)

    async def post() -> httpx.Response:
        request = httpx.Request("POST", url, content=b"{}", extensions=untimed)
        return await transport.handle_async_request(request)

    async def holder() -> httpx.Response:
        response = await post()
        woken.cancel()  # in the turn the pool woke it
        return response

    try:
        held = asyncio.create_task(holder())
        await wait_for(lambda: transport._open == 1)
        woken = asyncio.create_task(post())
        await wait_for(lambda: len(transport._slots) == 1)
        next_in_line = asyncio.create_task(post())
        await wait_for(lambda: len(transport._slots) == 2)
        answer_now.set()
        assert (await held).content == b"ok"
        with pytest.raises(asyncio.CancelledError):
            await woken
        answer = await asyncio.wait_for(next_in_line, 5)
    finally:
        await transport.aclose()
        listener.close()
    assert answer.content == b"ok"


async def test_headers_count_towards_the_answer_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h1, "MAX_RESPONSE", 64)
    headers = b"".join(b"x-filler-%d: %s\r\n" % (n, b"v" * 20) for n in range(50))
    big = b"HTTP/1.1 200 OK\r\n" + headers + b"content-length: 2\r\n\r\nok"
    async with serving(lambda n: big) as (_server, url):
        with pytest.raises(httpx.ReadError, match="over 64 bytes"):
            await _post(H1Transport(), f"{url}/x")


async def test_the_answer_to_a_head_request_ends_with_its_headers() -> None:
    """A HEAD answer says the length of a body it does not send: it is whole at its headers
    (not a read timeout waiting for that body), and its connection is not used again."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n"
    async with serving(lambda n: head) as (server, url):
        transport = H1Transport()
        client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0))
        try:
            answers = [await client.head(f"{url}/x") for _ in range(2)]
        finally:
            await client.aclose()
    assert [(a.status_code, a.content) for a in answers] == [(200, b"")] * 2
    assert answers[0].headers["content-length"] == "20"
    assert server.connections == 2


async def test_a_kept_connection_closed_as_the_next_request_is_written_may_have_sent_it() -> None:
    """The keep-alive race: the server closes right after an answer that says keep-alive, and
    the next request goes out on that connection before its close is read. Nothing tells the
    client whether the server read it: "may have been sent", as with aiohttp."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_http_request(reader)
        writer.write(OK)
        writer.close()

    listener = await asyncio.start_server(handler, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
    try:
        async with httpx.AsyncClient(transport=H1Transport()) as client:
            await client.post(url, json={})
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await client.post(url, json={})
    finally:
        listener.close()


async def test_a_server_that_closes_during_the_tls_handshake_was_not_sent_to() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello's first byte, then gone
        writer.close()

    listener = await asyncio.start_server(handler, "127.0.0.1", 0)
    url = f"https://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
    transport = H1Transport()
    try:
        with pytest.raises(httpx.ConnectError):
            await _post(transport, url)
    finally:
        listener.close()
    assert transport._open == 0
