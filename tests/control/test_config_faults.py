"""A running engine's config file going wrong and coming right again, as an attached console
sees it through the real control socket."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.control.conftest import text_of
from tests.support import end_process, headless_config, read_only_preexec, serve_headless
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.ui.faults import config_text


def write(path: Path, text: str) -> None:
    """Save ``text`` as the file, as an editor on the host would."""
    path.write_text(text, encoding="utf-8")


def remove(path: Path) -> None:
    """Take the file away."""
    path.unlink()


async def test_a_rejected_edit_undone_clears_the_rejection(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    """The operator saves a typo, sees it rejected, undoes it in the editor (the file is again
    exactly what runs): the console must stop saying the change was rejected. The same after
    the file was deleted and put back as it was."""
    good = text_of(config_file)
    write(config_file, good.replace("dry_run = false", "dry_run = maybe"))
    rejected = await remote.reload_config(actor="t")
    assert rejected.status == "rejected"
    snapshot = await remote.snapshot()
    assert snapshot.config is not None
    assert snapshot.config.errors
    assert (config_text(snapshot.config) or "").startswith("CONFIG CHANGE REJECTED")

    write(config_file, good)  # undo: the running version again
    undone = await remote.reload_config(actor="t")

    assert undone.status == "unchanged"
    snapshot = await remote.snapshot()
    assert snapshot.config is not None
    assert snapshot.config.errors == ()
    assert snapshot.config.last_status != "rejected"
    assert config_text(snapshot.config) is None

    remove(config_file)  # moved away, then put back as it was
    gone = await remote.reload_config(actor="t")
    assert gone.status == "rejected"
    assert "the file is gone" in gone.problems[0].message
    write(config_file, good)
    back = await remote.reload_config(actor="t")
    assert back.status == "unchanged"
    snapshot = await remote.snapshot()
    assert snapshot.config is not None
    assert snapshot.config.errors == ()
    assert config_text(snapshot.config) is None
    assert engine.settings.console.dry_run is False


async def test_a_rejected_edit_is_counted_and_held_in_a_gauge_until_the_file_is_right(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    """A typo left in the file is invisible until the next restart fails on it, unless it is
    measured: every rejected edit is counted, and a gauge stays up while the file on disk is
    not what runs (an alert can wait on it); a good edit, or the file put back, lowers it."""

    def reloads(outcome: str) -> float:
        return engine.metrics.value("wc_config_reloads_total", outcome=outcome)

    good = text_of(config_file)
    assert engine.metrics.value("wc_config_rejected") == 0
    write(config_file, good.replace("dry_run = false", "dry_run = maybe"))
    assert (await remote.reload_config(actor="t")).status == "rejected"
    assert engine.metrics.value("wc_config_rejected") == 1
    assert reloads("rejected") == 1
    write(config_file, good.replace("dry_run = false", "dry_run = true"))
    # The engine's watcher may have applied the edit before the console asks: either way,
    # applied once. (It reads a rejected edit too: that is still one rejection.)
    assert (await remote.reload_config(actor="t")).status in ("applied", "unchanged")
    assert engine.settings.console.dry_run is True
    assert engine.metrics.value("wc_config_rejected") == 0
    assert reloads("applied") == 1
    write(config_file, good.replace("dry_run = false", "dry_run = 3"))
    assert (await remote.reload_config(actor="t")).status == "rejected"
    assert engine.metrics.value("wc_config_rejected") == 1
    assert reloads("rejected") == 2
    write(config_file, good.replace("dry_run = false", "dry_run = true"))  # the running text
    assert (await remote.reload_config(actor="t")).status == "unchanged"
    assert engine.metrics.value("wc_config_rejected") == 0
    assert reloads("applied") == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_switch_the_engine_cannot_save_is_applied_and_says_why(
    sim: Simulator, tmp_path: Path
) -> None:
    """As deployed (docs/operations/deployment.md): the config file lives in a directory the
    engine's user may read but not write. A switch flipped from an attached console cannot be
    saved there; it is applied, and the answer says it was not saved and why, instead of the
    engine failing the request."""
    preexec = read_only_preexec()
    etc, data = tmp_path / "etc", tmp_path / "data"
    etc.mkdir()
    config = headless_config(sim, etc / "config.toml")
    config.chmod(0o600)
    before = text_of(config)
    etc.chmod(0o555)
    proc = await serve_headless(config, data, preexec=preexec)
    console = RemoteBackend(socket_path=data / SOCKET_NAME)
    try:
        await console.connect()
        result = await console.set_flag(None, "kill", False, actor="t")
        snapshot = await console.snapshot()
    finally:
        await console.aclose()
        await end_process(proc)
        etc.chmod(0o755)

    assert result.ok, result
    assert "not saved to config.toml" in result.message
    assert "Permission denied" in result.message
    assert snapshot.settings is not None
    assert snapshot.settings.notifications.kill is False
    assert text_of(config) == before
    assert sorted(p.name for p in etc.iterdir()) == ["config.toml"]  # no temporary file left


async def test_a_config_file_caught_empty_keeps_the_running_configuration(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    """An editor that truncates before it writes, a ``>`` redirect, a half-copied file: a file
    read empty (or with nothing but comments) is no configuration to run. Applying it took the
    map out of the running settings and switched dry run off; it is refused instead, and the
    whole file saved again is picked up."""
    tenant = next(iter(engine.settings.maps))
    dry = text_of(config_file).replace("dry_run = false", "dry_run = true")
    write(config_file, dry)
    assert (await remote.reload_config(actor="t")).status in ("applied", "unchanged")
    assert engine.settings.console.dry_run is True

    for caught in ("", "# Wanderer Console demo: every service below\n"):
        write(config_file, caught)
        result = await remote.reload_config(actor="t")
        assert result.status == "rejected", result
        assert "holds no settings" in result.problems[0].message
        assert engine.settings.console.dry_run is True
        assert tenant in engine.settings.maps
        snapshot = await remote.snapshot()
        assert snapshot.config is not None
        assert "holds no settings" in snapshot.config.errors[0]

    write(config_file, dry)
    assert (await remote.reload_config(actor="t")).status == "unchanged"
    snapshot = await remote.snapshot()
    assert snapshot.config is not None
    assert snapshot.config.errors == ()


async def test_the_console_does_not_save_an_emptied_config(
    sim: Simulator,
    engine: Runtime,
    remote: RemoteBackend,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As deployment.md advises, the map's key lives in the environment (here its URL too), so
    the file the console edits has no secret to mask and an empty text validates. The editor
    emptied and saved: refused before the file is written, as the reload refuses such a file
    (the file was written empty, and the running configuration replaced by the defaults)."""
    prefix = f"WANDERER_CONSOLE_MAPS__{sim.map_slug.upper()}"
    monkeypatch.setenv(f"{prefix}__API_KEY", sim.map_api_key)
    monkeypatch.setenv(f"{prefix}__URL", sim.map_url)
    secret = re.compile(r"\s*(api_key|bot_token|\w*webhook_url)\s*=")
    plain = "".join(
        line for line in text_of(config_file).splitlines(keepends=True) if not secret.match(line)
    )
    write(config_file, plain)
    assert (await remote.reload_config(actor="t")).status == "applied"
    loaded = await remote.config_text()
    assert loaded.secrets == 0

    refused = await remote.apply_config("\n", base_digest=loaded.digest, actor="t")

    assert refused.status == "rejected"
    assert refused.problems[0].key == "(file)"
    assert "holds no settings" in refused.problems[0].message
    assert text_of(config_file) == plain
    assert sim.map_slug in engine.settings.maps


