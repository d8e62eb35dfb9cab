"""docs/operations/monitoring.md names every metric the engine exports, as it exports it.

The README sends operators there for "every exported metric". Each row of the page's metric
tables (`` `wc_...` `` | type | labels | meaning) is compared with what a running engine's
registry holds, the families registered only when a feature is on included (the Discord
gateway and its slash commands, the hosted maps' refresher): a metric the page names must be
exported with the type and labels it says, and every exported metric must have its row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest
from prometheus_client import CollectorRegistry

from wanderer_console.delivery.discord import Outcome
from wanderer_console.http.settings import DEFAULT_SERVICE_SETTINGS
from wanderer_console.ingest.hosted import HostedMaps
from wanderer_console.runtime import Runtime

PAGE = Path(__file__).parents[2] / "docs" / "operations" / "monitoring.md"

_ROW = re.compile(r"^\| (`wc_[^|]+) \| ([a-z]+) \| ([^|]+) \|", re.MULTILINE)
_SUFFIX = {"counter": "_total"}


class Row(NamedTuple):
    """One metric as the page documents it."""

    kind: str
    labels: frozenset[str]


def documented(text: str) -> dict[str, Row]:
    """The page's metric rows by exposed name (a row may name two: `` `a` / `b` ``)."""
    rows: dict[str, Row] = {}
    for names, kind, labels in _ROW.findall(text):
        label_set = frozenset(re.findall(r"`([a-z_]+)`", labels))
        for name in re.findall(r"`(wc_[a-z0-9_]+)`", names):
            rows[name] = Row(kind, label_set)
    return rows


def exported(registry: CollectorRegistry) -> dict[str, Row]:
    """Every metric family the registry exposes, by the name the page uses for it."""
    # A labelled metric with no child yet has no sample to read its labels from: its collector
    # declares them (prometheus_client has no public listing of a registry's collectors).
    collectors = registry._names_to_collectors
    rows: dict[str, Row] = {}
    for family in registry.collect():
        name = family.name + _SUFFIX.get(family.type, "")
        collector = collectors.get(name) or collectors.get(family.name)
        labels = frozenset(getattr(collector, "_labelnames", ()) or ())
        rows[name] = Row(family.type, labels)
    return rows


def test_the_page_parser_reads_rows_and_nothing_else() -> None:
    text = (
        "| metric | type | labels | meaning |\n"
        "| `wc_a_total` / `wc_b_total` | counter | `x`, `y` | one `wc_c` in the text |\n"
        "| `wc_d` | gauge | — | d |\n"
        "`wc_e_total` in a sentence\n"
    )
    assert documented(text) == {
        "wc_a_total": Row("counter", frozenset({"x", "y"})),
        "wc_b_total": Row("counter", frozenset({"x", "y"})),
        "wc_d": Row("gauge", frozenset()),
    }


@pytest.mark.slow
@pytest.mark.parametrize("sim_options", [{"seed": 5, "gateway": True}])
async def test_every_exported_metric_has_its_row_and_every_row_is_exported(
    runtime: Runtime,
) -> None:
    assert runtime.gateway is not None  # the bot's metrics are registered
    # What an engine in hosted mode registers besides (constructing the refresher is enough).
    HostedMaps(
        runtime.live, lambda: runtime.clients.get("map"), runtime.apply_hosted, runtime.metrics
    )
    available = exported(runtime.metrics.registry)
    assert "wc_gateway_sessions_total" in available
    assert "wc_hosted_refresh_total" in available
    rows = documented(PAGE.read_text(encoding="utf-8"))
    assert sorted(set(rows) - set(available)) == [], "named on the page, not exported"
    assert sorted(set(available) - set(rows)) == [], "exported, missing from the page"
    wrong = {name: (rows[name], available[name]) for name in rows if rows[name] != available[name]}
    assert wrong == {}, "the page's type or labels differ from the registry's"


def _label_values(registry: CollectorRegistry, family: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for metric in registry.collect()
        if metric.name == family
        for sample in metric.samples
    }


async def test_the_queue_lanes_and_cache_namespaces_are_those_exported(runtime: Runtime) -> None:
    """Both gauges have a child per value from the start, so a query for a value the page
    names and the engine does not (``lane="tracked"``) would find nothing."""
    text = PAGE.read_text(encoding="utf-8")
    depth_row = next(line for line in text.splitlines() if line.startswith("| `wc_queue_depth`"))
    lanes = set(re.findall(r"`([a-z_]+)`", depth_row.split(" | ")[3]))
    assert lanes == _label_values(runtime.metrics.registry, "wc_queue_depth", "lane")
    listing = text.split("\n`namespace`: ", 1)[1].split("\n\n", 1)[0]
    namespaces = set(re.findall(r"`([a-z_]+)`", listing))
    assert namespaces == _label_values(runtime.metrics.registry, "wc_cache_size", "namespace")


def test_the_http_services_are_the_clients_the_engine_has() -> None:
    """``service`` takes one value per HTTP client, each with its defaults in http/settings.py."""
    text = PAGE.read_text(encoding="utf-8")
    listing = text.split("\n`service` is the client: ", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", listing)) == set(DEFAULT_SERVICE_SETTINGS)


def test_the_delivery_failure_reasons_are_the_send_outcomes() -> None:
    """Every outcome of a send but ``sent`` is counted under its name (delivery/outcomes.py), and
    ``unconfigured`` for a target or map no longer configured (delivery/dispatcher.py)."""
    text = PAGE.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `wc_delivery_failures"))
    reasons = set(re.findall(r"`([a-z_]+)`", row.split(" | ")[3]))
    assert reasons - {"wc_delivery_uncertain_total"} == (
        {outcome.value for outcome in Outcome} - {"sent"} | {"unconfigured"}
    )
