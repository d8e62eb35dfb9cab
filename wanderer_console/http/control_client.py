"""An engine in another process as a :class:`~wanderer_console.console_api.ConsoleBackend`.

:class:`RemoteBackend` speaks the control endpoint's protocol (see
:mod:`wanderer_console.control.server`) over the data directory's Unix socket, or over TCP with a
bearer token. Operations are one request each; frames arrive as Server-Sent Events at the
console's refresh rate. When the engine stops or restarts, :meth:`RemoteBackend.frames` yields
``link`` frames saying so and reconnects by itself (paced, each attempt bounded in time), so the
console comes back live without a key press.

Every refusal is a :class:`~wanderer_console.console_api.BackendError` whose message says what
happened and what to do: nothing listening, permission denied on the socket, wrong token, an
engine speaking another protocol version.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import pwd
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from wanderer_console.console_api import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    AlertRecordView,
    ApplyResult,
    AuditRecord,
    BackendError,
    ConfigText,
    EngineIdentity,
    EngineSnapshot,
    EventDetail,
    EventPage,
    EventQuery,
    Frame,
    LinkState,
    OperationResult,
    TrendsView,
)
from wanderer_console.http.sse_decoder import SseDecoder, SseEvent
from wanderer_console.http.uds import UnixAddress

__all__ = ["RemoteBackend"]

RETRY_FIRST, RETRY_MAX = 0.25, 2.0
"""Seconds between reconnection attempts: doubling from the first to the most, each wait drawn
at random between half and all of it (:func:`retry_wait`)."""
MAX_ANSWER_BYTES = 32 * 2**20
"""The most read of one answer or one frame: many times the largest the engine sends (a config
text is refused past 1 MiB). Whatever answers past it is not the engine, and is not read on: an
answer without an end (a proxy's stream, another service) grew the console's memory until it
died."""

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")
_HISTORY = TypeAdapter(tuple[AuditRecord, ...])
_DETAIL = TypeAdapter(EventDetail | None)
_ALERT_HISTORY = TypeAdapter(tuple[AlertRecordView, ...])


_FIELDS_NAMED = 5
"""Fields an unreadable answer's message names (a newer build may add dozens)."""
_FOREIGN_TEXT = 200
"""How much of a refusal not from the engine (a proxy's page) is shown."""


class _TooLarge(Exception):
    """An answer went past :data:`MAX_ANSWER_BYTES`."""


async def _read_bounded(response: httpx.Response) -> bytes:
    """The body of a streamed ``response``, refused past :data:`MAX_ANSWER_BYTES`."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _TooLarge
    return bytes(body)


def _error_field(content: bytes) -> str | None:
    """The engine's ``error`` in a refusal; ``None`` when the answer has none (not JSON, not an
    object, no such field, or an empty one)."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the parser
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) and error else None


def retry_wait(step: float) -> float:
    """The wait before the next reconnection attempt at ``step`` seconds: jittered (between half
    and all of it), so the consoles a restarted engine dropped do not all knock at once."""
    return random.uniform(step / 2, step)


_UNANSWERED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout)
"""Failures after the request went out whole: the engine may have acted on it."""

_sleep = asyncio.sleep
"""How :meth:`RemoteBackend.frames` waits between attempts (a test records the waits)."""


def _token_in(path: Path) -> str | None:
    """The token a token file holds (one word of printable ASCII), else ``None``."""
    try:
        raw = path.read_bytes().strip()
    except OSError:
        return None
    if not raw or not all(0x21 <= byte <= 0x7E for byte in raw):
        return None
    return raw.decode("ascii")


def _owner(path: Path) -> str:
    """The user owning the socket, else its directory (a 0700 data directory hides the socket
    from others, not itself); ``ENGINE_USER`` when neither can be looked at."""
    for candidate in (path, path.parent):
        try:
            return pwd.getpwuid(candidate.stat().st_uid).pw_name
        except (OSError, KeyError):
            continue
    return "ENGINE_USER"


