"""Every settings field is proven to do what it declares: applied live, or flagged for a restart.

One engine runs over the simulator with its config file watched. For every leaf field of the
settings model (sections walked recursively; one map of the test config for ``maps``; one
representative key for the ``http`` overrides and the ``keymap``) the test writes a changed, valid
value into the file, reloads, and checks:

* a field declared :class:`~wanderer_console.config.section.Restart` is listed, with its reason,
  in the reload's ``restart_required`` and in the reloader's snapshot (and leaves the snapshot
  when the file is back to the value the engine started with);
* a field declared :class:`~wanderer_console.config.section.Live` reaches the component that
  uses it: a *probe* (:data:`PROBES`) reads what that component now sees (the dispatcher's
  pacing and policy, the ESI client's URL, the engine's switches, ...) and must show the new
  value, then the old one again after the revert.

A live field without a probe, a probe for a field that is not live, or a new field the walk
cannot change, fails the test: covering a new field means declaring it on the model and, when
it is live, saying here who reads it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import tomllib
import types
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import pytest
import tomlkit
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from tests.support import connected
from wanderer_console.config.live import (
    LiveSettings,
    applies,
    declarations,
    entries_changed,
    restart_keys,
    restart_summary,
)
from wanderer_console.config.loader import load_settings, parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.config.section import Live, Restart, Section, declared, is_section
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.notification import NotificationType
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.timeout(120)

MAP = "{map}"
"""Stands for the test config's map key in :data:`PROBES` and :data:`CHANGES`."""

MAP_KINDS = [kind for kind in NotificationType if kind is not NotificationType.ALERT]
"""The kinds a map's switches decide (an alert goes to the operations webhook, no switch)."""

REPRESENTATIVE: dict[str, tuple[str, ...]] = {
    "http": ("esi", "timeout_seconds"),
    "keymap": ("app.quit",),
}
"""The key walked for a dict of plain values (TOML path below the field)."""


# -- walking the model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One changeable key of the model."""

    key: str
    """The dotted key the reload reports (``maps.demo.filters.wormhole_only``)."""
    path: tuple[str, ...]
    """Its TOML path (a keymap id keeps its dots: ``("keymap", "app.quit")``)."""
    field: FieldInfo | None
    """The declaring field (``None`` for a value inside a dict of plain values)."""
    marker: Live | Restart


