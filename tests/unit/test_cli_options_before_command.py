"""The program's options given before a command's name: they apply to the command when it takes
them (as if given after its name), ``--log-level`` applies to every command, and any other is a
usage error that says so. ``wanderer-console --dry-run outbox list`` listed the outbox and said
nothing, so the operator took a dry run for one; ``--data-dir D db status`` read the default
data directory's store, not D's."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from wanderer_console.cli import build_parser, main
from wanderer_console.command import EXIT_OK, EXIT_USAGE
from wanderer_console.store.backends import open_store
from wanderer_console.store.sqlite import DB_NAME


@pytest.fixture(autouse=True)
def _nowhere_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing the commands look for by default is the machine's: a command that runs where it
    should have been refused acts on the test's directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDERER_CONSOLE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


MINIMAL: dict[str, list[str]] = {
    "demo": ["--duration", "1"],
    "notify test": ["home"],
    "kill": ["1"],
    "replay": ["--since", "1h", "--dry-run"],
    "config check": ["--offline"],
    "config history": [],
    "config restore": ["1"],
    "tenant add": ["home"],
    "tenant list": [],
    "tenant rotate-key": ["home"],
    "tenant disable": ["home"],
    "tenant enable": ["home"],
    "outbox list": [],
    "outbox retry": ["webhook:1"],
    "outbox drop": ["webhook:1"],
    "export metrics": [],
    "bench": ["--only", "latency"],
    "db migrate-to": [],
    "db status": [],
    "attach": [],
    "control token": [],
}
"""What each command needs besides the option under test for argparse to accept it."""

BEFORE: dict[str, list[str]] = {
    "--config": ["--config", "mine.toml"],
    "--data-dir": ["--data-dir", "somewhere"],
    "--database": ["--database", "postgresql://wc:secret-pw@127.0.0.1:5432/wc"],
    "--no-ui": ["--no-ui"],
    "--dry-run": ["--dry-run"],
}
"""Every program option but --log-level (which every command takes) and --version, as given."""


def _chains(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[str, list[argparse.ArgumentParser]]]:
    """Each command as typed (``outbox list``) and its parsers below the program's."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, child in action.choices.items():
                for name, chain in _chains(child, (*words, word)):
                    yield name, [child, *chain]
            return
    yield " ".join(words), []


CHAINS = dict(_chains(build_parser()))


def _takes(name: str, option: str) -> bool:
    return any(option in parser._option_string_actions for parser in CHAINS[name])


NOT_TAKEN = [(name, option) for name in CHAINS for option in BEFORE if not _takes(name, option)]


def test_every_command_is_in_the_table() -> None:
    assert sorted(MINIMAL) == sorted(CHAINS)
    assert sorted(BEFORE) == sorted(
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--version", "--log-level")
    )


def test_the_cases_include_the_reported_ones() -> None:
    assert ("outbox list", "--dry-run") in NOT_TAKEN
    assert ("replay", "--no-ui") in NOT_TAKEN


@pytest.mark.parametrize(("name", "option"), NOT_TAKEN)
def test_an_option_the_command_does_not_take_is_refused_before_it_runs(
    capsys: pytest.CaptureFixture[str], name: str, option: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*BEFORE[option], *name.split(), *MINIMAL[name]])
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "error:" in line]
    assert f"{option} does not apply to {name}" in line
    assert f"wanderer-console {option}" in line  # where it goes: the console itself
    assert "secret-pw" not in err


def test_the_refusal_names_the_commands_that_take_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--dry-run", "outbox", "list"])
    assert capsys.readouterr().err.rstrip().endswith("or after the name of: demo, replay")


def test_the_console_still_takes_them_all(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--no-ui", "--dry-run", "--log-level", "DEBUG"])
    assert (args.no_ui, args.dry_run, args.log_level) == (True, True, "DEBUG")


def test_a_store_option_before_the_command_name_reaches_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``db status`` takes ``--data-dir`` with a default of its own, which overwrote the one
    given before its name: it read the default data directory's store."""
    data = tmp_path / "data"
    data.mkdir()
    open_store(data / DB_NAME).close()

    assert main(["--data-dir", str(data), "db", "status"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert str(data) in json.dumps(doc)


def test_the_option_after_the_name_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    open_store(data / DB_NAME).close()
    elsewhere = str(tmp_path / "elsewhere")

    assert main(["--data-dir", elsewhere, "db", "status", "--data-dir", str(data)]) == EXIT_OK
    assert elsewhere not in capsys.readouterr().out


def test_config_check_checks_the_file_given_before_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[maps.home]\nurl = "http://127.0.0.1:9"\napi_key = "map-key-0d9e8f7a6b5c4d3e"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)

    assert main(["--config", str(config), "config", "check", "--offline"]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"config ok: {config}")


def test_the_log_level_before_any_command_still_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-level", "DEBUG", "config", "history", "--data-dir", str(tmp_path)]) in (
        0,
        1,
    )
    assert "does not apply" not in capsys.readouterr().err


def test_the_programs_help_says_where_they_apply(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "options before COMMAND" in capsys.readouterr().out
