"""The demo runs on its own configuration and SQLite store: the options it cannot honour are
refused, not silently ignored (``demo --database URL`` ran on SQLite and said nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wanderer_console.cli import main
from wanderer_console.command import EXIT_USAGE

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