def _entry_section(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is dict and is_section(get_args(annotation)[1]):
        section: type[BaseModel] = get_args(annotation)[1]
        return section
    return None


def leaves(model: type[BaseModel], tenant: str, prefix: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every leaf field below ``model``; a dict of sections is entered at ``tenant``."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        if is_section(field.annotation):
            yield from leaves(field.annotation, tenant, path)
            continue
        marker = declared(field)
        assert marker is not None, f"{'.'.join(path)} declares neither Live nor Restart"
        entry = _entry_section(field.annotation)
        if entry is not None:
            yield from leaves(entry, tenant, (*path, tenant))
        elif get_origin(field.annotation) is dict:
            assert name in REPRESENTATIVE, f"{name}: add a representative key to REPRESENTATIVE"
            below = (*path, *REPRESENTATIVE[name])
            yield Leaf(".".join(below), below, None, marker)
        else:
            yield Leaf(".".join(path), path, field, marker)


# -- changed values ----------------------------------------------------------------------------

CHANGES: dict[str, Any] = {
    "alerts.discord_webhook_url": "http://127.0.0.1:9/api/webhooks/100000000000099999/token",
    # Values with validators (URLs, Discord ids and tokens, names) and values of dict entries.
    "console.data_dir": "/tmp/wanderer-console-elsewhere",
    "store.url": "postgresql://wc:secret@127.0.0.1:9/wc",
    "discord.api_url": "http://127.0.0.1:9/api/v9",
    "discord.bot_token": "AAAAAAAAAAAAAAAAAAAAAAAA.BBBBBB.CCCCCCCCCCCCCCCCCCCCCCCCCCC",
    "discord.username": "Wanderer Two",
    "discord.command_role_id": "800000000000000009",
    "discord.application_id": "1200000000000000009",
    "discord.guild_id": "900000000000000009",
    "discord.status_channel_id": "800000000000000008",
    "esi.url": "http://127.0.0.1:9/esi",
    "killstream.websocket_url": "ws://127.0.0.1:9",
    "killstream.rest_url": "http://127.0.0.1:9",
    "r2z2.url": "http://127.0.0.1:9",
    "esi.user_agent": "Other/2.0 (+https://example.org; ops@example.org)",
    "r2z2.user_agent": "Other/2.0 (+https://example.org; ops@example.org)",
    "control.listen": "127.0.0.1:8799",
    "statsd.address": "127.0.0.1:9",
    "statsd.prefix": "console_two",
    "tracing.service_name": "wanderer-console-two",
    "http.esi.timeout_seconds": 12.5,
    "keymap.app.quit": "f2",
    "hosted.api_key": "another-plugin-key",
    "janice.api_token": "another-janice-token",
    "janice.url": "http://127.0.0.1:9",
    "hosted.url": "http://127.0.0.1:9",
    "hosted.map_api_key": "another-hosted-map-key",
    "hosted.channel_id": "100000000000000099",
    f"maps.{MAP}.url": "http://127.0.0.1:9",
    f"maps.{MAP}.api_key": "another-map-key",
    f"maps.{MAP}.sse_events": ["*"],
    f"maps.{MAP}.webhook_secret": "another-webhook-secret",
    f"maps.{MAP}.discord.bot_token": "DDDDDDDDDDDDDDDDDDDDDDDD.EEEEEE.FFFFFFFFFFFFFFFFFFFFFFFFFFF",
    f"maps.{MAP}.discord.rally_group_ids": ["200000000000000003"],
    f"maps.{MAP}.filters.origin_system_id": 30000142,
    f"maps.{MAP}.filters.require_victim_ship_groups": [485],
    f"maps.{MAP}.filters.require_attacker_ship_groups": [485],
    f"maps.{MAP}.trackers": [{"name": "caps", "require_victim_ship_groups": [485]}],
    **{
        f"maps.{MAP}.discord.{route}channel_id": f"10000000000000{i:04d}"
        for i, route in enumerate(
            ("", "system_kill_", "character_kill_", "system_", "character_", "rally_"), 11
        )
    },
    **{
        f"maps.{MAP}.discord.{route}webhook_url": (
            f"http://127.0.0.1:9/api/webhooks/1000000000000{i:05d}/token"
        )
        for i, route in enumerate(
            ("", "system_kill_", "character_kill_", "system_", "character_", "rally_"), 11
        )
    },
}
"""Changed values the generic rule cannot make (:func:`changed_value`)."""

COMPANIONS: dict[str, dict[str, Any]] = {
    "hosted.api_key": {"hosted.url": "http://127.0.0.1:9", "hosted.map_api_key": "k"},
    # Fields valid only together with another (the model's cross-field checks).
    f"maps.{MAP}.filters.priority_systems_only": {
        f"maps.{MAP}.filters.priority_systems": [31000005]
    },
    f"maps.{MAP}.filters.require_attacker_organizations_final_blow": {
        f"maps.{MAP}.filters.require_attacker_alliances": [99000001]
    },
    f"maps.{MAP}.filters.max_jumps": {f"maps.{MAP}.filters.origin_system_id": 30000142},
    f"maps.{MAP}.filters.max_distance_ly": {f"maps.{MAP}.filters.origin_system_id": 30000142},
}
"""Other keys changed in the same edit, so that the edit stays valid."""


def _bounds(field: FieldInfo) -> tuple[float, float, int | None]:
    low, high, max_len = -float("inf"), float("inf"), None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Gt):
            low = float(item.gt) + 1e-9  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Lt):
            high = float(item.lt) - 1e-9  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.MaxLen):
            max_len = item.max_length
    return low, high, max_len


