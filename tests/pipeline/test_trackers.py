"""Several trackers on one map (issue 22): each matching target gets one message, with the pings,
names and colour of every tracker behind it; goldens for the bodies, the outbox for once-only.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.pipeline.test_rules_filters import (
    ALLY_A,
    ALLY_C,
    CORP_A,
    ENEMY,
    INFO,
    KS,
    NOW,
    OTHER,
    PILOT,
    THIRD,
    WH,
    FakeInfo,
    index,
    kill,
    party,
)
from wanderer_console.config import ConfigError, parse_settings_text
from wanderer_console.config.model import JaniceSettings, Settings
from wanderer_console.config.routing import route_credentials
from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.notable import NotableItems
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.items import KillItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.rules import judge_kill
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.janice import FakeJanice
from wanderer_console.sim.server import AppServer
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

GOLDEN_DIR = Path(__file__).parent / "golden"
REVELATION, DREADNOUGHT = 19720, 485
HOOK_A = "https://discord.com/api/webhooks/100000000000000001/token-a"
HOOK_B = "https://discord.com/api/webhooks/100000000000000002/token-b"
HOOK_C = "https://discord.com/api/webhooks/100000000000000003/token-c"
ROLE = "300000000000000001"
INFO_DREAD = FakeInfo(
    regions=INFO.regions,
    constellations=INFO.constellations,
    security=INFO.security,
    groups={**INFO.groups, REVELATION: DREADNOUGHT},
)

CONFIG = f"""\
[console]
startup_suppression_seconds = 0

[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.home.discord]
webhook_url = "{HOOK_A}"

[[maps.home.trackers]]
name = "caps"
require_victim_ship_groups = [{DREADNOUGHT}]
webhook_url = "{HOOK_B}"
ping = "here"
ping_role_ids = ["{ROLE}"]
color = "#ff0000"

[[maps.home.trackers]]
name = "losses"
require_victim_alliances = [{ALLY_C}]
webhook_url = "{HOOK_A}"
ping = "everyone"

[[maps.home.trackers]]
name = "intel"
show_name = false

[[maps.home.trackers]]
name = "off"
enabled = false
webhook_url = "{HOOK_C}"
"""


def golden(name: str, data: Any) -> None:
    """Compare ``data`` with ``golden/<name>.json``; ``UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN_DIR / f"{name}.json"
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path.name}; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"golden {path.name} differs"


def settings(text: str = CONFIG) -> Settings:
    return parse_settings_text(text, environ={})[0]


def dread_kill(system: int = WH, killmail_id: int = 1) -> Killmail:
    victim = {**party(ENEMY, 98000003, ALLY_C, ship=REVELATION), "damage_taken": 5}
    return kill(system, victim=victim, killmail_id=killmail_id)


def engine(store: Store, s: Settings) -> Engine:
    return Engine(
        s,
        store,
        index(),
        Metrics(),
        clock=lambda: NOW.timestamp() + 60,
        system_info=INFO_DREAD,
    )


def by_target(notifications: list[Any]) -> dict[str, Any]:
    return {n.target.key: n for n in notifications}


def test_several_trackers_one_message_per_target(store: Store) -> None:
    # default (system kill → A), caps (B), losses (A), intel (no target: the system-kill route, A)
    notes = by_target(engine(store, settings()).kill_notifications(dread_kill()))
    assert sorted(notes) == ["webhook:100000000000000001", "webhook:100000000000000002"]
    shared, caps = notes["webhook:100000000000000001"], notes["webhook:100000000000000002"]
    # The shared target keeps the default tracker's key; the other is keyed by its target.
    assert shared.dedup_key == "kill:1:system_kill"
    assert caps.dedup_key == "kill:1:tracker:webhook:100000000000000002"
    assert shared.body["content"] == "@everyone Tracker **losses**"  # intel hides its name
    assert shared.body["allowed_mentions"] == {"parse": ["everyone"]}
    assert caps.body["content"] == f"@here <@&{ROLE}> Tracker **caps**"
    assert caps.body["allowed_mentions"] == {"parse": ["everyone"], "roles": [ROLE]}
    assert caps.body["embeds"][0]["color"] == 0xFF0000
    golden("trackers_shared_target", shared.body)
    golden("trackers_own_target", caps.body)


