"""compose.yaml: valid against the compose specification, and consistent with the image.

``check-jsonschema --builtin-schema vendor.compose-spec`` validates it with the schema vendored in
the wheel (no network). The rest reads it as data: PostgreSQL health-checked and waited for, named
volumes on the directories the image uses, the HTTP port published on loopback only, secrets from
``.env``, and every console setting it sets is one the loader reads.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.files import (
    COMPOSE,
    COMPOSE_VARIABLES,
    DOCKERFILE,
    ROOT,
    dockerfile_env,
    dockerfile_instructions,
    final_stage,
    load_compose,
    tool,
)
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import Settings

COMPOSE_DATA = load_compose()
SERVICES: dict[str, Any] = COMPOSE_DATA["services"]
CONSOLE: dict[str, Any] = SERVICES["console"]
POSTGRES: dict[str, Any] = SERVICES["postgres"]
IMAGE_ENV = dockerfile_env(final_stage(dockerfile_instructions(DOCKERFILE.read_text("utf-8"))))


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _interpolated(value: str) -> str:
    """``value`` as compose passes it on, with ``password`` as every interpolated variable."""
    return re.sub(r"\$\{[^}]*\}", "password", value)


def test_valid_against_the_compose_specification() -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_judges_for_real(tmp_path: Path) -> None:
    """A broken copy (a health condition compose does not know) fails the same check."""
    broken = tmp_path / "compose.yaml"
    text = COMPOSE.read_text(encoding="utf-8")
    assert "condition: service_healthy" in text
    broken.write_text(text.replace("service_healthy", "service_greenish"), encoding="utf-8")
    result = _validate(broken)
    assert result.returncode != 0
    assert "service_greenish" in result.stdout


def test_postgres_is_health_checked_and_waited_for() -> None:
    check = POSTGRES["healthcheck"]["test"]
    assert "pg_isready" in " ".join(check)
    assert CONSOLE["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "ports" not in POSTGRES  # reached by the console only, on the project network


def test_data_lives_in_named_volumes() -> None:
    declared = set(COMPOSE_DATA["volumes"])
    mounts = {
        name: dict(volume.rsplit(":", 1)[::-1] for volume in service.get("volumes", []))
        for name, service in SERVICES.items()
    }
    assert mounts["console"].get(IMAGE_ENV["WANDERER_CONSOLE_CONSOLE__DATA_DIR"]) in declared
    assert mounts["postgres"].get("/var/lib/postgresql/data") in declared
    assert {source for mount in mounts.values() for source in mount.values()} == declared


def test_the_http_port_is_published_on_loopback_only() -> None:
    port = IMAGE_ENV["WANDERER_CONSOLE_SERVER__PORT"]
    assert CONSOLE["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_secrets_come_from_the_env_file() -> None:
    assert CONSOLE["env_file"] == [".env"]
    password = "${POSTGRES_PASSWORD:?"
    assert POSTGRES["environment"]["POSTGRES_PASSWORD"].startswith(password)
    raw = CONSOLE["environment"]["WANDERER_CONSOLE_STORE__URL"]
    assert re.search(r"^[^@]*:\$\{POSTGRES_PASSWORD:\?[^}]*\}@", raw), raw
    url = urlsplit(_interpolated(raw))
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"
    assert url.port == 5432
    assert url.username == POSTGRES["environment"]["POSTGRES_USER"]
    assert url.path == "/" + POSTGRES["environment"]["POSTGRES_DB"]
    assert url.password == "password"
    for service in SERVICES.values():  # no literal secret in the file itself
        for name, value in service.get("environment", {}).items():
            if "PASSWORD" in name:
                assert str(value).startswith("${"), name
    assert {"POSTGRES_PASSWORD"} == COMPOSE_VARIABLES


def test_stopping_leaves_the_engine_time_to_finish_its_sends() -> None:
    grace = CONSOLE["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > 5


CONSOLE_SETTINGS = sorted(
    {
        name: value
        for name, value in {**IMAGE_ENV, **CONSOLE["environment"]}.items()
        if name.startswith("WANDERER_CONSOLE_")
    }.items()
)


@pytest.mark.parametrize(("name", "value"), CONSOLE_SETTINGS, ids=[n for n, _ in CONSOLE_SETTINGS])
def test_every_console_setting_of_the_container_is_read(name: str, value: str) -> None:
    """Each ``WANDERER_CONSOLE_*`` the image or compose sets lands on a key of the settings."""
    path = name.removeprefix("WANDERER_CONSOLE_").lower().split("__")
    if path[0] == "store" and "store" not in Settings.model_fields:
        pytest.skip(f"[store] is not in the settings model yet: {name} is ignored until it is")
    environ = {name: _interpolated(value)}
    settings, _used = parse_settings_text("", file="compose.yaml", environ=environ)
    node: Any = settings.model_dump()
    for part in path:
        assert isinstance(node, dict), f"{name}: {part!r} is below a value, not a key"
        assert part in node, f"{name}: the settings have no key {part!r}"
        node = node[part]
