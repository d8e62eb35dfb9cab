"""The secrets audit: the engine as a real process, every secret a canary, every place searched.

Every secret the configuration can hold is set to a distinctive canary value (map API keys, bot
tokens, webhook URL tokens, the map's webhook secret, the Janice token, an ingest key, the
control token, OTLP headers), and the failures that tend to print a secret happen: Discord
answers 401, 404 and 500 and never answers one webhook (a timeout); a second map's key and bot
token are refused; the OTLP collector and Janice are unreachable; ingest and control requests
come with wrong keys; a config edit is rejected. Then the canaries are searched for in the
engine's stdout and stderr, ``/metrics``, the control API's answers and its frame stream, every
read-only command's output, every row of every table of the store and every file of the data
directory. The database URL's password gets its own, shorter run: an engine and ``db status``
given a URL that cannot work.

(The canaries are long and random: a hit is a leak, never a coincidence.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.e2e.hosted_services import hosted_services
from tests.store.pgtest import fresh_schema
from tests.support import end_process, free_port, wait_for
from wanderer_console.cli import main
from wanderer_console.console_api import PROTOCOL_HEADER, PROTOCOL_VERSION
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.server.webhook import sign
from wanderer_console.sim import Simulator
from wanderer_console.sim.discord import webhook_url
from wanderer_console.store.lock import lock_holder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

COMMAND = [sys.executable, "-m", "wanderer_console"]


def canary(what: str) -> str:
    return f"CANARY-{what}-{secrets.token_hex(12)}"


MAP_KEY = canary("mapkey")
WRONG_MAP_KEY = canary("wrongmapkey")
BOT_TOKEN = canary("bot")
WRONG_BOT_TOKEN = canary("wrongbot")
HOOK_OK = canary("hookok")
HOOK_401 = canary("hook401")
HOOK_404 = canary("hook404")
HOOK_500 = canary("hook500")
HOOK_HANG = canary("hookhang")
MAP_WEBHOOK_SECRET = canary("mapwebhooksecret")
JANICE_TOKEN = canary("janice")
OTLP_TOKEN = canary("otlp")
PG_PASSWORD = canary("pgpassword")

OK_ID, BAD_TOKEN_ID, GONE_ID, FAILING_ID, HANG_ID = (
    "1211111111111111111",
    "1222222222222222222",
    "1233333333333333333",
    "1244444444444444444",
    "1255555555555555555",
)
CHANNEL = "100000000000000001"
STALE_CHANNEL = "100000000000000002"


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and reads, and never answers: a request to it times out."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def _config(sim: Simulator, data: Path, *, hang_port: int, http_port: int, dead: int) -> str:
    def hook(webhook_id: str, token: str) -> str:
        return webhook_url(sim.discord_url, webhook_id, token)

    return f"""\
[console]
data_dir = "{data}"
startup_suppression_seconds = 0

[server]
enabled = true
port = {http_port}

[control]
listen = "127.0.0.1:{free_port()}"

[tracing]
enabled = true
sampling_ratio = 1.0
exporter = "otlp"

