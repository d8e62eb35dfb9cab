"""The troubleshooting runbook as data: every problem the engine reports, what it means, what to do.

``docs/operations/troubleshooting.md`` is the same table for people; a test checks that the page
lists exactly these entries, in these words, so the console's advice and the runbook never
disagree. Textual-free: the detail views (:mod:`wanderer_console.ui.details`) look the advice up
with :func:`advice_for`, and the config badge with the ``config`` subject.

Each entry is one row of the page: its section, the message as the page shows it (Markdown), what
it means and what to do. How the console recognises an entry in a connection's last error, a
target's refusal, a breaker's reason or a log line is said by :data:`_RECOGNISE` below (regular
expressions per entry, and what they apply to); an entry without one is recognised by the first
quoted text of its message, when that is long enough to be telling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final

from wanderer_console.config.live import restart_summary

__all__ = [
    "RUNBOOK",
    "SECTIONS",
    "SUBJECTS",
    "Advice",
    "advice_for",
    "plain",
]

CONFIG = "Configuration errors"
DATABASE = "Database"
MAP = "Map stream (SSE) and map API"
KILLSTREAM = "Killstream (wanderer-kills WebSocket)"
R2Z2 = "zKillboard R2Z2 (optional, `[r2z2] enabled = true`)"
DELIVERY = "Discord delivery"
HTTP = "HTTP clients (every outbound call)"
QUEUE = "Queue, back-pressure, ingest API"
SECTIONS: Final = (CONFIG, DATABASE, MAP, KILLSTREAM, R2Z2, DELIVERY, HTTP, QUEUE)
"""The page's sections this table holds, in the page's order."""

SUBJECTS: Final = frozenset(
    {"map_sse", "killstream", "fallback", "r2z2", "target", "breaker", "config", "log"}
)
"""What a detail view explains: a connection (by its kind), a delivery target, a circuit breaker,
a config problem, or a line of the activity log."""

_MIN_QUOTE = 12
"""A message's first quoted text recognises its entry only when at least this long."""


@dataclass(frozen=True, slots=True)
class Advice:
    """One row of the runbook."""

    section: str
    message: str
    """The message (or state, metric, symptom) as the page shows it, Markdown."""
    meaning: str
    action: str
    """What to do, Markdown."""
    patterns: tuple[re.Pattern[str], ...] = field(default=(), compare=False)
    """What recognises it (any case), from :data:`_RECOGNISE`."""
    subjects: frozenset[str] = field(default=frozenset(), compare=False)
    """What those patterns apply to (:data:`SUBJECTS`); empty: anything."""
    quoted: tuple[re.Pattern[str], ...] = field(default=(), compare=False)
    """The message's first quoted text (when telling enough), for any subject."""

    def matches(self, text: str, subject: str, *, own: bool) -> bool:
        """Whether ``text`` about ``subject`` shows this problem, by the entry's own patterns
        (``own``) or by its quoted message."""
        if own:
            if self.subjects and subject not in self.subjects:
                return False
            return any(pattern.search(text) for pattern in self.patterns)
        return any(pattern.search(text) for pattern in self.quoted)


