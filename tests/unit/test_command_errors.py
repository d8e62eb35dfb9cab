"""Every command refuses in one format: one line on stderr, ``wanderer-console COMMAND: what
failed and what to do``, with the exit codes ``--help`` lists (argparse's usage errors stay
argparse's). A script or an operator at 3 a.m. reads the same shape whichever command failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from wanderer_console.cli import build_parser, main
from wanderer_console.command import EXIT_INVALID, EXIT_USAGE


def _cases(tmp: Path) -> list[tuple[list[str], str, int]]:
    missing = str(tmp / "no-such-dir")
    return [
        (["export", "metrics", "--since", "soon"], "export metrics", EXIT_USAGE),
        (["export", "metrics", "--data-dir", missing], "export metrics", EXIT_INVALID),
        (["replay", "--since", "2h"], "replay", EXIT_USAGE),
        (["db", "migrate-to", "--data-dir", missing], "db migrate-to", EXIT_USAGE),
        (["control", "token", "--data-dir", missing], "control token", EXIT_INVALID),
    ]


def test_command_errors_are_one_line_naming_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDERER_CONSOLE_STORE__URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for argv, name, code in _cases(tmp_path):
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith(f"wanderer-console {name}: "), (argv, err)


def test_help_lists_the_exit_codes() -> None:
    text = build_parser().format_help()
    for line in ("0 ", "1 ", "2 ", "3 ", "130 ", "141 "):
        assert f"\n  {line}" in text.split("exit codes")[1], text
