"""Deterministic, plausible EVE data for the simulator (pure, no I/O).

:class:`DataGenerator` owns a seeded pool of solar systems, pilots, corporations and alliances and
builds killmails in the exact wanderer-kills shape of PROTOCOLS.md §4. The lookup dictionaries
(:attr:`DataGenerator.names`, :attr:`DataGenerator.tickers`, ...) let a fake ESI answer name
queries for every id the generator ever handed out.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from wanderer_console.sim.universe import (
    ALLIANCE_WORDS,
    CORP_WORDS,
    FIRST_NAMES,
    KNOWN_KSPACE,
    KSPACE_REGIONS,
    LAST_NAMES,
    SHIP_TYPES,
    STRUCTURE_TYPE_IDS,
    SYLLABLES,
    WEAPON_TYPE_IDS,
    WORMHOLE_CLASSES,
    WORMHOLE_EFFECTS,
    Alliance,
    Character,
    Corporation,
    ShipType,
    SolarSystem,
)

__all__ = ["FIRST_KILLMAIL_ID", "DataGenerator", "format_kill_time"]

FIRST_KILLMAIL_ID = 128_000_000
_JSPACE = (31_000_006, 31_002_600)
_KSPACE = (30_000_001, 30_005_000)
_CHARACTER_IDS = (2_112_000_000, 2_119_999_999)
_CORP_IDS = (98_000_000, 98_999_999)
_ALLIANCE_IDS = (99_000_000, 99_999_999)
_THERA_ID = 31_000_005


def format_kill_time(value: datetime) -> str:
    """ESI-style UTC timestamp, whole seconds: ``2026-01-10T18:20:41Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DataGenerator:
    """Seeded pool of EVE entities plus a killmail factory.

    The same seed always yields the same pool and, for the same call sequence, the same killmails
    (except ``kill_time``, which defaults to "now").
    """

    def __init__(self, seed: int = 1, *, systems: int = 40, characters: int = 120) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._next_killmail_id = FIRST_KILLMAIL_ID
        self.systems: dict[int, SolarSystem] = {}
        self.characters: dict[int, Character] = {}
        self.corporations: dict[int, Corporation] = {}
        self.alliances: dict[int, Alliance] = {}
        self.ship_types: dict[int, ShipType] = {s.type_id: s for s in SHIP_TYPES}
        self.names: dict[int, str] = {s.type_id: s.name for s in SHIP_TYPES}
        """Every id handed out -> its name (characters, corps, alliances, systems, types)."""
        self.categories: dict[int, str] = dict.fromkeys(self.ship_types, "inventory_type")
        """Every id handed out -> ESI ``/universe/names`` category."""
        self.tickers: dict[int, str] = {}
        """Corporation and alliance id -> ticker."""
        self.filler_pool: list[Character] | None = None
        """Pilots random killmail parties are drawn from (default: every pilot). A large
        universe (the scale benchmark's thousands of tracked pilots) sets a pool of untracked
        ones, so a kill meant to involve no tracked pilot is cheap to make."""
        self._character_names: set[str] = set()
        self._build_pool(systems, characters)

    def reseed(self, seed: int) -> None:
        """Draw from ``seed`` from now on (the pool and the ids handed out are kept)."""
        self._rng.seed(seed)

    # -- pool construction -------------------------------------------------------------------
    def _build_pool(self, n_systems: int, n_characters: int) -> None:
        rng = self._rng
        for alliance_index in range(8):
            first = ALLIANCE_WORDS[0][alliance_index % len(ALLIANCE_WORDS[0])]
            name = f"{first} {rng.choice(ALLIANCE_WORDS[1])}"
            aid = self._fresh_id(_ALLIANCE_IDS)
            self._register_alliance(Alliance(aid, name, self._ticker(name)))
        alliance_ids = list(self.alliances)
        for corp_index in range(30):
            first = CORP_WORDS[0][corp_index % len(CORP_WORDS[0])]
            second = CORP_WORDS[1][(corp_index * 3 + rng.randrange(10)) % len(CORP_WORDS[1])]
            name = f"{first} {second}"
            if any(c.name == name for c in self.corporations.values()):
                name = f"{name} {corp_index}"
            alliance_id = rng.choice(alliance_ids) if rng.random() < 0.6 else None
            cid = self._fresh_id(_CORP_IDS)
            self._register_corporation(Corporation(cid, name, self._ticker(name), alliance_id))
        for _ in range(n_characters):
            self.new_character()
        self._register_system(self._thera())
        for known in KNOWN_KSPACE:
            self._register_system(self._kspace(*known))
        for index in range(max(0, n_systems - len(self.systems))):
            self.new_system(wormhole=index % 3 != 2)

    def _fresh_id(self, bounds: tuple[int, int]) -> int:
        while True:
            candidate = self._rng.randint(*bounds)
            if candidate not in self.names:
                return candidate

    def _ticker(self, name: str) -> str:
        letters = "".join(word[0] for word in name.split()).upper()
        while True:
            pad = "".join(self._rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
            ticker = (letters + pad)[:4]
            if ticker not in self.tickers.values():
                return ticker

    def _register(self, entity_id: int, name: str, category: str) -> None:
        self.names[entity_id] = name
        self.categories[entity_id] = category

    def _register_alliance(self, alliance: Alliance) -> None:
        self.alliances[alliance.id] = alliance
        self.tickers[alliance.id] = alliance.ticker
        self._register(alliance.id, alliance.name, "alliance")

    def _register_corporation(self, corp: Corporation) -> None:
        self.corporations[corp.id] = corp
        self.tickers[corp.id] = corp.ticker
        self._register(corp.id, corp.name, "corporation")

    def _register_character(self, character: Character) -> Character:
        self.characters[character.eve_id] = character
        self._character_names.add(character.name)
        self._register(character.eve_id, character.name, "character")
        return character

    def _register_system(self, system: SolarSystem) -> SolarSystem:
        self.systems[system.id] = system
        self._register(system.id, system.name, "solar_system")
        return system

    def _thera(self) -> SolarSystem:
        return SolarSystem(
            _THERA_ID, "Thera", -1.0, 11000031, "G-R00031", 21000324, "G-C00324", 12, "Thera"
        )

    def _kspace(
        self, system_id: int, name: str, security: float, region_id: int, region_name: str
    ) -> SolarSystem:
        system_class, title = (
            (7, "H") if security >= 0.45 else (8, "L") if security > 0 else (9, "N")
        )
        constellation = 20_000_000 + (system_id - 30_000_000) // 6
        return SolarSystem(
            system_id, name, security, region_id, region_name,
            constellation, f"{region_name} {constellation % 97}", system_class, title,
        )  # fmt: skip

    def _wormhole(self, system_id: int, rng: random.Random) -> SolarSystem:
        wclass = rng.randint(1, 6)
        region_id, region_name, statics = WORMHOLE_CLASSES[wclass]
        picked = tuple(sorted(rng.sample(statics, rng.choice((1, 1, 2)))))
        constellation = 21_000_000 + (system_id - 31_000_000) // 8
        return SolarSystem(
            system_id, f"J{rng.randint(100000, 999999)}", -1.0, region_id, region_name,
            constellation, f"{region_name[0]}-C{constellation % 1000:05d}", wclass, f"C{wclass}",
            rng.choice(WORMHOLE_EFFECTS), picked, rng.random() < 0.05,
        )  # fmt: skip

    def _made_up_kspace(self, system_id: int, rng: random.Random) -> SolarSystem:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        if rng.random() < 0.3:
            name = f"{rng.choice('ABCDEFGHKMNPRSTVXYZ')}{rng.randint(1, 9)}-{name[:3].upper()}"
        security = round(rng.uniform(-1.0, 1.0), 3)
        region_id, region_name = rng.choice(KSPACE_REGIONS)
        return self._kspace(system_id, name, security, region_id, region_name)

    # -- public entity API -----------------------------------------------------------------
    def new_system(self, *, wormhole: bool | None = None) -> SolarSystem:
        """Create, register and return a system not seen before (J-space or k-space)."""
        if wormhole is None:
            wormhole = self._rng.random() < 0.6
        bounds = _JSPACE if wormhole else _KSPACE
        while True:
            system_id = self._rng.randint(*bounds)
            if system_id not in self.systems:
                return self.system(system_id)

    def system(self, system_id: int | None = None) -> SolarSystem:
        """A random pooled system, or the system with ``system_id`` (synthesised on first use).

        Raises ``KeyError`` for ids outside k-space/J-space.
        """
        if system_id is None:
            return self._rng.choice(list(self.systems.values()))
        known = self.systems.get(system_id)
        if known is not None:
            return known
        rng = random.Random(system_id * 7919 + self.seed)
        if 31_000_000 <= system_id <= 31_999_999:
            return self._register_system(self._wormhole(system_id, rng))
        if 30_000_000 <= system_id <= 30_999_999:
            return self._register_system(self._made_up_kspace(system_id, rng))
        raise KeyError(system_id)

    def new_character(self) -> Character:
        """Create, register and return a pilot with a unique name in a pooled corporation."""
        eve_id = self._fresh_id(_CHARACTER_IDS)
        return self._register_character(self._make_character(eve_id, self._rng))

    def _make_character(self, eve_id: int, rng: random.Random) -> Character:
        taken = self._character_names
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        suffix = 2
        base = name
        while name in taken:
            name = f"{base} {suffix}"
            suffix += 1
        corp = self.corporations[rng.choice(sorted(self.corporations))]
        return Character(eve_id, name, corp.id, corp.alliance_id)

    def character(self, eve_id: int | None = None) -> Character:
        """A random pooled pilot, or the pilot with ``eve_id`` (synthesised on first use)."""
        if eve_id is None:
            return self._rng.choice(list(self.characters.values()))
        known = self.characters.get(eve_id)
        if known is not None:
            return known
        rng = random.Random(eve_id * 104729 + self.seed)
        return self._register_character(self._make_character(eve_id, rng))

    def ship_name(self, type_id: int) -> str | None:
        """Name of a ship type the generator knows, else ``None``."""
        ship = self.ship_types.get(type_id)
        return ship.name if ship else None

    def ticker(self, entity_id: int | None) -> str | None:
        """Ticker of a corporation or alliance, else ``None``."""
        return None if entity_id is None else self.tickers.get(entity_id)

    # -- killmails -------------------------------------------------------------------------
    def next_killmail_id(self) -> int:
        """Reserve and return the next killmail id (monotonically increasing)."""
        value = self._next_killmail_id
        self._next_killmail_id += 1
        return value

    def make_killmail(
        self,
        killmail_id: int | None = None,
        system_id: int | None = None,
        victim_character_id: int | None = None,
        attacker_character_ids: Iterable[int] = (),
        kill_time: datetime | str | None = None,
        with_names: bool = True,
        *,
        exclude_character_ids: Collection[int] = (),
        victim_ship_type_id: int | None = None,
    ) -> dict[str, Any]:
        """A killmail exactly as wanderer-kills sends it (PROTOCOLS.md §4).

        Random filler pilots never come from ``exclude_character_ids`` (use it to build kills that
        involve no tracked pilot). A structure ``victim_ship_type_id`` yields a victim without
        ``character_id``.
        """
        rng = self._rng
        if killmail_id is None:
            killmail_id = self.next_killmail_id()
        else:
            self._next_killmail_id = max(self._next_killmail_id, killmail_id + 1)
        system = self.system(system_id) if system_id is not None else self.system()
        given = [a for a in dict.fromkeys(attacker_character_ids)]
        excluded = set(exclude_character_ids) | set(given)
        if victim_character_id is None:
            victim = self._filler(excluded)
        else:
            victim = self.character(victim_character_id)
        excluded.add(victim.eve_id)
        given = [a for a in given if a != victim.eve_id]
        attackers_chars = [self.character(a) for a in given]
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3, 5)) if given else rng.randint(1, 6)):
            filler = self._filler(excluded)
            excluded.add(filler.eve_id)
            attackers_chars.append(filler)
        if victim_ship_type_id is None:
            combat = [s for s in SHIP_TYPES if s.type_id not in STRUCTURE_TYPE_IDS]
            ship = self.ship_types[670] if rng.random() < 0.1 else rng.choice(combat[1:])
        else:
            ship = self.ship_types.get(victim_ship_type_id) or ShipType(
                victim_ship_type_id, f"Type {victim_ship_type_id}", 0, "Unknown", 50_000_000.0
            )
        damage = rng.randint(400, 60_000)
        victim_dict = self._party(victim, with_names)
        if ship.type_id in STRUCTURE_TYPE_IDS:
            victim_dict.pop("character_id", None)
            victim_dict.pop("character_name", None)
        victim_dict.update(ship_type_id=ship.type_id, damage_taken=damage)
        victim_dict["position"] = {
            "x": round(rng.uniform(-5e11, 5e11), 1),
            "y": round(rng.uniform(-5e10, 5e10), 1),
            "z": round(rng.uniform(-5e11, 5e11), 1),
        }
        if with_names:
            victim_dict["ship_name"] = ship.name
        attackers = self._attackers(attackers_chars, damage, with_names)
        killmail: dict[str, Any] = {
            "killmail_id": killmail_id,
            "kill_time": self._kill_time(kill_time),
            "system_id": system.id,
        }
        if with_names:
            killmail["solar_system_name"] = system.name
        killmail.update(
            attacker_count=len(attackers),
            victim=victim_dict,
            attackers=attackers,
            zkb=self._zkb(system, ship, len(attackers)),
        )
        return killmail

    def _filler(self, excluded: Collection[int]) -> Character:
        pool = self.filler_pool
        if pool:
            for _ in range(64):  # a few draws: the pool is mostly not excluded
                pick = self._rng.choice(pool)
                if pick.eve_id not in excluded:
                    return pick
        choices = [c for c in self.characters.values() if c.eve_id not in excluded]
        return self._rng.choice(choices) if choices else self.new_character()

    @staticmethod
    def _kill_time(value: datetime | str | None) -> str:
        if value is None:
            return format_kill_time(datetime.now(UTC))
        if isinstance(value, datetime):
            return format_kill_time(value if value.tzinfo else value.replace(tzinfo=UTC))
        return value

    def _party(self, character: Character, with_names: bool) -> dict[str, Any]:
        party: dict[str, Any] = {
            "character_id": character.eve_id,
            "corporation_id": character.corporation_id,
        }
        if character.alliance_id is not None:
            party["alliance_id"] = character.alliance_id
        if with_names:
            party["character_name"] = character.name
            party["corporation_name"] = self.names.get(character.corporation_id)
            party["corporation_ticker"] = self.tickers.get(character.corporation_id)
            if character.alliance_id is not None:
                party["alliance_name"] = self.names.get(character.alliance_id)
                party["alliance_ticker"] = self.tickers.get(character.alliance_id)
        return {k: v for k, v in party.items() if v is not None}

    def _attackers(
        self, characters: list[Character], damage: int, with_names: bool
    ) -> list[dict[str, Any]]:
        rng = self._rng
        weights = [rng.random() + 0.05 for _ in characters]
        total = sum(weights)
        shares = [int(damage * w / total) for w in weights]
        shares[0] += damage - sum(shares)
        final_index = 0 if rng.random() < 0.7 else rng.randrange(len(characters))
        combat = [s for s in SHIP_TYPES if s.type_id not in STRUCTURE_TYPE_IDS and s.type_id != 670]
        result = []
        for index, (character, share) in enumerate(zip(characters, shares, strict=True)):
            ship = rng.choice(combat)
            entry = self._party(character, with_names)
            entry.update(
                ship_type_id=ship.type_id,
                weapon_type_id=rng.choice(WEAPON_TYPE_IDS),
                damage_done=share,
                final_blow=index == final_index,
                security_status=round(rng.uniform(-10.0, 5.0), 1),
            )
            if with_names:
                entry["ship_name"] = ship.name
            result.append(entry)
        return result

    def _zkb(self, system: SolarSystem, ship: ShipType, attackers: int) -> dict[str, Any]:
        rng = self._rng
        total = round(ship.base_value * rng.uniform(0.7, 1.8), 2)
        dropped = round(total * rng.uniform(0.0, 0.45), 2)
        labels = ["pvp"]
        if system.is_wormhole:
            labels.append("loc:w-space")
        elif system.security_status >= 0.45:
            labels.append("loc:highsec")
        elif system.security_status > 0:
            labels.append("loc:lowsec")
        else:
            labels.append("loc:nullsec")
        labels.append("solo" if attackers == 1 else "#:5+" if attackers >= 5 else "#:2+")
        if total >= 1e9:
            labels.append("isk:1b+")
        return {
            "locationID": 40_000_000 + rng.randint(1, 999_999),
            "hash": f"{rng.getrandbits(160):040x}",
            "totalValue": total,
            "fittedValue": round(total * rng.uniform(0.5, 0.85), 2),
            "droppedValue": dropped,
            "destroyedValue": round(total - dropped, 2),
            "points": rng.randint(1, 60),
            "npc": False,
            "solo": attackers == 1,
            "awox": False,
            "labels": labels,
        }
