"""Every command refuses in one format: one line on stderr, ``wanderer-console COMMAND: what
failed and what to do``, with the exit codes ``--help`` lists (argparse's usage errors stay
argparse's). A script or an operator at 3 a.m. reads the same shape whichever command failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wanderer_console.cli import build_parser, main
from wanderer_console.command import EXIT_IN_USE, EXIT_INVALID, EXIT_USAGE, one_line
from wanderer_console.store.backends import open_store
from wanderer_console.store.lock import DataDirLock


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


def _json_cases(tmp: Path) -> list[tuple[list[str], str, int]]:
    """A refusal of each command whose answer is JSON (and of ``export metrics`` asked for
    JSON), the command as it names itself, and its exit code."""
    missing = str(tmp / "missing.toml")
    return [
        (["tenant", "list", "--config", missing], "tenant list", EXIT_INVALID),
        (["outbox", "list", "--config", missing], "outbox list", EXIT_INVALID),
        (["outbox", "drop", "--data-dir", str(tmp)], "outbox drop", EXIT_USAGE),
        (["config", "history", "--config", missing], "config history", EXIT_INVALID),
        (["config", "restore", "3", "--config", missing], "config restore", EXIT_INVALID),
        (["db", "status", "--config", missing], "db status", EXIT_INVALID),
        (["db", "migrate-to", "--config", missing], "db migrate-to", EXIT_INVALID),
        (["kill", "5", "--config", missing], "kill", EXIT_INVALID),
        (["notify", "test", "a", "--config", missing], "notify test", EXIT_INVALID),
        (["replay", "--since", "2h"], "replay", EXIT_USAGE),
        (["export", "metrics", "--format", "json", "--since", "soon"], "export metrics", 2),
        (["bench", "--only", "no-such-scenario"], "bench", EXIT_USAGE),
        (["demo", "--duration", "5", "--config", missing], "demo", EXIT_USAGE),
    ]


def _refusal(err: str, name: str) -> str:
    lines = err.splitlines()
    prefix = f"wanderer-console {name}: "
    assert lines, (name, err)
    assert lines[-1].startswith(prefix), (name, err)
    return lines[-1].removeprefix(prefix)


def test_a_json_command_refuses_with_one_json_object_on_stdout_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line on stderr, and the same refusal as one JSON document on stdout: a script
    reading ``tenant list | jq`` gets JSON whether the command did its work or not."""
    monkeypatch.delenv("WANDERER_CONSOLE_STORE__URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "wanderer-console.db").touch()
    for argv, name, code in _json_cases(tmp_path):
        assert main(argv) == code, argv
        out, err = capsys.readouterr()
        text = _refusal(err, name)
        answer = json.loads(out)
        assert answer["error"] == text, (argv, out, err)
        assert (answer["command"], answer["exit_code"]) == (name, code), (argv, out)


def test_the_errors_keep_the_details_scripts_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``outbox drop --id N`` still names the ids it left and the database, now inside the one
    object on stdout (they were on stderr), and stderr holds only the line."""
    monkeypatch.delenv("WANDERER_CONSOLE_STORE__URL", raising=False)
    open_store(tmp_path / "wanderer-console.db").close()
    argv = ["outbox", "drop", "--id", "7", "--data-dir", str(tmp_path)]
    assert main(argv) == EXIT_INVALID
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["not_dropped"] == [7]
    assert answer["ids"] == [7]
    assert answer["dropped"] == 0
    assert answer["database"] == str(tmp_path / "wanderer-console.db")
    assert answer["error"] == _refusal(err, "outbox drop")
    assert len(err.splitlines()) == 1, err


def test_what_main_catches_is_refused_naming_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot be used, caught on the command's way out: the line names the
    command as typed, with the JSON object on stdout for a JSON command and none for CSV."""
    monkeypatch.delenv("WANDERER_CONSOLE_STORE__URL", raising=False)
    (tmp_path / "wanderer-console.db").write_bytes(b"not a database " * 100)
    assert main(["tenant", "list", "--data-dir", str(tmp_path)]) == EXIT_INVALID
    out, err = capsys.readouterr()
    text = _refusal(err, "tenant list")
    assert text.startswith("cannot use the database")
    assert json.loads(out) == {"error": text, "command": "tenant list", "exit_code": 1}
    assert main(["export", "metrics", "--data-dir", str(tmp_path)]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert _refusal(err, "export metrics").startswith("cannot use the database")
    assert out == ""


def test_a_data_directory_in_use_is_refused_naming_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = DataDirLock(tmp_path)
    running.acquire()
    try:
        argv = ["demo", "--no-ui", "--duration", "5", "--data-dir", str(tmp_path)]
        assert main(argv) == EXIT_IN_USE
    finally:
        running.release()
    out, err = capsys.readouterr()
    text = _refusal(err, "demo")
    assert json.loads(out) == {"error": text, "command": "demo", "exit_code": EXIT_IN_USE}


def test_a_hint_on_a_second_line_stays_readable_on_the_one_line() -> None:
    """``AttachError`` puts what to do on a line of its own: it follows after ``; ``, not run
    into the sentence before it."""
    message = (
        "nothing to attach to: no engine serves /d/control.sock\n"
        "no engine is running with data directory /d; start one: `wanderer-console --no-ui`"
    )
    assert one_line(message) == (
        "nothing to attach to: no engine serves /d/control.sock; no engine is running with"
        " data directory /d; start one: `wanderer-console --no-ui`"
    )
    assert one_line("it stopped.\nStart it again.") == "it stopped. Start it again."


def test_attach_refuses_in_the_one_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no engine on the socket: one line naming attach, its hint after ``; ``."""
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(["attach", "--data-dir", str(tmp_path)]) == EXIT_INVALID
    err = capsys.readouterr().err
    text = _refusal(err, "attach")
    assert len(err.splitlines()) == 1, err
    assert f"; no engine is running with data directory {tmp_path}" in text, err
