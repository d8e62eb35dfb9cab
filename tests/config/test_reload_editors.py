"""The config watcher as operators really change the file, with the real watcher (watchfiles) on
real file trees in ``tmp_path``: editors' saves (vim, emacs, ``sed -i``), the file deleted and
put back, caught half-written, its directory removed, a flood of saves, many Kubernetes
ConfigMap updates in a row, and the watcher started again."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.config.test_reload_watch import CONFIG, configmap_version, theme_is, write
from tests.support import wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.runtime import Runtime
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

THEMES = ("plain", "wanderer-light", "wanderer-dark")
GONE = "configuration file is gone; the running configuration is kept until it is back"


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def watching(
    path: Path, data: Path
) -> AsyncIterator[tuple[Runtime, ConfigReloader, Metrics]]:
    """An engine's runtime (not started) and its reloader (with metrics) watching ``path`` with
    the real watcher, once the watch is in place."""
    runtime = Runtime(load_settings(path, environ={}).settings, data_dir=data, config_path=path)
    metrics = Metrics()
    reloader = ConfigReloader(runtime, path, debounce_ms=50, metrics=metrics)
    task = asyncio.create_task(reloader.run())
    try:
        await wait_for(reloader.watching.is_set, 20, "the watch in place")
        yield runtime, reloader, metrics
    finally:
        await stop(task)
        reloader.close()
        await runtime.stop()


def applied(metrics: Metrics) -> float:
    return metrics.value("wc_config_reloads_total", outcome="applied")


def rejected(metrics: Metrics) -> float:
    return metrics.value("wc_config_reloads_total", outcome="rejected")


def gone_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == GONE]


async def test_a_directory_removed_and_made_again_is_watched_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The config's directory removed (a checkout deleted and cloned again, a volume
    re-created): the watch on it died with it, and the file written in the new directory was
    never read (the engine ran the old version until restarted). The directory is now watched
    from its parent until it is back."""
    data = tmp_path / "data"
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "config.toml"
    write(path, data, "wanderer-dark")
    async with watching(path, data) as (runtime, reloader, metrics):
        shutil.rmtree(etc)
        await wait_for(lambda: gone_lines(caplog), 20, "the file gone said")
        assert runtime.settings.console.theme == "wanderer-dark"

        etc.mkdir()
        write(path, data, "plain")
        await wait_for(theme_is(runtime, "plain"), 20, "the file in the new directory applied")
        # And it is watched there.
        write(path, data, "wanderer-light")
        await wait_for(theme_is(runtime, "wanderer-light"), 20, "the next edit applied")
        assert metrics.value("wc_config_rejected") == 0
        assert reloader.last_error == []
    assert len(gone_lines(caplog)) == 1


