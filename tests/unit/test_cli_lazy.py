"""The engine's command line reads its own options without importing the sub-commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wanderer_console.cli import _console_arguments, build_parser, commands, main

SUB_COMMAND_MODULES = (
    "wanderer_console.attach",
    "wanderer_console.bench.suite",
    "wanderer_console.db_cli",
    "wanderer_console.delivery.notify_cli",
    "wanderer_console.delivery.outbox_cli",
    "wanderer_console.observe.export_cli",
    "wanderer_console.pipeline.replay",
    "wanderer_console.server.tenant_cli",
    "wanderer_console.config.audit_cli",
)


@pytest.mark.slow
def test_the_engine_command_line_imports_no_sub_command_module() -> None:
    code = (
        "import sys; from wanderer_console import cli, launch;"
        "args = cli._console_arguments(['--no-ui', '--config', 'x.toml', '--log-level', 'DEBUG']);"
        "print(args.command_name, args.no_ui, str(args.config), args.log_level);"
        f"print(sorted(m for m in {SUB_COMMAND_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["console True x.toml DEBUG", "[]"]


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--quick"],
        ["--data-dir", "d", "tenant", "list"],
        ["--help"],
        ["config", "check", "--offline"],
        ["--log-level", "LOUD"],
        ["--unknown-option"],
    ],
)
def test_sub_commands_help_and_errors_go_to_the_whole_parser(argv: list[str]) -> None:
    assert _console_arguments(argv) is None


def test_the_whole_parser_knows_every_sub_command(capsys: pytest.CaptureFixture[str]) -> None:
    names = [command.name for command in commands()]
    assert len(names) == len(set(names)) == 15
    assert {"bench", "attach", "db migrate-to", "config check", "notify"} <= set(names)
    args = build_parser().parse_args(["outbox", "list"])
    assert args.command_name == "outbox"
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    assert all(name.split()[0] in listed for name in names)
