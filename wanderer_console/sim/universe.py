"""Static tables and value types behind :mod:`wanderer_console.sim.generator`.

Everything here is plain data: real ship type ids, a handful of real k-space systems and the word
lists the generator draws made-up names from.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ALLIANCE_WORDS",
    "CORP_WORDS",
    "FIRST_NAMES",
    "KNOWN_KSPACE",
    "KSPACE_REGIONS",
    "LAST_NAMES",
    "SYLLABLES",
    "WEAPON_TYPE_IDS",
    "WORMHOLE_CLASSES",
    "WORMHOLE_EFFECTS",
    "SHIP_TYPES",
    "STARGATES",
    "STRUCTURE_TYPE_IDS",
    "SYSTEM_POSITIONS_LY",
    "Alliance",
    "Character",
    "Corporation",
    "ShipType",
    "SolarSystem",
    "position_m",
    "stargate_route",
]


@dataclass(frozen=True, slots=True)
class SolarSystem:
    """A solar system with the static data the map's ``system-static-info`` serves."""

    id: int
    name: str
    security_status: float
    region_id: int
    region_name: str
    constellation_id: int
    constellation_name: str
    system_class: int
    """Wanderer's class id: 1-6 wormhole classes, 7 high-sec, 8 low-sec, 9 null-sec, 12 Thera."""
    class_title: str
    effect_name: str | None = None
    statics: tuple[str, ...] = ()
    is_shattered: bool = False

    @property
    def system_id(self) -> int:
        """Alias of :attr:`id` (the name ESI and the map use)."""
        return self.id

    @property
    def is_wormhole(self) -> bool:
        """True for J-space (ids 31,000,000-31,999,999)."""
        return 31_000_000 <= self.id <= 31_999_999


@dataclass(frozen=True, slots=True)
class Alliance:
    """An alliance: id, name and ticker."""

    id: int
    name: str
    ticker: str


@dataclass(frozen=True, slots=True)
class Corporation:
    """A player corporation, possibly in an alliance."""

    id: int
    name: str
    ticker: str
    alliance_id: int | None


@dataclass(frozen=True, slots=True)
class Character:
    """A pilot and its current affiliation."""

    eve_id: int
    name: str
    corporation_id: int
    alliance_id: int | None


@dataclass(frozen=True, slots=True)
class ShipType:
    """An inventory type a victim or attacker can fly."""

    type_id: int
    name: str
    group_id: int
    group_name: str
    base_value: float
    """Rough ISK value of a fitted hull, used to make ``zkb`` values plausible."""


SHIP_TYPES: Final[tuple[ShipType, ...]] = (
    ShipType(670, "Capsule", 29, "Capsule", 10_000.0),
    ShipType(587, "Rifter", 25, "Frigate", 1_500_000.0),
    ShipType(33468, "Astero", 25, "Frigate", 90_000_000.0),
    ShipType(11377, "Nemesis", 834, "Stealth Bomber", 45_000_000.0),
    ShipType(12013, "Broadsword", 894, "Heavy Interdiction Cruiser", 320_000_000.0),
    ShipType(12005, "Ishtar", 358, "Heavy Assault Cruiser", 280_000_000.0),
    ShipType(17715, "Gila", 26, "Cruiser", 450_000_000.0),
    ShipType(11987, "Guardian", 832, "Logistics", 260_000_000.0),
    ShipType(29984, "Tengu", 963, "Strategic Cruiser", 700_000_000.0),
    ShipType(29990, "Loki", 963, "Strategic Cruiser", 650_000_000.0),
    ShipType(24690, "Hurricane", 419, "Combat Battlecruiser", 90_000_000.0),
    ShipType(17738, "Machariel", 27, "Battleship", 1_200_000_000.0),
    ShipType(28710, "Golem", 900, "Marauder", 3_000_000_000.0),
    ShipType(19720, "Revelation", 485, "Dreadnought", 4_500_000_000.0),
    ShipType(648, "Badger", 28, "Hauler", 3_000_000.0),
    ShipType(35832, "Astrahus", 1657, "Citadel", 2_000_000_000.0),
)
STRUCTURE_TYPE_IDS: Final = frozenset({35832})
WEAPON_TYPE_IDS: Final = (2456, 2488, 2185, 3057, 2961, 24475, 2410, 3186)

