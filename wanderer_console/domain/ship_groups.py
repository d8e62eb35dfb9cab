"""Inventory groups a kill's ships can be in: what a ship-group clause may name.

Taken from the SDE's ``invGroups`` for the categories a killmail's victim or attacker ship can
belong to (aa-killtracker offers the same, PARITY.md §11.1): ships (category 6), Upwell and
other structures (65), fighters (87), deployables (22), starbase towers (23), plus the two
groups aa-killtracker adds for victims, mining drones (101) and orbital infrastructure (1025,
customs offices). ``config check`` refuses a ship-group clause naming any other group: such a
clause can never match (a typo, or a type id where a group id belongs).
"""

from __future__ import annotations

from typing import Final

__all__ = ["SHIP_GROUPS"]

SHIP_GROUPS: Final[dict[int, str]] = {
    # ships (category 6)
    25: "Frigate",
    26: "Cruiser",
    27: "Battleship",
    28: "Hauler",
    29: "Capsule",
    30: "Titan",
    31: "Shuttle",
    237: "Corvette",
    324: "Assault Frigate",
    358: "Heavy Assault Cruiser",
    380: "Deep Space Transport",
    381: "Elite Battleship",
    419: "Combat Battlecruiser",
    420: "Destroyer",
    463: "Mining Barge",
    485: "Dreadnought",
    513: "Freighter",
    540: "Command Ship",
    541: "Interdictor",
    543: "Exhumer",
    547: "Carrier",
    659: "Supercarrier",
    830: "Covert Ops",
    831: "Interceptor",
    832: "Logistics",
    833: "Force Recon Ship",
    834: "Stealth Bomber",
    883: "Capital Industrial Ship",
    893: "Electronic Attack Ship",
    894: "Heavy Interdiction Cruiser",
    898: "Black Ops",
    900: "Marauder",
    902: "Jump Freighter",
    906: "Combat Recon Ship",
    941: "Industrial Command Ship",
    963: "Strategic Cruiser",
    1022: "Prototype Exploration Ship",
    1201: "Attack Battlecruiser",
    1202: "Blockade Runner",
    1283: "Expedition Frigate",
    1305: "Tactical Destroyer",
    1527: "Logistics Frigate",
    1534: "Command Destroyer",
    1538: "Force Auxiliary",
    1972: "Flag Cruiser",
    2001: "Citizen Ships",
    4594: "Lancer Dreadnought",
    4902: "Expedition Command Ship",
    # structures (category 65)
    1404: "Engineering Complex",
    1406: "Refinery",
    1408: "Upwell Jump Gate",
    1657: "Citadel",
    1924: "Forward Operating Base",
    2016: "Upwell Cyno Jammer",
    2017: "Upwell Cyno Beacon",
    # fighters (category 87)
    1537: "Support Fighter",
    1652: "Light Fighter",
    1653: "Heavy Fighter",
    # deployables (category 22) and starbase towers (category 23)
    361: "Mobile Warp Disruptor",
    1246: "Mobile Depot",
    1247: "Mobile Siphon Unit",
    1249: "Mobile Cyno Inhibitor",
    1250: "Mobile Tractor Unit",
    1273: "Encounter Surveillance System",
    1275: "Mobile Scan Inhibitor",
    1276: "Mobile Micro Jump Unit",
    365: "Control Tower",
    # aa-killtracker's victim additions
    101: "Mining Drone",
    1025: "Orbital Infrastructure",
}
"""Group id → group name."""
