"""The engine's config edits: secret masking, one-key edits, digests and atomic writes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.ui.conftest import CONFIG_TEXT  # the console's sample config, secrets and all
from wanderer_console.config.edit import (
    MaskError,
    atomic_write_text,
    digest,
    mask_secrets,
    set_value,
    unmask_secrets,
)

EVERY_KIND = """\
[discord]
bot_token = "BOT-TOKEN"  # the fallback bot
[maps.alpha]
api_key = 'literal-key'
# api_key = "old-key-in-a-comment"
webhook_secret = ""
discord = { webhook_url = "https://discord.com/api/webhooks/1/TOK?wait=true", channel_id = "5" }
[server]
ingest_keys = ["ingest-a", "ingest-b"]
maps.bravo.api_key = "dotted-key"
url = "http://127.0.0.1:1"
"""


def test_every_secret_kind_is_masked_and_restored() -> None:
    masked = mask_secrets(EVERY_KIND)
    for secret in ("BOT-TOKEN", "literal-key", "old-key", "TOK?", "ingest-a", "dotted-key"):
        assert secret not in masked.text
    assert "https://discord.com/api/webhooks/1/«secret-4»?wait=true" in masked.text
    assert 'webhook_secret = ""' in masked.text
    assert 'url = "http://127.0.0.1:1"' in masked.text
    assert unmask_secrets(masked.text, masked.secrets) == EVERY_KIND


@pytest.mark.parametrize(
    ("edit", "word"),
    [
        (lambda t: t.replace("«secret-1»", ""), "missing"),
        (lambda t: t + '\nx_token = "«secret-2»"\n', "repeated"),
        (lambda t: t.replace("«secret-1»", "«secret-9»"), "unknown"),
    ],
)
def test_edited_placeholders_are_refused(edit: object, word: str) -> None:
    masked = mask_secrets(CONFIG_TEXT)
    assert callable(edit)
    with pytest.raises(MaskError, match=word):
        unmask_secrets(edit(masked.text), masked.secrets)


def test_atomic_write_keeps_mode_and_new_files_are_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared.toml"
    shared.write_text("a = 1\n", encoding="utf-8")
    shared.chmod(0o640)
    atomic_write_text(shared, "a = 2\n")
    assert shared.read_text(encoding="utf-8") == "a = 2\n"
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.toml"
    atomic_write_text(fresh, "b = 1\n")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.toml", "shared.toml"]


def test_set_value_keeps_comments_and_creates_tables() -> None:
    text = '# keep me\n[console]\ntheme = "wanderer-dark"  # the look\n'
    out = set_value(text, ("console", "theme"), "wanderer-light")
    assert out == '# keep me\n[console]\ntheme = "wanderer-light"  # the look\n'
    created = set_value(text, ("maps", "home", "notifications", "kill"), False)
    assert "# keep me" in created
    assert "[maps.home.notifications]\nkill = false" in created


def test_set_value_refuses_a_path_through_a_value() -> None:
    with pytest.raises(ValueError, match=r"console\.theme is not a table"):
        set_value('[console]\ntheme = "x"\n', ("console", "theme", "deeper"), 1)


def test_digest_tells_texts_apart() -> None:
    assert digest("a = 1\n") == digest("a = 1\n")
    assert digest("a = 1\n") != digest("a = 2\n")


def test_atomic_write_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    """The config path is often a link (``/etc/wanderer-console/config.toml`` into a checkout
    or a secrets mount): a save goes to the file it points at, the link stays a link. It was
    replaced by a regular file, leaving the target stale (and the next deploy's link gone)."""
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "config.toml"
    target.write_text("a = 1\n", encoding="utf-8")
    target.chmod(0o640)
    link_dir = tmp_path / "etc"
    link_dir.mkdir()
    link = link_dir / "config.toml"
    link.symlink_to(Path("..") / "real" / "config.toml")  # relative, as `ln -s` makes them

    atomic_write_text(link, "a = 2\n")

    assert link.is_symlink()
    assert link.readlink() == Path("..") / "real" / "config.toml"
    assert target.read_text(encoding="utf-8") == "a = 2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    # The temporary file was made beside the target (one file system: the rename is atomic).
    assert [p.name for p in real_dir.iterdir()] == ["config.toml"]
    assert [p.name for p in link_dir.iterdir()] == ["config.toml"]
