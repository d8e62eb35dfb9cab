""".env.example: every variable in it is one the console's loader reads, and no secret is real.

The file is read the way compose reads ``env_file`` (``NAME=value`` lines); the commented-out
``# NAME=value`` lines are examples an operator uncomments, so they are checked too. The loader is
the real one (:func:`~wanderer_console.config.loader.parse_settings_text` with ``environ=``):
a notifier variable must be among the ones it reports as used, a ``WANDERER_CONSOLE_*`` variable
must land on a key of the settings. Anything else would be silently ignored, and fails here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.files import (
    COMPOSE_VARIABLES,
    ENV_EXAMPLE,
    Assignment,
    compose_interpolations,
    env_assignments,
)
from wanderer_console.config.hygiene import BOT_TOKEN, INGEST_KEY, WEBHOOK_URL
from wanderer_console.config.legacy_env import LEGACY_VARIABLES
from wanderer_console.config.loader import ConfigError, parse_settings_text
from wanderer_console.config.model import Settings

PREFIX = "WANDERER_CONSOLE_"
ASSIGNMENTS = env_assignments(ENV_EXAMPLE.read_text(encoding="utf-8"))
FOR_THE_CONSOLE = [a for a in ASSIGNMENTS if a.name not in COMPOSE_VARIABLES]
ALIASES = frozenset({"DISCORD_RALLY_GROUP_ID", "PRIORITY_SYSTEMS_ONLY"})
"""Second names of notifier variables that the example lists under their first name."""
MODES = frozenset({"PLUGIN_NOTIFIER_API_KEY"})
"""Variables that switch the notifier's single-map variables off (hosted mode): the example
explains them in a comment instead of an assignment an operator would uncomment with the rest."""
PLACEHOLDER = "change-me"
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|WEBHOOK_URL")


def _load(assignments: list[Assignment]) -> tuple[Settings, tuple[str, ...]]:
    environ = {a.name: a.value for a in assignments}
    try:
        return parse_settings_text("", file=".env.example", environ=environ)
    except ConfigError as exc:
        raise AssertionError(f".env.example does not load:\n{exc}") from exc


@pytest.fixture(scope="module")
def loaded() -> tuple[dict[str, Any], tuple[str, ...]]:
    """The settings every console variable of the example gives (examples uncommented)."""
    settings, used = _load(FOR_THE_CONSOLE)
    return settings.model_dump(), used


def test_the_example_lists_variables() -> None:
    names = {a.name for a in ASSIGNMENTS}
    assert {"MAP_URL", "MAP_NAME", "MAP_API_KEY", "DISCORD_BOT_TOKEN"} <= names
    assert len(FOR_THE_CONSOLE) >= 30


@pytest.mark.parametrize("assignment", FOR_THE_CONSOLE, ids=lambda a: a.name)
def test_every_variable_is_read_by_the_loader(
    assignment: Assignment, loaded: tuple[dict[str, Any], tuple[str, ...]]
) -> None:
    dump, used = loaded
    where = f".env.example:{assignment.line}: {assignment.name}"
    assert assignment.value.strip(), f"{where}: give an example value (an empty one is unset)"
    if assignment.name.upper().startswith(PREFIX):
        node: Any = dump
        for part in assignment.name[len(PREFIX) :].lower().split("__"):
            assert isinstance(node, dict), f"{where}: {part!r} is below a value, not a key"
            assert part in node, f"{where}: the settings have no key {part!r}; ignored"
            node = node[part]
    else:
        assert assignment.name in used, f"{where}: the console does not read this variable"


def test_the_active_lines_alone_load() -> None:
    """A copy filled in no further than the example still validates (and configures a map)."""
    settings, used = _load([a for a in FOR_THE_CONSOLE if a.active and a.value])
    assert list(settings.maps) == ["your-map-slug"]
    assert {"MAP_URL", "MAP_NAME", "MAP_API_KEY", "DISCORD_CHANNEL_ID"} <= set(used)


def test_every_notifier_variable_is_in_the_example() -> None:
    missing = LEGACY_VARIABLES - ALIASES - MODES - {a.name for a in ASSIGNMENTS}
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    missing |= {name for name in MODES if name not in text}
    assert not missing, f"notifier variables the console reads but .env.example omits: {missing}"


def test_compose_variables_are_the_ones_compose_reads() -> None:
    """The only lines the loader does not read are the ones compose.yaml interpolates."""
    names = {a.name for a in ASSIGNMENTS}
    assert compose_interpolations() == COMPOSE_VARIABLES
    assert names >= COMPOSE_VARIABLES
    for name in COMPOSE_VARIABLES:
        _settings, used = _load([Assignment(name, "x", 0, active=True)])
        assert name not in used  # it reaches the console only through compose.yaml


def test_lines_read_the_same_by_compose_systemd_and_docker() -> None:
    """Unquoted values without inline comments: every env-file reader agrees on them."""
    names = [a.name for a in ASSIGNMENTS]
    assert len(names) == len(set(names)), "a variable is listed twice"
    for a in ASSIGNMENTS:
        where = f".env.example:{a.line}"
        assert a.value == a.value.strip(), f"{where}: spaces around the value"
        assert not a.value.startswith(("'", '"')), f"{where}: quoted (readers differ on quotes)"
        assert " #" not in a.value, f"{where}: inline comment (systemd keeps it in the value)"


def test_no_secret_in_the_example_is_real() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for a in ASSIGNMENTS:
        if SECRET_NAME.search(a.name):
            assert not a.value or PLACEHOLDER in a.value, (
                f".env.example:{a.line}: {a.name} must be empty or a '{PLACEHOLDER}' placeholder"
            )
    assert _real_looking(text) == []


def _real_looking(text: str) -> list[str]:
    """Strings in ``text`` shaped like a secret: tokens, keys, a webhook's token, random runs."""
    found = [m.group(0) for pattern in (BOT_TOKEN, INGEST_KEY) for m in pattern.finditer(text)]
    found += [m.group(0) for m in WEBHOOK_URL.finditer(text) if PLACEHOLDER not in m.group(0)]
    uuid = r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    found += re.findall(uuid, text)
    for run in re.findall(r"[A-Za-z0-9_+/=-]{20,}", text):
        hexadecimal = re.fullmatch(r"[0-9a-f]+", run) and not run.isdigit()
        mixed = re.search(r"[a-z]", run) and re.search(r"[A-Z]", run) and re.search(r"\d", run)
        if hexadecimal or mixed:
            found.append(run)
    return found


@pytest.mark.parametrize(
    "secret",
    [
        "MTAxMjM0NTY3ODkwMTIzNDU2Nzg.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB",
        "https://discord.com/api/webhooks/123456789012345678/aBcD3fGh1jKlMn0pQrStUvWxYz",
        "3f2c8a1e-9b4d-4c6a-8e2f-1a2b3c4d5e6f",
        "wci_Zm9vYmFyYmF6cXV4",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c",
        "sk_LiveAbCdEf0123456789XyZ",
    ],
)
def test_the_secret_check_finds_real_looking_ones(secret: str) -> None:
    assert _real_looking(f"MAP_API_KEY={secret}\n")
