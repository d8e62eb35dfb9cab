"""Every ``wanderer-console`` command line the README and the operations pages show exists.

An operator copies these at 3 a.m.: each names sub-commands the parser has, and each ``--flag``
is one the command (or the program, before the command) accepts. The README's table of operator
commands is held to its promise that they take ``--config``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from wanderer_console.cli import build_parser, commands

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_LINE = re.compile(
    r"(?:^|(?<=[\s`(])|(?<=bin/))wanderer-console((?: +[^\s`'|#;)&]+)+)", re.MULTILINE
)
_NOT_THE_PROGRAM = re.compile(r"(?:systemctl|journalctl|-u|--home-dir|install|cd)\s+(?:\S+\s+)?$")
"""Before a ``wanderer-console`` that is a unit, a user's home or a directory instead."""
_STOP = re.compile(r"^(?:#|\||&&|;|>)")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def problems(words: list[str]) -> Iterator[str]:
    """What in ``wanderer-console WORDS`` the parser does not have (nothing: all is there)."""
    top = parser = build_parser()
    path: list[str] = []
    value_next = False
    for word in words:
        if _STOP.match(word):
            return
        if value_next:
            value_next = False
            continue
        option = word.strip("[]").split("=", 1)[0]
        if option.startswith("--"):
            action = parser._option_string_actions.get(option)
            action = action or top._option_string_actions.get(option)
            if action is None:
                yield f"{' '.join(path) or '(program)'} has no option {option}"
            else:
                value_next = action.nargs != 0 and "=" not in word
            continue
        choices = _subcommands(parser)
        if word in choices:
            parser = choices[word]
            path.append(word)
        elif choices:
            yield f"{' '.join(['wanderer-console', *path])} has no command {word!r}"
            return


def command_lines(text: str) -> Iterator[list[str]]:
    """The words after each ``wanderer-console`` of a page, continued lines (``\\``) joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for match in _LINE.finditer(joined):
        line_start = joined.rfind("\n", 0, match.start()) + 1
        if not _NOT_THE_PROGRAM.search(joined[line_start : match.start()]):
            yield match.group(1).split()


def readme_table() -> tuple[list[str], set[str]]:
    """The commands of the README's table of operator commands (a first cell may show several),
    and those its heading says take no ``--config`` (``all but `X` take `--config```)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    heading, table = text.split("Operator commands", 1)[1].split("\n\n", 2)[:2]
    exempt = set(re.findall(r"`([a-z-]+)`", heading.split(" take `--config`")[0]))
    out: list[str] = []
    for row in table.splitlines()[2:]:
        cell = row.split(" | ", 1)[0].removeprefix("| ")
        for shown in re.findall(r"`([^`]+)`", cell):
            command = shown.replace(" \\| ", " ").replace("\\|", "|")  # [--a A \| --b B]
            group, _, rest = command.partition(" ")
            actions, _, arguments = rest.partition(" ")
            if "|" in actions:  # tenant add|list|...
                out += [f"{group} {action} {arguments}".strip() for action in actions.split("|")]
            else:
                out.append(command)
    return out, exempt


def test_the_checker_finds_what_is_missing() -> None:
    assert list(problems(["config", "check", "--config", "c.toml"])) == []
    assert list(problems(["--no-ui", "--config", "c.toml", "#", "headless", "--nope"])) == []
    assert list(problems(["config", "reload"])) == [
        "wanderer-console config has no command 'reload'"
    ]
    assert list(problems(["bench", "--only", "peer", "--json", "p.json"])) == []
    assert list(problems(["outbox", "retry", "--force"])) == ["outbox retry has no option --force"]
    assert list(problems(["reload"])) == ["wanderer-console has no command 'reload'"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_line_on_the_page_exists(page: Path) -> None:
    found = {
        " ".join(words): list(problems(words))
        for words in command_lines(page.read_text(encoding="utf-8"))
    }
    assert {line: wrong for line, wrong in found.items() if wrong} == {}


def test_the_readme_table_names_real_commands_that_take_config() -> None:
    table, exempt = readme_table()
    assert "notify test MAP[:ROUTE]" in table
    assert "tenant rotate-key" in table
    for command in table:
        words = command.split()
        assert list(problems(words)) == [], command
        leaf = top = build_parser()
        for word in words:
            leaf = _subcommands(leaf).get(word, leaf)
        assert leaf is not top, f"{command}: no such command"
        assert not _subcommands(leaf), f"{command}: names a group, not a command"
        if words[0] not in exempt:
            assert "--config" in leaf._option_string_actions, f"{command} takes no --config"


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The path of every command the parser runs (``("tenant", "add")``), groups walked."""
    for name, sub in _subcommands(parser).items():
        if _subcommands(sub):
            yield from _leaves(sub, (*path, name))
        else:
            yield (*path, name)


def test_the_readme_table_names_every_command() -> None:
    """An operator reads the table to learn what the program can do: every command the parser
    has (``--help`` lists them) is in it, not only some."""
    table, _exempt = readme_table()
    shown = [tuple(command.split()) for command in table]
    missing = [
        " ".join(leaf)
        for leaf in _leaves(build_parser())
        if not any(words[: len(leaf)] == leaf for words in shown)
    ]
    assert missing == []


def test_the_help_epilog_names_every_command() -> None:
    """``wanderer-console --help`` ends with one line per command: none is left out."""
    epilog = build_parser().epilog or ""
    missing = [
        command.name for command in commands() if not re.search(rf"\b{command.name}\b", epilog)
    ]
    assert missing == []
