"""Secrets at rest in the config audit: never stored, old rows scrubbed, restore fills them back.

Real SQLite files in ``tmp_path``; the database bytes (and its write-ahead log) are searched for
every secret value.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import json_refusal, read_only_preexec
from wanderer_console.cli import main
from wanderer_console.config.audit import ConfigAudit
from wanderer_console.config.loader import load_settings
from wanderer_console.config.redact import PLACEHOLDER, redact_config
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.runtime import Runtime
from wanderer_console.store.sqlite import open_database

MAP_KEY = "map-api-key-5f4e3d2c1b0a9988"
NEW_MAP_KEY = "map-api-key-rotated-77aa66bb"
BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
MAP_BOT_TOKEN = "OTg3NjU0MzIxMDk4NzY1NDMyMQ.GzYxWv.ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zy"
HOOK_TOKEN = "Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL"
WEBHOOK = f"https://discord.com/api/webhooks/123456789012345678/{HOOK_TOKEN}"
NEW_HOOK_TOKEN = "Hk1Hk2Hk3Hk4Hk5Hk6Hk7Hk8Hk9Hk0"
NEW_WEBHOOK = f"https://discord.com/api/webhooks/223456789012345678/{NEW_HOOK_TOKEN}"
OLD_KEY_IN_COMMENT = "retired-map-key-0a1b2c3d4e"
SECRETS = (
    MAP_KEY,
    NEW_MAP_KEY,
    BOT_TOKEN,
    MAP_BOT_TOKEN,
    HOOK_TOKEN,
    NEW_HOOK_TOKEN,
    OLD_KEY_IN_COMMENT,
)


def config_text(
    data_dir: Path, *, key: str = MAP_KEY, webhook: str = WEBHOOK, theme: str = "wanderer-dark"
) -> str:
    return f"""\
# the operator's own notes stay in the history
[console]
data_dir = "{data_dir}"
theme = "{theme}"

[esi]
enabled = false

[killstream]
enabled = false

[discord]
bot_token = "{BOT_TOKEN}"   # fallback for every map

[maps.home]
url = "http://127.0.0.1:9"
api_key = '{key}'
# api_key = "{OLD_KEY_IN_COMMENT}"

[maps.home.discord]
bot_token = "{MAP_BOT_TOKEN}"
webhook_url = "{webhook}"
channel_id = "100000000000000001"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def database_bytes(db: Path) -> bytes:
    """The database file and whatever of it still sits in the write-ahead log."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def assert_no_secret(db: Path, secrets: tuple[str, ...] = SECRETS) -> None:
    data = database_bytes(db)
    for secret in secrets:
        assert secret.encode() not in data, secret


def restore(version: int, config: Path, data_dir: Path) -> int:
    return main(
        ["config", "restore", str(version), "--config", str(config), "--data-dir", str(data_dir)]
    )


# -- recording -----------------------------------------------------------------------------------


async def test_the_audit_path_stores_no_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = write(tmp_path / "config.toml", config_text(data_dir))
    runtime = Runtime(load_settings(path, environ={}).settings, data_dir=data_dir, config_path=path)
    reloader = ConfigReloader(runtime, path)
    db = runtime.store.path
    try:
        reloader.baseline()  # what the engine does at start
        # Rotate the map key and the webhook, change a plain setting: applied hot.
        write(path, config_text(data_dir, key=NEW_MAP_KEY, webhook=NEW_WEBHOOK, theme="plain"))
        assert reloader.reload(source="file").status == "applied"
        # A rejected edit that is not even TOML, and one with a token in a channel id.
        write(path, config_text(data_dir) + f'\n[broken\nbot_token = "{BOT_TOKEN}"\n')
        assert reloader.reload(source="file").status == "rejected"
        bad = config_text(data_dir).replace('"100000000000000001"', f'"{MAP_BOT_TOKEN}"')
        write(path, bad)
        assert reloader.reload(source="tui").status == "rejected"

        history = reloader.audit.history()
        assert [e.source for e in history] == ["startup", "file", "file", "tui"]
        assert_no_secret(db)  # while running: database and write-ahead log
        first = history[0].content
        assert first.startswith("# the operator's own notes stay in the history\n")
        assert f"api_key = '{PLACEHOLDER}'" in first
        assert f'bot_token = "{PLACEHOLDER}"   # fallback for every map' in first
        assert first == redact_config(config_text(data_dir))
        changes = {c["key"]: c for c in history[1].diff["changes"]}
        assert changes["maps.home.api_key"] == {
            "key": "maps.home.api_key",
            "old": "***",
            "new": "***",
        }
    finally:
        reloader.close()
        await runtime.stop()
    assert_no_secret(db)


def test_a_restart_with_the_same_file_records_nothing_new(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", config_text(tmp_path / "data"))
    audit = ConfigAudit(tmp_path / "audit.db")
    try:
        audit.record("startup", path, path.read_text(), {"status": "applied", "changes": []})
        latest = audit.latest_applied()
        assert latest is not None
        assert latest.matches(path.read_text())
        assert not latest.matches(config_text(tmp_path / "data", theme="plain"))
    finally:
        audit.close()


# -- rows written by older builds ----------------------------------------------------------------


def _old_build_rows(db: Path, text: str, *, wal: bool) -> sqlite3.Connection:
    """Rows as the old ``ConfigAudit.record`` wrote them: the full text, secrets included."""
    conn = open_database(db)
    # As a build without SQLITE_SECURE_DELETE wrote them (Debian's SQLite zeroes freed space by
    # default, Python's own builds do not): page splits then leave stale copies in free space.
    conn.execute("PRAGMA secure_delete=OFF")
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # as the store: the log keeps them too
    for n in range(40):  # enough versions for page splits and overflow pages
        conn.execute(
            "INSERT INTO config_audit (at, source, path, diff, content) VALUES (?, ?, ?, ?, ?)",
            (time.time(), "file", "/etc/wc.toml", json.dumps({"status": "applied", "n": n}), text),
        )
    return conn


def secrets_first(data_dir: Path) -> str:
    """The config with its secrets at the top: an updated row's leftover bytes would hold them."""
    top = f"""\
[maps.home]
api_key = '{MAP_KEY}'
discord.webhook_url = "{WEBHOOK}"
discord.bot_token = "{MAP_BOT_TOKEN}"
url = "http://127.0.0.1:9"

[discord]
bot_token = "{BOT_TOKEN}"

"""
    rest = config_text(data_dir).split("[discord]")[0]
    return top + rest + "".join(f"# padding line {n}\n" for n in range(30))


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_plaintext_rows_of_older_builds_are_scrubbed_from_the_file_on_open(
    tmp_path: Path, wal: bool
) -> None:
    db = tmp_path / "wanderer-console.db"
    text = secrets_first(tmp_path / "data")
    load_settings(write(tmp_path / "config.toml", text), environ={})  # a real config
    old = _old_build_rows(db, text, wal=wal)
    assert MAP_KEY.encode() in database_bytes(db)  # the situation being fixed
    try:
        audit = ConfigAudit(db)  # the engine keeps its own connection open meanwhile
        audit.close()
        assert_no_secret(db)
    finally:
        old.close()
    assert_no_secret(db)

    audit = ConfigAudit(db)
    try:
        entries = audit.history()
        assert len(entries) == 40
        assert all(e.content == redact_config(text) for e in entries)
        assert entries[0].diff == {"status": "applied", "n": 0}
    finally:
        audit.close()
    conn = sqlite3.connect(db)
    try:
        (runs,) = conn.execute("SELECT count(*) FROM data_migrations").fetchone()
    finally:
        conn.close()
    assert runs == 1  # done once, not at every open


