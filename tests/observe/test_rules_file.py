"""The Prometheus rules shipped in docs/ are valid, cover every [alerts] rule, and query only
metrics the console exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from wanderer_console.config.alerts import RULES, AlertSettings
from wanderer_console.runtime import Runtime

RULES_FILE = Path(__file__).parents[2] / "docs" / "alerts.rules.yml"
PROMTOOL = shutil.which("promtool") or (
    "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (CI installs it)")
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout


def test_every_console_rule_has_its_prometheus_rule_with_the_same_default() -> None:
    text = RULES_FILE.read_text(encoding="utf-8")
    defaults = AlertSettings()
    names = {
        "delivery_failures": 'reason!="rate_limited"',
        "rate_limited": 'reason="rate_limited"',
    }
    for rule, info in RULES.items():
        needle = names.get(rule, f'wc_alert_value{{rule="{rule}"}}')
        line = next((line for line in text.splitlines() if needle in line), None)
        assert line is not None, f"{rule}: no Prometheus rule"
        threshold = defaults.rule(rule).threshold
        op = ">" if info.above else "<"
        assert re.search(rf"{op} {threshold:g}\b", line), (rule, line)


def test_the_rules_query_only_exported_metrics(runtime: Runtime) -> None:
    exported = runtime.metrics.exposition().decode()
    queried = set(re.findall(r"\b(wc_[a-z0-9_]+)", RULES_FILE.read_text(encoding="utf-8")))
    assert queried
    for name in queried:
        assert re.search(rf"^(?:# TYPE )?{name}[{{ ]", exported, re.MULTILINE), name
