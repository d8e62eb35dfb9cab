"""The Dockerfile, checked without a Docker engine: hadolint, then what the image promises.

Multi-stage, a non-root user owning the data directory, the engine headless (``--no-ui``) with its
HTTP surface on, and a HEALTHCHECK on ``/ready`` that is run here, as the container would run it,
against a local server answering 200 and then 503.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.deploy.files import (
    DOCKERFILE,
    ROOT,
    Instruction,
    dockerfile_env,
    dockerfile_instructions,
    exec_form,
    final_stage,
    tool,
)
from wanderer_console.config.loader import parse_settings_text

INSTRUCTIONS = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = final_stage(INSTRUCTIONS)


def _only(keyword: str, instructions: list[Instruction] = FINAL) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def _hadolint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hadolint"), "--no-color", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    result = _hadolint("Dockerfile")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_judges_for_real() -> None:
    """The same call on a careless Dockerfile fails, naming the rules: the linter really ran."""
    result = _hadolint("-", stdin="FROM python\nRUN pip install requests\n")
    assert result.returncode != 0
    assert {"DL3006", "DL3013", "DL3042"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_multi_stage_build_copies_only_the_environment() -> None:
    stages = [i for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(stages) >= 2
    build = stages[0].arguments.split()
    assert [part.upper() for part in build[1:]] == ["AS", "BUILD"], stages[0]
    copies = [i.arguments for i in FINAL if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/wanderer-console /opt/wanderer-console"]
    assert not any("pip" in i.arguments for i in FINAL if i.keyword == "RUN")


def test_runs_as_a_non_root_user_that_owns_the_data_directory() -> None:
    user = _only("USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: numeric, so the runtime can tell it is not root"
    assert gid.isdigit(), f"USER {user}: numeric group too"
    assert "0" not in {uid, gid}, f"USER {user} is root"
    setup = " ".join(i.arguments for i in FINAL if i.keyword == "RUN")
    name = re.search(r"useradd .*?--uid (\d+) .*?--gid \S+ .*? (\S+) *(&&|$)", setup)
    assert name, f"no useradd in the final stage: {setup}"
    assert name.group(1) == uid, f"USER {user} is not the user the image creates"
    data_dir = dockerfile_env(FINAL)["WANDERER_CONSOLE_CONSOLE__DATA_DIR"]
    owned = re.search(
        rf"install -d -o {name.group(2)} -g \S+ -m 0?700 {re.escape(data_dir)}\b", setup
    )
    assert owned, f"{data_dir} is not created owned by {name.group(2)} (mode 0700)"
    # USER comes after every RUN: nothing the image runs later runs as root.
    assert FINAL.index(_only("USER")) > max(
        FINAL.index(i) for i in FINAL if i.keyword in {"RUN", "COPY"}
    )


def test_runs_the_engine_headless() -> None:
    entrypoint = exec_form(_only("ENTRYPOINT"))
    command = exec_form(_only("CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert entrypoint == ["wanderer-console"]
    assert entrypoint[0] in scripts["scripts"]
    assert command == ["--no-ui"]
    assert dockerfile_env(FINAL)["PATH"].startswith("/opt/wanderer-console/bin:")


def test_the_container_environment_turns_the_http_surface_on() -> None:
    """The loader, given the image's ENV, serves HTTP on every interface, on the EXPOSEd port."""
    env = dockerfile_env(FINAL)
    console = {k: v for k, v in env.items() if k.startswith("WANDERER_CONSOLE_")}
    settings, _used = parse_settings_text("", file="Dockerfile", environ=console)
    assert settings.server.enabled is True
    assert settings.server.host == "0.0.0.0"
    assert str(settings.server.port) == _only("EXPOSE").arguments
    assert str(settings.console.data_dir) == _only("WORKDIR").arguments


class _Ready(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        body = b'{"ready": true}' if self.status == 200 else b'{"ready": false}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def ready_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _healthcheck(port: int) -> int:
    """Run the HEALTHCHECK's command as the container would (its ``python`` is this one)."""
    command = exec_form(_only("HEALTHCHECK"))
    assert command[0] == "python"  # the image's interpreter: no curl in a slim image
    env = {"WANDERER_CONSOLE_SERVER__PORT": str(port), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    return result.returncode


def test_healthcheck_asks_ready_and_fails_on_503(ready_server: ThreadingHTTPServer) -> None:
    port = ready_server.server_address[1]
    _Ready.paths.clear()
    _Ready.status = 200
    assert _healthcheck(port) == 0
    _Ready.status = 503
    assert _healthcheck(port) != 0
    assert _Ready.paths == ["/ready", "/ready"]
    options = _only("HEALTHCHECK").arguments.split(" CMD ")[0]
    assert "--start-period=" in options
    assert "--timeout=" in options


def test_healthcheck_fails_when_nothing_answers(ready_server: ThreadingHTTPServer) -> None:
    port = ready_server.server_address[1]
    ready_server.shutdown()
    ready_server.server_close()
    assert _healthcheck(port) != 0


def test_the_build_context_is_an_allow_list_of_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # .env, .venv, .git, data: nothing reaches the daemon unless listed
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            copied |= {source.rstrip("/") for source in instruction.arguments.split()[:-1]}
    assert allowed == copied
    assert not any(".env" in name for name in allowed)