def _validated(field: FieldInfo) -> bool:
    """True when the field runs its own validator (a made-up value may not pass)."""
    return any(type(item).__name__.endswith("Validator") for item in field.metadata)


def changed_value(leaf: Leaf, generic_key: str, current: Any) -> Any:
    """A value different from ``current`` that the field accepts (``None``: unset the key)."""
    if generic_key in CHANGES:
        return CHANGES[generic_key]
    field = leaf.field
    if field is None or _validated(field):
        raise LookupError(f"{leaf.key}: add a changed value to CHANGES")
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    low, high, max_len = _bounds(field)
    if annotation is bool:
        return not current
    if get_origin(annotation) is Literal:
        return next(choice for choice in get_args(annotation) if choice != current)
    if annotation in (int, float):
        base = current if current is not None else max(low, 1)
        step: list[float] = [1, -1] if annotation is int else [1.5, -0.5 * base, -0.5]
        for delta in step:
            value = annotation(base + delta)
            if low <= value <= high and value != current:
                return value
    if annotation is str:
        value = f"{current or ''}-changed"
        return value if max_len is None else value[-max_len:]
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if item is int:
            return [*current, 31000007]
        if item is str:
            return [*current, "Changed"]
        if get_origin(item) is Literal:
            return [*current, next(c for c in get_args(item) if c not in current)]
    raise LookupError(f"{leaf.key}: add a changed value to CHANGES")


# -- probes ------------------------------------------------------------------------------------


def value_at(root: Any, path: tuple[str, ...]) -> Any:
    """The plain value at ``path`` of a settings tree (secrets revealed, paths as text; a key
    missing from a dict is ``None``)."""
    node = root
    for part in path:
        if node is None:
            return None
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
    if isinstance(node, SecretStr):
        return node.get_secret_value()
    if isinstance(node, Path):
        return str(node)
    return node


@dataclass(frozen=True)
class Probe:
    """What the component using a field sees now, and what it should see for a value."""

    read: Callable[[Runtime, Leaf], Any]
    expect: Callable[[Runtime, Any], Any] = lambda _runtime, value: value
    """What ``read`` should return once the field holds ``value``."""


def engine_reads(runtime: Runtime, leaf: Leaf) -> Any:
    """The engine decides (rules, switches, routing, rendering) with its settings at each use."""
    return value_at(runtime.engine.settings, leaf.path)


def console_reads(runtime: Runtime, leaf: Leaf) -> Any:
    """The console (theme, keymap) and the HTTP surface (webhook secrets) read
    ``Runtime.settings`` at each frame or request."""
    return value_at(runtime.settings, leaf.path)


def allowed(kind: NotificationType, tenant: str | None = None) -> Probe:
    """The engine's switches let a notification of ``kind`` through (for the test map)."""

    def read(runtime: Runtime, _leaf: Leaf) -> bool:
        tenant_ = tenant or next(iter(runtime.settings.maps))
        return runtime.engine.allowed(tenant_, kind, suppressible=False)

    return Probe(read)


def bot_tokens(runtime: Runtime, _leaf: Leaf) -> set[str | None]:
    """The tokens the dispatcher posts to bot channels with."""
    return {t.bot_token for t in runtime.dispatcher._targets().values() if t.bot_token}


def fallback_token(runtime: Runtime) -> str | None:
    token = runtime.settings.discord.bot_token
    return None if token is None else token.get_secret_value()


def log_level(_runtime: Runtime, _leaf: Leaf) -> str:
    return logging.getLevelName(logging.getLogger("wanderer_console").level)


def suppressed_one_second_in(runtime: Runtime, _leaf: Leaf) -> bool:
    return runtime.engine.suppressed(runtime.engine.startup.started + 1.0)


def new_console_buffer(runtime: Runtime, _leaf: Leaf) -> int:
    """The buffer a console attaching now is given."""
    hub = runtime.control.hub
    subscriber, _first = hub.subscribe(1.0)
    hub.unsubscribe(subscriber)
    return subscriber.queue.maxsize


def esi_url(runtime: Runtime, _leaf: Leaf) -> str:
    assert runtime.esi is not None
    return runtime.esi.base_url


