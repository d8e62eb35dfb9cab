"""DataGenerator and ULID generator: determinism, id ranges and the §4 killmail shape."""

from __future__ import annotations

from datetime import UTC, datetime

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.ulid import UlidGenerator, is_valid_ulid, new_ulid, ulid_time_ms


def test_same_seed_same_pool_and_kills() -> None:
    a, b = DataGenerator(7), DataGenerator(7)
    assert list(a.systems) == list(b.systems)
    assert list(a.characters) == list(b.characters)
    t = datetime(2026, 1, 10, 18, 20, 41, tzinfo=UTC)
    assert a.make_killmail(kill_time=t) == b.make_killmail(kill_time=t)
    assert list(DataGenerator(8).characters) != list(a.characters)


def test_pool_ranges_and_lookups() -> None:
    gen = DataGenerator(1)
    jspace = [s for s in gen.systems.values() if s.is_wormhole]
    kspace = [s for s in gen.systems.values() if not s.is_wormhole]
    assert jspace
    assert kspace
    assert all(31_000_001 <= s.id <= 31_002_600 for s in jspace)
    assert all(30_000_001 <= s.id <= 30_005_000 for s in kspace)
    assert any(s.name.startswith("J") and s.name[1:].isdigit() for s in jspace)
    assert gen.system(30000142).name == "Jita"
    assert gen.system(30000142).system_id == 30000142
    assert all(2_112_000_000 <= c <= 2_119_999_999 for c in gen.characters)
    for corp in gen.corporations.values():
        assert 98_000_000 <= corp.id <= 98_999_999
        assert len(corp.ticker) == 4
        assert gen.tickers[corp.id] == corp.ticker
    for alliance in gen.alliances.values():
        assert 99_000_000 <= alliance.id <= 99_999_999
    assert len(gen.ship_types) >= 12
    assert gen.ship_name(11377) == "Nemesis"
    assert gen.ship_name(1) is None
    pilot = gen.character()
    assert gen.names[pilot.eve_id] == pilot.name
    assert gen.categories[pilot.eve_id] == "character"
    fresh = gen.system(31001999)
    assert gen.system(31001999) is fresh
    assert gen.names[31001999] == fresh.name


def test_killmail_shape() -> None:
    gen = DataGenerator(2)
    pilot, other = list(gen.characters.values())[:2]
    km = gen.make_killmail(
        system_id=31002238,
        victim_character_id=pilot.eve_id,
        attacker_character_ids=[other.eve_id],
    )
    assert set(km) >= {"killmail_id", "kill_time", "system_id", "victim", "attackers", "zkb"}
    assert "solar_system_id" not in km
    assert km["system_id"] == 31002238
    assert km["kill_time"].endswith("Z")
    datetime.fromisoformat(km["kill_time"])
    victim = km["victim"]
    assert victim["character_id"] == pilot.eve_id
    assert victim["corporation_id"] == pilot.corporation_id
    assert victim["character_name"] == pilot.name
    assert victim["corporation_ticker"] == gen.tickers[pilot.corporation_id]
    assert victim["ship_name"] == gen.ship_name(victim["ship_type_id"])
    assert isinstance(victim["damage_taken"], int)
    attackers = km["attackers"]
    assert km["attacker_count"] == len(attackers)
    assert sum(1 for a in attackers if a["final_blow"]) == 1
    assert other.eve_id in {a.get("character_id") for a in attackers}
    assert pilot.eve_id not in {a.get("character_id") for a in attackers}
    assert sum(a["damage_done"] for a in attackers) == victim["damage_taken"]
    zkb = km["zkb"]
    keys = {"locationID", "hash", "totalValue", "fittedValue", "droppedValue", "destroyedValue"}
    assert keys | {"points", "npc", "solo", "awox", "labels"} <= set(zkb)
    assert len(zkb["hash"]) == 40
    assert "loc:w-space" in zkb["labels"]


def test_killmail_ids_monotonic_names_optional_and_exclusion() -> None:
    gen = DataGenerator(3)
    ids = [gen.make_killmail()["killmail_id"] for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    gen.make_killmail(killmail_id=ids[-1] + 100)
    assert gen.make_killmail()["killmail_id"] == ids[-1] + 101
    bare = gen.make_killmail(with_names=False)
    assert "character_name" not in bare["victim"]
    assert "ship_name" not in bare["victim"]
    assert "solar_system_name" not in bare
    excluded = set(list(gen.characters)[:100])
    for _ in range(20):
        km = gen.make_killmail(exclude_character_ids=excluded)
        involved = {km["victim"]["character_id"]} | {a["character_id"] for a in km["attackers"]}
        assert not involved & excluded
    structure = gen.make_killmail(victim_ship_type_id=35832)
    assert "character_id" not in structure["victim"]


def test_ulid_monotonic_within_one_millisecond() -> None:
    gen = UlidGenerator(clock=lambda: 1_700_000_000_000)
    values = [gen.new() for _ in range(1000)]
    assert values == sorted(values)
    assert len(set(values)) == 1000
    assert all(is_valid_ulid(v) for v in values)
    assert ulid_time_ms(values[0]) == 1_700_000_000_000
    assert is_valid_ulid(new_ulid())
    assert not is_valid_ulid("01jz8q3m9v7t5x2k4r6n8p0b1c")
    assert not is_valid_ulid("01JZ8Q3M9V7T5X2K4R6N8P0B1")
    assert not is_valid_ulid("01JZ8Q3M9V7T5X2K4R6N8P0B1U")
    first, second = new_ulid(), new_ulid()
    assert first < second