# -- restore ------------------------------------------------------------------------------------


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path]:
    """Version 1 as written first, version 2 with a plain change; the file holds version 2."""
    data_dir = tmp_path / "data"
    path = write(tmp_path / "config.toml", config_text(data_dir))
    audit = ConfigAudit(data_dir / "wanderer-console.db")
    try:
        audit.record("startup", path, path.read_text(), {"status": "applied", "changes": []})
        write(path, config_text(data_dir, theme="plain"))
        audit.record("file", path, path.read_text(), {"status": "applied", "changes": []})
    finally:
        audit.close()
    return path, data_dir


def test_restore_takes_the_secrets_of_the_current_file(
    versions: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data_dir = versions
    assert restore(1, path, data_dir) == 0
    # The text of version 1; a secret in a comment stays redacted (it was never a value).
    assert path.read_text() == config_text(data_dir).replace(OLD_KEY_IN_COMMENT, PLACEHOLDER)
    out = json.loads(capsys.readouterr().out)
    assert out["secrets"] == {
        "discord.bot_token": "config file",
        "maps.home.api_key": "config file",
        "maps.home.discord.bot_token": "config file",
        "maps.home.discord.webhook_url": "config file",
    }

    # Rotated since: the restored version gets the key the file has now.
    write(path, config_text(data_dir, key=NEW_MAP_KEY, theme="plain"))
    assert restore(1, path, data_dir) == 0
    settings = load_settings(path, environ={}).settings
    assert settings.console.theme == "wanderer-dark"
    assert settings.maps["home"].api_key.get_secret_value() == NEW_MAP_KEY
    webhook = settings.maps["home"].discord.webhook_url
    assert webhook is not None
    assert webhook.get_secret_value() == WEBHOOK
    assert_no_secret(data_dir / "wanderer-console.db")


@pytest.mark.parametrize(
    "environ",
    [
        {"WANDERER_CONSOLE_MAPS__HOME__API_KEY": NEW_MAP_KEY},
        {"MAP_NAME": "home", "MAP_API_KEY": NEW_MAP_KEY},
    ],
    ids=["override", "legacy"],
)
def test_restore_leaves_a_secret_the_environment_supplies_to_it(
    versions: tuple[Path, Path],
    environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, data_dir = versions
    # The operator moved the map key out of the file into the environment.
    current = config_text(data_dir, theme="plain").replace(f"api_key = '{MAP_KEY}'\n", "")
    write(path, current)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    assert restore(1, path, data_dir) == 0
    assert json.loads(capsys.readouterr().out)["secrets"]["maps.home.api_key"] == "environment"
    text = path.read_text()
    assert PLACEHOLDER not in text.split("# api_key")[0]
    assert NEW_MAP_KEY not in text  # an environment secret is not copied into the file
    settings = load_settings(path, environ=environ).settings
    assert settings.console.theme == "wanderer-dark"
    assert settings.maps["home"].api_key.get_secret_value() == NEW_MAP_KEY


def test_restore_refuses_a_secret_nothing_can_supply(
    versions: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data_dir = versions
    current = config_text(data_dir, theme="plain").replace(f'webhook_url = "{WEBHOOK}"\n', "")
    write(path, current)

    assert restore(1, path, data_dir) == 1
    out, err = capsys.readouterr()
    error = json_refusal(out, err, "config restore")["error"]
    assert "maps.home.discord.webhook_url" in error
    assert f"put the value in {path}" in error
    assert "WANDERER_CONSOLE_MAPS__HOME__DISCORD__WEBHOOK_URL" in error
    assert path.read_text() == current  # untouched
    assert not list(path.parent.glob("*.restore-tmp"))

    # No current file at all: every secret is named.
    path.unlink()
    assert restore(1, path, data_dir) == 1
    out, err = capsys.readouterr()
    error = json_refusal(out, err, "config restore")["error"]
    for key in ("discord.bot_token", "maps.home.api_key", "maps.home.discord.webhook_url"):
        assert key in error
    assert not path.exists()


# -- the redaction itself ------------------------------------------------------------------------


def test_redaction_keeps_the_text_and_removes_every_secret() -> None:
    text = f"""\
[maps.home]   # home chain
url = "http://127.0.0.1:9"
discord.bot_token = \"\"\"{MAP_BOT_TOKEN}\"\"\"
webhook_secret = "whsec-0123456789abcdef"
name = "Home"  # was {MAP_KEY} before; new one below
api_key = "{MAP_KEY}"

[maps.away]
discord = {{ webhook_url = "{WEBHOOK}", channel_id = "1" }}
"""
    redacted = redact_config(text)
    for secret in (HOOK_TOKEN, MAP_BOT_TOKEN, MAP_KEY, "whsec-0123456789abcdef"):
        assert secret not in redacted
    assert redacted.splitlines()[0] == "[maps.home]   # home chain"
    assert f'discord.bot_token = """{PLACEHOLDER}"""' in redacted
    assert 'name = "Home"  # was' in redacted
    assert f'discord = {{ webhook_url = "{PLACEHOLDER}", channel_id = "1" }}' in redacted
    assert redact_config(redacted) == redacted  # stable: an already redacted row stays as it is


def test_a_text_that_is_not_toml_is_still_scrubbed() -> None:
    text = (
        f'[maps.home\napi_key = "{MAP_KEY}"\nchannel_id = "{BOT_TOKEN}"\nurl = "{WEBHOOK}"\n'
        f"# the key above is {MAP_KEY}\n"
    )
    redacted = redact_config(text)
    for secret in (MAP_KEY, BOT_TOKEN, HOOK_TOKEN):
        assert secret not in redacted
    assert redacted.startswith("[maps.home\napi_key = ")


def test_restore_keeps_the_files_mode_and_group(
    versions: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """As deployed: root owns the file, the engine's group may read it (0640). A restore run
    with sudo must leave it so; it made the file 0600 (and root's group), so the engine, whose
    user is in that group only, could no longer read its own configuration."""
    path, data_dir = versions
    path.chmod(0o640)
    group = 4242 if os.geteuid() == 0 else os.getegid()
    os.chown(path, -1, group)

    assert restore(1, path, data_dir) == 0

    capsys.readouterr()
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_gid == group
    assert load_settings(path, environ={}).settings.console.theme == "wanderer-dark"


def test_restore_through_a_symlink_writes_the_file_it_points_at(
    versions: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config`` names a link (to a checkout, a secrets mount): the restored version goes to
    the target, the link stays. The link was replaced by a regular file, the target left stale."""
    path, data_dir = versions
    mounted = path.parent / "mounted"
    mounted.mkdir()
    target = mounted / "config.toml"
    path.rename(target)
    path.symlink_to(target)

    assert restore(1, path, data_dir) == 0

    capsys.readouterr()
    assert path.is_symlink()
    assert path.resolve() == target
    assert load_settings(target, environ={}).settings.console.theme == "wanderer-dark"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_restore_into_a_directory_it_cannot_write_says_so(versions: tuple[Path, Path]) -> None:
    """Run as the engine's user, which may read /etc/wanderer-console but not write there: one
    line naming the file and the reason, exit 1, the file untouched (it was a traceback)."""
    preexec = read_only_preexec()
    path, data_dir = versions
    before = path.read_text()
    path.parent.chmod(0o555)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "wanderer_console",
                "config",
                "restore",
                "1",
                "--config",
                str(path),
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            preexec_fn=preexec,
        )
    finally:
        path.parent.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    error = json_refusal(done.stdout, done.stderr, "config restore")["error"]
    assert error.startswith(f"cannot write {path}:")
    assert "Permission denied" in error
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml", "data"]
