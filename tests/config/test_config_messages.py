"""What a config problem says: an unknown key with the nearest known one, a wrong value with the
value received (never a secret's), a TOML syntax error on the line that caused it."""

from __future__ import annotations

import pytest

from wanderer_console.config.loader import ConfigError, Problem, parse_settings_text

MAP = '[maps.alpha]\nurl = "http://127.0.0.1:1"\napi_key = "k"\n'


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ={})
    return caught.value.problems


def only(text: str) -> Problem:
    (problem,) = problems(text)
    return problem


@pytest.mark.parametrize(
    ("text", "key", "nearest"),
    [
        ("[notifications]\nkil = true\n", "notifications.kil", "kill"),
        (MAP + "nme = 'A'\n", "maps.alpha.nme", "name"),
        (
            MAP + '[maps.alpha.discord]\nwebhok_url = "https://discord.com/api/webhooks/1/t"\n',
            "maps.alpha.discord.webhok_url",
            "webhook_url",
        ),
        ("[console]\ndryrun = true\n", "console.dryrun", "dry_run"),
        ("notification = 1\n", "notification", "notifications"),
    ],
)
def test_an_unknown_key_names_the_nearest_known_one(text: str, key: str, nearest: str) -> None:
    problem = only(text)
    assert problem.key == key
    name = key.rsplit(".", 1)[-1]
    assert problem.message == f"unknown key {name!r} (did you mean {nearest!r}?)"


def test_an_unknown_key_with_no_near_one_lists_the_known_keys() -> None:
    problem = only("[zzz]\n")
    assert problem.message.startswith("unknown key 'zzz'; the keys here are ")
    listed = problem.message.split("the keys here are ", 1)[1].split(", ")
    assert {"console", "maps", "notifications"} <= set(listed)
    assert listed == sorted(listed)


def test_the_typo_never_shows_a_secret_it_holds() -> None:
    problem = only(
        MAP + '[maps.alpha.discord]\nwebhok_url = "https://discord.com/api/webhooks/1/tok"\n'
    )
    assert "tok" not in problem.message


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        ('[console]\ndry_run = "maybe"\n', "console.dry_run", '(got "maybe")'),
        (MAP + 'enabled = "sometimes"\n', "maps.alpha.enabled", '(got "sometimes")'),
        (
            MAP + '[maps.alpha.discord]\nchannel_id = "general"\n',
            "maps.alpha.discord.channel_id",
            '(got "general")',
        ),
        ("[console]\nrefresh_seconds = [1]\n", None, None),
    ],
)
def test_a_wrong_value_is_shown_as_received(text: str, key: str | None, shown: str | None) -> None:
    found = problems(text)
    if key is None:  # (an unknown key instead: the value is not the point)
        assert all("(got" not in p.message for p in found)
        return
    (problem,) = found
    assert problem.key == key
    assert problem.message.endswith(shown)
    assert problem.message.startswith(("Input should be", "must be"))


def test_a_wrong_secret_is_not_shown() -> None:
    problem = only('[maps.alpha]\nurl = "http://x"\napi_key = 123456789\n')
    assert problem.key == "maps.alpha.api_key"
    assert "123456789" not in problem.message
    assert "(got" not in problem.message


def test_an_unclosed_array_is_reported_on_the_line_that_opened_it() -> None:
    text = '[console]\ntheme = "x"\n\n[notifications]\nkill = [true, false\nrally = true\n'
    problem = only(text)
    assert problem.key == "(syntax)"
    assert problem.line == 5  # the parser noticed on line 6
    assert "the array opened on line 5 is not closed" in problem.message
    assert "close it with ]" in problem.message


def test_an_array_left_open_to_the_end_is_reported_where_it_opened() -> None:
    problem = only('[console]\ntheme = "x"\n[maps.a.discord]\nrally_group_ids = ["1",\n')
    assert problem.line == 4
    assert "the end of the file" in problem.message


def test_a_multi_line_array_left_open_is_reported_where_it_opened() -> None:
    text = '[maps.a.discord]\nrally_group_ids = [\n  "1",\n  "2",\n\n[console]\ntheme = "x"\n'
    problem = only(text)
    assert problem.line == 2


