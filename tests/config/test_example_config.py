"""``config/wanderer.example.toml`` documents every key, as the README says.

Every field of the settings model must appear in the example as a ``key = value`` line in its
section, commented out or not: the commented lines are read as if they were not. Where the
example shows one of several alike (the alert rules, the trackers), the others are named in its
comments and the one shown carries every key its kind has.
"""

from __future__ import annotations

import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wanderer_console.config.alerts import RULES, AlertRule
from wanderer_console.config.filters import MapFilters
from wanderer_console.config.model import MapSettings, Settings
from wanderer_console.config.trackers import TrackerSettings

EXAMPLE = Path(__file__).parents[2] / "config" / "wanderer.example.toml"

_COMMENTED = re.compile(r"^#\s?(\[\[?[a-z_.]+\]\]?(?:\s+#.*)?|[a-z_]+\s*=.*)$")


def uncommented(text: str) -> str:
    """The example with its commented-out tables and ``key = value`` lines put back."""
    lines = []
    for line in text.splitlines():
        match = _COMMENTED.match(line)
        lines.append(match.group(1) if match else line)
    return "\n".join(lines)


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds itself (not in a list or a dict), else ``None``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _model(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def missing(model: type[BaseModel], data: dict[str, Any], path: str = "") -> Iterator[str]:
    """The keys of ``model`` that ``data`` lacks, dotted, nested models included."""
    for name, field in model.model_fields.items():
        if name not in data:
            yield f"{path}{name}"
            continue
        inner = _model(field.annotation)
        if inner is not None and isinstance(data[name], dict):
            yield from missing(inner, data[name], f"{path}{name}.")


def test_uncommenting_reads_tables_and_keys_only() -> None:
    text = "# [a]   # a table\n# x = 1  # one\n#   prose = not a key\n# [[b.c]]\n# y = 2\n"
    assert tomllib.loads(uncommented(text)) == {"a": {"x": 1}, "b": {"c": [{"y": 2}]}}


def test_the_example_has_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    example = tomllib.loads(uncommented(text))
    rules = {f"alerts.{rule}" for rule in RULES}
    absent = list(missing(Settings, example))
    assert [key for key in absent if key not in rules] == []
    # The rules not shown as a table are named, with their defaults, in the comments.
    assert [key for key in absent if key in rules and key.split(".")[1] not in text] == []
    [shown] = (rule for rule in RULES if rule in example["alerts"])
    assert list(missing(AlertRule, example["alerts"][shown])) == []

    home = example["maps"]["home"]
    assert list(missing(MapSettings, home)) == []
    # A tracker takes the map's filter clauses ("the clauses above") and its own keys.
    tracker, filters = home["trackers"][0], home["filters"]
    assert list(missing(MapFilters, filters)) == []
    own = set(TrackerSettings.model_fields) - set(MapFilters.model_fields)
    block = text.split("# [[maps.home.trackers]]", 1)[1].split("\n\n", 1)[0]
    assert sorted(key for key in own if key not in tracker and key not in block) == []