class RemoteBackend:
    """The console's operations on an engine reached through its control endpoint."""

    def __init__(
        self,
        *,
        socket_path: Path | None = None,
        url: str | None = None,
        token: str | None = None,
        token_file: Path | None = None,
        timeout: float = 5.0,
    ) -> None:
        if (socket_path is None) == (url is None):
            raise ValueError("give exactly one of socket_path and url")
        headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._token = token
        self._token_file = token_file
        """Where the token was read (``attach --token-file``): after a refusal, a new token saved
        there is taken up without restarting the console."""
        transport = None
        self._address: UnixAddress | None = None
        if socket_path is not None:
            self._address = UnixAddress(socket_path)
            transport = httpx.AsyncHTTPTransport(uds=self._uds(self._address))
        self.socket_path = socket_path
        self.where = str(socket_path) if socket_path is not None else str(url)
        """The socket path or URL, for messages."""
        self._client = httpx.AsyncClient(
            base_url=url or "http://engine",
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            trust_env=False,
        )
        self._timeout = timeout
        self.identity: EngineIdentity | None = None
        """The engine, after :meth:`connect` or the first frame."""

    # -- requests --------------------------------------------------------------------------------

    async def connect(self) -> EngineIdentity:
        """The handshake: who the engine is; raises :class:`BackendError` saying why not."""
        self.identity = await self._call("GET", "/v1/hello", EngineIdentity)
        return self.identity

    async def _call(
        self, method: str, path: str, model: type[_M], body: dict[str, Any] | None = None
    ) -> _M:
        content = await self._send(method, path, body)
        try:
            return model.model_validate_json(content)
        except ValidationError as exc:
            raise BackendError(self._unreadable("answer", exc)) from None

    async def _read(self, path: str, adapter: TypeAdapter[_T], what: str) -> _T:
        """``GET path`` read as ``adapter``'s type (a list, an optional): ``what`` names it in
        the error when the answer cannot be read."""
        content = await self._send("GET", path)
        try:
            return adapter.validate_json(content)
        except ValidationError as exc:
            raise BackendError(self._unreadable(what, exc)) from None

    def _unreadable(self, what: str, exc: Exception) -> str:
        """Why an answer could not be read. Fields one side has and the other does not mean
        the engine and this console are different builds (the protocol number is bumped only
        for what an older console would misread): the message says so and what to do, ahead of
        pydantic's list of fields."""
        text = f"the engine at {self.where} sent an unreadable {what}"
        if not isinstance(exc, ValidationError):
            return f"{text}: {exc}"
        errors = exc.errors(include_url=False)
        kinds = {error["type"] for error in errors}
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in errors})
        shown = ", ".join(fields[:_FIELDS_NAMED]) + (", ..." if len(fields) > _FIELDS_NAMED else "")
        if kinds == {"extra_forbidden"}:
            return (
                f"{text}: it has fields this console does not know ({shown}). The engine is a"
                " newer build than this console: attach with the engine's own build (the"
                " `wanderer-console` installed beside it), or upgrade this one"
            )
        if kinds == {"missing"}:
            return (
                f"{text}: it lacks fields this console needs ({shown}). The engine is an older"
                " build than this console: restart it with this build, or attach with the"
                " engine's own"
            )
        return f"{text}: {exc.error_count()} problem(s) at {shown}: {errors[0]['msg']}"

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        """The answer's body; :class:`BackendError` for a refusal, a transport failure, or an
        answer past :data:`MAX_ANSWER_BYTES` (not read on)."""
        try:
            async with self._client.stream(method, path, json=body) as response:
                content = await _read_bounded(response)
        except _UNANSWERED as exc:
            if method == "GET":
                raise BackendError(self.explain(exc)) from None
            raise BackendError(self._unanswered(path, exc)) from None
        except httpx.TransportError as exc:
            raise BackendError(self.explain(exc)) from None
        except _TooLarge:
            raise BackendError(self._too_large("an answer")) from None
        if response.status_code >= 400:
            raise BackendError(self._refusal(response, content))
        return content

    def _unanswered(self, path: str, exc: BaseException) -> str:
        """An operation sent whole, then no answer (the engine stopped or died meanwhile): it
        may have been applied, or not. Said so, not "cannot reach": asked again blindly, a
        retry re-queues twice, a flip computed from the stale screen undoes the first."""
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return (
            f"the engine at {self.where} took the request ({path.removeprefix('/v1/')}) but gave"
            f" no answer ({why}): it may have stopped while applying it, so whether it was"
            " applied is not known. Once the console shows the engine live again, check its"
            " state there before asking again"
        )

    def _too_large(self, what: str) -> str:
        return (
            f"{self.where} sent {what} of more than {MAX_ANSWER_BYTES // 2**20} MiB, far past"
            " anything the engine sends: check that it is the engine's control endpoint"
        )

    def _refusal(self, response: httpx.Response, content: bytes) -> str:
        """What a refusal says: the engine's own ``error``, else whose answer it seems to be.

        The engine always says why in ``{"error": "..."}``. Anything else (JSON without it, a
        list, an HTML page, nothing) came from something between (a proxy) or from another
        service at the address: showing its missing ``error`` read "None" and told nothing.
        """
        message = _error_field(content)
        if message is None:
            return self._foreign(response, content)
        if response.status_code == 401:
            if self.identity is not None:  # it took this token before: it was replaced since
                return self._token_changed()
            return f"the engine at {self.where} refused the token (401): {message}"
        return f"the engine at {self.where} answered {response.status_code}: {message}"

    def _token_changed(self) -> str:
        """A token the engine accepted, refused now: `control token` replaced it."""
        if self._token_file is not None:
            todo = (
                f"save the new token in {self._token_file} (the console takes it up by itself),"
                " or quit and attach again with the new token"
            )
        else:
            todo = "quit and attach again with --token-file holding the new token"
        return (
            f"token changed: the engine at {self.where} refused this console's token (401); a"
            " new one was made with `wanderer-console control token` and the old one no longer"
            f" works. Not retrying with it: {todo}"
        )

    def _new_token(self) -> bool:
        """Whether the token file now holds another token than the refused one (then used)."""
        if self._token_file is None:
            return False
        token = _token_in(self._token_file)
        if token is None or token == self._token:
            return False
        self._token = token
        self._client.headers["authorization"] = f"Bearer {token}"
        return True

    def _foreign(self, response: httpx.Response, content: bytes) -> str:
        """A refusal without the engine's ``error``: the status, the start of the body (the
        token masked, should it be echoed), and what to check."""
        status = f"{response.status_code} {response.reason_phrase}".strip()
        text = content[: _FOREIGN_TEXT * 4].decode("utf-8", "replace")
        body = " ".join(text[:_FOREIGN_TEXT].split())
        if self._token:
            body = body.replace(self._token, "«redacted»")
        said = f" ({body})" if body else ""
        check = (
            f"check that {self.where} is the engine's control socket"
            if self.socket_path is not None
            else f"check that {self.where} is the engine's [control] listen address and what"
            " stands between (a proxy passing requests on unchanged?)"
        )
        return f"{self.where} answered {status}{said}, which is not the engine's answer: {check}"

    def explain(self, exc: BaseException) -> str:
        """What a transport failure means for the operator."""
        cause: BaseException | None = exc
        # The first error with an errno: over TCP, anyio's "All connection attempts failed"
        # (an OSError without one) stands before the ConnectionRefusedError it was raised from.
        while cause is not None and not (isinstance(cause, OSError) and cause.errno is not None):
            cause = cause.__cause__ or cause.__context__
        code = cause.errno if isinstance(cause, OSError) else None
        if self.socket_path is not None:
            if code == errno.ENOENT:
                return f"nothing to attach to: no engine serves {self.socket_path}"
            if code in (errno.EACCES, errno.EPERM):
                # The socket named outright: the owner's default data directory is rarely the
                # engine's (systemd passes --data-dir), and no engine would be found there.
                return (
                    f"permission denied on {self.socket_path}: the socket belongs to the user"
                    " the engine runs as (mode 0600); attach as that user:"
                    f" `sudo -u {_owner(self.socket_path)} wanderer-console attach"
                    f" --socket {self.socket_path}`"
                )
            if code == errno.ECONNREFUSED:
                return (
                    f"no engine is listening on {self.socket_path} (left behind by an engine"
                    " that stopped?)"
                )
        if isinstance(exc, httpx.TimeoutException):
            return f"the engine at {self.where} did not answer within {self._timeout:g}s"
        if code == errno.ECONNREFUSED:
            return f"connection refused by {self.where}: is the engine running?"
        return f"cannot reach the engine at {self.where}: {exc or type(exc).__name__}"

    async def snapshot(self) -> EngineSnapshot:
        """The engine now."""
        return await self._call("GET", "/v1/snapshot", EngineSnapshot)

    async def set_paused(self, paused: bool, *, actor: str) -> OperationResult:
        """Hold or release deliveries."""
        body = {"paused": paused, "actor": actor}
        return await self._call("POST", "/v1/pause", OperationResult, body)

    async def set_flag(
        self, tenant: str | None, flag: str, value: bool, *, actor: str
    ) -> OperationResult:
        """Switch one notification type."""
        body = {"tenant": tenant, "flag": flag, "value": value, "actor": actor}
        return await self._call("POST", "/v1/flag", OperationResult, body)

    async def set_theme(self, name: str, *, actor: str) -> OperationResult:
        """Save ``console.theme``."""
        body = {"name": name, "actor": actor}
        return await self._call("POST", "/v1/theme", OperationResult, body)

    async def config_text(self) -> ConfigText:
        """The config file, secrets masked."""
        return await self._call("GET", "/v1/config", ConfigText)

    async def apply_config(
        self, text: str, *, base_digest: str | None, force: bool = False, actor: str
    ) -> ApplyResult:
        """Have the engine validate, write and apply ``text``."""
        body = {"text": text, "base_digest": base_digest, "force": force, "actor": actor}
        return await self._call("POST", "/v1/config", ApplyResult, body)

    async def reload_config(self, *, actor: str) -> ApplyResult:
        """Have the engine re-read its file."""
        return await self._call("POST", "/v1/config/reload", ApplyResult, {"actor": actor})

    async def config_history(self, limit: int = 50) -> tuple[AuditRecord, ...]:
        """The audit trail, newest last."""
        return await self._read(f"/v1/config/history?limit={int(limit)}", _HISTORY, "history")

    async def retry_target(self, key: str, *, actor: str) -> OperationResult:
        """Revive a dead target."""
        return await self._call("POST", "/v1/retry", OperationResult, {"key": key, "actor": actor})

    @staticmethod
    def _uds(address: UnixAddress) -> str:
        """What to connect to: a long path through its directory (missing: the path itself, and
        connecting says there is nothing to attach to)."""
        try:
            return str(address)
        except OSError:
            return str(address.path)

    async def events(self, query: EventQuery) -> EventPage:
        """Recent events matching ``query``."""
        params = urlencode(query.model_dump(exclude_none=True, exclude_defaults=True))
        return await self._call(
            "GET", f"/v1/events?{params}" if params else "/v1/events", EventPage
        )

    async def event_detail(self, event: int) -> EventDetail | None:
        """One event in full; ``None`` once it is gone."""
        return await self._read(f"/v1/events/{int(event)}", _DETAIL, "event")

    async def set_tracker(
        self, tenant: str, name: str, enabled: bool, *, actor: str
    ) -> OperationResult:
        """Switch one kill tracker of a map on or off."""
        body = {"tenant": tenant, "name": name, "enabled": enabled, "actor": actor}
        return await self._call("POST", "/v1/tracker", OperationResult, body)

    async def refresh_hosted(self, *, actor: str) -> OperationResult:
        """Pull the hosted maps' configuration now."""
        return await self._call("POST", "/v1/hosted/refresh", OperationResult, {"actor": actor})

    async def set_alert_rule(
        self, rule: str, field: str, value: float | bool, *, actor: str
    ) -> OperationResult:
        """Change one field of an ``[alerts]`` rule."""
        body = {"rule": rule, "field": field, "value": value, "actor": actor}
        return await self._call("POST", "/v1/alerts/rule", OperationResult, body)

    async def trends(self, range_name: str) -> TrendsView:
        """The stored trends over ``range_name``."""
        return await self._call("GET", f"/v1/trends?range={quote(range_name)}", TrendsView)

    async def alert_history(self, limit: int = 100) -> tuple[AlertRecordView, ...]:
        """The alert history, newest first."""
        path = f"/v1/alerts/history?limit={int(limit)}"
        return await self._read(path, _ALERT_HISTORY, "alert history")

    async def add_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Make ``name`` a priority system."""
        body = {"action": "add", "name": name, "actor": actor}
        return await self._call("POST", "/v1/priority", OperationResult, body)

    async def remove_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Make ``name`` an ordinary system again."""
        body = {"action": "remove", "name": name, "actor": actor}
        return await self._call("POST", "/v1/priority", OperationResult, body)

    async def aclose(self) -> None:
        """Close the connections (the engine keeps running)."""
        await self._client.aclose()
        if self._address is not None:
            self._address.close()

    # -- frames ----------------------------------------------------------------------------------

    async def frames(self, interval: float) -> AsyncIterator[Frame]:
        """Frames as the engine streams them; ``link`` frames while it is away, then again live.

        Never ends by itself: a lost engine is retried after 0.25 s, doubling to 2 s, each wait
        jittered (:func:`retry_wait`). A token the engine refuses is not retried: one ``refused``
        link frame says the token changed and what to do, then nothing is asked of the engine
        until the token file holds a new token.
        """
        last = EngineSnapshot()
        delay = RETRY_FIRST
        lost_since: float | None = None
        while True:
            detail = "engine stopped"
            dropped = 0
            refused = False
            try:
                async with self._client.stream(
                    "GET",
                    "/v1/frames",
                    params={"interval": interval},
                    headers={"accept": "text/event-stream", "cache-control": "no-store"},
                    timeout=httpx.Timeout(self._timeout, read=max(10.0, interval * 5)),
                ) as response:
                    if response.status_code >= 400:
                        detail = self._refusal(response, await _read_bounded(response))
                        refused = response.status_code == 401
                    else:
                        events = _events(response)
                        async with contextlib.aclosing(events):
                            async for event in events:
                                if event.event == "dropped":
                                    dropped += int(event.data or 0)
                                elif event.event == "revoked":
                                    detail, refused = self._token_changed(), True
                                    break
                                elif event.event == "bye":
                                    detail = "engine stopped"
                                    break
                                elif event.event == "frame":
                                    frame = Frame.model_validate_json(event.data)
                                    if dropped:
                                        frame = frame.model_copy(update={"dropped": dropped})
                                        dropped = 0
                                    last, lost_since, delay = frame.snapshot, None, RETRY_FIRST
                                    self.identity = frame.identity or self.identity
                                    yield frame
            except httpx.TransportError as exc:
                detail = self.explain(exc)
            except _TooLarge:
                detail = self._too_large("a frame")
            except (ValidationError, ValueError) as exc:
                detail = self._unreadable("frame", exc)
            lost_since = lost_since or time.time()
            if refused:
                link = LinkState(state="refused", detail=detail, since=lost_since)
                yield Frame(snapshot=last, link=link, identity=self.identity)
                while not self._new_token():  # the file only: no request with a refused token
                    await _sleep(RETRY_MAX)
                delay = RETRY_FIRST
                continue
            link = LinkState(state="lost", detail=detail, since=lost_since)
            yield Frame(snapshot=last, link=link, identity=self.identity)
            await _sleep(retry_wait(delay))
            delay = min(RETRY_MAX, delay * 2)


async def _events(response: httpx.Response) -> AsyncGenerator[SseEvent, None]:
    """The frame stream's events, through the bounded decoder.

    Past :data:`MAX_ANSWER_BYTES` without a whole event (a line without end: the decoder holds
    none of it but would count for ever), :class:`_TooLarge`; an event the decoder dropped for
    size is one too."""
    kind = response.headers.get("content-type", "").partition(";")[0].strip()
    if kind != "text/event-stream":
        raise ValueError(f"not an event stream (content-type {kind!r})")
    decoder = SseDecoder(max_line_bytes=MAX_ANSWER_BYTES, max_event_bytes=MAX_ANSWER_BYTES)
    since_event = 0
    async for chunk in response.aiter_bytes():
        since_event += len(chunk)
        for item in decoder.feed(chunk):
            if not isinstance(item, SseEvent):
                raise _TooLarge
            since_event = 0
            yield item
        if since_event > MAX_ANSWER_BYTES:
            raise _TooLarge