def test_a_bad_value_inside_a_closed_array_keeps_its_own_line() -> None:
    text = '[maps.a.discord]\nrally_group_ids = [\n  "1",\n  2x,\n]\n'
    assert only(text).line == 4


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    text = '[console]\ntheme = "[x"  # [ not an array\nbad = \n'
    problem = only(text)
    assert problem.line == 3


def test_an_unclosed_string_says_so() -> None:
    problem = only('[console]\ntheme = "dark\n')
    assert problem.line == 2
    assert "a string is not closed on this line" in problem.message


def test_an_unclosed_inline_table_is_on_its_line() -> None:
    problem = only("[maps]\nalpha = {url = 'http://x'\n")
    assert problem.line == 2
    assert "the inline table is not closed; close it with }" in problem.message


@pytest.mark.parametrize(
    "pasted",
    [
        "https://discord.com/api/webhooks/123456789012345678/Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB",
        "wci_3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
        "map-key-0d9e8f7a6b5c4d3e",
    ],
)
def test_a_secret_pasted_into_a_wrong_field_is_not_shown(pasted: str) -> None:
    problem = only(MAP + f'[maps.alpha.discord]\nchannel_id = "{pasted}"\n')
    assert problem.key == "maps.alpha.discord.channel_id"
    assert pasted not in problem.message
    assert "(got" not in problem.message


# -- the notifier's environment variables ----------------------------------------------------------

NOTIFIER = {"MAP_URL": "http://127.0.0.1:1", "MAP_API_KEY": "k"}


def env_problems(environ: dict[str, str], text: str = "") -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ=environ)
    return caught.value.problems


@pytest.mark.parametrize(
    ("variable", "value", "sets"),
    [
        ("KILL_NOTIFICATIONS_ENABLED", "maybe", "notifications.kill"),
        ("STARTUP_SUPPRESSION_SECONDS", "soon", "console.startup_suppression_seconds"),
        ("DISCORD_CHANNEL_ID", "general", "maps.default.discord.channel_id"),
        ("DISCORD_RALLY_GROUP_IDS", "1234,admins", "maps.default.discord.rally_group_ids.1"),
        ("MAP_URL", "htp://wanderer.example", "maps.default.url"),
    ],
)
def test_an_invalid_notifier_variable_is_reported_by_its_name(
    variable: str, value: str, sets: str
) -> None:
    # The file sets the same key: the problem is still the variable's, not the file's line.
    (problem,) = env_problems({**NOTIFIER, variable: value}, "[notifications]\nkill = true\n")
    assert problem.file == "(environment)"
    assert problem.line is None
    assert problem.key == variable
    assert problem.message.endswith(f"(it sets {sets})")
    assert str(problem).startswith(f"(environment): {variable}: ")


def test_an_invalid_secret_variable_is_named_without_its_value() -> None:
    hook = "https://discord.com/api/webhooks/not-digits/Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL"
    (problem,) = env_problems({**NOTIFIER, "DISCORD_WEBHOOK_URL": hook})
    assert problem.key == "DISCORD_WEBHOOK_URL"
    assert "Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL" not in str(problem)


# -- the console's own environment variables -------------------------------------------------------

BAD_HOOK = "https://discord.com/api/webhooks/not-digits/Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL"


