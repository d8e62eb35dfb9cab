"""Every ``--help`` reads as written: no formatting escapes left in its text."""

from __future__ import annotations

import pytest

from wanderer_console.cli import build_parser, commands


def _help_of(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*name.split(), "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("name", [command.name for command in commands()])
def test_no_command_help_shows_a_doubled_percent_sign(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help_of(name, capsys)
    assert "%%" not in text
