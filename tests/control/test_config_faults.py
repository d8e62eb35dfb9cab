"""A running engine's config file going wrong and coming right again, as an attached console
sees it through the real control socket."""

from __future__ import annotations

from pathlib import Path

from tests.control.conftest import text_of
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime
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
    assert "cannot read" in gone.problems[0].message
    write(config_file, good)
    back = await remote.reload_config(actor="t")
    assert back.status == "unchanged"
    snapshot = await remote.snapshot()
    assert snapshot.config is not None
    assert snapshot.config.errors == ()
    assert config_text(snapshot.config) is None
    assert engine.settings.console.dry_run is False
