"""The deployment files read the way their tools read them: env files, the Dockerfile, compose.

No Docker engine runs here, so the tests check these files statically: linters and schemas from
the ``dev`` extra, plus what each file promises (the loader understands the environment they set,
the ports and directories agree with one another).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

__all__ = [
    "COMPOSE",
    "COMPOSE_VARIABLES",
    "DOCKERFILE",
    "ENV_EXAMPLE",
    "ROOT",
    "Assignment",
    "Instruction",
    "compose_interpolations",
    "dockerfile_env",
    "dockerfile_instructions",
    "exec_form",
    "env_assignments",
    "final_stage",
    "load_compose",
    "tool",
]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

COMPOSE_VARIABLES = frozenset({"POSTGRES_PASSWORD"})
"""Variables of ``.env`` that compose.yaml reads (interpolation), not the console's loader."""

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ACTIVE = re.compile(rf"^(?P<name>{_NAME})=(?P<value>.*)$")
_COMMENTED = re.compile(r"^#\s?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def tool(name: str) -> str:
    """The path of a command-line tool the ``dev`` extra installs (next to this interpreter)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} not found: install the dev extra (pip install -e '.[dev]')"
    return found


@dataclass(frozen=True, slots=True)
class Assignment:
    """A ``NAME=value`` line of an env file; ``active`` is False for a ``# NAME=value`` example."""

    name: str
    value: str
    line: int
    active: bool


def env_assignments(text: str) -> list[Assignment]:
    """Every assignment of an env file, the commented-out examples included."""
    found: list[Assignment] = []
    for number, line in enumerate(text.splitlines(), start=1):
        active = _ACTIVE.match(line)
        commented = _COMMENTED.match(line)
        match = active or commented
        if match:
            found.append(Assignment(match["name"], match["value"], number, bool(active)))
    return found


@dataclass(frozen=True, slots=True)
class Instruction:
    """A Dockerfile instruction: its keyword (upper case), its arguments (continuations joined)."""

    keyword: str
    arguments: str
    line: int


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile (comments dropped, ``\\`` continuations joined)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        pending.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            keyword, _, arguments = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last stage (from its ``FROM`` on): what the image runs."""
    starts = [i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON (exec form) argument list of CMD, ENTRYPOINT or HEALTHCHECK ... CMD."""
    arguments = instruction.arguments
    if instruction.keyword == "HEALTHCHECK":
        arguments = arguments[arguments.index("CMD ") + len("CMD ") :]
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"line {instruction.line}: not the exec form"
    return [str(part) for part in parsed]


def dockerfile_env(instructions: list[Instruction]) -> dict[str, str]:
    """The ``ENV NAME=value`` pairs of the given instructions (unquoted values)."""
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for pair in instruction.arguments.split():
                name, equals, value = pair.partition("=")
                assert equals, f"line {instruction.line}: ENV {pair} (use NAME=value)"
                env[name] = value
    return env


def load_compose() -> dict[str, Any]:
    """compose.yaml as data."""
    data = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def compose_interpolations() -> set[str]:
    """The variables compose.yaml interpolates (``${NAME}``, ``${NAME:?...}``), comments aside."""
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return {match["name"] for match in _INTERPOLATION.finditer(text)}