KEPT_UNTIL_RESTART = frozenset({f"maps.{MAP}.enabled"})
"""Restart fields the running settings keep as they run until the restart (the pipeline reads
them, so the file's value applied at once would act before the restart the reload asks for):
the edit leaves the running value, and the revert changes nothing that runs."""

PROBES: dict[str, Probe] = {
    "console.log_level": Probe(log_level),
    "console.dry_run": Probe(lambda rt, _: rt.dispatcher.dry_run),
    "console.startup_suppression_seconds": Probe(
        suppressed_one_second_in, expect=lambda _rt, seconds: seconds > 1.0
    ),
    "console.theme": Probe(console_reads),
    "console.retention_days": Probe(lambda rt, _: rt.maintenance._retention_days()),
    "console.stop_grace_seconds": Probe(lambda rt, _: rt.dispatcher.policy.stop_grace),
    **{f"notifications.{k.value}": allowed(k) for k in MAP_KINDS},
    "notifications.enabled": allowed(NotificationType.KILL),
    "discord.api_url": Probe(lambda rt, _: rt.dispatcher.sender._api_url),
    "discord.bot_token": Probe(bot_tokens, expect=lambda _rt, token: {token}),
    "discord.username": Probe(engine_reads),
    "discord.request_timeout_seconds": Probe(lambda rt, _: rt.dispatcher.policy.request_timeout),
    "discord.channel_messages_per_minute": Probe(lambda rt, _: rt.dispatcher._pacer.per_minute),
    "discord.max_delivery_age_hours": Probe(lambda rt, _: rt.dispatcher.policy.max_age / 3600),
    "discord.uncertain_retry_seconds": Probe(lambda rt, _: rt.dispatcher.policy.uncertain_window),
    # Whom a priority ping reaches: the engine's pings read them at each notification.
    "discord.voice_mentions": Probe(lambda rt, leaf: value_at(rt.pings.settings, leaf.path)),
    "discord.fallback_to_here": Probe(lambda rt, leaf: value_at(rt.pings.settings, leaf.path)),
    # The bot's commands and status line read Runtime.settings at each interaction and hour.
    "discord.command_role_id": Probe(console_reads),
    "discord.status_messages": Probe(console_reads),
    "discord.status_channel_id": Probe(console_reads),
    "esi.url": Probe(esi_url),
    "cluster.lease_seconds": Probe(lambda rt, _: rt.cluster.lease_seconds),
    # The control endpoint sizes a console's buffer when it attaches.
    "control.client_buffer_frames": Probe(new_console_buffer),
    "keymap.": Probe(console_reads),
    # The hosted maps' refresher reads the running settings at each refresh and each wait.
    "hosted.": Probe(console_reads),
    # Notable loot reads [janice] at every kill it appraises.
    "janice.": Probe(console_reads),
    f"maps.{MAP}.name": Probe(engine_reads),
    f"maps.{MAP}.webhook_secret": Probe(console_reads),
    **{f"maps.{MAP}.notifications.{k.value}": allowed(k) for k in MAP_KINDS},
    f"maps.{MAP}.notifications.enabled": allowed(NotificationType.KILL),
    # The map's own token, else the [discord] one, posts to the map's bot channels.
    f"maps.{MAP}.discord.bot_token": Probe(
        bot_tokens, expect=lambda rt, token: {token or fallback_token(rt)}
    ),
    f"maps.{MAP}.discord.": Probe(engine_reads),
    # The alert engine reads its whole section at every evaluation.
    "alerts.": Probe(lambda rt, leaf: value_at(rt.alerts.settings, leaf.path[1:])),
    # The cache refresh task and the map-loaded hook read [cache] from the running settings.
    "cache.": Probe(console_reads),
    "trends.days": Probe(lambda rt, _: rt.trends._days()),
    f"maps.{MAP}.filters.": Probe(engine_reads),
    f"maps.{MAP}.dedup_ttl_seconds.": Probe(engine_reads),
    # The rules read a map's trackers at every kill, as its filters.
    f"maps.{MAP}.trackers": Probe(
        lambda rt, leaf: [t.name for t in value_at(rt.engine.settings, leaf.path)],
        expect=lambda _rt, trackers: [
            t["name"] if isinstance(t, dict) else t.name for t in trackers
        ],
    ),
}
"""Field key (or a section prefix ending in ``.``, for a section one component reads whole at
use) → how to see what the component that uses it sees now."""