async def test_a_file_deleted_is_said_once_and_read_again_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file deleted: the running configuration stays and one line says the file is gone,
    that it runs on and that the file is read again when back (it was a generic rejection with
    an ``[Errno 2]``, as if an edit were invalid). Put back, edited, it is applied."""
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    write(path, data, "wanderer-dark")
    async with watching(path, data) as (runtime, reloader, metrics):
        path.unlink()
        await wait_for(lambda: gone_lines(caplog), 20, "the file gone said")
        (line,) = gone_lines(caplog)
        assert line.levelno == logging.ERROR
        (problem,) = line.__dict__["ctx"]["problems"]
        assert problem.startswith(f"{path}: (file): the file is gone (deleted, moved,")
        assert "read again when it is back" in problem
        assert reloader.reload(source="console").problems == [problem]  # read again: same one
        assert rejected(metrics) == 1
        assert metrics.value("wc_config_rejected") == 1
        assert runtime.settings.console.theme == "wanderer-dark"

        write(path, data, "plain")
        await wait_for(theme_is(runtime, "plain"), 20, "the re-created file applied")
        assert metrics.value("wc_config_rejected") == 0
        assert reloader.last_error == []
    assert len(gone_lines(caplog)) == 1


async def test_a_watcher_started_again_applies_an_edit_made_meanwhile(tmp_path: Path) -> None:
    """The supervisor starts a failed watcher again: an edit made while it was down was taken
    for the running version (read as the baseline again) and never applied. Also an edit made
    while a watch is being set up: it is read once the watch is in place."""
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    write(path, data, "wanderer-dark")
    runtime = Runtime(load_settings(path, environ={}).settings, data_dir=data, config_path=path)
    reloader = ConfigReloader(runtime, path, debounce_ms=50)
    try:
        task = asyncio.create_task(reloader.run())
        await wait_for(reloader.watching.is_set, 20, "the watch in place")
        await stop(task)

        write(path, data, "plain")
        task = asyncio.create_task(reloader.run())
        await wait_for(theme_is(runtime, "plain"), 20, "the edit made meanwhile applied")
        assert reloader.last is not None
        assert reloader.last.hot == ["console.theme"]
        await stop(task)
    finally:
        reloader.close()
        await runtime.stop()


async def test_vim_saves_are_one_reload_each_and_its_side_files_none(tmp_path: Path) -> None:
    """vim (``backupcopy=no``): a ``4913`` probe, a swap file, the file renamed to
    ``config.toml~``, a new file written, the backup removed. Guard (already right): each save
    is one applied reload, nothing rejected, the watch survives the new inode each time."""
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    write(path, data, "wanderer-dark")
    async with watching(path, data) as (runtime, _reloader, metrics):
        for n, theme in enumerate(THEMES * 2, 1):
            probe = tmp_path / "4913"
            probe.write_text("")
            probe.unlink()
            (tmp_path / ".config.toml.swp").write_bytes(b"b0VIM 9.0")
            os.replace(path, tmp_path / "config.toml~")
            write(path, data, theme)
            (tmp_path / "config.toml~").unlink()
            await wait_for(lambda n=n: applied(metrics) == n, 20, f"save {n} applied")
            assert runtime.settings.console.theme == theme
        assert rejected(metrics) == 0


async def test_sed_and_emacs_saves_are_one_reload_each(tmp_path: Path) -> None:
    """``sed -i`` (a temporary file renamed over) with an emacs lock link ``.#config.toml``
    (dangling) around it. Guard (already right): one applied reload per save, none rejected."""
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    write(path, data, "wanderer-dark")
    async with watching(path, data) as (runtime, _reloader, metrics):
        for n, theme in enumerate(THEMES * 2, 1):
            (tmp_path / ".#config.toml").symlink_to("root@host.1234:1700000000")
            temporary = tmp_path / "sedAbC123"
            write(temporary, data, theme)
            os.replace(temporary, path)
            (tmp_path / ".#config.toml").unlink()
            await wait_for(lambda n=n: applied(metrics) == n, 20, f"save {n} applied")
            assert runtime.settings.console.theme == theme
        assert rejected(metrics) == 0


async def test_a_file_read_half_written_is_rejected_and_applied_once_whole(
    tmp_path: Path,
) -> None:
    """``cat > config.toml`` caught mid-write (invalid TOML for a moment). Guard (already
    right): that read is rejected, the running configuration kept, and the whole file applied
    when the write ends, without another edit."""
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    write(path, data, "wanderer-dark")
    whole = CONFIG.format(data=data, theme="plain")
    cut = whole.index('theme = "') + len("theme = ")
    async with watching(path, data) as (runtime, reloader, metrics):
        with path.open("w", encoding="utf-8") as handle:
            handle.write(whole[:cut])
            handle.flush()
            await wait_for(lambda: rejected(metrics) >= 1, 20, "the half file rejected")
            assert runtime.settings.console.theme == "wanderer-dark"
            handle.write(whole[cut:])
        await wait_for(theme_is(runtime, "plain"), 20, "the whole file applied")
        assert reloader.last_error == []
        assert metrics.value("wc_config_rejected") == 0


async def test_a_flood_of_saves_ends_on_the_last_one(tmp_path: Path) -> None:
    """50 saves as fast as they can be written. Guard (already right): the last content runs,
    and what the watcher took for running is what is on disk (no stale read applied last)."""
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    write(path, data, "wanderer-dark")
    async with watching(path, data) as (runtime, reloader, metrics):
        for n in range(50):
            text = CONFIG.format(data=data, theme=THEMES[n % 3]) + f"# save {n}\n"
            path.write_text(text, encoding="utf-8")
        await wait_for(
            lambda: (
                reloader.audit.latest_applied() is not None
                and reloader.audit.latest_applied().matches(text)
            ),  # type: ignore[union-attr]
            20,
            "the last save applied",
        )
        assert runtime.settings.console.theme == THEMES[49 % 3]
        assert rejected(metrics) == 0


async def test_many_configmap_updates_are_each_applied_once(tmp_path: Path) -> None:
    """Six Kubernetes ConfigMap updates in a row (``..data`` swapped, the old version's
    directory removed each time). Guard (already right): each is applied once, none rejected,
    and the watch follows every swap."""
    data = tmp_path / "data"
    mount = tmp_path / "config"
    mount.mkdir()
    configmap_version(mount, "..2026_12_04_10_00_00.000000001", data, "wanderer-dark")
    path = mount / "config.toml"
    path.symlink_to(Path("..data") / "config.toml")
    async with watching(path, data) as (runtime, reloader, metrics):
        for n in range(1, 7):
            theme = THEMES[n % 3]
            configmap_version(mount, f"..2026_12_04_10_{n:02d}_00.00000000{n}", data, theme)
            await wait_for(lambda n=n: applied(metrics) == n, 20, f"update {n} applied")
            assert runtime.settings.console.theme == theme
        assert rejected(metrics) == 0
        assert [e.diff["status"] for e in reloader.audit.history()].count("applied") == 7


_CAP_VERSION_3 = 0x20080522
_DAC_CAPS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@contextlib.contextmanager
def file_modes_hold() -> Iterator[None]:
    """For this thread (the event loop's, where the reloader reads), file modes hold as they
    do for the engine's own user: root's effective right to ignore them is set aside, and
    given back after (it stays permitted, so nothing else in the run loses it)."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("running as root and cannot read this thread's capabilities")
    saved = data[0].effective
    data[0].effective = saved & ~_DAC_CAPS
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("running as root and cannot set aside CAP_DAC_OVERRIDE")
    try:
        yield
    finally:
        data[0].effective = saved
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset: restoring CAP_DAC_OVERRIDE")


def cannot_read(reloader: ConfigReloader) -> bool:
    return any("Permission denied" in problem for problem in reloader.last_error)


@pytest.mark.parametrize("what", ["file", "directory"])
async def test_a_file_made_unreadable_is_said_and_read_again_once_readable(
    tmp_path: Path, what: str
) -> None:
    """``chmod 000`` on the file or on its directory (the engine's user loses read access):
    the running configuration stays, the error says why, the watcher keeps running, and once
    the mode is put back the file is read again (an edit made meanwhile applied)."""
    data = tmp_path / "data"
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "config.toml"
    write(path, data, "wanderer-dark")
    target = path if what == "file" else etc
    mode = target.stat().st_mode & 0o777
    with file_modes_hold():
        async with watching(path, data) as (runtime, reloader, metrics):
            write(path, data, "plain")  # an edit, then the mode taken away
            target.chmod(0)
            try:
                await wait_for(lambda: cannot_read(reloader), 20, "the unreadable file said")
                assert runtime.settings.console.theme == "wanderer-dark"
                assert rejected(metrics) == 1
            finally:
                target.chmod(mode)
            await wait_for(theme_is(runtime, "plain"), 20, "the file read again")
            assert reloader.last_error == []
            assert metrics.value("wc_config_rejected") == 0


async def test_a_configmap_readable_by_others_is_told_to_set_the_volume_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ConfigMap or Secret volume gives its files mode 0644 unless the pod spec sets
    ``defaultMode``. The hygiene warning said ``chmod 600 PATH``, which a read-only volume
    refuses (and the kubelet would undo at the next update): it now says to set
    ``defaultMode`` on the volume."""
    data = tmp_path / "data"
    mount = tmp_path / "config"
    mount.mkdir()
    configmap_version(mount, "..2026_12_04_10_00_00.000000001", data, "wanderer-dark", 0o644)
    path = mount / "config.toml"
    path.symlink_to(Path("..data") / "config.toml")

    async with watching(path, data) as (runtime, _reloader, _metrics):
        configmap_version(mount, "..2026_12_04_10_05_00.000000002", data, "plain", 0o644)
        await wait_for(theme_is(runtime, "plain"), 20, "the update applied")
        await wait_for(
            lambda: [r for r in caplog.records if r.getMessage() == "config secret hygiene"],
            20,
            "the hygiene warning",
        )
    (warning,) = {
        r.__dict__["ctx"]["warning"]
        for r in caplog.records
        if r.getMessage() == "config secret hygiene"
    }
    assert "readable by group and others (mode 0644)" in warning
    assert "defaultMode" in warning
    assert "chmod 600" not in warning