# (id, name, security, region_id, region_name)
KNOWN_KSPACE: Final[tuple[tuple[int, str, float, int, str], ...]] = (
    (30000142, "Jita", 0.946, 10000002, "The Forge"),
    (30000144, "Perimeter", 0.953, 10000002, "The Forge"),
    (30002187, "Amarr", 1.0, 10000043, "Domain"),
    (30002659, "Dodixie", 0.87, 10000032, "Sinq Laison"),
    (30002510, "Rens", 0.9, 10000030, "Heimatar"),
    (30002053, "Hek", 0.5, 10000042, "Metropolis"),
    (30002813, "Tama", 0.3, 10000033, "The Citadel"),
    (30002537, "Amamake", 0.4, 10000030, "Heimatar"),
    (30004759, "1DQ1-A", -0.38, 10000060, "Delve"),
    (30001161, "HED-GP", -0.38, 10000014, "Catch"),
)
# A small stargate graph over KNOWN_KSPACE: the simulator's own, not New Eden's real gates.
# Jita-Perimeter-Hek-Rens-Amamake-Tama-Jita is a ring; Dodixie and Amarr hang off Jita; HED-GP
# and 1DQ1-A off Tama. J-space systems have no gates (no route reaches them).
STARGATES: Final[tuple[tuple[int, int], ...]] = (
    (30000142, 30000144),  # Jita - Perimeter
    (30000144, 30002053),  # Perimeter - Hek
    (30002053, 30002510),  # Hek - Rens
    (30002510, 30002537),  # Rens - Amamake
    (30002537, 30002813),  # Amamake - Tama
    (30002813, 30000142),  # Tama - Jita
    (30000142, 30002659),  # Jita - Dodixie
    (30002659, 30002187),  # Dodixie - Amarr
    (30002813, 30001161),  # Tama - HED-GP
    (30001161, 30004759),  # HED-GP - 1DQ1-A
)
SYSTEM_POSITIONS_LY: Final[dict[int, tuple[float, float, float]]] = {
    30000142: (0.0, 0.0, 0.0),  # Jita
    30000144: (0.5, 0.0, 0.0),  # Perimeter
    30002053: (3.0, 1.0, 0.0),  # Hek
    30002510: (5.0, 2.0, 0.0),  # Rens
    30002537: (5.5, 4.0, 0.0),  # Amamake
    30002813: (2.0, 3.0, 0.0),  # Tama
    30002659: (-4.0, 1.0, 0.0),  # Dodixie
    30002187: (-8.0, -6.0, 0.0),  # Amarr
    30001161: (4.0, 9.0, 2.0),  # HED-GP
    30004759: (6.0, 14.0, 3.0),  # 1DQ1-A
}
"""Where the known systems are (light-years; ESI serves metres), for the distance clauses."""
_LIGHT_YEAR_M: Final = 9_460_730_472_580_800.0


def position_m(system_id: int) -> dict[str, float]:
    """ESI's ``position`` of a system, in metres (the origin for systems without one)."""
    x, y, z = SYSTEM_POSITIONS_LY.get(system_id, (0.0, 0.0, 0.0))
    return {"x": x * _LIGHT_YEAR_M, "y": y * _LIGHT_YEAR_M, "z": z * _LIGHT_YEAR_M}


def stargate_route(origin: int, destination: int) -> list[int] | None:
    """The shortest route over :data:`STARGATES`, both ends included; ``None`` when none."""
    links: dict[int, list[int]] = {}
    for a, b in STARGATES:
        links.setdefault(a, []).append(b)
        links.setdefault(b, []).append(a)
    if origin not in links or destination not in links:
        return [origin] if origin == destination and origin in links else None
    previous: dict[int, int | None] = {origin: None}
    queue = deque([origin])
    while queue:
        here = queue.popleft()
        if here == destination:
            path = [here]
            while (back := previous[path[-1]]) is not None:
                path.append(back)
            return path[::-1]
        for there in links[here]:
            if there not in previous:
                previous[there] = here
                queue.append(there)
    return None


KSPACE_REGIONS: Final = (
    (10000016, "Lonetrek"),
    (10000064, "Essence"),
    (10000047, "Providence"),
    (10000058, "Fountain"),
    (10000012, "Curse"),
    (10000067, "Genesis"),
)
# Wormhole class -> (region id, region name, static codes to draw from)
WORMHOLE_CLASSES: Final[dict[int, tuple[int, str, tuple[str, ...]]]] = {
    1: (11000001, "A-R00001", ("N110", "J244", "Z060", "H121")),
    2: (11000004, "B-R00004", ("B274", "A239", "E545", "D382")),
    3: (11000012, "C-R00012", ("D845", "U210", "K346", "X877")),
    4: (11000016, "D-R00016", ("E175", "H900", "O477", "Y683")),
    5: (11000024, "E-R00024", ("H296", "V753", "V911")),
    6: (11000030, "F-R00030", ("W237", "V911", "B041")),
}
WORMHOLE_EFFECTS: Final = (
    None,
    None,
    "Pulsar",
    "Wolf-Rayet Star",
    "Black Hole",
    "Cataclysmic Variable",
    "Magnetar",
    "Red Giant",
)
SYLLABLES: Final = ("ka", "ra", "mo", "sha", "ne", "ti", "vo", "el", "an", "ush", "ki", "do")
FIRST_NAMES: Final = (
    "Aria", "Bren", "Cass", "Dax", "Eira", "Fenn", "Gale", "Hask", "Ivo", "Jora", "Kael",
    "Lyra", "Mirek", "Nyx", "Orin", "Pax", "Quill", "Rhea", "Soren", "Tamsin", "Ulric",
    "Vesna", "Wren", "Xan", "Yara", "Zed",
)  # fmt: skip
LAST_NAMES: Final = (
    "Ashfall", "Blackreach", "Coldwater", "Drakon", "Evenstar", "Farrow", "Greywind",
    "Halcyon", "Ironside", "Jetstream", "Korhonen", "Lindqvist", "Morrow", "Nightshade",
    "Okonkwo", "Prax", "Quarry", "Redmane", "Stormcrow", "Talvik", "Umbra", "Vantor",
    "Westmark", "Yrjola", "Zenith",
)  # fmt: skip
CORP_WORDS: Final = (
    ("Deep", "Silent", "Crimson", "Void", "Iron", "Hollow", "Black", "Lost", "Stellar", "Quantum"),
    ("Rangers", "Syndicate", "Holdings", "Cartel", "Salvage", "Collective", "Expeditions",
     "Industries", "Wardens", "Raiders"),
)  # fmt: skip
ALLIANCE_WORDS: Final = (
    ("Frontier", "Anomaly", "Horizon", "Wormhole", "Eclipse", "Nebula", "Vanguard", "Sleeper"),
    ("Coalition", "Alliance", "Federation", "Pact", "Union", "Conclave"),
)