STORE_PASSWORD = "store-pass-8c1d5e"
STORE_URL = f"postgresql://wc:{STORE_PASSWORD}@127.0.0.1:9/wc"
HOSTED_MAP_KEY = "hosted-map-key-4b7a9e2f"


@pytest.mark.parametrize(
    ("table", "line", "secret"),
    [
        ("store", f'url = "{STORE_URL}"', STORE_PASSWORD),
        ("hosted", f'map_api_key = "{HOSTED_MAP_KEY}"', HOSTED_MAP_KEY),
    ],
    ids=["store-url", "hosted-map-api-key"],
)
async def test_every_secret_of_the_file_is_masked_and_survives_an_edit(
    engine: Runtime,
    remote: RemoteBackend,
    config_file: Path,
    table: str,
    line: str,
    secret: str,
) -> None:
    """``[store] url`` (its password) and ``[hosted] map_api_key`` are secrets of the model like
    a map's ``api_key``: the console's editor shows them masked, in the engine's own process as
    on an attached console, and an edit saved from there keeps their real values in the file.
    (The engine's own console showed them; an attached one got them scrubbed to «redacted»,
    which a save then wrote into the file, or which failed validation for every edit.)"""
    write(config_file, text_of(config_file) + f"\n[{table}]\n{line}\n")
    assert (await remote.reload_config(actor="t")).status == "applied"

    local = await engine.console.config_text()  # the TUI in the engine's process
    attached = await remote.config_text()
    for loaded in (local, attached):
        assert secret not in loaded.text
        assert loaded.secrets == attached.secrets

    edited = attached.text.replace("dry_run = false", "dry_run = true")
    result = await remote.apply_config(edited, base_digest=attached.digest, actor="t")

    assert result.status == "applied", result
    assert engine.settings.console.dry_run is True
    assert f"\n{line}\n" in text_of(config_file)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_dry_run_from_the_command_line_holds_through_config_changes(
    sim: Simulator, tmp_path: Path
) -> None:
    """``--dry-run`` (render and log, send nothing) is not in the file: a switch flipped from
    the console (saved to the file, which is then reloaded) or an edit of the file must not turn
    it off. It did: the reload compared the file (dry_run false) with the running settings and
    applied dry_run = false live, and the engine began to post to Discord."""
    config, data = headless_config(sim, tmp_path / "config.toml"), tmp_path / "data"
    config.chmod(0o600)
    proc = await serve_headless(config, data, options=["--dry-run"])
    console = RemoteBackend(socket_path=data / SOCKET_NAME)
    try:
        await console.connect()
        started = await console.snapshot()
        flipped = await console.set_flag(None, "rally", False, actor="t")
        after_flip = await console.snapshot()
        write(config, text_of(config) + "\n[alerts]\ninterval_seconds = 30\n")
        edited = await console.reload_config(actor="t")
        after_edit = await console.snapshot()
    finally:
        await console.aclose()
        await end_process(proc)

    assert started.settings is not None
    assert started.settings.dry_run is True
    assert flipped.ok, flipped
    assert after_flip.settings is not None
    assert after_flip.settings.notifications.rally is False
    assert after_flip.settings.dry_run is True
    assert after_flip.config is not None
    assert after_flip.config.last_hot == ("notifications.rally",)
    assert edited.status == "applied", edited
    assert "console.dry_run" not in edited.hot
    assert after_edit.settings is not None
    assert after_edit.settings.dry_run is True