def generic(key: str, tenant: str) -> str:
    return re.sub(rf"^maps\.{re.escape(tenant)}\.", f"maps.{MAP}.", key)


def probe_for(leaf: Leaf, tenant: str) -> Probe | None:
    key = generic(leaf.key, tenant)
    if key in PROBES:
        return PROBES[key]
    prefixes = [p for p in PROBES if p.endswith(".") and key.startswith(p)]
    return PROBES[max(prefixes, key=len)] if prefixes else None


def coverage_problems(found: list[Leaf], tenant: str) -> list[str]:
    """Live leaves without a probe, and probes that match no live leaf."""
    problems = [
        f"{leaf.key} is declared Live but no probe says who reads it (add one to PROBES)"
        for leaf in found
        if isinstance(leaf.marker, Live) and probe_for(leaf, tenant) is None
    ]
    live = [generic(leaf.key, tenant) for leaf in found if isinstance(leaf.marker, Live)]
    for key in PROBES:
        if not any(k == key or (key.endswith(".") and k.startswith(key)) for k in live):
            problems.append(f"PROBES has {key!r}, which is no live field")
    return problems


# -- the running engine ------------------------------------------------------------------------


def set_at(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


@pytest.fixture
def restore_log_level() -> Iterator[None]:
    logger = logging.getLogger("wanderer_console")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
async def watched(
    sim: Simulator, tmp_path: Path, restore_log_level: None
) -> AsyncIterator[tuple[Runtime, Path, dict[str, Any]]]:
    """A runtime over the simulator, its config file watched, and that file's content."""
    data = tmp_path / "data"
    doc = tomllib.loads(demo_config_text(sim, data_dir=data, dry_run=True))
    path = tmp_path / "config.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=data, config_path=path)
    await runtime.start()
    try:
        await connected(runtime)
        yield runtime, path, doc
    finally:
        await runtime.stop()


@pytest.mark.slow
async def test_every_field_applies_live_or_is_flagged_for_a_restart(
    sim: Simulator, watched: tuple[Runtime, Path, dict[str, Any]]
) -> None:
    runtime, path, base = watched
    reloader = runtime.reloader
    assert reloader is not None
    tenant = sim.map_slug
    started = runtime.settings
    found = list(leaves(Settings, tenant))
    assert not coverage_problems(found, tenant)
    assert len(found) > 100  # every section was walked

    base_text = path.read_text(encoding="utf-8")
    checked: dict[str, list[str]] = {"live": [], "restart": []}
    for leaf in found:
        key = generic(leaf.key, tenant)
        old = value_at(started, leaf.path)
        doc = copy.deepcopy(base)
        set_at(doc, leaf.path, changed_value(leaf, key, old))
        for other, value in COMPANIONS.get(key, {}).items():
            set_at(doc, tuple(other.replace(MAP, tenant).split(".")), value)
        text = tomlkit.dumps(doc)
        expected_settings, _ = parse_settings_text(text)
        new = value_at(expected_settings, leaf.path)
        assert new != old, f"{leaf.key}: the changed value is no change"
        probe = probe_for(leaf, tenant)

        path.write_text(text, encoding="utf-8")
        changed = reloader.reload(source="test")

        assert changed.status == "applied", (leaf.key, changed.problems)
        if isinstance(leaf.marker, Restart):
            assert leaf.key in changed.restart_required, leaf.key
            assert leaf.key not in changed.hot
            assert changed.reasons[leaf.key] == leaf.marker.why
            assert leaf.key in reloader.snapshot()["restart_required"], leaf.key
            if key in KEPT_UNTIL_RESTART:
                assert value_at(runtime.settings, leaf.path) == old, leaf.key
            checked["restart"].append(leaf.key)
        else:
            assert leaf.key in changed.hot, leaf.key
            assert leaf.key not in changed.restart_required
            assert probe is not None
            assert probe.read(runtime, leaf) == probe.expect(runtime, new), leaf.key
            checked["live"].append(leaf.key)
        await asyncio.sleep(0)  # let the engine's tasks run between edits

        # Back to the file the engine started with: a live field shows its old value again, a
        # restart field no longer waits for a restart.
        path.write_text(base_text, encoding="utf-8")
        reverted = reloader.reload(source="test")
        assert reverted.status == "applied", (leaf.key, reverted.problems)
        if isinstance(leaf.marker, Restart):
            assert (leaf.key in reverted.restart_required) != (key in KEPT_UNTIL_RESTART)
            assert reloader.snapshot()["restart_required"] == [], leaf.key
        else:
            assert probe is not None
            assert probe.read(runtime, leaf) == probe.expect(runtime, old), leaf.key

    # Both kinds were exercised (a model where every field says the same is suspect).
    assert checked["live"]
    assert checked["restart"]


@pytest.mark.slow
async def test_a_map_added_or_removed_needs_a_restart(
    sim: Simulator, watched: tuple[Runtime, Path, dict[str, Any]]
) -> None:
    runtime, path, base = watched
    reloader = runtime.reloader
    assert reloader is not None
    doc = copy.deepcopy(base)
    doc["maps"]["extra"] = {"url": sim.map_url, "api_key": "extra-key"}
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    added = reloader.reload(source="test")
    assert added.status == "applied"
    assert "maps.extra.url" in added.restart_required
    assert "maps.extra.filters.wormhole_only" in added.restart_required  # live on a running map
    assert not [key for key in added.hot if key.startswith("maps.extra.")]
    maps = declared(Settings.model_fields["maps"])
    assert isinstance(maps, Restart)
    assert added.reasons["maps.extra.url"] == maps.why

    doc = copy.deepcopy(base)
    del doc["maps"][sim.map_slug]
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    removed = reloader.reload(source="test")
    assert removed.status == "applied"
    assert f"maps.{sim.map_slug}.notifications.kill" in removed.restart_required
    assert "maps" in removed.restart_required  # no map left: the empty table itself
    assert removed.hot == []


# -- the declarations themselves ---------------------------------------------------------------


def test_classification_follows_the_declarations() -> None:
    assert applies("maps.alpha.discord.webhook_url") == Live()
    assert applies("maps.alpha.filters.wormhole_only") == Live()
    assert applies("keymap.app.quit") == Live()
    assert isinstance(applies("http.esi.timeout_seconds"), Restart)
    assert isinstance(applies("maps.alpha.url"), Restart)
    assert isinstance(applies("discord.channel_messages_per_minute"), Live)
    assert isinstance(applies("esi.user_agent"), Restart)
    assert isinstance(applies("not.a.key"), Restart)
    # A map added or removed: every key under it waits for the restart, with the map's reason.
    added = applies("maps.new.filters.wormhole_only", entries_changed={"maps.new"})
    assert added == declared(Settings.model_fields["maps"])


def test_entries_changed_names_maps_added_and_removed() -> None:
    text = '[maps.a]\nurl = "http://x"\napi_key = "k"\n[maps.b]\nurl = "http://x"\napi_key = "k"\n'
    old, _ = parse_settings_text(text, environ={})
    new = old.model_copy(deep=True)
    del new.maps["a"]
    new.maps["c"] = new.maps["b"]
    assert entries_changed(old, new) == {"maps.a", "maps.c"}


def test_a_section_field_without_a_declaration_fails_at_definition() -> None:
    with pytest.raises(TypeError, match="undeclared says neither Live nor Restart"):

        class _Bad(Section):
            undeclared: int = 1


def test_a_live_field_without_a_probe_is_reported() -> None:
    tenant = "demo"
    found = [
        Leaf("console.brand_new", ("console", "brand_new"), None, Live()),
        Leaf("console.data_dir", ("console", "data_dir"), None, Restart("x")),
    ]
    problems = coverage_problems(found, tenant)
    assert any("console.brand_new is declared Live" in p for p in problems)
    assert not any("console.data_dir is declared" in p for p in problems)
    # And every probe must match a live field: here none of them does.
    assert any("PROBES has 'console.dry_run'" in p for p in problems)


def test_a_field_the_walk_cannot_change_is_reported() -> None:
    field = Settings.model_fields["maps"]  # a dict of sections: no generic changed value
    with pytest.raises(LookupError, match="add a changed value to CHANGES"):
        changed_value(Leaf("maps.x", ("maps", "x"), field, Restart("x")), "maps.x", {})


def test_the_walk_covers_what_the_classifier_declares() -> None:
    walked = {generic(leaf.key, "demo") for leaf in leaves(Settings, "demo")}
    declared_keys = {key.replace("maps.*", f"maps.{MAP}") for key, _ in declarations()}
    # The classifier's list also names "maps.*" (a map added or removed) and the dict fields
    # themselves; the walk takes one representative key inside those.
    assert walked - declared_keys == {"http.esi.timeout_seconds", "keymap.app.quit"}
    assert declared_keys - walked == {f"maps.{MAP}", "http.*", "keymap.*"}


# -- the holder --------------------------------------------------------------------------------


def test_live_settings_tells_subscribers_and_rolls_back_a_failed_replace() -> None:
    first, _ = parse_settings_text("", environ={})
    second = first.model_copy(update={"keymap": {"app.quit": "f2"}})
    live = LiveSettings(first)
    seen: list[tuple[Settings, Settings]] = []
    live.subscribe(lambda old, new: seen.append((old, new)))
    assert live.replace(second) is first
    assert live.current is second
    assert live() is second
    assert seen == [(first, second)]

    def refuse(_old: Settings, new: Settings) -> None:
        if new is first:
            raise RuntimeError("cannot apply")

    live.subscribe(refuse)
    with pytest.raises(RuntimeError):
        live.replace(first)
    assert live.current is second  # kept
    assert seen[-1] == (first, second)  # told to go back


def test_a_send_waits_as_long_as_the_running_settings_say() -> None:
    settings, _ = parse_settings_text("[discord]\nrequest_timeout_seconds = 45\n", environ={})
    policy = DeliveryPolicy.from_settings(settings)
    assert policy.send_timeout(confirm=False) == 45
    assert policy.send_timeout(confirm=True) == 45  # never shorter than a first send's
    quick = DeliveryPolicy.from_settings(
        settings.model_copy(
            update={"discord": settings.discord.model_copy(update={"request_timeout_seconds": 2.0})}
        )
    )
    assert quick.send_timeout(confirm=False) == 2.0
    assert quick.send_timeout(confirm=True) == quick.confirm_timeout


# -- the docs ----------------------------------------------------------------------------------

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs" / "operations" / "configuration.md"
BEGIN, END = "<!-- restart-keys:begin -->", "<!-- restart-keys:end -->"


def test_the_docs_list_the_restart_keys_the_model_declares() -> None:
    text = DOCS.read_text(encoding="utf-8")
    listed = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    expected = "\n".join(
        ["| key | why a change waits for a restart |", "|---|---|"]
        + [f"| `{key}` | {why} |" for key, why in restart_keys()]
    )
    assert listed == expected, (
        f"{DOCS} is out of date: put this between {BEGIN} and {END}:\n{expected}"
    )


@pytest.mark.parametrize(
    "page", ["config/wanderer.example.toml", "docs/operations/troubleshooting.md"]
)
def test_the_short_lists_of_restart_keys_match_the_model(page: str) -> None:
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    flat = " ".join(line.lstrip("#").strip() for line in lines).replace("`", "")
    assert restart_summary() in " ".join(flat.split()), (
        f"{page}: list the restart keys as the model declares them: {restart_summary()}"
    )