@pytest.mark.parametrize(
    ("variable", "value", "sets"),
    [
        ("WANDERER_CONSOLE_CONSOLE__DRY_RUN", "maybe", "console.dry_run"),
        ("WANDERER_CONSOLE_NOTIFICATIONS__KILL", "maybe", "notifications.kill"),
        ("WANDERER_CONSOLE_CONSOLE", '{"dry_run": "maybe"}', "console.dry_run"),
        (
            "WANDERER_CONSOLE_MAPS__ALPHA__DISCORD__RALLY_GROUP_IDS",
            '["1234", "admins"]',
            "maps.alpha.discord.rally_group_ids.1",
        ),
        ("WANDERER_CONSOLE_MAPS__ALPHA__DISCORD__WEBHOOK_URL", BAD_HOOK, None),
    ],
)
def test_an_invalid_console_variable_is_reported_by_its_name(
    variable: str, value: str, sets: str | None
) -> None:
    """deployment.md puts secrets (and anything else) in an environment file as
    ``WANDERER_CONSOLE_<SECTION>__<KEY>``; a bad value there was blamed on the config file (at
    the line of the same key, which holds a good value, or at no line at all)."""
    text = MAP + "[console]\ndry_run = false\n[notifications]\nkill = true\n"
    (problem,) = env_problems({variable: value}, text)
    assert problem.file == "(environment)", str(problem)
    assert problem.line is None
    assert problem.key == variable
    if sets is not None:
        assert problem.message.endswith(f"(it sets {sets})")
    assert str(problem).startswith(f"(environment): {variable}: ")
    assert "Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL" not in str(problem)


def test_a_bad_value_in_the_file_is_still_the_files_beside_console_variables() -> None:
    environ = {"WANDERER_CONSOLE_CONSOLE__DRY_RUN": "true", "WANDERER_CONSOLE_CONSOLE": "{}"}
    (problem,) = env_problems(environ, MAP + '[notifications]\nkill = "maybe"\n')
    assert problem.file == "c.toml"
    assert problem.key == "notifications.kill"


def test_a_byte_order_mark_is_named() -> None:
    """Some Windows editors start the file with an invisible U+FEFF: 'Invalid statement' at a
    line 1 that reads '[maps.alpha]' in every editor left the operator nothing to fix."""
    problem = only("\ufeff" + MAP)
    assert problem.line == 1
    assert problem.key == "(syntax)"
    assert "byte-order mark" in problem.message
    assert "UTF-8 without BOM" in problem.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[console]\nretention_days = inf\n", "console.retention_days"),
        ("[console]\nmax_killmail_age_seconds = nan\n", "console.max_killmail_age_seconds"),
        ("[discord]\nrequest_timeout_seconds = inf\n", "discord.request_timeout_seconds"),
        ("[hosted]\nrefresh_seconds = inf\n", "hosted.refresh_seconds"),
        ("[killstream]\nfallback_interval_seconds = inf\n", "killstream.fallback_interval_seconds"),
        ("[alerts]\ndiscord_min_interval_seconds = inf\n", "alerts.discord_min_interval_seconds"),
        ("[alerts.breaker_open]\nthreshold = inf\n", "alerts.breaker_open.threshold"),
        ("[alerts.disk_space]\nthreshold = nan\n", "alerts.disk_space.threshold"),
        (MAP + "[maps.alpha.filters]\nmin_value_isk = inf\n", "maps.alpha.filters.min_value_isk"),
        (
            MAP + "[maps.alpha.dedup_ttl_seconds]\nsystem = inf\n",
            "maps.alpha.dedup_ttl_seconds.system",
        ),
    ],
)
def test_a_number_that_is_not_finite_is_refused_naming_its_key(text: str, key: str) -> None:
    """TOML spells ``inf`` and ``nan``: a timeout or an interval of ``inf`` bounded only from
    below was accepted (a wait forever, or an ``OverflowError`` in the event loop), and ``nan``
    was refused as "not greater than 0". Each is now refused as what it is, at its key."""
    problem = only(text)
    assert problem.key == key
    assert problem.message.startswith("Input should be a finite number"), problem.message
    assert problem.line is not None


def test_a_number_that_is_not_finite_in_an_http_override_is_refused() -> None:
    (problem,) = problems("[http.discord]\ntimeout_seconds = inf\n")
    assert problem.key == "http.timeout_seconds"  # as any bad value of an override is named
    assert problem.message.startswith("Input should be a finite number")


@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf", "nan"])
def test_a_variable_that_is_not_finite_is_refused_naming_it(value: str) -> None:
    variable = "WANDERER_CONSOLE_CONSOLE__RETENTION_DAYS"
    (problem,) = env_problems({variable: value}, MAP)
    assert problem.key == variable
    assert "finite number" in problem.message
    assert problem.message.endswith("(it sets console.retention_days)")