def test_only_named_trackers_share_a_target(store: Store) -> None:
    text = CONFIG.replace(
        f'webhook_url = "{HOOK_A}"\nping = "everyone"', f'webhook_url = "{HOOK_B}"'
    )
    s = settings(text)
    s.maps["home"].filters.default_tracker = False
    notes = by_target(engine(store, s).kill_notifications(dread_kill()))
    # caps and losses both post to B: one message, both names, the pings of both, caps' colour;
    # intel alone posts to the system-kill route (A), and pings nobody.
    assert sorted(notes) == ["webhook:100000000000000001", "webhook:100000000000000002"]
    both = notes["webhook:100000000000000002"]
    assert both.dedup_key == "kill:1:tracker:webhook:100000000000000002"
    assert both.body["content"] == f"@here <@&{ROLE}> Trackers **caps**, **losses**"
    alone = notes["webhook:100000000000000001"]
    assert alone.dedup_key == "kill:1:tracker:webhook:100000000000000001"
    assert "content" not in alone.body
    assert alone.body["allowed_mentions"] == {"parse": []}
    golden("trackers_two_named_one_target", both.body)


def test_a_tracker_refusal_leaves_the_others(store: Store) -> None:
    # Not a dreadnought: caps refuses; losses and intel still post to A with the default.
    victim = {**party(ENEMY, 98000003, ALLY_C), "damage_taken": 5}
    notes = by_target(engine(store, settings()).kill_notifications(kill(WH, victim=victim)))
    assert list(notes) == ["webhook:100000000000000001"]
    judgement = judge_kill(
        kill(WH, victim=victim), settings=settings(), index=index(), now=NOW,
        suppressed=False, info=INFO_DREAD,
    )  # fmt: skip
    verdicts = {v.tracker: v.reason for v in judgement.trackers}
    assert verdicts == {
        "caps": "victim_ship_group_not_required",
        "losses": None,
        "intel": None,
        "off": "tracker_disabled",
    }


async def test_each_target_is_queued_once_per_kill(store: Store) -> None:
    eng = engine(store, settings())
    km = dread_kill()
    raw = km.model_dump_json(by_alias=False)
    await eng.process_batch([KillItem(km, raw, "killstream"), KillItem(km, raw, "r2z2")])
    await eng.process_batch([KillItem(km, raw, "killstream")])
    rows = store.due_outbox(float("inf"), limit=100)
    assert sorted((r.dedup_key, r.target_key) for r in rows) == [
        ("kill:1:system_kill", "webhook:100000000000000001"),
        ("kill:1:tracker:webhook:100000000000000002", "webhook:100000000000000002"),
    ]
    # The live path counts every tracker behind a message.
    matches = eng.tracker_matches
    assert [matches.last_hour("home", name) for name in ("default", "caps", "losses", "intel")] == [
        1,
        1,
        1,
        1,
    ]
    assert matches.last_hour("home", "off") == 0


def test_scope_all_sees_kills_the_map_does_not_track(store: Store) -> None:
    text = CONFIG.replace('name = "caps"', 'name = "caps"\nscope = "all"')
    notes = by_target(engine(store, settings(text)).kill_notifications(dread_kill(OTHER)))
    assert list(notes) == ["webhook:100000000000000002"]  # caps only: OTHER is not on the map
    assert notes["webhook:100000000000000002"].body["content"].endswith("Tracker **caps**")


def test_tracker_targets_get_credentials() -> None:
    keys = {key for _tenant, key in route_credentials(settings())}
    assert keys == {
        "webhook:100000000000000001",
        "webhook:100000000000000002",
        "webhook:100000000000000003",
    }


