"""The command line says what is wrong and what to do: ``config history``/``restore``,
``control token`` and ``db status``/``migrate-to`` with a configuration that cannot be read ask
for ``--data-dir`` (instead of using another directory's database), ``config check`` refuses a
configuration without a map and warns about the example's placeholder secrets, times in JSON are
ISO 8601."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.support import json_refusal
from wanderer_console.cli import main
from wanderer_console.config.audit import ConfigAudit
from wanderer_console.store.sqlite import DB_NAME

GOOD = """\
[console]
data_dir = "{data}"

[maps.home]
url = "http://127.0.0.1:9"
api_key = "map-key-0d9e8f7a6b5c4d3e"
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _history(data: Path, config: Path) -> None:
    """One recorded version in ``data``'s database."""
    audit = ConfigAudit(data / DB_NAME)
    try:
        audit.record("startup", config, config.read_text(), {"status": "applied", "changes": []})
    finally:
        audit.close()


@pytest.mark.parametrize("command", [["config", "history"], ["config", "restore", "1"]])
def test_an_unreadable_config_asks_for_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = _write(tmp_path / "config.toml", GOOD.format(data=data))
    _history(data, config)
    _write(config, GOOD.format(data=data).replace("[maps.home]", "[maps.home"))  # broken

    assert main([*command, "--config", str(config)]) == 1
    captured = capsys.readouterr()
    answer = json_refusal(captured.out, captured.err, " ".join(command[:2]))
    error = answer["error"]
    assert error.startswith("cannot read the configuration (")
    assert f"{config}:4: (syntax)" in error
    assert "pass --data-dir DIR" in error
    assert "history" not in answer  # no other directory's history instead

    if command[1] == "history":
        assert main([*command, "--config", str(config), "--data-dir", str(data)]) == 0
        [entry] = json.loads(capsys.readouterr().out)["history"]
        assert entry["source"] == "startup"


def test_history_times_are_iso_8601(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = _write(tmp_path / "config.toml", GOOD.format(data=data))
    _history(data, config)
    assert main(["config", "history", "--config", str(config)]) == 0
    [entry] = json.loads(capsys.readouterr().out)["history"]
    at = datetime.fromisoformat(entry["at"])
    assert at.utcoffset() is not None  # with its zone (UTC)


def test_a_restore_of_a_version_not_in_the_history_names_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal says which database's history lacks the version, as the other store
    commands do: a mistyped ``--data-dir`` reads as a missing version otherwise."""
    data = tmp_path / "data"
    data.mkdir()
    config = _write(tmp_path / "config.toml", GOOD.format(data=data))
    _history(data, config)
    assert main(["config", "restore", "7", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    answer = json_refusal(captured.out, captured.err, "config restore")
    assert answer == {
        "error": "no configuration version 7 in the history",
        "command": "config restore",
        "exit_code": 1,
        "database": str(data / DB_NAME),
    }


def test_config_check_refuses_a_configuration_without_a_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path / "config.toml", "[console]\ndry_run = true\n")
    assert main(["config", "check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "config invalid: no map configured: nothing would be received" in err
    assert "[maps.<key>]" in err


def test_config_check_warns_about_placeholder_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.format(data=tmp_path).replace(
        'api_key = "map-key-0d9e8f7a6b5c4d3e"', 'api_key = "replace-with-the-map-api-key"'
    )
    config = _write(tmp_path / "config.toml", text)
    assert main(["config", "check", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert (
        f"warning: {config}:6: maps.home.api_key: still the example's placeholder"
        " (replace-with-…): put the real value"
    ) in captured.err
    assert "config ok" in captured.out


def test_the_example_config_is_flagged_until_its_placeholders_are_replaced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = Path(__file__).parents[2] / "config" / "wanderer.example.toml"
    main(["config", "check", "--offline", "--config", str(example)])
    assert "maps.home.api_key: still the example's placeholder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["control", "token"],
        ["db", "status"],
        ["db", "migrate-to", "postgresql://wc:pw-not-printed@127.0.0.1:9/wc"],
        ["tenant", "list"],
        ["tenant", "add", "home"],
        ["export", "metrics"],
    ],
    ids=["control-token", "db-status", "db-migrate-to", "tenant-list", "tenant-add", "export"],
)
def test_commands_on_the_engines_data_dir_refuse_a_config_that_does_not_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    """``--config`` names the engine's data directory; while the file is broken, these commands
    say so and ask for ``--data-dir`` rather than work on the default data directory (make a
    token there, report or migrate its database)."""
    engine_data, xdg = tmp_path / "engine-data", tmp_path / "xdg-data"
    engine_data.mkdir()
    default_data = xdg / "wanderer-console"
    config = _write(tmp_path / "config.toml", GOOD.format(data=engine_data))
    _history(default_data, config)  # a database in the default data dir, e.g. from a demo run
    _write(config, GOOD.format(data=engine_data).replace("[maps.home]", "[maps.home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    before = sorted(p.name for p in default_data.iterdir())

    code = main([*command, "--config", str(config)])

    captured = capsys.readouterr()
    assert code == 1
    name = " ".join(command[:2])
    if name in ("control token", "export metrics"):  # their answers are not JSON
        assert captured.out == ""
    else:
        assert set(json_refusal(captured.out, captured.err, name)) == {
            "error",
            "command",
            "exit_code",
        }
    assert f"cannot read the configuration ({config}:4: (syntax)" in captured.err
    assert "pass --data-dir DIR" in captured.err
    assert "pw-not-printed" not in captured.err + captured.out
    assert sorted(p.name for p in default_data.iterdir()) == before
    assert list(engine_data.iterdir()) == []


@pytest.mark.parametrize("command", [["config", "history"], ["config", "restore", "1"]])
def test_a_data_dir_without_a_database_is_refused_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """``--data-dir`` with a typo: the history is in no database there. The command created an
    empty one (and the directory) and answered ``{"history": []}``, exit 0, as if nothing had
    ever been recorded; like ``outbox`` and ``export`` it now says there is no database."""
    typo = tmp_path / "dta"
    assert main([*command, "--data-dir", str(typo)]) == 1
    captured = capsys.readouterr()
    answer = json_refusal(captured.out, captured.err, " ".join(command[:2]))
    error = answer["error"]
    assert f"no database at {typo / DB_NAME}" in error
    assert "--data-dir" in error
    assert "history" not in answer
    assert not typo.exists()


def test_a_history_limit_that_is_not_a_positive_count_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--limit -1`` was PostgreSQL's ``LIMIT must not be negative`` traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(["config", "history", "--limit", "-1", "--data-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--limit" in capsys.readouterr().err