def plain(markdown: str) -> str:
    """``markdown`` without code quotes and links (``[restarts](restarts.md)`` → ``restarts``)."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", markdown)
    return text.replace("`", "")


_ROWS: Final[tuple[Advice, ...]] = (
    Advice(
        CONFIG,
        "`config.toml:42: maps.home.discord.webhook_url: must start with http:// or https://`"
        " (any `file:line: key: problem`)",
        "the file is invalid; every problem is listed, located at its line",
        "fix the listed keys; `wanderer-console config check --config PATH` until it prints"
        " `config ok`",
    ),
    Advice(
        CONFIG,
        "`config.toml:7: (syntax): invalid TOML: ...`",
        "the file is not TOML",
        "fix the syntax at that line (unclosed string or table, duplicate key)",
    ),
    Advice(
        CONFIG,
        "`config.toml:1: (syntax): invalid TOML: the file starts with an invisible byte-order mark"
        " (U+FEFF, ...)`",
        'an editor (Notepad and others on Windows) saved the file as "UTF-8 with BOM"; TOML'
        " takes none",
        "save it as UTF-8 without BOM (or `sed -i '1s/^\\xEF\\xBB\\xBF//' config.toml`)",
    ),
    Advice(
        CONFIG,
        "`PATH: (file): file not found`",
        "`--config` or `$WANDERER_CONSOLE_CONFIG` points nowhere",
        "fix the path; without `--config` a missing default file is fine (environment only)",
    ),
    Advice(
        CONFIG,
        "`fix the configuration, or check it with: wanderer-console config check`",
        "the console refused to start (exit 1) because of the problems printed above it",
        "as above; under systemd the unit restart-loops until the file is fixed",
    ),
    Advice(
        CONFIG,
        "`must be a Discord id made of digits: a channel id is made of digits 0-9 ...` (or `a"
        " role id`, or `... is not a channel id: Discord ids are between 1 and"
        " 9223372036854775807`)",
        "a channel id or a `rally_group_ids` role id is not a snowflake (letters, `@`, a"
        " name, look-alike digits, too many digits); Discord would answer 400 to every"
        " message that uses it",
        "copy the id with Discord's developer mode (right click → Copy ID; digits only)",
    ),
    Advice(
        CONFIG,
        "`discord.username: must not contain 'discord' in any case: Discord refuses such"
        " webhook names` (also `'clyde'`, `'@'`, `'#'`, `':'`, `` '```' ``, `must not be"
        " 'everyone': Discord reserves that name` for `everyone`/`here`/`system message`,"
        " `must be at most 80 characters`, `must contain a visible character`)",
        "Discord answers 400 to **every** webhook message carrying such a name, so every"
        " notification would be dropped; the console refuses the value at `config check`, at"
        " start and on a live edit (the running configuration is kept)",
        'pick another name; `username = ""` uses the name set on each webhook in Discord',
    ),
    Advice(
        CONFIG,
        "`...webhook_url: the webhook id (the number before the token) is not a Discord id`",
        "the id part of the webhook URL is not a snowflake",
        "copy the webhook URL again from the channel's Integrations → Webhooks",
    ),
    Advice(
        CONFIG,
        '`...bot_token: starts with "Bot " or "Bearer ": give the token alone` / `must be the'
        " token alone: no spaces, line breaks or non-ASCII characters`",
        "the token was pasted with its header prefix, or with extra text; Discord would"
        " answer 401 to every bot message (the token itself is never printed)",
        "keep only the token (Developer Portal → Bot → Reset Token if it was shared)",
    ),
    Advice(
        CONFIG,
        "`(environment): WANDERER_CONSOLE_MAPS: invalid JSON (Expecting value at line 1"
        " column 7); it must hold valid JSON ...` (any `WANDERER_CONSOLE_*` variable that"
        " holds a table or a list, including nested ones such as"
        " `WANDERER_CONSOLE_MAPS__HOME__DISCORD`)",
        "the variable is not valid JSON (often shell or systemd quoting ate the double"
        " quotes); its value is not printed because it can hold API keys",
        "fix the JSON (`printf '%s' \"$WANDERER_CONSOLE_MAPS\" | jq .` shows where it"
        " breaks), set the keys one by one (`WANDERER_CONSOLE_MAPS__HOME__URL=...`), or unset"
        " it and use the config file",
    ),
    Advice(
        CONFIG,
        "`(environment): WANDERER_CONSOLE_CONSOLE__DRY_RUN: Input should be a valid boolean ..."
        " (it sets console.dry_run)` (any variable, `KILL_NOTIFICATIONS_ENABLED` and the"
        " notifier's others too)",
        "the value comes from that environment variable (it wins over the file, where the same"
        " key may hold a good value); a secret's value is never shown",
        "fix or unset the variable in the environment file (`/etc/wanderer-console/env`,"
        " `.env`), then restart",
    ),
    Advice(
        CONFIG,
        "`warning: config.toml:12: console.dry_run: overridden by the environment variable"
        " WANDERER_CONSOLE_CONSOLE__DRY_RUN: the value here is not used (unset"
        " WANDERER_CONSOLE_CONSOLE__DRY_RUN to use it, or change it there)` (at start and"
        " `config check`; after a live edit of such a key: `configuration edit has no effect:"
        " the environment overrides these keys; unset the variable, or change it there`"
        " (`keys`))",
        "the key is set both in the file and in an environment variable (a"
        " `WANDERER_CONSOLE_*` one, or one of the notifier's such as `MAP_URL` or"
        " `DISCORD_WEBHOOK_URL`); the variable wins, so the engine runs on its value and the"
        " file's is not used, and an edit of it changes nothing (neither value is printed: it"
        " may be a secret)",
        "keep each setting in one place: to use the file's value, unset the variable in the"
        " environment file (`/etc/wanderer-console/env`, `.env`, the container's environment)"
        " and restart; or change the value there and restart (the environment is read at"
        " start). `config check` lists every key the environment overrides",
    ),
    Advice(
        CONFIG,
        "`unknown service 'x' (services: ...)`",
        "an `[http.<service>]` override names a client that does not exist",
        "use one of the listed services",
    ),
    Advice(
        CONFIG,
        "`maps.home: map API 404: http://…/api/maps/my-map/systems not found: no map 'my-map'"
        " on http://…: check the slug (MAP_NAME, …)` (config check, exit 1; the same words in"
        " the engine's log)",
        "the map server has no map by that slug (or `MAP_URL` points at another server); only"
        " the origin of `MAP_URL` is used",
        "set `MAP_NAME` / `maps.<key>.slug` to the slug (or UUID) in the map's address, and"
        " `MAP_URL` to the server",
    ),
    Advice(
        CONFIG,
        "`maps.home: the map API on http://… refused the key (401)` (config check, exit 1)",
        "the map's API key is wrong or was rotated",
        "copy the key from the map's settings in Wanderer into `MAP_API_KEY` /"
        " `maps.<key>.api_key`",
    ),
    Advice(
        CONFIG,
        "`config invalid: no map configured: nothing would be received` (config check or the"
        " engine's start, exit 1)",
        "no `[maps.<key>]` and no `MAP_URL`: an engine on this configuration would receive nothing",
        "add a `[maps.<key>]` table with `url` and `api_key` (or set `MAP_URL` and `MAP_API_KEY`)",
    ),
    Advice(
        CONFIG,
        "`warning: config.toml:116: maps.home.api_key: still the example's placeholder"
        " (replace-with-…): put the real value` (config check)",
        "a secret still holds the example config's `replace-with-…` text; the map (or Discord)"
        " would refuse it",
        "put the real value: the map's API key from Wanderer's map settings, the webhook URL,"
        " the bot token",
    ),
    Advice(
        CONFIG,
        "`warning: maps.home.discord: no webhook or channel: nothing will be sent`",
        "the map has no Discord target",
        "add `webhook_url` or channel ids with a bot token",
    ),
    Advice(
        CONFIG,
        "`warning: maps.home.discord: channel ids set but no bot token`",
        "bot transport without a token",
        "set `bot_token` for the map or in `[discord]`",
    ),
    Advice(
        CONFIG,
        "`configuration change rejected; the running configuration is kept` (`problems`)",
        "a live edit of the file is invalid; nothing changed",
        "fix the file; it is applied when valid",
    ),
    Advice(
        CONFIG,
        "`configuration change rejected; ...` with `(file): the file holds no settings (empty,"
        " or caught while an editor was writing it)`",
        "the watched file was read empty (or only comments) while the running one held"
        " settings: an editor that truncates before writing, a `>` redirect, a half-copied"
        " file. Applying it would drop every map and reset every switch (dry run off)",
        "save the whole file again (it is picked up; undoing to the running version clears the"
        " rejection); to run on the environment alone, empty the file and restart",
    ),
    Advice(
        CONFIG,
        "`configuration file is gone; the running configuration is kept until it is back`"
        " (`problems`: `(file): the file is gone (deleted, moved, its directory removed, or a"
        " link to it leads nowhere) ...`)",
        "the watched file (or its directory, or the file a link on its path leads to) was"
        " removed; the engine runs on as configured and keeps watching (its directory coming"
        " back is seen too). Said once; `wc_config_rejected` is 1 meanwhile, as a restart would"
        " not find the file",
        "put the file back (a deploy or `git checkout` that re-creates it is enough): it is read"
        " then as any edit is (valid, it runs and `wc_config_rejected` is 0 again)",
    ),
    Advice(
        CONFIG,
        "`configuration change not recorded in the history: the database refused the write`"
        " (`status`, `error`)",
        "the edit was applied or rejected as the lines around it say; only `config history`"
        " misses this version (the disk is full, or another process holds the database's write"
        " lock)",
        "free space or end the other writer (see the store errors); the next change is recorded"
        " again",
    ),
    Advice(
        CONFIG,
        "`configuration changes need a restart to take effect` (`keys`, `reasons`)",
        "the edit was applied, but the keys listed only take effect at start; `reasons` says"
        " why for each. Each field of the settings model declares it; the keys that need a"
        " restart are {restart_keys} (`maps.*`: a map added or removed), see"
        " [configuration](configuration.md#keys-that-need-a-restart)",
        "`systemctl restart wanderer-console`",
    ),
    Advice(
        CONFIG,
        "`wanderer-console: no terminal (stdin/stdout is not a TTY), so the console UI cannot"
        " start.`",
        "the TUI was asked for without a terminal (exit 2)",
        "`--no-ui` for services, `ssh -t` to attach (see"
        " [deployment](deployment.md#attaching-to-the-operator-console))",
    ),
    Advice(
        CONFIG,
        "`warning: config.toml: (file): holds secrets but is readable by group and others"
        " (mode 0644); restrict it with: chmod 600 PATH` (at start; after a live edit the"
        " same text comes as a `config secret hygiene` log line)",
        "the file holds API keys, tokens or webhook URLs and other users on the machine can"
        " read it",
        "run the `chmod 600` it gives; the check is made again at every reload. From a"
        " Kubernetes ConfigMap or Secret volume it says instead to set `defaultMode: 0600` on"
        " the volume (the kubelet makes those files; a chmod on the mount is refused)",
    ),
    Advice(
        CONFIG,
        "`warning: config.toml:12: maps.home.url: looks like a Discord webhook URL ... in a"
        " field that is not secret` (or `looks like a Discord bot token, not a api_key`)",
        "a secret was pasted into the wrong field, where it would be shown and logged in clear",
        "move it to the field named in the message; rotate it if the file was shared",
    ),
    Advice(
        CONFIG,
        "`theme skipped` / `unknown theme; using the default`",
        "a theme file is invalid / `console.theme` names no theme",
        "fix the theme file or the name",
    ),
    Advice(
        DATABASE,
        "`cannot use the data directory DIR: it is not writable by this user` (or `it cannot"
        " be created (Permission denied)`, `it is a file, not a directory`)",
        "the console keeps its database and the database's `-wal`/`-shm` files there and must"
        " be able to create them (a read-only mount, a directory owned by another user, a"
        " typo in `--data-dir`)",
        "`chown wanderer: DIR && chmod 700 DIR`, remount read-write, or point `--data-dir` /"
        " `[console] data_dir` elsewhere",
    ),
    Advice(
        DATABASE,
        "`cannot use the database PATH: the file is not a SQLite database (file is not a"
        " database)`",
        "the file was overwritten, truncated, or is not the console's (wrong path)",
        "stop the console; move the file aside with any `-wal`/`-shm` next to it and restore"
        " the latest backup ([deployment](deployment.md#restore)); or start empty (the"
        " console creates a new database; events, queued notifications, tenants and config"
        " history are lost)",
    ),
    Advice(
        DATABASE,
        "`cannot use the database PATH: the database is damaged (SQLite quick_check: ... Page"
        " 547: btreeInitPage() returns error code 11)`",
        "`PRAGMA quick_check` at open found damaged pages (a failing disk, a copy taken while"
        " running, a crash on a file system that ignores fsync). The console refuses to start"
        " rather than run until a task trips on a bad page",
        "stop everything using it; restore the latest backup"
        " ([deployment](deployment.md#restore)), or recover what is readable: `sqlite3 PATH"
        " .recover | sqlite3 PATH.recovered` (the `sqlite3` command-line tool, 3.29+; it"
        " reads `PATH-wal` too), then move `PATH`, `PATH-wal`, `PATH-shm` aside and"
        " `PATH.recovered` to `PATH` (owner `wanderer`, mode 0600) and start; check the disk"
        " (`dmesg`, SMART)",
    ),
    Advice(
        DATABASE,
        "`database integrity check skipped at open: it took too long` (warning, `path`,"
        " `budget_seconds`)",
        "the check at open reads the whole file (about 0.2 s per 300 MB) and gave up after 10"
        " s on a very large database on a slow disk; the console started unchecked",
        "nothing at once; shrink `console.retention_days` or move the data to a faster disk",
    ),
    Advice(
        DATABASE,
        "`cannot use the database PATH: the database cannot be opened for writing (attempt to"
        " write a readonly database)`",
        "the file (or its `-wal`/`-shm`) belongs to another user or is read-only",
        "`chown wanderer: PATH* && chmod 600 PATH`",
    ),
    Advice(
        DATABASE,
        "`cannot use the database PATH: the disk is full`",
        "SQLite could not write at open",
        "free space on that file system",
    ),
    Advice(
        DATABASE,
        "`cannot use the database PATH: another process holds the database (database is locked)`",
        "another process kept a write lock for more than 5 s",
        "stop the other process (one engine per data directory)",
    ),
    Advice(
        DATABASE,
        "`cannot use the database PATH: database schema version N is newer than this build"
        " (M); upgrade wanderer-console`",
        "the data directory was used by a newer version; this build refuses it rather than"
        " corrupt it",
        "upgrade to that version again, or restore the pre-upgrade backup"
        " ([deployment](deployment.md#upgrades))",
    ),
    Advice(
        DATABASE,
        "`/ready`: `store: database not reachable`",
        "the database does not answer (disk full, file removed, permissions)",
        "check free space and ownership of the data directory (`wanderer` user, mode 0700)",
    ),
    Advice(
        DATABASE,
        "`pipeline failed on one event; continuing` (with a traceback)",
        "one event could not be processed; it is counted"
        ' (`wc_errors_total{component="pipeline"}`) and the rest go on',
        "report it with the traceback; the event stays in the log for `replay`",
    ),
    Advice(
        DATABASE,
        "`WAL checkpoint failed; retrying with backoff until one succeeds` (`error`, `advice`)",
        "the background thread that copies the write-ahead log into the database file could"
        " not (disk full, I/O error, the file removed); said once, not at every try; nothing"
        " is lost, the `-wal` file grows until a checkpoint succeeds, and"
        " `WAL checkpoint works again` (`failures`, `down_seconds`) follows",
        "free space on the data directory's file system (or fix what `error` names); it is"
        " tried again every second at first, then less often (at most every 30 s), and a"
        " clean stop folds the log in",
    ),
    Advice(
        DATABASE,
        "`retention could not prune old records; tries again later` (`error`, `retry_in_seconds`)",
        "the hourly deletion of old events and notifications could not write (a full disk:"
        " deletes need room in the write-ahead log too) or the database did not answer; said"
        " once until it prunes again, and the store's own `store cannot write` line says why",
        "free space on the data directory's file system (or bring the database back);"
        " retention tries again every 5 minutes by itself, nothing to restart",
    ),
    Advice(
        DATABASE,
        "`task failed; restarting` (`task`)",
        "a supervised task crashed and is restarted with backoff (1 s … 60 s)",
        "if it repeats, read the traceback; the process itself keeps running",
    ),
    Advice(
        MAP,
        "`map stream refused`, `error: HTTP 401: ...` (state `failed`)",
        "the map rejected the API key",
        "check `maps.<key>.api_key` (the map's API key from Wanderer's map settings); retried"
        " every 60 to 90 s",
    ),
    Advice(
        MAP,
        "`map stream refused`, `HTTP 403` / `402`",
        "the key is valid but not allowed (map's API/SSE access disabled, subscription)",
        "enable the map's API access / subscription in Wanderer; retried every 60 to 90 s",
    ),
    Advice(
        MAP,
        "`map stream refused`, `HTTP 404`",
        "no such map at that URL",
        "check `maps.<key>.url` (`https://wanderer.example/<map-slug>`); retried every 60 to 90 s",
    ),
    Advice(
        MAP,
        "`map stream refused`, other status (5xx, 429)",
        "the server is failing or overloaded",
        "nothing; retried with backoff (state `reconnecting`); a `Retry-After` on the answer"
        " (seconds or a date) is waited for at least, up to 10 minutes, and the status says"
        " `server asked to wait N s (Retry-After), retrying in M s` (M up to half as long"
        " again, so the many maps told alike do not all come back in the same instant)",
    ),
    Advice(
        MAP,
        "state `degraded`, `closed before 'connected' frame`",
        "the server answered 200 and closed at once: its limit on concurrent SSE connections"
        " per map (or per key) is reached",
        "stop other consumers of the same map (an old notifier, a second console); retried"
        " after at least 30 s",
    ),
    Advice(
        MAP,
        "`map stream lost` (`error`)",
        "the connection dropped (network, server restart, idle timeout)",
        "nothing; it reconnects with backoff (1 s doubling to 30 s; the waits start over once a"
        " stream has stayed up 30 s) and resumes from the last event id (no gap)",
    ),
    Advice(
        MAP,
        "`map stream was down longer than the server keeps events; reloading the map`",
        "the outage was longer than the server's replay buffer, so the console reloads"
        " systems and characters over REST; map events still queued from before the outage"
        " (from the stream or the map's webhook) change nothing the reload found (a system"
        " or pilot they add is notified only if still on the map, else counted as"
        ' `wc_notifications_filtered_total{reason="superseded_by_reload"}`). The server'
        " gives no gap signal: events the map published in the part of the outage it no"
        " longer holds are not notified (counted in"
        ' `wc_map_stream_gaps_total{reason="outage"}`; `reason="restart"`, logged as `map'
        " stream resumed from a cursor older than the server keeps events`, when a start"
        " resumes from a cursor that old)",
        "nothing; check the log for `map resync failed`",
    ),
    Advice(
        MAP,
        "`map resync failed`",
        "the REST reload after a long outage failed",
        "retried at the next connect; check the map API (same key)",
    ),
    Advice(
        MAP,
        "`map load failed; retrying`",
        "the initial REST load of systems/characters failed (`MapApiError` with the status,"
        " or a transport error)",
        "check URL and key (same causes as above); retried with backoff",
    ),
    Advice(
        MAP,
        "`tracked characters refresh failed`",
        "a tracking refresh over REST failed",
        "transient; check the map API if it repeats",
    ),
    Advice(
        MAP,
        "`malformed map event skipped` (`reason`: `json`/`envelope`)",
        "a frame from the server was not a valid event",
        "nothing lost but that frame; counted in `wc_events_invalid_total`; report it if frequent",
    ),
    Advice(
        MAP,
        "`malformed map event payload skipped`",
        "a known event type carried an invalid payload",
        "as above",
    ),
    Advice(
        MAP,
        "`oversize map event skipped` (`reason` `line`/`event`, `size`, `limit`, `event`,"
        " `last_event_id`)",
        "one SSE line, or one event's data, was bigger than `maps.<key>.sse_max_line_bytes` /"
        " `sse_max_event_bytes` (1 MiB each by default; real events are a few KiB). It was"
        " read through and discarded without being kept in memory; the stream stays up and"
        " the next events arrive. The connection's last error says the same",
        "that event is lost (counted in `wc_stream_oversize_total`). If the server"
        " legitimately sends events that big, raise the limit; otherwise report it to the"
        " map's operators",
    ),
    Advice(
        MAP,
        "`map event id is from the future (the map server's clock runs ahead); not used as the"
        " stream's resume cursor` (`event_id`, `ahead_seconds`)",
        "the map server's clock was more than 5 minutes ahead when it made this event's id. The"
        " event is handled as usual; only the resume cursor stays at the last id with a sane"
        " time, since a future id would make every later (real) id look old and a resume skip"
        ' them. Counted in `wc_errors_total{component="sse:<map>:future_id"}`',
        "nothing is lost (a resume may repeat that event, recognised as a duplicate); tell the"
        " map's operators to fix the server's clock (NTP)",
    ),
    Advice(
        MAP,
        "`unknown map event type skipped`",
        "the server sends an event type this build does not know",
        "upgrade when you need it; counted in `wc_events_unknown_type_total`",
    ),
    Advice(
        KILLSTREAM,
        "`killstream server's limit is lower; resharding` (`mode`, `limit`, `was`,"
        " `refused_ids`, `stated`, `sockets`), last error `join refused over the server's limit"
        " ({...}); resharded, reconnecting`",
        "the server refused a join as over its own per-socket limit (`too_many_systems` /"
        " `too_many_characters`), or crashed a socket's channel twice on the subscribes growing"
        " it past what it had taken (a join carries 10,000 ids at most, the rest is subscribed),"
        " lower than the console's (`was`: `killstream.max_systems_per_socket` /"
        " `max_characters_per_socket`, 10,000 / 50,000 by default). Each socket of that kind now"
        " follows at most `limit` ids (the limit the server named, else half the refused join;"
        " after the crashes, `stated` is what it had taken; never under 1 % of the configured"
        " one) and the ids are spread over more"
        " sockets (`sockets`). A socket handing ids over keeps following them until their new"
        " socket's join or subscribe is confirmed, so no kill is lost or doubled. Counted in"
        " `wc_killstream_limit_lowered_total`",
        "nothing: the refused socket rejoins with its smaller share, and the systems it carried"
        " are backfilled over REST once every socket is up. The lower limit holds for this run"
        " only: set `killstream.max_systems_per_socket` (or `max_characters_per_socket`) to"
        " `limit` so the next start is not refused first",
    ),
    Advice(
        KILLSTREAM,
        "`killstream join refused; reconnecting` (`name`, `ids`, `response`), state `failed`,"
        " `join refused: {...}`",
        "the server refused the channel join of socket `name` (bad parameters, client not"
        " allowed; too many systems or characters only when the console's limit cannot go"
        " lower, see the row above)",
        "read the server's answer in `response`; check `killstream.websocket_url` and"
        " `client_identifier`; if it says too many systems or characters, the limit it takes is"
        " under 1 % of `killstream.max_systems_per_socket` / `max_characters_per_socket`: set"
        " those to what the server takes, or report it. It reconnects with backoff (up to"
        " 30 s); the REST poller covers the systems meanwhile",
    ),
    Advice(
        KILLSTREAM,
        "`killstream join not answered; reconnecting` (`name`, `waited_seconds`), last error"
        " `no reply to the join within N s; reconnecting`",
        "the server took the join but sent no reply in time (its channel is stuck) while the"
        " socket stayed up",
        "nothing if it passes: the socket is closed and opened again with backoff (up to 30 s),"
        " the REST poller covers the systems meanwhile; if it repeats, check the killstream"
        " server",
    ),
    Advice(
        KILLSTREAM,
        "`killstream heartbeat missed` (state `degraded`)",
        "no reply to the Phoenix heartbeat in time: the socket is dead",
        "nothing; the socket is closed and reopened. A full pipeline is not mistaken for this",
    ),
    Advice(
        KILLSTREAM,
        "`killstream lost` (`error`)",
        "the socket failed (connection refused, reset, timeout)",
        "check the killstream server and `killstream.websocket_url`; reconnects with backoff",
    ),
    Advice(
        KILLSTREAM,
        "`killstream channel ended; rejoining` (`in_seconds`)",
        "the server closed or errored the channel",
        "nothing; the channel is rejoined after the reconnect backoff's wait (0.1 s first; a"
        " channel that keeps ending right after its join is retried more and more slowly, up to"
        " 30 s, until a join lasts a heartbeat)",
    ),
    Advice(
        KILLSTREAM,
        "`killstream subscribe refused; asking again` (`response`, `ids`, `in_seconds`)",
        "the killstream answered a subscribe with an error (`response` says why)",
        "nothing if it passes: the ids are asked for again after the wait (1 s doubling to 60 s"
        " while refused); if it repeats, read `response` (an id the server will not take)",
    ),
    Advice(
        KILLSTREAM,
        "`killstream down; polling REST instead`",
        "the socket has been down for `fallback_after_seconds`: the tracked systems are"
        " polled over `killstream.rest_url`",
        "fix the socket; `killstream back; REST polling stopped` follows",
    ),
    Advice(
        KILLSTREAM,
        "`killstream gap: backfilling over REST` (`since`, `try`)",
        "the socket joined after a gap (a restart, a reconnect, a rejoin): the kills of the"
        " tracked systems since the gap began are fetched over `killstream.rest_url`"
        " ([restarts](restarts.md))",
        "nothing; `killstream gap backfilled` (`kills`) follows",
    ),
    Advice(
        KILLSTREAM,
        "`killstream gap not fully backfilled; giving up` (`systems_left`)",
        "three backfill tries left systems out (REST down, or `backfill_timeout_seconds` too"
        " short for many systems)",
        "kills of those systems during the gap may be missing (beyond the preload's five);"
        " fix the REST API, raise `backfill_timeout_seconds`",
    ),
    Advice(
        KILLSTREAM,
        "`killstream REST poll failed`",
        "a fallback poll or a gap backfill request failed",
        "check `killstream.rest_url`; a backfill retries the systems it missed",
    ),
    Advice(
        KILLSTREAM,
        "`bad killstream frame skipped` / `malformed killmail skipped`",
        "a frame or a kill was malformed",
        "that item only; counted in `wc_events_invalid_total`",
    ),
    Advice(
        KILLSTREAM,
        "`killstream frame over the size limit; reconnecting` (`size`, `limit`), last error"
        " `a frame of N bytes over the L-byte limit (max_frame_bytes) was dropped and the"
        " socket reset`",
        "a frame was bigger than `killstream.max_frame_bytes` (4 MiB by default; a killmail"
        " is tens of KiB). The WebSocket library closes such a socket (code 1009) without"
        " reading the frame, so the console reconnects and rejoins; the join's preload"
        " re-sends each system's recent kills. `size` is empty when the frame was compressed"
        ' (only "over the limit" is known)',
        "the kills in that frame may be lost (counted in"
        ' `wc_stream_oversize_total{reason="frame"}`). If it repeats on every join (a huge'
        " kill in a preload), the reconnects slow down (1, 2, 4 … 30 s): raise"
        " `max_frame_bytes` or report it to the killstream's operators",
    ),
    Advice(
        R2Z2,
        "`R2Z2 needs a User-Agent with a contact`",
        "`r2z2.user_agent` lacks a contact; zKillboard 403s anonymous pollers",
        "put an e-mail or URL in `r2z2.user_agent`",
    ),
    Advice(
        R2Z2,
        "`r2z2 forbidden; stopping` (state `failed`, `403 Forbidden from R2Z2: polling"
        " stopped for 60 min`)",
        "zKillboard banned this IP or User-Agent",
        "check the User-Agent and that only **one** poller per IP runs; polling resumes after"
        " an hour",
    ),
    Advice(
        R2Z2,
        "`r2z2 rate limited` (`wait`)",
        "429: polling too fast",
        "nothing; the poller waits `Retry-After`; make sure nothing else polls from this IP",
    ),
    Advice(
        R2Z2,
        "`r2z2 request failed` (`error`, `wait`)",
        "5xx or transport error",
        "nothing; exponential wait",
    ),
    Advice(
        R2Z2,
        "`r2z2 cursor fell off the feed; resyncing, gap N` / `r2z2 cursor too old; starting"
        " from sequence.json`",
        "the saved position is no longer published (long outage)",
        "nothing; N kills were skipped (the killstream usually has them)",
    ),
    Advice(
        R2Z2,
        "`r2z2 re-fetch of an updated file given up` (`sequence`, `status`)",
        "a package named an older sequence as re-published, and that file failed three times",
        "nothing; the kill was read when first published (only its update, e.g. a new value, is"
        " missed) and the live feed went on",
    ),
    Advice(
        R2Z2,
        "`malformed r2z2 package skipped`",
        "one package was invalid",
        'counted in `wc_events_invalid_total{source="r2z2"}`',
    ),
    Advice(
        DELIVERY,
        "`discord refused a target; its notifications wait until its configuration changes or"
        " an operator runs `wanderer-console outbox retry TARGET`` (`status`: 404)",
        "the webhook was deleted, or the channel does not exist. The target is *dead*: one"
        " request, then its notifications are held (not lost); `/ready` answers 503"
        " `degraded` naming it, the console shows it red",
        "create a new webhook and put its URL in the config. A new webhook has another id, so "
        "it is another target: at a hot reload, or at the next start when the config was "
        "changed while the engine was stopped, what the dead one held goes to the new one "
        "when every route that used it now goes there (see `notifications for a target no "
        "longer configured moved to the map's new target`); when its routes now split over "
        "several targets, it fails as `target no longer configured` (listed by `outbox "
        "list`). A changed token of the same webhook id, or a changed bot token, revives the "
        "target by itself (hot reload or restart) and everything held is delivered. To retry "
        "the same target: `wanderer-console outbox retry webhook:ID` (or the console's "
        "palette, *Retry dead target*); what it held gets a fresh "
        "`discord.max_delivery_age_hours` from then",
    ),
    Advice(
        DELIVERY,
        "same, `status`: 401",
        "the webhook token or bot token is invalid",
        "replace the webhook URL / bot token: the target revives when its credential changes",
    ),
    Advice(
        DELIVERY,
        "same, `status`: 403",
        "the bot lacks access to the channel (permissions: View Channel, Send Messages, Embed"
        " Links)",
        "fix the bot's permissions, then `outbox retry channel:ID`",
    ),
    Advice(
        DELIVERY,
        "same, `detail`: `no bot token configured`",
        "a channel id is configured without a bot token",
        "set `bot_token` (map or `[discord]`) or use a webhook",
    ),
    Advice(
        DELIVERY,
        "`target revived: its configuration changed; held notifications are sent`",
        "a dead target's address or credential changed",
        "nothing",
    ),
    Advice(
        DELIVERY,
        "`dead target no longer configured; the notifications it held fail as no longer"
        " configured` (`target`, `tenant`)",
        "a dead target's map names it no more and its backlog was not moved: routes that now "
        "split over several targets, notifications whose earlier send had no known outcome "
        "(the old target may have posted them), or the first start of a build that records "
        "each map's routing (its store has none recorded yet, so that start does not know the "
        "old one). Nothing can revive it, so its held notifications are failed, "
        'counted as `wc_delivery_failures_total{reason="unconfigured"}`',
        "nothing; `outbox list` shows them. Put the target back in the config, then"
        " `outbox retry TARGET`, to send them there",
    ),
    Advice(
        DELIVERY,
        "`notifications for a target no longer configured moved to the map's new target`"
        " (`tenant`, `target`, `to`, `notifications`)",
        "a hot reload, or a start after the config was changed while the engine was stopped "
        "(it compares the config with the routing the map last ran with, kept in the store), "
        "pointed every route of a map that used `target` to one other target `to` (a deleted "
        "webhook replaced by a new one, a route switched; `tenant` `_ops`: the operations "
        "webhook `alerts.discord_webhook_url` replaced, its alert messages moved): its waiting "
        "notifications go there "
        "instead of failing. On a shared PostgreSQL database the engine holding the map's "
        "lease moves them, once. Those in flight settle with the old "
        "target; those whose earlier send had no known outcome stay (the old target may have "
        "posted them) and fail as no longer configured",
        "nothing",
    ),
    Advice(
        DELIVERY,
        '`wc_delivery_failures_total{reason="rate_limited"}`',
        "Discord answered 429; the dispatcher waits `retry_after` (everything, for a global"
        " limit) and the rows are deferred without counting an attempt: nothing is lost",
        "if frequent, another bot shares the webhook or route; lower"
        " `discord.channel_messages_per_minute`",
    ),
    Advice(
        DELIVERY,
        "`all delivery paused` (`reason`, `resume_at`, `resume_in_seconds`; WARNING from 30 s)",
        "a global 429 from Discord, or the 401/403/429 budget (1,000 per 10 minutes) was spent",
        "nothing: delivery resumes at `resume_at`; the console header and `/ready` show it;"
        " `wc_outbox_pending` keeps counting the backlog. A global 429 of an hour means"
        " Discord has throttled this IP: check nothing else posts from it",
    ),
    Advice(
        DELIVERY,
        '`wc_http_rate_limit_pauses_total{reason="bucket_exhausted"}`',
        "Discord's bucket headers said to wait; normal under bursts",
        "nothing",
    ),
    Advice(
        DELIVERY,
        "`notification delivery failed` (`outcome` `retry`)",
        "5xx, a refused connection or an open breaker: transient",
        "nothing: it is retried with backoff capped at a minute for up to"
        " `discord.max_delivery_age_hours` (24 h) since it was queued, or since an operator's"
        " `outbox retry`; an open breaker's fast failures are not attempts",
    ),
    Advice(
        DELIVERY,
        "`notification failed for good` (`reason` `Discord refused it: 400 ...`)",
        "Discord rejected the message as malformed (after it was sent alone)",
        "report it (a rendering bug) with `detail`; `outbox list` keeps it",
    ),
    Advice(
        DELIVERY,
        "same, `reason` `expired: undelivered after 24 h (...)`",
        "Discord (or the network to it) failed for longer than `discord.max_delivery_age_hours`",
        "fix the network; `outbox list` shows the rows, `outbox retry TARGET` re-queues them"
        " with a fresh `discord.max_delivery_age_hours` from the retry (a 5xx after it does"
        " not expire them again)",
    ),
    Advice(
        DELIVERY,
        "`re-sending notifications whose first send had no known outcome` (`protection`"
        " `nonce` / `unprotected`)",
        "a request timed out after it was sent, or was in flight at a crash; bot messages go"
        " again with their nonce (no double), webhook messages once after"
        " `uncertain_retry_seconds` (may double: counted in"
        ' `wc_delivery_uncertain_total{resend="unprotected"}`), as do bot messages another'
        " engine sent first (a map taken over: their nonce's age is that engine's clock)",
        "nothing; if frequent, Discord answers slower than `discord.request_timeout_seconds`:"
        " raise it. The console shows the target `N uncertain` for an hour after the last one"
        " (its detail keeps the count since start and when the last was)",
    ),
    Advice(
        DELIVERY,
        "`notification not re-sent again: two sends had no known outcome`",
        "a webhook message (or a bot message another engine sent first, before a takeover) was"
        " sent twice and neither answer arrived; a third send could post a third copy",
        "check the channel; the row is `uncertain` in `outbox list`; `outbox drop --id N`"
        " once checked",
    ),
    Advice(
        DELIVERY,
        "`notification past its maximum age not sent again: a send of it had no known outcome`"
        " (`send` `last` or `an earlier`)",
        "Discord failed past `discord.max_delivery_age_hours`, and one send of the message had"
        " no answer (Discord may have posted it): kept `uncertain` (probably delivered) rather"
        " than `failed`, which `outbox retry` would post a second time",
        "check the channel; the row is `uncertain` in `outbox list`; `outbox drop --id N`"
        " once checked",
    ),
    Advice(
        DELIVERY,
        "`store cannot write; delivery paused until a write succeeds` (`path`, `operation`,"
        " `error`, `advice`)",
        "the database refused a write: disk full, read-only file system, I/O error, locked",
        "follow `advice` (free space, fix permissions). Nothing is sent meanwhile (no"
        " repeats), what was read is kept and written once the store writes again (`store"
        " writes again; delivery resumes`); `/ready` is 503 with the reason, the console"
        " shows a badge, `wc_store_writable` is 0",
    ),
    Advice(
        DELIVERY,
        "`outcomes not recorded at stop: the store cannot write; their notifications are"
        " re-sent as uncertain at the next start (a webhook message confirmed here may post"
        " twice)` (`outcomes`, `operations`, `confirmations_kept`)",
        "the engine stopped while the store still refused the outcomes of answers Discord gave"
        " (a full disk); the confirmations were kept for the next start"
        " (`confirmations_kept`, see below) as far as the file holds them, but these"
        " `outcomes` were not: confirmations beyond what fits (`mark sent`) or other answers."
        " Their rows stay claimed: the next start re-sends them as uncertain"
        " (`wc_delivery_uncertain_total`), bot messages with their nonce, webhook messages once"
        " more after `discord.uncertain_retry_seconds`, which may post them twice",
        "free space before stopping when you can: a running engine writes the kept outcomes"
        " first and resumes by itself; after such a stop, expect at most one repeat of each"
        " webhook message, counted in `wc_delivery_uncertain_total`",
    ),
    Advice(
        DELIVERY,
        "`confirmations kept in unrecorded-confirmations.bin for the next start` (`file`,"
        " `messages`, `rows`; WARNING)",
        "the engine stopped while the store still refused Discord's confirmations (a full disk,"
        " PostgreSQL unreachable): they were written into a file of the data directory"
        " reserved at start (a full disk does not refuse it). The next start of this engine"
        " marks those rows sent before anything is re-sent, so they are not posted again",
        "free space or bring the database back, then start the engine with the same data"
        " directory: it logs `confirmations kept at the last stop applied`. A map another"
        " engine took over meanwhile is re-sent as uncertain there (not covered)",
    ),
    Advice(
        DELIVERY,
        "`confirmations kept at the last stop applied` (`file`, `messages`, `rows`, `damaged`)",
        "the confirmations the last stop kept were recorded: `rows` were still claimed by the"
        " message Discord confirmed and are now `sent`; rows recovered or settled since (another"
        " engine took the map over) were left as they were",
        "nothing",
    ),
    Advice(
        DELIVERY,
        "`damaged confirmations ignored in the spill: their notifications are re-sent as"
        " uncertain` (`file`, `damaged`)",
        "a record of `unrecorded-confirmations.bin` failed its length or checksum (a crash"
        " while the stop wrote it, a damaged disk): it is not applied, and its rows are re-sent"
        " as uncertain, as if it had not been kept (a webhook message may post twice)",
        "nothing; if it recurs without crashes, check the disk",
    ),
    Advice(
        DELIVERY,
        "`no room kept for confirmations at stop: if the store cannot write when the engine"
        " stops, a webhook message confirmed then may post twice` (`path`, `error`)",
        "the engine could not create or fill `unrecorded-confirmations.bin` in the data"
        " directory at start (disk already full, read-only): what the last stop kept in it is"
        " still applied, but a stop while the store refuses writes loses its confirmations, as"
        " before",
        "free space or fix the data directory's permissions, then restart",
    ),
    Advice(
        DELIVERY,
        "`confirmations could not be kept for the next start` (`file`, `error`)",
        "the stop could not write the confirmations into `unrecorded-confirmations.bin` (an"
        " I/O error, a copy-on-write file system out of space): they are lost, followed by"
        " `outcomes not recorded at stop`",
        "check the disk and the data directory; after such a stop, expect at most one repeat"
        " of each webhook message",
    ),
    Advice(
        DELIVERY,
        "`confirmations applied, but the spill could not be cleared` (`file`, `error`)",
        "the kept confirmations were recorded, but zeroing the file failed: read again at the"
        " next start, they change nothing (only rows still claimed by the same send change)",
        "check the disk",
    ),
    Advice(
        DELIVERY,
        "`database damaged; stop the console, restore the backup or run `sqlite3 DB .recover``",
        "the periodic integrity check (every 6 h) found damage",
        "stop, restore the backup (deployment guide) or recover; `/ready` is 503 until then",
    ),
    Advice(
        DELIVERY,
        "`wc_outbox_pending` grows",
        "delivery is slower than notifications arrive, or paused",
        "check the target's state in the TUI (*Delivery*): a dead target holds its rows"
        " (`outbox list`), `p` resumes a paused dispatcher, a badge shows a Discord pause or"
        " a store fault",
    ),
    Advice(
        DELIVERY,
        "`delivery paused by an operator before this start: nothing is sent until resumed` "
        "(`paused_by`, `paused_at`, `resume`, `saved_in`; WARNING)",
        "an operator paused delivery (the console's `p`, `POST /v1/pause`) and the engine "
        "restarted since (a crash, a deploy, systemd): the pause is kept in the data directory "
        "(`delivery-paused.json`) until an operator resumes, so the backlog is not posted at once",
        "resume once the backlog may go out: `p` in the console (`wanderer-console attach`) or "
        '`POST /v1/pause {"paused": false}` on the control socket; until then the console\'s '
        "*Delivery* panel and `/ready` (`degraded`) name who paused and since when, and "
        "`wc_outbox_pending` counts what waits",
    ),
    Advice(
        DELIVERY,
        "`delivery paused, but the pause could not be saved: it holds until the next restart` "
        "(`path`, `error`)",
        "the data directory refused the pause's file (disk full, read-only file system): delivery"
        " is paused in this process only, and a restart resumes it",
        "free space or fix the directory's permissions, then pause again (`POST /v1/pause "
        '{"paused": true}`): the pause is saved then, under who paused first',
    ),
    Advice(
        DELIVERY,
        "`delivery resumed, but the saved pause could not be removed: the next start will be "
        "paused` (`path`, `error`)",
        "delivery runs, but `delivery-paused.json` is still in the data directory (a read-only "
        "file system)",
        "delete the file named in `path`, or resume again once the directory is writable; "
        "otherwise resume after the next start",
    ),
    Advice(
        DELIVERY,
        "`delivery paused on every engine of this database by an operator: nothing is sent until"
        " resumed` (`paused_by`, `paused_at`, `paused_on` or `saved_in`; WARNING)",
        "on PostgreSQL an operator paused delivery on one of the engines sharing the database:"
        " the pause is kept in the database (`delivery_pause`) and holds every engine, those"
        " started since and the maps they take over too; logged at start and when a running"
        " engine follows it (at once, told by the database, or at its next heartbeat)",
        "resume on any engine once the backlog may go out: `p` in the console or"
        ' `POST /v1/pause {"paused": false}`; every engine resumes at once (at its next'
        " heartbeat if it cannot listen to the database; INFO `delivery resumed on every engine"
        " of this database`)",
    ),
    Advice(
        DELIVERY,
        "`delivery paused on this engine only: the cluster's pause could not be saved in the"
        " database; the other engines keep sending until it is` (`error`)",
        "the shared database refused the pause (unreachable, read-only): this engine holds, the"
        " others do not know of the pause",
        "fix the database; the engine saves the pause for every engine at its first heartbeat"
        " that reaches it (WARNING `... the pause sent while the database could not be written"
        " is saved now`), or pause again",
    ),
    Advice(
        DELIVERY,
        "`delivery stays paused: the cluster's pause could not be lifted in the database`"
        " (`error`)",
        "a resume on a shared database could not delete the pause: every engine stays paused",
        "fix the database, then resume again",
    ),
    Advice(
        DELIVERY,
        "`delivery resumed on this engine: its pause never reached the shared database` (`error`)",
        "a resume on a shared database that cannot be written, of a pause the database had"
        " refused too: it held this engine only, and is lifted (not saved for every engine later)",
        "nothing; to hold every engine, pause again once the database answers",
    ),
    Advice(
        DELIVERY,
        "`a pause saved in the data directory is not applied on a shared database: the"
        " cluster's pause, kept in the database, decides; delete the file` (`path`)",
        "the engine stores in PostgreSQL but its data directory holds `delivery-paused.json`"
        " (paused while on SQLite and then moved with `db migrate-to`, which carries the pause"
        " into the database and leaves the file; or by an older build that paused engines one"
        " by one)",
        "the database's pause is what holds: the console's Delivery panel says whether delivery"
        " is paused on every engine; if it is not and the backlog must still wait, pause again"
        " (it then holds every engine); delete the file named in `path`",
    ),
    Advice(
        DELIVERY,
        "`the cluster's pause could not be read at start: delivery is held here until a"
        " heartbeat reaches the database and reads it` (`error`)",
        "the shared database stopped answering right after the engine opened it",
        "fix the database: the first heartbeat that reaches it pauses or resumes this engine as"
        " the cluster is",
    ),
    Advice(
        DELIVERY,
        "`cannot listen for the cluster's pause: engines follow a pause or resume sent elsewhere"
        " at their next heartbeat until this connection is back` (`error`; INFO `listening for"
        " the cluster's pause again` once it is)",
        "the engine's listening connection to the shared database (PostgreSQL `LISTEN"
        " wc_delivery_pause`) failed: the server restarted, the link was cut, or"
        " `max_connections` is reached; nothing is claimed under a pause meanwhile all the same",
        "fix the database or free a connection; the engine opens it again every second and"
        " reads the pause then",
    ),
    Advice(
        DELIVERY,
        "`the data directory DIR is in use by another engine (PID N on host H since T)` (exit 3)",
        "another engine owns the data directory (only one may deliver from it)",
        "stop the other one (`systemctl stop wanderer-console`), or give this one its own"
        " `--data-dir`; to watch or steer the running one, `wanderer-console attach --data-dir"
        " DIR`; read-only commands work beside it",
    ),
    Advice(
        DELIVERY,
        "`operations alert messages wait: no map is shared out on this database, and they go"
        " out under the first map's lease; enable a map in the configuration (or add one on"
        " the map server when hosted)` (once; `operations alert messages go out again, under"
        " the first map's lease` when a map carries them)",
        "on a shared PostgreSQL database the `[alerts]` messages to"
        " `alerts.discord_webhook_url` belong to no map: the engine holding the first map's"
        " lease sends them. With no map to lease (every `[maps.<key>]` has `enabled = false`,"
        " or the hosted map server lists none yet) no engine sends them: they stay pending,"
        " none is lost, and the console's banner and `/health` still show what fires",
        "enable a map (`enabled = true`, then restart) or add one on the map server (hosted:"
        " taken at its next refresh); the waiting messages then go out",
    ),
    Advice(
        DELIVERY,
        "`dry run: notification not sent`",
        "`--dry-run` or `console.dry_run = true`: the notification was logged and marked sent,"
        " never posted. Its rows are claimed first, as a send's are, so a dry run marks nothing"
        " under a pause (the cluster's included) nor on a map another engine holds",
        "turn dry run off; what a dry run marked sent is not posted later",
    ),
    Advice(
        HTTP,
        "`http request failed` (`service`, `url`, `error`)",
        "a request failed at the transport level (timeout, connection refused, DNS)",
        "check the network and the base URL of that service; the caller retries",
    ),
    Advice(
        HTTP,
        "`http circuit breaker closed -> open` (`host`, `reason`)",
        "too many failures to one host in the window: calls to it fail fast for a while, then"
        " one probe is allowed (`half_open`); for Discord a probe every 0.25 s for the first 40"
        " (10 s), then every 0.5 s, then once a second (at most 630 in 10 minutes), and the"
        " first success sends what waited at once",
        "fix the host; it closes by itself when the probe succeeds. `[http.<service>]` tunes"
        " the thresholds (`breaker_failures`, `breaker_window_seconds`,"
        " `breaker_probe_seconds`, `breaker_fast_probes`, `breaker_cooldown_seconds`)",
    ),
    Advice(
        HTTP,
        'ESI error limit (`wc_http_rate_limit_pauses_total{reason="esi_error_limit"}`)',
        "ESI's error budget (`X-ESI-Error-Limit-Remain`) ran low or ESI answered 420: every"
        " ESI call pauses until the window resets",
        "nothing; notifications keep going with the names they carry (`names not resolved;"
        " rendering with what is known`); check `esi.url` and the user agent if it recurs",
    ),
    Advice(
        HTTP,
        "`names not resolved; rendering with what is known`",
        "ESI could not resolve names in time for a kill",
        "nothing; the kill is posted with ids/known names",
    ),
    Advice(
        QUEUE,
        "`wc_source_pauses_total` / `wc_source_paused_seconds_total` grow;"
        " `queue.paused_sources` in the snapshot",
        "the bounded queue (10,000 items) is full: sources stop reading until there is room."
        " Nothing is dropped; rallies and tracked kills are served first",
        "usually a slow disk or a burst; if sustained, look at `wc_queue_wait_seconds` and"
        " the host's I/O",
    ),
    Advice(
        QUEUE,
        "webhook receiver answers `503 busy: event queue full` (`Retry-After: 2`)",
        "the same, for map webhooks",
        "the sender retries",
    ),
    Advice(
        QUEUE,
        "`http server not started` (`error`: `cannot serve on HOST:PORT: ...`)",
        "the `[server]` port is in use or not allowed; the console runs on without HTTP",
        "free the port or change `server.port`; restart",
    ),
    Advice(
        QUEUE,
        "ingest API `401`",
        "missing or wrong bearer key, or the tenant is disabled (`tenant list` shows"
        ' `"enabled": false`)',
        "`wanderer-console tenant rotate-key SLUG` and use the new key; for a disabled tenant"
        " `tenant enable SLUG` (its old key works again) or `tenant enable SLUG --rotate-key`"
        " (a new key, the old one stays dead)",
    ),
    Advice(
        QUEUE,
        "`tenant 'home' is disabled, so a new key would be refused too; re-enable it with a"
        " new key: wanderer-console tenant enable home --rotate-key` (`tenant rotate-key`,"
        " exit 1)",
        "rotating a disabled tenant's key would print a key that never works, so it is"
        " refused and nothing changes",
        "`tenant enable home --rotate-key` (enables under a new key in one step) or `tenant"
        " enable home`",
    ),
    Advice(
        QUEUE,
        "ingest API `503` `the ingest key cannot be checked now: the console's database did not "
        "answer` (`http request refused`, `reason` `store`, `error`)",
        "the key look-up failed in the database (a PostgreSQL restart or failover ended the "
        "connection, the server is unreachable, a damaged SQLite file); the request was neither "
        "accepted nor refused, nothing was queued. Counted in "
        '`wc_server_refusals_total{reason="store"}`',
        "transient: the client retries after `Retry-After` with the same `event_id`; the "
        "connection pool reconnects by itself. If it persists, `/ready` and `error` say why the "
        "database does not answer",
    ),
    Advice(
        QUEUE,
        "ingest API `413`",
        "body over the size limit",
        "send smaller batches",
    ),
    Advice(
        QUEUE,
        "ingest API `400` / `422`",
        "not JSON, wrong shape, invalid event, too many events in a batch, a `tenant` that is"
        " not a string (`reason` `tenant_type`; the answer's `field` names it), or more than one"
        " `Authorization` header (`reason` `auth_headers`: a client or proxy adding its own)",
        "fix the client (or the proxy: send one header); the answer says which event and why",
    ),
    Advice(
        QUEUE,
        "`ingest event not processed` (`events`, `error`; one line per tenant a minute, the"
        " next with `suppressed`) / `ingest events not queued: the pipeline's queue is full`,"
        " ingest API `503` (`Retry-After`)",
        "a valid event was not confirmed within the request's time (10 s for the whole request,"
        " queueing included: the pipeline busy, or the store cannot write, see `/ready`), or"
        " before the console stopped (the event's reason says `the console is stopping`); a"
        " queued one is kept by the engine and may still be stored and notified, one not queued"
        " (queue full) is not. With no event confirmed the answer is `503`"
        ' (`wc_server_refusals_total{reason="not_processed"}`), else `200` with that event\'s'
        " reason",
        "transient; the client retries with the **same `event_id`** (the answer echoes the one"
        " generated when the client sent none): a retry of an event stored meanwhile is answered"
        " `duplicate`, never notified twice",
    ),
    Advice(
        QUEUE,
        "`http request refused` (`endpoint`, `reason`, `status`, `client`, `map` or `tenant`,"
        " `suppressed`)",
        "the server refused a request: a wrong or missing key, a bad webhook signature or"
        " timestamp, a body too large or malformed, an unknown path. One line per client"
        " address per `server.refusal_log_interval_seconds`; `suppressed` counts the refusals"
        " for that client not logged since the last line. Every one is counted in"
        " `wc_server_refusals_total{endpoint,reason}` (the reasons are listed in"
        " [monitoring](monitoring.md#http-surface-the-consoles-own-server)); key, signature"
        " and body are never logged",
        "`bad_key` / `signature` from a client you know: fix its key or the map's"
        " `webhook_secret`. From unknown addresses: a scan; keep the server on loopback or"
        " behind a proxy that filters",
    ),
    Advice(
        QUEUE,
        "webhook `reason` `signature` with `map` `unknown`",
        "a post to a map that is not configured here (every such name is counted as"
        " `webhook:unknown`)",
        "check the URL in the Wanderer webhook subscription: `/api/v1/maps/<map key>/webhook`",
    ),
    Advice(
        QUEUE,
        "`http client disconnected mid-request` (`info`, `endpoint`, `client`)",
        "a client hung up before its body was read (or was closed by `body_timeout_seconds`);"
        " counted in `wc_server_client_disconnects_total`",
        "nothing; the sender retries. Frequent from one sender: its network, or a body too"
        " slow for `body_timeout_seconds`",
    ),
    Advice(
        QUEUE,
        "`http connection closed by the server` (`reason`, `client`, `suppressed`)",
        "`header_timeout` / `body_timeout`: the client did not finish its request headers or"
        " body in time (idle, or sending a byte at a time); `evicted`: the connection cap was"
        " reached and this connection, stalled the longest, made room for a new one;"
        " `over_capacity` / `per_client_limit`: a new connection was answered `503 too many"
        " connections`. Counted in `wc_server_connections_closed_total{reason}`",
        "a flood of slow connections is held off by design (`/health` and delivery keep"
        " working). A legitimate slow sender: raise the timeouts. Many"
        " `evicted`/`over_capacity` from legitimate traffic: raise `max_connections` and the"
        " service's `LimitNOFILE` (the cap is at most a quarter of it; the effective cap is"
        " in `http server listening`)",
    ),
    Advice(
        QUEUE,
        "client sees `503 too many connections`",
        "as above, `over_capacity` or `per_client_limit`",
        "retry after `Retry-After` (1 s); see above",
    ),
    Advice(
        QUEUE,
        "ingest or webhook client gets `400 Invalid HTTP request received.`",
        "its request line and headers were over 16 KiB or not HTTP/1.1; counted as"
        ' `wc_server_connections_closed_total{reason="bad_request"}` and logged as `http'
        " connection closed by the server` (throttled)",
        "fix the client",
    ),
)

_SOURCES = frozenset({"map_sse", "killstream", "fallback", "r2z2", "log"})
_RECOGNISE: Final[dict[str, tuple[tuple[str, ...], frozenset[str]]]] = {
    # message prefix → (regular expressions, subjects); the prefix names exactly one row.
    "`config.toml:7: (syntax)": ((r"invalid TOML", r"\(syntax\)"), frozenset({"config", "log"})),
    "`configuration change rejected": (
        (r"configuration change rejected", r"CONFIG CHANGE REJECTED"),
        frozenset({"config", "log"}),
    ),
    "`warning: config.toml:12: console.dry_run: overridden": (
        (r"overridden by the environment variable", r"the environment overrides these keys"),
        frozenset({"config", "log"}),
    ),
    "`map stream refused`, `error: HTTP 401": ((r"HTTP 401",), frozenset({"map_sse", "log"})),
    "`map stream refused`, `HTTP 403`": ((r"HTTP 40[23]",), frozenset({"map_sse", "log"})),
    "`map stream refused`, `HTTP 404`": ((r"HTTP 404",), frozenset({"map_sse", "log"})),
    "`map stream refused`, other status": (
        (r"HTTP 5\d\d", r"map stream refused"),
        frozenset({"map_sse", "log"}),
    ),
    "state `degraded`, `closed before": ((r"closed before 'connected' frame",), frozenset()),
    "`map stream lost`": (
        (r"stream lost", r"stream closed by server", r"map stream lost"),
        frozenset({"map_sse", "log"}),
    ),
    "`map resync failed`": ((r"resync failed",), frozenset({"map_sse", "log"})),
    "`map load failed; retrying`": (
        (r"initial load failed", r"map load failed"),
        frozenset({"map_sse", "log"}),
    ),
    "`oversize map event skipped`": (
        (r"oversize map event", r"skipped a .* event: .* over the"),
        frozenset({"map_sse", "log"}),
    ),
    "`killstream server's limit is lower": (
        (r"over the server's limit", r"server's limit is lower"),
        frozenset({"killstream", "log"}),
    ),
    "`killstream join refused": ((r"join refused",), frozenset({"killstream", "log"})),
    "`killstream join not answered": (
        (r"no reply to the join", r"join not answered"),
        frozenset({"killstream", "log"}),
    ),
    "`killstream heartbeat missed`": (
        (r"heartbeat (reply )?missed",),
        frozenset({"killstream", "log"}),
    ),
    "`killstream frame over the size limit": (
        (r"over the \d+-byte limit \(max_frame_bytes\)", r"frame over the size limit"),
        frozenset({"killstream", "log"}),
    ),
    "`killstream lost`": ((r"socket lost", r"killstream lost"), frozenset({"killstream", "log"})),
    "`killstream REST poll failed`": (
        (r"REST poll failed",),
        frozenset({"fallback", "killstream", "log"}),
    ),
    "`R2Z2 needs a User-Agent": ((r"User-Agent with a contact",), frozenset()),
    "`r2z2 forbidden; stopping`": (
        (r"403 Forbidden from R2Z2", r"r2z2 forbidden"),
        frozenset({"r2z2", "log"}),
    ),
    "`r2z2 rate limited`": (
        (r"429 rate limited", r"r2z2 rate limited"),
        frozenset({"r2z2", "log"}),
    ),
    "`r2z2 request failed`": ((r"r2z2 request failed", r"^HTTP \d{3}$"), frozenset({"r2z2"})),
    "`discord refused a target": (
        (r"\b404\b", r"unknown webhook", r"unknown channel"),
        frozenset({"target", "log"}),
    ),
    "same, `status`: 401": ((r"\b401\b", r"unauthori[sz]ed"), frozenset({"target"})),
    "same, `status`: 403": (
        (r"\b403\b", r"missing access", r"missing permissions"),
        frozenset({"target"}),
    ),
    "same, `detail`: `no bot token": ((r"no bot token",), frozenset({"target", "log"})),
    "`notification failed for good` (`reason` `Discord refused it": (
        (r"\b400\b", r"failed for good"),
        frozenset({"target", "log"}),
    ),
    '`wc_delivery_failures_total{reason="rate_limited"}`': (
        (r"\b429\b", r"rate.?limited"),
        frozenset({"target"}),
    ),
    "`store cannot write": ((r"store cannot write",), frozenset()),
    "`all delivery paused`": ((r"all delivery paused", r"DISCORD PAUSE"), frozenset()),
    "`notification delivery failed`": (
        (r"\b5\d\d\b", r"time(d)? ?out", r"refused", r"circuit"),
        frozenset({"target"}),
    ),
    "`http circuit breaker closed -> open`": (
        (r"circuit breaker", r"failures in", r"probe failed", r"cool-down"),
        frozenset({"breaker", "log"}),
    ),
    "`http request failed`": ((r"http request failed",), frozenset({"log"})),
}
"""How the console recognises the entries it explains most: connection errors (by the source's
kind), target refusals, breaker transitions, config rejections. Order within the table decides
ties: the first entry that applies and matches wins."""

_FALLBACK: Final[dict[str, str]] = {
    "map_sse": "`map stream lost`",
    "killstream": "`killstream lost`",
    "fallback": "`killstream REST poll failed`",
    "r2z2": "`r2z2 request failed`",
    "target": "`notification delivery failed`",
    "breaker": "`http circuit breaker closed -> open`",
    "config": "`config.toml:42:",
}
"""What explains a subject whose error no entry recognises (the commonest cause of its kind)."""

_PLACEHOLDER = re.compile(r"\.\.\.|…|\{[^}]*\}|\b(?:PATH|DIR|TARGET|HOST|PORT|SLUG|N|M|H|T|L)\b")


def _quoted(message: str) -> tuple[re.Pattern[str], ...]:
    """The longest literal piece of the message's first quoted text, when telling enough."""
    match = re.search(r"`([^`]+)`", message)
    if match is None:
        return ()
    pieces = [piece.strip(" :;,") for piece in _PLACEHOLDER.split(match.group(1))]
    best = max(pieces, key=len, default="")
    if len(best) < _MIN_QUOTE:
        return ()
    return (re.compile(re.escape(best), re.IGNORECASE),)


