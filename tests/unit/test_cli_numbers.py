"""Numbers on the command line that no database column holds (``--id 99999999999999999999999``,
``config restore`` of such a version, a ``--limit`` past 64 bits) are refused as usage errors
naming the option, not an ``OverflowError`` traceback from SQLite (or psycopg's from
PostgreSQL) after the store was opened."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.store.pgtest import fresh_schema, pg_base_url
from wanderer_console.cli import main
from wanderer_console.command import EXIT_USAGE
from wanderer_console.store import SqliteStore
from wanderer_console.store.postgres import PostgresStore

HUGE = "99999999999999999999999"
"""More than a 64-bit integer holds: SQLite's INTEGER and PostgreSQL's BIGINT refuse it."""


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["outbox", "drop", "--id", HUGE], "--id"),
        (["outbox", "list", "--limit", HUGE], "--limit"),
        (["config", "history", "--limit", HUGE], "--limit"),
        (["config", "restore", HUGE], "N"),
    ],
)
def test_a_number_past_64_bits_is_a_usage_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    command: list[str],
    option: str,
) -> None:
    for name in [n for n in os.environ if n.startswith("WANDERER_CONSOLE_STORE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WANDERER_CONSOLE_CONFIG", str(tmp_path / "absent.toml"))
    with contextlib.ExitStack() as stack:
        if kind == "postgresql":
            url = stack.enter_context(fresh_schema(pg_base_url()))
            PostgresStore(url).close()  # the schema the engine would have created
            where = ["--database", url.secret()]
        else:
            SqliteStore(tmp_path / "wanderer-console.db").close()
            where = ["--data-dir", str(tmp_path)]
        with pytest.raises(SystemExit) as exit_:
            main([*command, *where])
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {option}: {HUGE!r}: give a whole number from 1 to" in err