@pytest.mark.parametrize(
    ("clauses", "killmail", "expected"),
    [
        ({"require_attacker_weapon_types": [2456]}, "weapon", None),
        ({"require_attacker_weapon_types": [3057]}, "weapon", "attacker_weapon_type_not_required"),
        ({"fleet_min_attackers": 3}, "fleet", None),
        ({"fleet_min_attackers": 4}, "fleet", "not_fleet_kill"),
        ({"max_age_seconds": 120}, "plain", None),
        ({"max_age_seconds": 30}, "plain", "older_than_max_age"),
    ],
)
def test_new_clauses(clauses: dict[str, Any], killmail: str, expected: str | None) -> None:
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in clauses.items())
    text = f'{CONFIG}\n[[maps.home.trackers]]\nname = "probe"\n{body}\n'
    attackers = [
        {**party(THIRD, CORP_A, ALLY_A, final_blow=True), "weapon_type_id": 2456},
        party(PILOT, CORP_A, ALLY_A),
        party(None, 98000002, ALLY_A),
        party(None, 98000005),
    ]
    km = {
        "weapon": kill(KS, attackers=attackers[:2]),
        "fleet": kill(KS, attackers=attackers),
        "plain": kill(KS, kill_time=(NOW - timedelta(seconds=60)).isoformat()),
    }[killmail]
    judgement = judge_kill(
        km, settings=settings(text), index=index(), now=NOW, suppressed=False, info=INFO_DREAD
    )
    assert {v.tracker: v.reason for v in judgement.trackers}["probe"] == expected


@pytest.mark.parametrize(
    ("tracker", "line", "message"),
    [
        ("min_attackers = 5\nmax_attackers = 2", 0, "min_attackers (5) is greater than"),
        ("require_victim_ship_groups = [1]", 2, "unknown ship group 1"),
        ("origin_system_id = 31000005\nmax_jumps = 2", 2, "J-space system"),
        ("max_jumps = 2", 0, "max_jumps needs origin_system_id"),
        ('name = "Default"', 0, "reserved"),
        ('name = "caps"', 0, "two trackers are named 'caps'"),
    ],
)
def test_config_check_locates_tracker_problems(tracker: str, line: int, message: str) -> None:
    head = CONFIG + "\n[[maps.home.trackers]]\n"
    body = tracker if tracker.startswith("name") else f'name = "probe"\n{tracker}'
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(head + body + "\n", file="c.toml", environ={})
    (problem,) = caught.value.problems
    header = head.count("\n")  # the fifth [[maps.home.trackers]] header's line
    if "two trackers" in message:
        assert problem.line == CONFIG.splitlines().index("[[maps.home.trackers]]") + 1
    else:
        assert problem.line == header + line
    assert message in problem.message


async def test_a_kill_only_trackers_notify_lists_its_notable_loot(store: Store) -> None:
    """Notable loot was appraised only for kills the default tracker notified: a kill only named
    trackers posted went without its notable items whenever its names were already known (the
    appraisal then rode along only with a name look-up), so the same kill listed its loot or not
    depending on which tracker matched it."""
    gen = DataGenerator(7, systems=30, characters=60)
    fake_esi, fake_janice = FakeEsi(gen), FakeJanice("jt", {"Rifter": 60_000_000.0})
    esi_server, janice_server = AppServer(fake_esi.app), AppServer(fake_janice.app)
    await esi_server.start()
    await janice_server.start()
    esi_http, janice_http = HttpClient("esi", timeout=5.0), HttpClient("janice", timeout=5.0)
    try:
        esi = EsiClient(esi_http, esi_server.url, "WandererConsole/0.1.0 (ops@example.org)")
        janice = JaniceSettings(enabled=True, api_token=SecretStr("jt"), url=janice_server.url)
        notable = NotableItems(lambda: janice, CacheFacade(esi), esi, janice_http)
        s = settings()
        s.maps["home"].filters.default_tracker = False  # caps, losses and intel post; not it
        eng = Engine(
            s,
            store,
            index(),
            Metrics(),
            clock=lambda: NOW.timestamp() + 60,
            system_info=INFO_DREAD,
            notable=notable,
        )
        km = Killmail.from_wire(
            {**dread_kill().model_dump(mode="json"), "zkb": {"hash": "abc", "totalValue": 1e9}}
        )
        fake_esi.killmails[1] = {
            "killmail_id": 1,
            "victim": {"items": [{"item_type_id": 587, "quantity_dropped": 1}]},
        }
        await eng.process_batch([KillItem(km, km.model_dump_json(), "killstream")])
        rows = store.due_outbox(float("inf"), limit=100)
        assert len(rows) == 2  # caps to B; losses and intel to A
        for row in rows:
            description = json.loads(row.body)["embeds"][0]["description"]
            assert "**Notable Items:**\n• Rifter (~60.0M ISK)" in description, row.target_key
    finally:
        await esi_http.aclose()
        await janice_http.aclose()
        await esi_server.stop()
        await janice_server.stop()
