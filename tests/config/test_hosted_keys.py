"""A hosted map's key (tenant id) follows its ``map_id``, not its slug.

The key a map got when first seen is kept (``known``, from the store): a map whose slug changed
keeps it. The corner cases are said, never silent: a new map whose slug's key is another map's
gets a key of its own, and a second entry of one ``map_id`` is left out.
"""

from __future__ import annotations

from typing import Any

from wanderer_console.config.hosted import hosted_key, read_notifier_config
from wanderer_console.config.model import HostedSettings

HOSTED = HostedSettings.model_validate(
    {"api_key": "plugin-key", "url": "http://127.0.0.1:9", "map_api_key": "map-key"}
)
OLD = "0b5e7c1a-1111-4000-8000-000000000001"
NEW = "9f3d2e4b-2222-4000-8000-000000000002"


def _entry(slug: str, map_id: str) -> dict[str, Any]:
    return {"slug": slug, "name": f"Map {slug}", "map_id": map_id}


def test_a_renamed_map_keeps_the_key_it_was_first_given() -> None:
    config = read_notifier_config({"data": [_entry("home-2", OLD)]}, HOSTED, {OLD: "home"})
    assert list(config.maps) == ["home"]
    assert config.maps["home"].slug == "home-2"
    assert config.map_ids == {"home": OLD}
    assert config.problems == []


def test_a_new_map_on_a_renamed_maps_old_slug_gets_a_key_of_its_own() -> None:
    body = [_entry("home", NEW), _entry("home-2", OLD)]
    config = read_notifier_config(body, HOSTED, {OLD: "home"})
    assert config.map_ids == {"home-9f3d2e4b": NEW, "home": OLD}
    assert config.maps["home-9f3d2e4b"].slug == "home"
    assert config.problems == [
        f"entry 0 (home): the key 'home' is the map {OLD}'s (it had this slug, or one of the"
        " same key, first); this map runs as 'home-9f3d2e4b'"
    ]
    # Read again with that key kept: the same keys, nothing more to say.
    again = read_notifier_config(body, HOSTED, {OLD: "home", NEW: "home-9f3d2e4b"})
    assert again.map_ids == config.map_ids
    assert again.problems == []


def test_two_new_maps_whose_slugs_make_one_key_get_two_keys() -> None:
    config = read_notifier_config([_entry("Home", OLD), _entry("home", NEW)], HOSTED)
    assert config.map_ids == {"home": OLD, "home-9f3d2e4b": NEW}
    assert len(config.problems) == 1
    assert hosted_key("Home") == "home"


def test_a_map_listed_twice_is_kept_once() -> None:
    config = read_notifier_config([_entry("home", OLD), _entry("home-2", OLD)], HOSTED)
    assert config.map_ids == {"home": OLD}
    assert config.maps["home"].slug == "home"
    assert config.problems == [
        f"entry 1 (home-2): the map {OLD} is listed twice (first as entry 0 (home));"
        " the first is kept"
    ]
