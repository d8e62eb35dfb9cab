"""The Grafana dashboard in docs/ queries only metrics the console exports.

Every PromQL expression of every panel is parsed down to the metric names it selects (strings,
label matchers, range selectors, grouping clauses, functions and keywords taken out), and each
name must be one a running engine's registry exposes (counters with ``_total``, histograms with
``_bucket``/``_sum``/``_count``), so a renamed metric breaks this test, not the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from wanderer_console.runtime import Runtime

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "wanderer-console.json"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_NAME = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {
        name for name, call in _NAME.findall(text) if not call and name.lower() not in _KEYWORDS
    }


def exported(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry exposes, families with no samples yet included."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def expressions(node: Any) -> Iterator[str]:
    """Every ``expr`` of the dashboard's targets, rows' nested panels included."""
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value)


def test_the_parser_finds_metric_names_and_nothing_else() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, service) (rate(wc_http_request_seconds_bucket"
        '{service=~"esi|map", le!="+Inf"}[$__rate_interval]))) / on (service) group_left'
        " sum without (x) (wc_queue_depth offset 5m) > bool 2 and wc_outbox_pending"
    )
    assert metric_names(expr) == {
        "wc_http_request_seconds_bucket",
        "wc_queue_depth",
        "wc_outbox_pending",
    }
    assert metric_names('label_replace(up, "a", "$1", "b", "(.*)")') == {"up"}


@pytest.mark.slow
async def test_every_metric_the_dashboard_queries_is_exported(runtime: Runtime) -> None:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    queries = list(expressions(dashboard))
    assert len(queries) >= 20
    queried = set().union(*(metric_names(q) for q in queries))
    available = exported(runtime.metrics.registry)
    assert "wc_events_received_total" in available
    assert sorted(queried - available) == []
    # The dashboard covers the flow in and out, latency, the outbox and the cache.
    for name in (
        "wc_events_received_total",
        "wc_notifications_delivered_total",
        "wc_outbox_pending",
        "wc_delivery_seconds_bucket",
        "wc_cache_hits_total",
    ):
        assert name in queried


def test_dashboard_is_importable_json_with_unique_panel_ids() -> None:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    assert dashboard["uid"] == "wanderer-console"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
