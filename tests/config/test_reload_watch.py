"""The config watcher on real file trees in ``tmp_path``, with the real watcher (watchfiles):
a config path reached through symlinks is followed wherever its links point, now and after they
are re-pointed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support import wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.runtime import Runtime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

CONFIG = """\
[console]
data_dir = "{data}"
theme = "{theme}"

[esi]
enabled = false

[killstream]
enabled = false

[maps.home]
url = "http://127.0.0.1:9"
api_key = "map-key-0d9e8f7a6b5c4d3e"
"""


def write(path: Path, data: Path, theme: str, mode: int = 0o600) -> None:
    path.write_text(CONFIG.format(data=data, theme=theme), encoding="utf-8")
    path.chmod(mode)


def configmap_version(mount: Path, stamp: str, data: Path, theme: str, mode: int = 0o600) -> None:
    """Publish a new version the way the kubelet updates a mounted ConfigMap: the files go into
    a new timestamped directory, ``..data`` is swapped to it by renaming a fresh link over it,
    and the old directory is removed. ``config.toml -> ..data/config.toml`` never changes. The
    files get ``mode`` (the volume's ``defaultMode``)."""
    version = mount / stamp
    version.mkdir()
    write(version / "config.toml", data, theme, mode)
    old = (mount / "..data").readlink() if (mount / "..data").is_symlink() else None
    (mount / "..data_tmp").symlink_to(stamp)
    os.replace(mount / "..data_tmp", mount / "..data")
    if old is not None:
        shutil.rmtree(mount / old)


@contextlib.asynccontextmanager
async def watching(path: Path, data: Path) -> AsyncIterator[tuple[Runtime, ConfigReloader]]:
    """An engine's runtime (not started) and its reloader watching ``path`` with the real
    watcher, once the watch is in place."""
    runtime = Runtime(load_settings(path, environ={}).settings, data_dir=data, config_path=path)
    reloader = ConfigReloader(runtime, path, debounce_ms=50)
    task = asyncio.create_task(reloader.run())
    try:
        await wait_for(reloader.watching.is_set, 20, "the watch in place")
        yield runtime, reloader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        reloader.close()
        await runtime.stop()


def theme_is(runtime: Runtime, theme: str) -> Callable[[], bool]:
    return lambda: runtime.settings.console.theme == theme


async def test_a_configmap_update_swapping_the_data_link_is_applied(tmp_path: Path) -> None:
    """``config.toml -> ..data/config.toml``, ``..data -> ..2026_12_04_…``: an update changes
    neither ``config.toml`` nor anything named so in the watched directory, only ``..data``.
    It was missed: the engine ran the old version until restarted."""
    data = tmp_path / "data"
    mount = tmp_path / "config"
    mount.mkdir()
    configmap_version(mount, "..2026_12_04_10_00_00.000000001", data, "wanderer-dark")
    path = mount / "config.toml"
    path.symlink_to(Path("..data") / "config.toml")

    async with watching(path, data) as (runtime, reloader):
        configmap_version(mount, "..2026_12_04_10_05_00.000000002", data, "plain")
        await wait_for(theme_is(runtime, "plain"), 20, "the first update applied")
        assert reloader.last is not None
        assert reloader.last.hot == ["console.theme"]

        # The next one too: the watch follows the link to the new version's directory.
        configmap_version(mount, "..2026_12_04_10_10_00.000000003", data, "wanderer-light")
        await wait_for(theme_is(runtime, "wanderer-light"), 20, "the second update applied")


async def test_an_edit_of_the_file_a_link_points_at_is_applied(tmp_path: Path) -> None:
    """``/etc/…/config.toml -> /srv/checkout/config.toml``: an editor saving the target (in
    place or by replacing it) changes nothing in the link's directory. It was missed."""
    data = tmp_path / "data"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    target = checkout / "config.toml"
    write(target, data, "wanderer-dark")
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "config.toml"
    path.symlink_to(target)

    async with watching(path, data) as (runtime, _reloader):
        write(target, data, "plain")
        await wait_for(theme_is(runtime, "plain"), 20, "the edit of the target applied")

        # Re-pointed at another file: that one runs, and its edits are seen.
        other = tmp_path / "other.toml"
        write(other, data, "wanderer-light")
        (etc / "config.toml.new").symlink_to(other)
        os.replace(etc / "config.toml.new", path)
        await wait_for(theme_is(runtime, "wanderer-light"), 20, "the re-pointed link applied")
        write(other, data, "plain")
        await wait_for(theme_is(runtime, "plain"), 20, "an edit of the new target applied")
