"""``replay --dry-run`` prints the notifications that were sent live, and sends nothing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from pydantic import SecretStr

from tests.support import json_refusal, wait_for
from wanderer_console import cli
from wanderer_console.launch import demo_settings
from wanderer_console.pipeline.replay import parse_since
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store import SqliteStore

pytestmark = pytest.mark.timeout(60)


def _identity(embed: dict[str, Any]) -> str:
    # A rally is stamped with the time it was processed; compare it apart (see below).
    return json.dumps({k: v for k, v in embed.items() if k != "timestamp"}, sort_keys=True)


def _write_config(sim: Simulator, data_dir: Path, path: Path) -> None:
    settings = demo_settings(sim, data_dir=data_dir)
    document = settings.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def unmask(doc: dict[str, Any], model: Any) -> None:
        # SecretStr values dump masked: write the real ones.
        for key, value in doc.items():
            real = getattr(model, key, None)
            if isinstance(value, dict):
                unmask(value, real)
            elif isinstance(real, SecretStr):
                doc[key] = real.get_secret_value()

    unmask(document, settings)
    document["maps"] = {sim.map_slug: document["maps"][sim.map_slug]}
    unmask(document["maps"][sim.map_slug], settings.maps[sim.map_slug])
    path.write_text(tomlkit.dumps(document))


@pytest.mark.slow
async def test_replay_dry_run_prints_what_was_sent_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Simulator(seed=17) as sim:
        data_dir = tmp_path / "data"
        runtime = Runtime(demo_settings(sim, data_dir=data_dir), data_dir=data_dir)
        await runtime.start()
        try:
            await wait_for(
                lambda: (
                    len(runtime.snapshot()["connections"]) >= 3
                    and all(c["state"] == "connected" for c in runtime.snapshot()["connections"])
                )
            )
            gen = sim.generator
            tracked = sorted(sim.tracked_system_ids)
            for system_id in tracked[:3]:
                km = gen.make_killmail(
                    system_id=system_id, exclude_character_ids=sim.tracked_character_ids
                )
                await sim.killstream.push_kill(km)
            new_system = gen.new_system(wormhole=True)
            sim.map.add_system(new_system.system_id, name=new_system.name)
            pilot = gen.new_character()
            sim.map.add_character(pilot.eve_id, pilot.name)
            sim.map.add_rally(tracked[0], message="form up")
            await wait_for(lambda: sum(len(m.body["embeds"]) for m in sim.discord.received) >= 6)
            await runtime.drain(timeout=5.0)
            await asyncio.sleep(0.3)
        finally:
            await runtime.stop()
        live = [embed for m in sim.discord.received for embed in m.body["embeds"]]
        assert len(live) == 6

        config = tmp_path / "config.toml"
        _write_config(sim, data_dir, config)
        sent_before = len(sim.discord.received)
        capsys.readouterr()
        argv = ["replay", "--since", "1h", "--dry-run", "--config", str(config)]
        argv += ["--data-dir", str(data_dir)]
        code = await asyncio.to_thread(cli.main, argv)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert len(sim.discord.received) == sent_before  # nothing sent

    lines = [json.loads(line) for line in out.splitlines()]
    replayed = [embed for line in lines for embed in line["body"]["embeds"]]
    assert Counter(map(_identity, replayed)) == Counter(map(_identity, live))
    assert {line["target"] for line in lines} == {m.target for m in sim.discord.received}
    rally_live = [e for e in live if "Rally" in str(e.get("title"))]
    rally_replay = [e for e in replayed if "Rally" in str(e.get("title"))]
    assert len(rally_live) == len(rally_replay) == 1
    stamps = [datetime.fromisoformat(e[0]["timestamp"]) for e in (rally_live, rally_replay)]
    assert abs((stamps[0] - stamps[1]).total_seconds()) < 1.0
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary["notifications"] == 6
    assert summary["tracking"] == {sim.map_slug: "rest"}


def test_replay_refuses_without_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", "--since", "15m"]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_replay_rejects_a_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", "--since", "yesterday", "--dry-run"]) == 2
    assert "not a time" in capsys.readouterr().err


def test_parse_since_accepts_relative_and_iso_times() -> None:
    now = 1_800_000_000.0
    assert parse_since("15m", now=now) == now - 900
    assert parse_since("2h", now=now) == now - 7200
    assert parse_since("1d", now=now) == now - 86400
    assert parse_since("30s", now=now) == now - 30
    stamp = datetime(2026, 1, 10, 18, 0, tzinfo=UTC).timestamp()
    assert parse_since("2026-01-10T18:00:00Z") == stamp
    assert parse_since("2026-01-10T18:00:00") == stamp  # naive = UTC
    assert parse_since("2026-01-10T19:00:00+01:00") == stamp


@pytest.mark.parametrize(
    "since", ["99999999999d", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
)
def test_replay_refuses_a_time_outside_the_calendar(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    since: str,
) -> None:
    """An age longer than the calendar (a digit too many) replayed every stored event, then
    ended in a ValueError traceback (``year -273788674 is out of range``) where its summary
    should have been; an ISO time that is no UTC date (the year 0 or 10000 there) was a
    traceback at once."""
    monkeypatch.setenv("WANDERER_CONSOLE_CONFIG", str(tmp_path / "absent.toml"))
    SqliteStore(tmp_path / "wanderer-console.db").close()
    code = cli.main(["replay", "--since", since, "--dry-run", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    answer = json_refusal(captured.out, captured.err, "replay")  # no notification line
    assert answer["error"].startswith(f"{since!r} is outside the calendar")


@pytest.mark.parametrize("option", [["--no-ui"], ["--log-level", "DEBUG"]])
def test_replay_refuses_the_engines_options_it_has_no_use_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    """``replay`` took every option of the engine: --no-ui (it has no UI) and --log-level after
    its name were accepted and did nothing. They are refused; the level goes before the name,
    as for every command (``wanderer-console --log-level DEBUG replay``)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["replay", "--since", "1h", "--dry-run", *option])
    assert exited.value.code == 2
    assert f"unrecognized arguments: {option[0]}" in capsys.readouterr().err


def test_replay_on_a_broken_configuration_says_to_check_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kill`` and ``notify test`` follow a broken configuration's problems with what to do;
    ``replay`` printed the problems alone."""
    config = tmp_path / "config.toml"
    config.write_text('[maps.home]\nurl = "http://127.0.0.1:9"\napi_kee = "k"\n', "utf-8")
    config.chmod(0o600)
    code = cli.main(["replay", "--since", "1h", "--dry-run", "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "api_kee" in err
    answer = json_refusal(out, err, "replay")
    assert answer["error"] == (
        "fix the configuration, or check it with: wanderer-console config check"
    )
    assert any("api_kee" in problem for problem in answer["problems"])
