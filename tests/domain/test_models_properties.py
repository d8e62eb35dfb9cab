"""Properties of the wire models (hypothesis): any JSON-like input is a model or the documented
error, and what the models accept is safe for the code that reads them.

``Killmail.from_wire`` and ``MapEnvelope.model_validate`` document
:class:`pydantic.ValidationError`; ``parse_payload`` documents that or :class:`UnknownEventType`.
Inputs are arbitrary JSON values and mutations (replace, delete, add, alias-rename) of valid
examples from the simulator's generator and fake map server.
"""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.delivery.conftest import assert_within_limits
from wanderer_console.config.model import Settings
from wanderer_console.delivery.embeds import KillContext, build_message, render_kill
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import (
    MapEnvelope,
    UnknownEventType,
    parse_payload,
)
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.pipeline.rules import decide_kill
from wanderer_console.pipeline.startup import envelope_seconds
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.map_server import FakeMapServer

PROPERTY = settings(
    max_examples=150,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- inputs ----------------------------------------------------------------------------------

_KEYS = st.text(max_size=8) | st.sampled_from(
    [
        *("killmail_id", "system_id", "kill_time", "victim", "attackers", "zkb", "id", "type"),
        *("payload", "timestamp", "solar_system_id", "name", "character_id", "totalValue"),
    ]
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=16),
    st.sampled_from(  # strings the models coerce: numbers, dates, ULIDs, event types
        [
            *("1", "-1", "0", "1e3", "2026-01-10T18:20:41Z", "2026-01-10T18:20:41", "1768069241"),
            *("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"),
            *("01KEM3Z4XQ8Y5N6P7R8S9T0VWX", "add_system", "rally_point_added", "connection_added"),
            *("map_kill", "true", "nan"),
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=20,
)

_ALIASES = {
    "kill_time": "killmail_time",
    "killmail_time": "kill_time",
    "system_id": "solar_system_id",
    "solar_system_id": "system_id",
    "totalValue": "total_value",
    "timestamp": "ts",
}


def _killmails() -> list[dict[str, Any]]:
    gen = DataGenerator(seed=11)
    when = "2026-01-10T18:20:41Z"
    structure = next(iter(gen.ship_types))
    return [
        gen.make_killmail(kill_time=when),
        gen.make_killmail(kill_time=when, with_names=False),
        gen.make_killmail(kill_time=when, victim_ship_type_id=structure),
    ]


def _envelopes() -> list[dict[str, Any]]:
    gen = DataGenerator(seed=11)
    server = FakeMapServer("home", "key", "map-1", generator=gen)
    system = next(iter(gen.systems))
    pilot = next(iter(gen.characters))
    made = [
        server.add_system(system),
        server.add_character(pilot, "Pilot"),
        server.add_rally(system),
        server.remove_character(pilot),
        server.remove_system(system),
        server.publish("system_metadata_changed", {"solar_system_id": system, "labels": "a"}),
        server.publish("rally_point_removed", {"id": "r1", "solar_system_id": system}),
        server.publish("connection_added", {"solar_system_source_id": system}),
    ]
    out = []
    for index, envelope in enumerate(e for e in made if e is not None):
        # Fixed ids and times: the examples must not depend on the clock (derandomize).
        fixed = copy.deepcopy(envelope)
        fixed["id"] = f"01KEM3Z4XQ8Y5N6P7R8S9T0V{index:02d}"
        fixed["timestamp"] = "2026-01-10T18:20:41.000000Z"
        out.append(fixed)
    return out


KILLMAILS = _killmails()
ENVELOPES = _envelopes()


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*at, index))
    return found


def _at(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


@st.composite
def mutated(draw: st.DrawFn, examples: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid example with one to four mutations anywhere in its tree."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(examples)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        node = _at(doc, path)
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "alias"]))
        if not path:
            if op == "add":
                doc[draw(_KEYS)] = draw(json_values)
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(json_values)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(node, dict):
            node[draw(_KEYS)] = draw(json_values)
        elif op == "add" and isinstance(node, list):
            node.append(draw(json_values))
        elif op == "alias" and isinstance(parent, dict) and key in _ALIASES:
            parent[_ALIASES[key]] = parent.pop(key)
    return doc


_OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
kill_times = st.datetimes(timezones=st.none() | st.just(UTC) | _OFFSETS).map(datetime.isoformat)
"""Any ISO 8601 time, with or without an offset: what a source could write as ``kill_time``."""
retimed = st.builds(
    lambda km, when, key: {**{k: v for k, v in km.items() if k != "kill_time"}, key: when},
    st.sampled_from(KILLMAILS),
    kill_times | json_scalars,
    st.sampled_from(["kill_time", "killmail_time"]),
)
killmail_inputs = mutated(KILLMAILS) | retimed | json_values | st.dictionaries(_KEYS, json_values)
envelope_inputs = mutated(ENVELOPES) | json_values | st.dictionaries(_KEYS, json_values)

# -- killmails -------------------------------------------------------------------------------


def _killmail_or_none(data: Any) -> Killmail | None:
    try:
        return Killmail.from_wire(data)
    except ValidationError:
        return None


def test_the_valid_examples_are_valid() -> None:
    for data in KILLMAILS:
        assert Killmail.from_wire(data).killmail_id > 0
    for data in ENVELOPES:
        parse_payload(MapEnvelope.model_validate(data))


@pytest.mark.slow
@PROPERTY
@given(data=killmail_inputs)
def test_any_killmail_input_is_a_killmail_or_a_validation_error(data: Any) -> None:
    km = _killmail_or_none(data)
    if km is None:
        return
    assert km.killmail_id > 0
    assert km.system_id > 0
    # What the pipeline reads off an accepted killmail works.
    assert km.attacker_total >= 0
    assert all(isinstance(i, int) for i in km.character_ids())
    final, top = km.final_blow(), km.top_damage()
    assert (final is None) == (top is None) == (not km.attackers)
    assert km.total_value is None or isinstance(km.total_value, float)


_OVERFLOWING = {**KILLMAILS[0], "kill_time": "0001-01-01T00:00:00+01:00"}
_NAIVE = {**KILLMAILS[0], "kill_time": "2026-01-10T18:20:41"}


@PROPERTY
@given(data=killmail_inputs)
@example(data=_OVERFLOWING)
def test_an_accepted_killmail_renders_within_discord_limits(data: Any) -> None:
    km = _killmail_or_none(data)
    if km is None:
        return
    for role in ("kill", "loss", "neutral"):
        ctx = KillContext(map_name="Home", role=role)
        assert_within_limits(build_message([render_kill(km, ctx)]))


def _rules_settings() -> Settings:
    return Settings.model_validate(
        {
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:1",
                    "api_key": "k",
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/t"},
                }
            }
        }
    )


RULES_SETTINGS = _rules_settings()
NOW = datetime(2026, 1, 10, 18, 30, tzinfo=UTC)


@PROPERTY
@given(data=killmail_inputs)
@example(data=_NAIVE)
def test_an_accepted_killmail_goes_through_the_rules(data: Any) -> None:
    km = _killmail_or_none(data)
    if km is None:
        return
    index = TrackingIndex()
    index.replace("home", [TrackedSystem(km.system_id, "J100001")], [])
    decide_kill(km, settings=RULES_SETTINGS, index=index, now=NOW, suppressed=False)


# -- map events ------------------------------------------------------------------------------


@pytest.mark.slow
@PROPERTY
@given(data=envelope_inputs)
def test_any_map_event_is_parsed_or_a_documented_error(data: Any) -> None:
    try:
        envelope = MapEnvelope.model_validate(data)
    except ValidationError:
        return
    assert 1 <= len(envelope.id) <= 64
    assert 1 <= len(envelope.type) <= 64
    assert isinstance(envelope.payload, dict)
    try:
        parse_payload(envelope)
    except (ValidationError, UnknownEventType):
        return
    seconds = envelope_seconds(envelope)  # start-up suppression reads every accepted envelope
    assert seconds is None or isinstance(seconds, float)


@PROPERTY
@given(payload=json_values, kind=st.sampled_from(sorted({e["type"] for e in ENVELOPES})))
def test_any_payload_of_a_known_type_is_parsed_or_a_validation_error(
    payload: Any, kind: str
) -> None:
    try:
        envelope = MapEnvelope.model_validate(
            {"id": "01KEM3Z4XQ", "type": kind, "payload": payload}
        )
    except ValidationError:
        assert not isinstance(payload, dict)
        return
    with contextlib.suppress(ValidationError):
        parse_payload(envelope)