[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{BOT_TOKEN}"
request_timeout_seconds = 1.0

[esi]
url = "{sim.esi_url}"

[janice]
enabled = true
api_token = "{JANICE_TOKEN}"
url = "http://127.0.0.1:{dead}"

[killstream]
websocket_url = "{sim.killstream_url}"

[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{MAP_KEY}"
webhook_secret = "{MAP_WEBHOOK_SECRET}"

[maps.home.discord]
webhook_url = "{hook(OK_ID, HOOK_OK)}"
system_kill_webhook_url = "{hook(FAILING_ID, HOOK_500)}"
character_kill_webhook_url = "{hook(BAD_TOKEN_ID, HOOK_401)}"
character_webhook_url = "{hook(GONE_ID, HOOK_404)}"
rally_webhook_url = "{webhook_url(f"http://127.0.0.1:{hang_port}", HANG_ID, HOOK_HANG)}"
system_channel_id = "{CHANNEL}"

[maps.stale]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{WRONG_MAP_KEY}"

[maps.stale.discord]
bot_token = "{WRONG_BOT_TOKEN}"
channel_id = "{STALE_CHANNEL}"
"""


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """A command's exit code and its stdout and stderr together."""
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace") + err.decode(errors="replace")


def _dump_sqlite(path: Path) -> str:
    """Every row of every table of the store (read through SQLite, the WAL included)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        lines = list(conn.iterdump())
    finally:
        conn.close()
    return "\n".join(lines)


def _files(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (a socket or a vanished file skipped)."""
    out: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        with contextlib.suppress(OSError):
            if path.is_file():
                out[str(path.relative_to(directory))] = path.read_bytes()
    return out


def _leaks(values: dict[str, str], places: dict[str, str | bytes]) -> list[str]:
    found = []
    for what, value in values.items():
        for where, text in places.items():
            hit = value.encode() in text if isinstance(text, bytes) else value in text
            if hit:
                found.append(f"{what} in {where}")
    return found


async def _frames(client: httpx.AsyncClient, count: int) -> str:
    """The first ``count`` events of the control frame stream, raw."""
    out: list[str] = []
    async with client.stream("GET", "/v1/frames", params={"interval": "0.2"}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            out.append(line)
            if sum(1 for seen in out if seen.startswith("data:")) >= count:
                break
    return "\n".join(out)


async def test_no_secret_reaches_any_output_or_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {OTLP_TOKEN},x-api-key={OTLP_TOKEN}",
    }
    env.pop("WANDERER_CONSOLE_CONFIG", None)
    async with (
        Simulator(seed=23, map_api_key=MAP_KEY, bot_token=BOT_TOKEN) as sim,
        _silent_server() as hang_port,
    ):
        dead = free_port()
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{dead}"
        http_port = free_port()
        sim.discord.register_webhook(OK_ID, HOOK_OK)
        sim.discord.register_webhook(FAILING_ID, HOOK_500)
        sim.discord.register_webhook(BAD_TOKEN_ID, "the-real-token-is-another")
        sim.discord.register_webhook(GONE_ID, HOOK_404)
        sim.discord.disable_webhook(GONE_ID)
        config.write_text(
            _config(sim, data, hang_port=hang_port, http_port=http_port, dead=dead),
            encoding="utf-8",
        )
        config.chmod(0o600)
        common = ["--config", str(config), "--data-dir", str(data)]

        # Made before the engine starts: the ingest key and the control token (shown once).
        code, tenant_out = await _run("tenant", "add", "home", *common, env=env)
        assert code == 0, tenant_out
        ingest_key = json.loads(tenant_out.splitlines()[-1])["key"]
        code, token_out = await _run("control", "token", *common, env=env)
        assert code == 0, token_out
        control_token = re.findall(r"wcc_[A-Za-z0-9_\-]+", token_out)[0]

        values = {
            "map key": MAP_KEY,
            "wrong map key": WRONG_MAP_KEY,
            "bot token": BOT_TOKEN,
            "wrong bot token": WRONG_BOT_TOKEN,
            "webhook token (delivering)": HOOK_OK,
            "webhook token (401)": HOOK_401,
            "webhook token (404)": HOOK_404,
            "webhook token (500)": HOOK_500,
            "webhook token (timeout)": HOOK_HANG,
            "map webhook secret": MAP_WEBHOOK_SECRET,
            "janice token": JANICE_TOKEN,
            "otlp header": OTLP_TOKEN,
            "ingest key": ingest_key,
            "control token": control_token,
        }

        out_path, err_path = tmp_path / "engine.out", tmp_path / "engine.err"
        with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND,
                "--no-ui",
                "--log-level",
                "DEBUG",
                *common,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env=env,
            )
        places: dict[str, str | bytes] = {}
        try:
            transport = httpx.AsyncHTTPTransport(uds=str(data / SOCKET_NAME))
            async with (
                httpx.AsyncClient(
                    transport=transport,
                    base_url="http://engine",
                    headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
                    timeout=10.0,
                ) as control,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as web,
            ):
                await wait_for(
                    lambda: (data / SOCKET_NAME).exists() or proc.returncode is not None,
                    timeout=30,
                    what="the engine to serve its control socket",
                )
                assert proc.returncode is None, err_path.read_text()

                async def snapshot() -> dict[str, object]:
                    answer = await control.get("/v1/snapshot")
                    assert answer.status_code == 200, answer.text
                    return dict(answer.json())

                async def streams_up() -> bool:
                    conns = (await snapshot())["connections"]
                    assert isinstance(conns, list)
                    return any(c["state"] == "connected" for c in conns) and any(
                        "401" in str(c.get("last_error")) for c in conns
                    )

                deadline = time.monotonic() + 20
                while not await streams_up():
                    assert time.monotonic() < deadline, await snapshot()
                    await asyncio.sleep(0.1)
                # A kill found only through a followed pilot has no preload: the killstream
                # must follow that pilot before the kill is pushed, or nothing ever brings it.
                victim_id = sim.tracked_character_ids[0]
                await wait_for(
                    lambda: any(victim_id in chars for _, chars in sim.killstream.subscriptions()),
                    timeout=20,
                    what="the killstream to follow the tracked pilot",
                )

                # Every route of the home map, and the stale map's bot channel.
                tracked = sorted(sim.tracked_system_ids)
                sim.discord.fail_next(500, times=1)
                system = sim.generator.new_system(wormhole=True)
                sim.map.add_system(system.system_id, name=system.name)
                pilot = sim.generator.new_character()
                sim.map.add_character(pilot.eve_id, pilot.name)
                sim.map.add_rally(tracked[0])
                km = sim.generator.make_killmail(
                    system_id=tracked[0], exclude_character_ids=sim.tracked_character_ids
                )
                await sim.killstream.push_kill(km)
                victim_kill = sim.generator.make_killmail(
                    system_id=sim.generator.new_system(wormhole=False).system_id,
                    victim_character_id=victim_id,
                )
                await sim.killstream.push_kill(victim_kill)

                # Wrong keys at the ingest API, the map's webhook receiver and the control TCP.
                ok = await web.post(
                    "/api/v1/events",
                    json={"title": "Fleet forming"},
                    headers={"authorization": f"Bearer {ingest_key}"},
                )
                assert ok.status_code == 200, ok.text
                bad = await web.post(
                    "/api/v1/events",
                    json={"title": "nope"},
                    headers={"authorization": f"Bearer {ingest_key}x"},
                )
                assert bad.status_code == 401
                body = orjson.dumps({"id": "x"})
                stamp = str(int(time.time()))
                forged = await web.post(
                    "/api/v1/maps/home/webhook",
                    content=body,
                    headers={
                        "x-wanderer-timestamp": stamp,
                        "x-wanderer-signature": sign(MAP_WEBHOOK_SECRET + "x", stamp, body),
                    },
                )
                assert forged.status_code in (400, 401, 404), forged.text

                # A config edit the engine refuses (a value that is no channel id) ...
                current = (await control.get("/v1/config")).json()
                rejected = await control.post(
                    "/v1/config",
                    json={
                        "text": current["text"].replace(
                            f'channel_id = "{STALE_CHANNEL}"', 'channel_id = "general"'
                        ),
                        "base_digest": current["digest"],
                        "force": False,
                        "actor": "audit",
                    },
                )
                assert rejected.json()["status"] == "rejected", rejected.text
                # ... and a file the reload refuses: a secret pasted into a channel id.
                original = config.read_text(encoding="utf-8")
                config.write_text(
                    original.replace(
                        f'channel_id = "{STALE_CHANNEL}"', f'channel_id = "{MAP_KEY}"'
                    ),
                    encoding="utf-8",
                )
                refused_reload = await control.post("/v1/config/reload", json={})
                assert refused_reload.json()["status"] == "rejected", refused_reload.text
                config.write_text(original, encoding="utf-8")

                await wait_for(lambda: sim.discord.rejected_404 >= 1, what="the 404")
                await wait_for(lambda: sim.discord.rejected_401 >= 1, what="the 401")

                async def settled() -> bool:
                    targets = str(await snapshot())
                    return all(f"webhook:{i}" in targets for i in (BAD_TOKEN_ID, GONE_ID, HANG_ID))

                deadline = time.monotonic() + 20
                while not await settled():
                    assert time.monotonic() < deadline, await snapshot()
                    await asyncio.sleep(0.1)
                await wait_for(
                    lambda: sim.discord.messages_for(f"webhook:{FAILING_ID}"),
                    what="a delivery after the 500",
                )

                answers = {
                    "hello": await control.get("/v1/hello"),
                    "snapshot": await control.get("/v1/snapshot"),
                    "config": await control.get("/v1/config"),
                    "config history": await control.get("/v1/config/history"),
                    "events": await control.get("/v1/events", params={"limit": 200}),
                    "trends": await control.get("/v1/trends", params={"range": "1h"}),
                    "alert history": await control.get("/v1/alerts/history"),
                    "rejected edit": rejected,
                    "rejected reload": refused_reload,
                    "reload": await control.post("/v1/config/reload", json={}),
                    "retry": await control.post("/v1/retry", json={"key": f"webhook:{GONE_ID}"}),
                    "ingest ok": ok,
                    "ingest refused": bad,
                    "forged webhook": forged,
                    "metrics": await web.get("/metrics"),
                    "health": await web.get("/health"),
                    "ready": await web.get("/ready"),
                }
                events = answers["events"].json()
                for item in events.get("events", events.get("items", []))[:50]:
                    detail = await control.get(f"/v1/events/{item['id']}")
                    answers[f"event {item['id']}"] = detail
                for name, answer in answers.items():
                    places[f"answer: {name}"] = answer.text + json.dumps(dict(answer.headers))
                places["frames"] = await _frames(control, 3)
                assert "401" in places["answer: snapshot"]  # the refusals were reported

            # The control TCP listener, asked with a wrong token.
            listen = next(
                line.split('"')[1]
                for line in config.read_text().splitlines()
                if line.startswith("listen")
            )
            async with httpx.AsyncClient(base_url=f"http://{listen}", timeout=10) as tcp:
                refused = await tcp.get(
                    "/v1/config", headers={"authorization": f"Bearer {control_token}x"}
                )
                assert refused.status_code == 401
                places["answer: control tcp refused"] = refused.text

            # The read-only commands, on the running engine's data directory.
            where = ("--config", str(config))
            for command in (
                ("config", "check", "--offline", *where),
                ("config", "history", *common),
                ("db", "status", *common),
                ("outbox", "list", *common),
                ("tenant", "list", *common),
                ("export", "metrics", "--format", "json", *common),
                ("replay", "--since", "1h", "--dry-run", *common),
                ("kill", str(km["killmail_id"]), *common),  # the stale map's REST refuses its key
                ("--help",),
                ("config", "--help"),
                ("notify", "test", "stale", *where),  # the wrong bot token: Discord says 401
                ("notify", "test", "home:character", *where),  # the webhook Discord forgot
            ):
                _code, output = await _run(*command, env=env)
                assert "usage:" not in output or "--help" in command, output
                places["command: " + " ".join(command)] = output
        finally:
            await end_process(proc)
        places["engine stdout"] = out_path.read_text(errors="replace")
        places["engine stderr"] = err_path.read_text(errors="replace")

    places["store rows"] = _dump_sqlite(data / "wanderer-console.db")
    for name, content in _files(data).items():
        places[f"file {name}"] = content
    # The failures happened, and were reported where the operator looks (masked).
    log = str(places["engine stdout"])
    assert f"/api/webhooks/{HANG_ID}/***" in log
    assert '"outcome":"uncertain"' in log  # the silent webhook timed out
    assert "Transient error" in str(places["engine stderr"])  # the OTLP exporter failed
    leaks = _leaks(values, places)
    assert leaks == [], leaks


@pytest.mark.postgresql
async def test_a_database_password_on_the_command_line_is_kept_nowhere(tmp_path: Path) -> None:
    """``--database URL`` puts the password on the command line: the engine must not copy it
    into its data directory (the lock that names the holder), into ``db status`` or into the
    refusal a second engine gets. A URL whose password is wrong is refused with it masked."""
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(
        '[console]\nstartup_suppression_seconds = 0\n[maps.home]\nurl = "http://127.0.0.1:9"\n'
        'api_key = "k"\n[maps.home.discord]\nchannel_id = "100000000000000001"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "WANDERER_CONSOLE_CONFIG"}
    common = ("--config", str(config), "--data-dir", str(data))
    with fresh_schema() as url:
        real = url.secret()
        userinfo = urlsplit(real).netloc.rpartition("@")[0]
        password = userinfo.partition(":")[2]
        assert password, "the test database URL carries a password"
        wrong = real.replace(f"{userinfo}@", f"{userinfo.partition(':')[0]}:{PG_PASSWORD}@", 1)
        places: dict[str, str | bytes] = {}

        code, places["engine with a wrong password"] = await _run(
            "--database", wrong, "--no-ui", *common, env=env
        )
        assert code == 1
        assert "password authentication failed" in places["engine with a wrong password"]
        code, places["db status with a wrong password"] = await _run(
            "db", "status", "--database", wrong, *common, env=env
        )
        assert code == 1

        proc = await asyncio.create_subprocess_exec(
            *COMMAND,
            "--database",
            real,
            "--no-ui",
            *common,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            await wait_for(
                lambda: (h := lock_holder(data)) is not None and h.pid == proc.pid,
                timeout=30,
                what="the engine to hold its data directory",
            )
            for name, content in _files(data).items():
                places[f"file {name}"] = content
            code, places["db status"] = await _run(
                "db", "status", "--database", real, *common, env=env
            )
            assert code == 0, places["db status"]
            assert '"engine"' in places["db status"]  # the holder is shown
            code, places["a second engine"] = await _run(
                "--database", real, "--no-ui", *common, env=env
            )
            assert code != 0
            assert str(proc.pid) in places["a second engine"]  # the holder is named
        finally:
            await end_process(proc)

    leaks = _leaks({"password": f":{password}@", "wrong password": PG_PASSWORD}, places)
    assert leaks == [], leaks


HOSTED_PLUGIN_KEY = canary("pluginkey")
HOSTED_MAP_KEY = canary("hostedmapkey")
HOSTED_BOT_TOKEN = canary("hostedbot")
HOSTED_MAP_BOT_TOKEN = canary("hostedmapbot")
HOSTED_CHANNELS = {"a": "1400000000000000001", "b": "1400000000000000002"}


async def test_no_hosted_mode_secret_reaches_any_output_or_the_data_directory(
    tmp_path: Path,
) -> None:
    """Hosted mode: the plugin key, the map key every map streams with and the bot tokens the
    notifier config hands out. A map's own token Discord refuses, a map the key does not open,
    an entry whose token is malformed, and a refresh the server refuses (the plugin key
    rotated on it) are all reported; no secret is."""
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    env = {k: v for k, v in os.environ.items() if k != "WANDERER_CONSOLE_CONFIG"}
    async with hosted_services(
        seed=29,
        served="abc",
        listed="ab",
        channels=HOSTED_CHANNELS,
        map_key=HOSTED_MAP_KEY,
        plugin_key=HOSTED_PLUGIN_KEY,
    ) as services:
        services.discord.bot_token = HOSTED_BOT_TOKEN  # map b's own token is refused (401)
        services.host.set_notifier_config(
            "b", channels={"primary": HOSTED_CHANNELS["b"]}, bot_token=HOSTED_MAP_BOT_TOKEN
        )
        # Map c is served under another key: its stream is refused with the hosted key.
        services.host.add_map("c2", services.systems["c"], (), api_key="another-key")
        services.host.set_notifier_config("c2", channels={"primary": "1400000000000000003"})
        # An entry whose bot token is malformed: left out, with a problem line.
        services.host.set_notifier_config(
            "c", channels={"primary": "1400000000000000004"}, bot_token=f"{HOSTED_MAP_BOT_TOKEN} x"
        )
        config.write_text(
            f"""\
[console]
data_dir = "{data}"
startup_suppression_seconds = 0
[discord]
api_url = "{services.discord_url}/api/v10"
bot_token = "{HOSTED_BOT_TOKEN}"
[esi]
enabled = false
[killstream]
websocket_url = "{services.killstream.url}"
[hosted]
api_key = "{HOSTED_PLUGIN_KEY}"
url = "{services.host_url}/some-map"
map_api_key = "{HOSTED_MAP_KEY}"
refresh_seconds = 300
""",
            encoding="utf-8",
        )
        config.chmod(0o600)
        common = ("--config", str(config), "--data-dir", str(data))
        places: dict[str, str | bytes] = {}
        out_path, err_path = tmp_path / "engine.out", tmp_path / "engine.err"
        with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND,
                "--no-ui",
                "--log-level",
                "DEBUG",
                *common,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env=env,
            )
        try:
            transport = httpx.AsyncHTTPTransport(uds=str(data / SOCKET_NAME))
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://engine",
                headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
                timeout=10.0,
            ) as control:
                await wait_for(
                    lambda: (data / SOCKET_NAME).exists() or proc.returncode is not None,
                    timeout=30,
                    what="the engine to serve its control socket",
                )
                assert proc.returncode is None, err_path.read_text()

                async def snapshot() -> str:
                    answer = await control.get("/v1/snapshot")
                    assert answer.status_code == 200, answer.text
                    return answer.text

                deadline = time.monotonic() + 20
                while '"connected"' not in (text := await snapshot()) or "401" not in text:
                    assert time.monotonic() < deadline, text
                    await asyncio.sleep(0.1)
                kill = services.gen.make_killmail(system_id=services.systems["b"][0])
                await services.killstream.push_kill(kill)
                await wait_for(lambda: services.discord.rejected_401 >= 1, what="the 401")

                services.host.plugin_api_key = canary("rotated")  # the next refresh: 401
                refused = await control.post("/v1/hosted/refresh", json={"actor": "audit"})
                assert '"ok":false' in refused.text.replace(" ", ""), refused.text
                answers = {
                    "snapshot": await control.get("/v1/snapshot"),
                    "config": await control.get("/v1/config"),
                    "config history": await control.get("/v1/config/history"),
                    "events": await control.get("/v1/events"),
                    "refused refresh": refused,
                }
                for name, answer in answers.items():
                    places[f"answer: {name}"] = answer.text
                places["frames"] = await _frames(control, 2)
            for command in (
                ("config", "check", "--config", str(config)),  # asks the refusing server
                ("db", "status", *common),
                ("outbox", "list", *common),
                ("config", "history", *common),
            ):
                _code, output = await _run(*command, env=env)
                assert "usage:" not in output, output
                places["command: " + " ".join(command)] = output
        finally:
            await end_process(proc)
        places["engine stdout"] = out_path.read_text(errors="replace")
        places["engine stderr"] = err_path.read_text(errors="replace")

    log = str(places["engine stdout"])
    assert "hosted map left out" in log
    assert "hosted maps refresh failed" in log
    places["store rows"] = _dump_sqlite(data / "wanderer-console.db")
    for name, content in _files(data).items():
        places[f"file {name}"] = content
    values = {
        "plugin key": HOSTED_PLUGIN_KEY,
        "hosted map key": HOSTED_MAP_KEY,
        "bot token": HOSTED_BOT_TOKEN,
        "a hosted map's bot token": HOSTED_MAP_BOT_TOKEN,
    }
    leaks = _leaks(values, places)
    assert leaks == [], leaks


@pytest.mark.parametrize(
    "argv",
    [
        ["notify", "test", "home", "--database", f"postgresql://wc:{PG_PASSWORD}@127.0.0.1:1/wc"],
        ["config", "check", f"--database=postgresql://wc@127.0.0.1:1/wc?password={PG_PASSWORD}"],
    ],
)
def test_a_refused_command_line_is_echoed_without_its_password(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse quotes what it refuses: a database URL given to a command that takes none is
    echoed with its password masked."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --database" in err
    assert "postgresql://wc" in err  # the operator still sees what was refused
    assert PG_PASSWORD not in err