def _restart_keys() -> str:
    """The keys that need a restart, as the settings model declares them (the page lists the
    same, checked against the model by the configuration tests)."""
    return ", ".join(f"`{key}`" for key in restart_summary().split(", "))


def _build() -> tuple[Advice, ...]:
    built: list[Advice] = []
    used: set[str] = set()
    restart_keys = _restart_keys()
    for row in _ROWS:
        if "{restart_keys}" in row.meaning:
            row = replace(row, meaning=row.meaning.replace("{restart_keys}", restart_keys))
        keys = [key for key in _RECOGNISE if row.message.startswith(key)]
        if len(keys) > 1:
            raise AssertionError(f"runbook: {row.message!r} is named by {keys}")
        texts, subjects = _RECOGNISE[keys[0]] if keys else ((), frozenset[str]())
        used.update(keys)
        patterns = tuple(re.compile(text, re.IGNORECASE) for text in texts)
        built.append(
            Advice(
                row.section,
                row.message,
                row.meaning,
                row.action,
                patterns,
                subjects,
                _quoted(row.message),
            )
        )
    unused = set(_RECOGNISE) - used
    if unused:
        raise AssertionError(f"runbook: no entry starts with {sorted(unused)}")
    return tuple(built)


RUNBOOK: Final[tuple[Advice, ...]] = _build()
"""Every entry, in the page's order."""


def advice_for(text: str | None, subject: str) -> Advice | None:
    """The runbook's entry for a problem reading ``text`` on ``subject`` (:data:`SUBJECTS`).

    The first entry recognising ``text`` by both its own patterns and its quoted message wins;
    else, for an error, the first by its own patterns, then by its quoted message, and for a log
    line the other way round (a log line starts with the message the page quotes). Nothing
    recognised: the commonest cause of the subject's kind, or ``None`` (an activity line).
    """
    if subject not in SUBJECTS:
        raise ValueError(f"unknown subject {subject!r}")
    if text:
        best: tuple[int, Advice] | None = None
        for entry in RUNBOOK:
            own = entry.matches(text, subject, own=True)
            quoted = entry.matches(text, subject, own=False)
            if not (own or quoted):
                continue
            rank = 3 if own and quoted else 2 if (quoted if subject == "log" else own) else 1
            if best is None or rank > best[0]:
                best = (rank, entry)
        if best is not None:
            return best[1]
    fallback = _FALLBACK.get(subject)
    if fallback is None:
        return None
    return next(entry for entry in RUNBOOK if entry.message.startswith(fallback))
