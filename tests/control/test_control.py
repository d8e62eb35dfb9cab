"""The control endpoint through its real Unix socket: operations, streams, refusals, secrets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import pwd
import socket
import stat
from pathlib import Path

import httpx
import pytest

from tests.control.conftest import append_to, secrets_of, text_of
from tests.support import free_port, wait_for
from wanderer_console.attach import backend_for
from wanderer_console.cli import main
from wanderer_console.console_api import PROTOCOL_VERSION, BackendError, Frame
from wanderer_console.control.server import SOCKET_NAME, bind_private_socket
from wanderer_console.control.token import TOKEN_FILE, new_token
from wanderer_console.http import control_client
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.ui.faults import link_text


class Follower:
    """Reads a backend's frames in the background and keeps the latest."""

    def __init__(self, backend: RemoteBackend, interval: float = 0.1) -> None:
        self.frames: list[Frame] = []
        self._task = asyncio.create_task(self._follow(backend, interval))

    async def _follow(self, backend: RemoteBackend, interval: float) -> None:
        async for frame in backend.frames(interval):
            self.frames.append(frame)

    @property
    def latest(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_attached_console_sees_the_engine_it_attached_to(
    engine: Runtime, remote: RemoteBackend
) -> None:
    identity = remote.identity
    assert identity is not None
    assert identity.data_dir == str(engine.data_dir)
    assert identity.protocol == PROTOCOL_VERSION
    remote_snapshot = await remote.snapshot()
    local_snapshot = engine.console.snapshot_now()
    assert [c.name for c in remote_snapshot.connections] == [
        c.name for c in local_snapshot.connections
    ]
    assert remote_snapshot.settings == local_snapshot.settings
    assert remote_snapshot.config is not None
    assert remote_snapshot.config.path == str(engine.config_path)


async def test_a_flag_flipped_by_one_console_is_applied_saved_audited_and_seen_by_another(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    other = RemoteBackend(socket_path=engine.data_dir / SOCKET_NAME)
    watcher = Follower(other)
    try:
        await wait_for(lambda: watcher.latest is not None, 5, "first frame")
        latest = watcher.latest
        assert latest is not None
        assert latest.snapshot.settings.notifications.kill is True

        result = await remote.set_flag(None, "kill", False, actor="tui:alice@laptop")

        assert result.ok, result.message
        assert engine.settings.notifications.kill is False
        text = text_of(config_file)
        assert "kill = false" in text
        assert text.startswith("# Wanderer Console demo")  # the operator's comments survive

        def seen_off() -> bool:
            frame = watcher.latest
            return frame is not None and frame.snapshot.settings.notifications.kill is False

        await wait_for(seen_off, 2, "the other console seeing the flag off")
        history = await remote.config_history()
        assert history[-1].source == "tui:alice@laptop via socket"
        assert history[-1].changes == ("notifications.kill",)
    finally:
        await watcher.close()
        await other.aclose()


async def test_a_flag_for_an_unknown_map_is_refused_with_the_known_ones(
    remote: RemoteBackend,
) -> None:
    result = await remote.set_flag("nope", "kill", False, actor="t")
    assert not result.ok
    assert "no map 'nope'" in result.message
    assert "demo" in result.message


async def test_pause_from_an_attached_console_holds_deliveries(
    engine: Runtime, remote: RemoteBackend
) -> None:
    result = await remote.set_paused(True, actor="t")
    assert result.ok
    assert engine.dispatcher.paused
    snapshot = await remote.snapshot()
    assert snapshot.delivery.paused
    await remote.set_paused(False, actor="t")
    assert not engine.dispatcher.paused


async def test_config_edits_cross_masked_and_the_engine_puts_its_secrets_back(
    sim: Simulator, engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    loaded = await remote.config_text()
    for secret in secrets_of(sim):
        assert secret not in loaded.text
    assert loaded.secrets >= 3

    edited = loaded.text.replace("dry_run = false", "dry_run = true")
    result = await remote.apply_config(edited, base_digest=loaded.digest, actor="t")

    assert result.status == "applied", result
    assert "console.dry_run" in result.hot
    assert engine.settings.console.dry_run is True
    on_disk = text_of(config_file)
    for secret in secrets_of(sim)[:2]:
        assert secret in on_disk  # the real values were put back, never the placeholders
    assert "«secret-" not in on_disk


async def test_an_invalid_edit_is_located_and_changes_nothing(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    before = text_of(config_file)
    loaded = await remote.config_text()
    broken = loaded.text.replace("dry_run = false", "dry_run = maybe")

    result = await remote.apply_config(broken, base_digest=loaded.digest, actor="t")

    assert result.status == "rejected"
    line = next(n for n, text in enumerate(before.splitlines(), 1) if "dry_run" in text)
    assert result.problems
    assert result.problems[0].line == line
    assert text_of(config_file) == before
    assert engine.settings.console.dry_run is False


async def test_an_edit_over_a_file_changed_since_is_a_conflict_until_forced(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    loaded = await remote.config_text()
    append_to(config_file, "\n# changed by someone else\n")
    edited = loaded.text.replace("dry_run = false", "dry_run = true")

    conflict = await remote.apply_config(edited, base_digest=loaded.digest, actor="t")
    assert conflict.status == "conflict"
    assert "changed on disk" in conflict.message
    assert "someone else" in text_of(config_file)

    forced = await remote.apply_config(edited, base_digest=loaded.digest, force=True, actor="t")
    assert forced.status == "applied"
    assert engine.settings.console.dry_run is True


async def test_force_must_be_a_boolean_or_a_stale_edit_would_overwrite_another(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    """A client sending ``"force": "false"`` (a string) meant not to force: read as truthy, its
    stale edit overwrote a change made on disk since. Anything but a JSON boolean is refused."""
    loaded = await remote.config_text()
    append_to(config_file, "\n# changed by someone else\n")
    edited = loaded.text.replace("dry_run = false", "dry_run = true")
    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        answer = await client.post(
            "/v1/config",
            json={"text": edited, "base_digest": loaded.digest, "force": "false", "actor": "t"},
        )
    assert answer.status_code == 400, answer.text
    assert "force" in answer.json()["error"]
    assert "someone else" in text_of(config_file)
    assert engine.settings.console.dry_run is False


async def test_a_placeholder_edited_away_is_refused(remote: RemoteBackend) -> None:
    loaded = await remote.config_text()
    damaged = loaded.text.replace("«secret-1»", "oops", 1)
    result = await remote.apply_config(damaged, base_digest=loaded.digest, actor="t")
    assert result.status == "rejected"
    assert "«secret-1»" in result.problems[0].message


async def test_no_secret_crosses_the_control_api(
    sim: Simulator, engine: Runtime, config_file: Path
) -> None:
    """Every route's raw bytes, the frame stream included, searched for every secret."""
    # A log line carrying a secret of a kind no pattern recognises: only the engine's own list
    # of its secrets can catch it.
    logging.getLogger("wanderer_console.test").warning("leaked %s", secrets_of(sim)[0])
    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    captured: list[bytes] = []
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        for path in ("/v1/hello", "/v1/snapshot", "/v1/config", "/v1/config/history"):
            response = await client.get(path)
            assert response.status_code == 200, path
            captured.append(response.content)
        body = {"tenant": None, "flag": "kill", "value": False, "actor": "t"}
        captured.append((await client.post("/v1/flag", json=body)).content)
        async with client.stream("GET", "/v1/frames", params={"interval": 0.1}) as stream:
            raw = b""
            async for chunk in stream.aiter_bytes():
                raw += chunk
                if raw.count(b"event: frame") >= 3:
                    break
        captured.append(raw)
    traffic = b"\n".join(captured).decode()
    assert "leaked" in traffic  # the log line did cross, masked
    for secret in secrets_of(sim):
        assert secret not in traffic, f"secret {secret[:6]}… crossed the control API"


async def test_the_socket_is_for_the_engines_user_only(engine: Runtime) -> None:
    path = engine.data_dir / SOCKET_NAME
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


async def test_a_socket_left_by_a_crashed_engine_is_replaced(
    sim: Simulator, tmp_path: Path
) -> None:
    stale = tmp_path / SOCKET_NAME
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()  # the file stays, nobody listens: what a crash leaves
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        backend = RemoteBackend(socket_path=stale)
        identity = await backend.connect()
        assert identity.pid == runtime.console.identity.pid
        await backend.aclose()
    finally:
        await runtime.stop()
    assert not stale.exists()  # a clean stop removes it


def test_the_socket_is_never_reachable_with_looser_permissions(tmp_path: Path) -> None:
    sock = bind_private_socket(tmp_path / SOCKET_NAME)
    try:
        assert stat.S_IMODE((tmp_path / SOCKET_NAME).stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == [SOCKET_NAME]  # no staging left behind
    finally:
        sock.close()


async def test_nothing_to_attach_to_says_so(tmp_path: Path) -> None:
    backend = RemoteBackend(socket_path=tmp_path / SOCKET_NAME)
    with pytest.raises(BackendError, match="nothing to attach to"):
        await backend.connect()
    await backend.aclose()


async def test_a_socket_nobody_listens_on_says_so(tmp_path: Path) -> None:
    path = tmp_path / SOCKET_NAME
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    backend = RemoteBackend(socket_path=path)
    with pytest.raises(BackendError, match="no engine is listening"):
        await backend.connect()
    await backend.aclose()


async def test_reconnection_waits_are_bounded_and_jittered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted engine drops every attached console at once: were their waits the same fixed
    0.25, 0.5, 1, 2, 2 … s, they would all knock again in the same instants. The waits are drawn
    (between half and all of the doubling step) and never past RETRY_MAX. The waits are recorded,
    not slept: nothing here depends on time."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(control_client, "_sleep", record)
    backend = RemoteBackend(socket_path=tmp_path / SOCKET_NAME)  # no engine: every attempt fails
    lost = 0
    try:
        async for frame in backend.frames(0.1):
            assert frame.link.state == "lost"
            assert "nothing to attach to" in frame.link.detail
            lost += 1
            if lost == 16:
                break
    finally:
        await backend.aclose()
    assert len(waits) == 15
    assert all(control_client.RETRY_FIRST / 2 <= wait <= control_client.RETRY_MAX for wait in waits)
    at_the_cap = waits[4:]
    assert min(at_the_cap) >= control_client.RETRY_MAX / 2
    assert len(set(at_the_cap)) > 1, f"the same wait every time: {waits}"


async def test_permission_denied_gives_a_command_that_attaches_to_that_socket(
    tmp_path: Path,
) -> None:
    """The advice must work as given: ``sudo -u <the socket's owner> wanderer-console attach``
    with this socket, not the owner's default data directory (where no engine runs, and the
    console would then say to start one there). Injected: as root no real EACCES can be had."""
    path = tmp_path / SOCKET_NAME
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    backend = RemoteBackend(socket_path=path)
    try:
        denied = httpx.ConnectError("denied")
        denied.__cause__ = PermissionError(errno.EACCES, "Permission denied")
        message = backend.explain(denied)
    finally:
        await backend.aclose()
    owner = pwd.getpwuid(path.stat().st_uid).pw_name
    assert message.startswith(f"permission denied on {path}")
    assert f"`sudo -u {owner} wanderer-console attach --socket {path}`" in message


async def test_a_url_nobody_listens_on_says_connection_refused() -> None:
    """Over TCP too (``attach --url``): the console's banner and the refusal say the connection
    was refused and ask whether the engine runs, not only 'All connection attempts failed'."""
    url = f"http://127.0.0.1:{free_port()}"
    backend = RemoteBackend(url=url, token="wcc_x")
    try:
        with pytest.raises(BackendError) as refused:
            await backend.connect()
        frames = backend.frames(0.1)
        lost = await anext(frames)
        await frames.aclose()
    finally:
        await backend.aclose()
    expected = f"connection refused by {url}: is the engine running?"
    assert str(refused.value) == expected
    assert lost.link is not None
    assert lost.link.detail == expected


async def test_another_protocol_version_is_refused_naming_both(engine: Runtime) -> None:
    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        response = await client.get("/v1/snapshot", headers={"x-wc-protocol": "99"})
    assert response.status_code == 409
    message = response.json()["error"]
    assert f"protocol {PROTOCOL_VERSION}" in message
    assert "speaks 99" in message
    refused = engine.metrics.registry.get_sample_value(
        "wc_control_refused_total", {"reason": "protocol"}
    )
    assert refused == 1.0


async def test_a_body_over_the_limit_is_refused_without_being_read_whole(engine: Runtime) -> None:
    """A request announcing a body far over the limit is answered 413 at once: the engine does
    not hold it (a gigabyte here) in memory first, nor wait for it to arrive."""
    path = engine.data_dir / SOCKET_NAME
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(
            b"POST /v1/config HTTP/1.1\r\nhost: engine\r\ncontent-type: application/json\r\n"
            b"content-length: 1073741824\r\n\r\n" + b"{" * 4096
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 20)
    finally:
        writer.close()
    assert status.split()[1] == b"413", status
    refused = engine.metrics.registry.get_sample_value(
        "wc_control_refused_total", {"reason": "bad_request"}
    )
    assert refused == 1.0


async def test_a_console_that_does_not_read_loses_frames_not_the_engine(engine: Runtime) -> None:
    hub = engine.control.hub
    subscriber, _first = hub.subscribe(0.1)
    try:
        buffer = engine.settings.control.client_buffer_frames

        def overflowed() -> bool:
            return subscriber.dropped >= 3

        await wait_for(overflowed, 10, "frames dropped for the stalled client")
        assert subscriber.queue.qsize() <= buffer
        dropped = engine.metrics.registry.get_sample_value("wc_control_frames_dropped_total")
        assert dropped is not None
        assert dropped >= 3
        # The engine kept working meanwhile: the map stream still delivers.
        assert engine.console.snapshot_now().connections[0].state == "connected"
    finally:
        hub.unsubscribe(subscriber)


async def test_a_new_buffer_size_applies_to_the_consoles_that_attach_after_it(
    engine: Runtime, config_file: Path
) -> None:
    """``client_buffer_frames`` is read when a console attaches: a reload applies it to the next
    one at once (one attached already keeps its buffer). The reload called it restart-only."""
    assert engine.reloader is not None
    hub = engine.control.hub
    before, _ = hub.subscribe(0.1)
    try:
        append_to(config_file, "\n[control]\nclient_buffer_frames = 3\n")
        result = engine.reloader.reload(source="t")
        assert result.status == "applied", result
        assert result.hot == ["control.client_buffer_frames"]
        assert result.restart_required == []
        assert engine.reloader.snapshot()["restart_required"] == []
        after, _ = hub.subscribe(0.1)
        try:
            assert after.queue.maxsize == 3
            assert before.queue.maxsize == 16
        finally:
            hub.unsubscribe(after)
    finally:
        hub.unsubscribe(before)


async def test_the_console_sees_the_engine_go_and_come_back(sim: Simulator, tmp_path: Path) -> None:
    settings = demo_settings(sim, data_dir=tmp_path)
    first = Runtime(settings, data_dir=tmp_path)
    await first.start()
    backend = RemoteBackend(socket_path=tmp_path / SOCKET_NAME)
    follower = Follower(backend)
    try:
        await wait_for(lambda: follower.latest and follower.latest.link.state == "live", 20, "live")
        await first.stop()
        await wait_for(lambda: follower.latest and follower.latest.link.state == "lost", 20, "lost")
        latest = follower.latest
        assert latest is not None
        assert latest.link.detail in (
            "engine stopped",
            f"nothing to attach to: no engine serves {tmp_path / SOCKET_NAME}",
        )
        second = Runtime(settings, data_dir=tmp_path)
        await second.start()
        try:

            def live_again() -> bool:
                frame = follower.latest
                return (
                    frame is not None
                    and frame.link.state == "live"
                    and frame.identity is not None
                    and frame.identity.started_at == second.started_at
                )

            await wait_for(live_again, 20, "live again on the restarted engine")
        finally:
            await second.stop()
    finally:
        await follower.close()
        await backend.aclose()


async def test_the_tcp_listener_closes_clients_that_never_finish_their_headers(
    sim: Simulator, tmp_path: Path
) -> None:
    """`control listen` faces the network, and a connection is read before its token is looked
    at: a client that sent nothing, or half its headers, kept its socket for ever, so enough of
    them took the process's descriptors (and with them the engine's own connections to Discord
    and the map). The listener has the [server] section's read deadlines now, counted."""
    new_token(tmp_path)
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    settings.server.header_timeout_seconds = 0.5
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        host, port = settings.control.listen.rsplit(":", 1)
        for _ in range(2):
            clients.append(await asyncio.open_connection(host, int(port)))
        clients[1][1].write(b"GET /v1/hello HTTP/1.1\r\nHost: engine\r\n")  # and no more
        for reader, _writer in clients:
            assert await asyncio.wait_for(reader.read(), 30) == b""  # the engine closed it
        registry = runtime.metrics.registry
        refused = registry.get_sample_value(
            "wc_control_refused_total", {"reason": "header_timeout"}
        )
        assert refused == 2
    finally:
        for _reader, writer in clients:
            writer.close()
        await runtime.stop()


async def test_the_tcp_listener_holds_at_most_max_connections(
    sim: Simulator, tmp_path: Path
) -> None:
    """At the [server] section's connection cap a new client takes the place of the one that has
    waited longest on its client, as on the HTTP surface: stalled sockets never pile up."""
    token = new_token(tmp_path)
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    settings.server.max_connections = 2
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        host, port = settings.control.listen.rsplit(":", 1)
        clients.append(await asyncio.open_connection(host, int(port)))
        for _ in range(2):
            clients.append(await asyncio.open_connection(host, int(port)))
        assert await asyncio.wait_for(clients[0][0].read(), 30) == b""  # evicted
        registry = runtime.metrics.registry
        assert registry.get_sample_value("wc_control_refused_total", {"reason": "evicted"}) == 1
        # A console still gets in: its request evicts a stalled socket too.
        backend = RemoteBackend(url=f"http://{settings.control.listen}", token=token)
        try:
            await backend.connect()
        finally:
            await backend.aclose()
    finally:
        for _reader, writer in clients:
            writer.close()
        await runtime.stop()


async def test_tcp_needs_the_token_and_counts_every_refusal(sim: Simulator, tmp_path: Path) -> None:
    token = new_token(tmp_path)
    stored = (tmp_path / TOKEN_FILE).read_text()
    assert token not in stored  # only its hash is kept
    assert stat.S_IMODE((tmp_path / TOKEN_FILE).stat().st_mode) == 0o600
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        url = runtime.control.tcp_url
        assert url is not None
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/v1/snapshot")).status_code == 401
            wrong = {"authorization": "Bearer wcc_not-the-token"}
            assert (await client.get("/v1/snapshot", headers=wrong)).status_code == 401
            stream = await client.get("/v1/frames", headers=wrong)
            assert stream.status_code == 401
        registry = runtime.metrics.registry
        assert registry.get_sample_value("wc_control_refused_total", {"reason": "no_token"}) == 1
        assert registry.get_sample_value("wc_control_refused_total", {"reason": "bad_token"}) == 2

        refused = RemoteBackend(url=url, token="wcc_wrong")
        with pytest.raises(BackendError, match="refused the token"):
            await refused.connect()
        await refused.aclose()
        backend = RemoteBackend(url=url, token=token)
        identity = await backend.connect()
        assert identity.data_dir == str(tmp_path)
        assert (await backend.set_paused(True, actor="t")).ok
        assert runtime.dispatcher.paused
        await backend.aclose()
    finally:
        await runtime.stop()


async def test_a_new_token_ends_the_streams_opened_with_the_old_one(
    sim: Simulator, tmp_path: Path
) -> None:
    """`control token` promises "any earlier token stops working now": a console streaming frames
    with the old token (a leaked one, say) is cut off too, not only its next request."""
    old = new_token(tmp_path)
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        assert runtime.control.tcp_url is not None
        backend = RemoteBackend(url=runtime.control.tcp_url, token=old)
        follower = Follower(backend)
        try:
            await wait_for(
                lambda: follower.latest and follower.latest.link.state == "live", 20, "live"
            )
            new_token(tmp_path)

            def cut_off() -> bool:
                frame = follower.latest
                return (
                    frame is not None
                    and frame.link.state == "refused"
                    and "refused this console's token" in frame.link.detail
                )

            await wait_for(cut_off, 20, "the old token's stream ended and refused")
        finally:
            await follower.close()
            await backend.aclose()
    finally:
        await runtime.stop()


async def test_tcp_without_a_token_is_not_served_and_says_how_to_make_one(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        assert runtime.control.tcp_url is None
        assert any("wanderer-console control token" in e for e in runtime.control.errors)
        assert (tmp_path / SOCKET_NAME).exists()  # the local socket is served regardless
    finally:
        await runtime.stop()


async def test_a_token_made_after_the_start_is_said_to_need_a_restart(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine's advice (run `control token`) and the command's promise (a running engine
    accepts the new token at once) must not leave the operator at 'connection refused': an
    engine that started without a token serves no TCP until it restarts, and both say so."""
    listen = f"127.0.0.1:{free_port()}"
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = listen
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        (advice,) = [e for e in runtime.control.errors if "control token" in e]
        assert main(["control", "token", "--data-dir", str(tmp_path)]) == 0
        made = capsys.readouterr()
        backend = RemoteBackend(url=f"http://{listen}", token=made.out.strip())
        try:
            with pytest.raises(BackendError, match="connection refused"):
                await backend.connect()  # the token exists; the engine still serves no TCP
        finally:
            await backend.aclose()
    finally:
        await runtime.stop()
    assert advice.endswith("then restart the engine")
    assert "one that started before any token existed serves no TCP until it restarts" in (
        " ".join(made.err.split())
    )


async def test_a_body_nested_too_deeply_is_refused_not_a_500(engine: Runtime) -> None:
    """JSON nested deeper than the parser recurses (well under the size limit) raised
    RecursionError, a bare 500: it is bad input, refused 400 saying so, and counted."""
    nested = "[" * 100_000 + "]" * 100_000
    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        response = await client.post(
            "/v1/pause", content='{"paused": true, "actor": ' + nested + "}"
        )
        assert response.status_code == 400, response.text
        assert "nested too deeply" in response.json()["error"]
        assert (await client.get("/v1/snapshot")).status_code == 200
    refused = engine.metrics.registry.get_sample_value(
        "wc_control_refused_total", {"reason": "bad_request"}
    )
    assert refused == 1.0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/theme", '{"name": "\\ud800"}'),
        ("/v1/retry", '{"key": "webhook:\\ud800"}'),
    ],
)
async def test_a_lone_surrogate_in_a_body_is_refused_not_a_500(
    engine: Runtime, path: str, body: str
) -> None:
    """JSON may escape half of a UTF-16 pair (``\\ud800``): such a string cannot be written to
    the config file or the store, and answered a bare 500. It is refused 400 and counted."""
    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        response = await client.post(path, content=body)
        assert response.status_code == 400, response.text
        assert "lone surrogate" in response.json()["error"]
        assert (await client.get("/v1/snapshot")).status_code == 200
    refused = engine.metrics.registry.get_sample_value(
        "wc_control_refused_total", {"reason": "bad_request"}
    )
    assert refused == 1.0


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00 not text", "é".encode() * 64], ids=["not-utf8", "not-ascii"]
)
async def test_a_damaged_token_file_is_named_not_a_failed_start_or_a_500(
    sim: Simulator, tmp_path: Path, content: bytes
) -> None:
    """A token file that holds no hash (damaged, edited by hand) stopped the whole engine at start
    (not UTF-8) or answered every TCP request 500 (not ASCII). The engine starts, serves its
    socket, and says the file is damaged and how to make a new token."""
    (tmp_path / TOKEN_FILE).write_bytes(content)
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        assert runtime.control.tcp_url is None
        (problem,) = runtime.control.errors
        assert "holds no token hash" in problem
        assert "wanderer-console control token" in problem
        assert (tmp_path / SOCKET_NAME).exists()  # the local socket is served regardless
    finally:
        await runtime.stop()


async def test_a_token_file_damaged_while_serving_refuses_with_401_not_a_500(
    sim: Simulator, tmp_path: Path
) -> None:
    token = new_token(tmp_path)
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        assert runtime.control.tcp_url is not None
        (tmp_path / TOKEN_FILE).write_bytes("é".encode() * 64)
        async with httpx.AsyncClient(base_url=runtime.control.tcp_url) as client:
            response = await client.get(
                "/v1/snapshot", headers={"authorization": f"Bearer {token}"}
            )
        assert response.status_code == 401, response.text
        assert "wanderer-console control token" in response.json()["error"]
    finally:
        await runtime.stop()


async def test_a_console_whose_token_was_replaced_says_so_once_and_takes_up_the_new_one(
    sim: Simulator, tmp_path: Path
) -> None:
    """`control token` while a console is attached over TCP: the console says the token changed
    and what to do, asks nothing more with the refused token (no reconnect loop knocking with
    it: one refusal counted), and resumes once the new token is saved in its token file."""
    old = new_token(tmp_path)
    token_file = tmp_path / "console.token"
    token_file.write_text(old + "\n")
    token_file.chmod(0o600)
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.control.listen = f"127.0.0.1:{free_port()}"
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    registry = runtime.metrics.registry

    def refusals() -> float:
        return registry.get_sample_value("wc_control_refused_total", {"reason": "bad_token"}) or 0

    try:
        assert runtime.control.tcp_url is not None
        args = argparse.Namespace(
            url=runtime.control.tcp_url,
            token_file=token_file,
            socket=None,
            data_dir=None,
            config=None,
        )
        backend = backend_for(args)
        await backend.connect()
        follower = Follower(backend)
        try:
            await wait_for(
                lambda: follower.latest and follower.latest.link.state == "live", 20, "live"
            )
            new = new_token(tmp_path)

            def told() -> bool:
                return any(f.link.state == "refused" for f in follower.frames)

            await wait_for(told, 20, "the console told its token was refused")
            (refused,) = [f for f in follower.frames if f.link.state != "live"]
            assert "token changed" in refused.link.detail
            assert str(token_file) in refused.link.detail
            badge = link_text(refused.link, live_at=1.0)
            assert badge is not None
            assert "reconnecting" not in badge
            assert refusals() == 0  # told at once by the stream, not asked again
            with pytest.raises(BackendError, match="token changed"):
                await backend.set_paused(True, actor="test")
            assert not runtime.dispatcher.paused
            before = len(follower.frames)

            token_file.write_text(new + "\n")
            await wait_for(
                lambda: follower.frames[-1].link.state == "live" and len(follower.frames) > before,
                20,
                "live again with the new token",
            )
            # The refused token was tried once, by the operation above: never by the console
            # while it waited.
            assert refusals() == 1
            assert all(f.link.state != "lost" for f in follower.frames)
            assert (await backend.set_paused(True, actor="test")).ok
            assert runtime.dispatcher.paused
        finally:
            await follower.close()
            await backend.aclose()
    finally:
        await runtime.stop()
