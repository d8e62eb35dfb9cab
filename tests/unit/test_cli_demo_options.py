"""The demo runs on its own configuration and SQLite store: the options it cannot honour are
refused, not silently ignored (``demo --database URL`` ran on SQLite and said nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wanderer_console.cli import build_parser, main
from wanderer_console.command import EXIT_IN_USE, EXIT_USAGE
from wanderer_console.store.lock import DataDirLock

PG = "postgresql://wc:secret-pw@127.0.0.1:5432/wc"


@pytest.mark.parametrize(
    ("before", "after", "option"),
    [
        ([], ["--database", PG], "--database"),
        (["--database", PG], [], "--database"),
        ([], ["--config", "mine.toml"], "--config"),
        (["--config", "mine.toml"], [], "--config"),
    ],
)
def test_the_demo_refuses_the_options_it_would_ignore(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: list[str],
    after: list[str],
    option: str,
) -> None:
    argv = [*before, "demo", "--no-ui", "--duration", "1", "--data-dir", str(tmp_path), *after]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusing it is as good
        code = int(str(exc.code))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert option in err
    assert "secret-pw" not in err
    assert not (tmp_path / "demo-config.toml").exists()  # nothing ran


def test_the_demos_help_lists_only_what_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    for used in ("--data-dir", "--no-ui", "--dry-run", "--log-level", "--duration"):
        assert used in text
    assert "--database" not in text
    assert "--config" not in text


def test_the_demos_help_says_where_its_data_goes(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --data-dir the demo runs in a temporary directory it deletes at the end; its
    --help said the default was the XDG data dir (the engine's), where nothing was written."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "XDG" not in text
    assert "--data-dir DIR keep the demo's data here (default: a temporary directory" in text


@pytest.mark.slow  # a subprocess running the simulator
def test_a_demo_on_a_data_directory_an_engine_holds_leaves_its_config_alone(
    tmp_path: Path,
) -> None:
    """The demo writes demo-config.toml into its data directory. On a directory a running demo
    holds, that file is the running engine's config: overwritten with the refused demo's
    simulator addresses, it was hot-reloaded, and the running demo sent to a simulator gone."""
    lock = DataDirLock(tmp_path)
    lock.acquire()  # as the running engine holds it
    config = tmp_path / "demo-config.toml"
    config.write_text("# the running demo's configuration\n", encoding="utf-8")
    demo = ["demo", "--no-ui", "--duration", "1", "--data-dir", str(tmp_path)]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wanderer_console", *demo],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        lock.release()
    assert done.returncode == EXIT_IN_USE, done.stderr
    assert "in use by another engine" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert config.read_text(encoding="utf-8") == "# the running demo's configuration\n"


@pytest.mark.parametrize("option", ["--duration", "--rate"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e999", "0"])
def test_the_demo_refuses_a_number_that_is_not_finite(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    """``--duration nan`` ran, and its summary said ``"duration": NaN``, which is not JSON;
    ``--duration inf`` ended in an OverflowError traceback."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["demo", "--no-ui", option, value])
    assert exit_.value.code == EXIT_USAGE
    assert f"argument {option}: must be a finite number greater than 0" in capsys.readouterr().err
