"""Every relative link of the README and docs/ leads somewhere: the file exists and, with a
``#fragment``, the page has a heading of that anchor (GitHub's rule: lower case, punctuation
but ``-`` and ``_`` dropped, spaces as ``-``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_LINK = re.compile(r"\]\(([^)\s:]*?)(?:#([^)\s]+))?\)")
_HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)
_CODE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(h) for h in _HEADING.findall(_CODE.sub("", page.read_text(encoding="utf-8")))}


def test_anchor_follows_githubs_rule() -> None:
    assert anchor("Queue, back-pressure, ingest API") == "queue-back-pressure-ingest-api"
    assert anchor("Several instances") == "several-instances"
    assert anchor("`[server]` section") == "server-section"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target, fragment in _LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http", "mailto")):
            continue
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}#{fragment}: no such heading")
    assert broken == []
