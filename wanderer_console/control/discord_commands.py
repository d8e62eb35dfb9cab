"""The ``/notifier`` slash commands: definitions, and answers to the interactions Discord sends.

Interactions arrive over the gateway (``INTERACTION_CREATE``) and go through the very
operations the console uses (:class:`~wanderer_console.control.local.LocalBackend`), so a
priority system added in Discord is the one the console lists, and each change is recorded
under the Discord user's name. Every answer is ephemeral (only the user sees it) and pings
nobody. Discord drops an interaction not answered within 3 seconds: an operation that has not
finished after :attr:`SlashCommands.answer_within` is answered "thinking…" (a deferral, type 5)
and its text set when it ends. A command that changes something (:data:`CHANGES`) is
acknowledged first and made only once Discord took the acknowledgement: one that comes too late
to be answered (replayed when the gateway resumes after a cut) changes nothing, as the user was
told ("The application did not respond").

=====================================================  =======================================
``/notifier status``                                    maps, sources, queue, outbox, breakers,
                                                        who paused delivery and since when
``/notifier system add-priority <system>``              add a priority system (pings, bypasses
                                                        the system-notification switch)
``/notifier system remove-priority <system>``           remove one
``/notifier priority list``                             the priority systems
``/notifier pause <type>`` / ``resume <type>``          switch a type off/on globally (needs
                                                        ``discord.command_role_id``)
=====================================================  =======================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from prometheus_client import Counter

from wanderer_console.config.model import Settings
from wanderer_console.console_api import DeliveryView, EngineSnapshot, OperationResult
from wanderer_console.delivery.discord_app import EPHEMERAL, DiscordApp, DiscordAppError
from wanderer_console.ingest.gateway_protocol import Dispatch
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["COMMANDS", "CommandBackend", "SlashCommands", "status_text"]

log = logging.getLogger(__name__)

_SUB, _GROUP, _STRING = 1, 2, 3
TYPES: Final = ("all", "kill", "system", "character", "rally")
"""What ``pause``/``resume`` take (``all``: the master switch)."""
_MAX_NAME = 100
CHANGES: Final = frozenset({"system add-priority", "system remove-priority", "pause", "resume"})
"""The commands that change something: made only once their acknowledgement was taken."""
ANSWERED: Final = CHANGES | {"status", "priority list"}
"""Every command answered; any other name is counted as ``unknown`` (a bounded label)."""
_DEFER: Final = {"type": 5, "data": {"flags": EPHEMERAL}}
_MAX_CONTENT: Final = 2000
"""Discord refuses a message (an answer, or the edit of a deferred one) with more characters."""
_CUT: Final = "\n… (cut: the console lists them all)"


def _system_option() -> dict[str, Any]:
    return {
        "type": _STRING,
        "name": "system",
        "description": "System name (J154624, Jita) or id",
        "required": True,
        "max_length": _MAX_NAME,
    }


def _type_option() -> dict[str, Any]:
    return {
        "type": _STRING,
        "name": "type",
        "description": "Which notifications",
        "required": True,
        "choices": [{"name": t, "value": t} for t in TYPES],
    }


COMMANDS: Final[list[dict[str, Any]]] = [
    {
        "name": "notifier",
        "description": "Wanderer Console",
        "type": 1,
        # Offered in servers only, never in a direct message with the bot (``contexts``: guild;
        # ``dm_permission`` for clients that predate it).
        "contexts": [0],
        "dm_permission": False,
        "options": [
            {"type": _SUB, "name": "status", "description": "What the console is doing"},
            {
                "type": _GROUP,
                "name": "system",
                "description": "Priority systems",
                "options": [
                    {
                        "type": _SUB,
                        "name": "add-priority",
                        "description": "Make a system a priority one (always notified, pings)",
                        "options": [_system_option()],
                    },
                    {
                        "type": _SUB,
                        "name": "remove-priority",
                        "description": "Make a system an ordinary one again",
                        "options": [_system_option()],
                    },
                ],
            },
            {
                "type": _GROUP,
                "name": "priority",
                "description": "Priority systems",
                "options": [
                    {"type": _SUB, "name": "list", "description": "List the priority systems"},
                ],
            },
            {
                "type": _SUB,
                "name": "pause",
                "description": "Stop a notification type (needs the command role)",
                "options": [_type_option()],
            },
            {
                "type": _SUB,
                "name": "resume",
                "description": "Start a notification type again (needs the command role)",
                "options": [_type_option()],
            },
        ],
    }
]
"""The application commands, as registered (bulk overwrite)."""


class CommandBackend(Protocol):
    """What the commands need of the engine (the :class:`LocalBackend` has it all)."""

    async def snapshot(self) -> EngineSnapshot:
        """The engine now."""
        ...

    async def set_flag(
        self, tenant: str | None, flag: str, value: bool, *, actor: str
    ) -> OperationResult:
        """Switch a notification type."""
        ...

    async def add_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Add a priority system."""
        ...

    async def remove_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Remove a priority system."""
        ...


class _Refused(Exception):
    """The interaction cannot be served: the message tells the user why."""


class SlashCommands:
    """Answers ``/notifier`` interactions (see the module docstring)."""

    def __init__(
        self,
        backend: CommandBackend,
        app: DiscordApp,
        settings: Callable[[], Settings],
        metrics: Metrics,
        *,
        answer_within: float = 2.0,
    ) -> None:
        self._backend = backend
        self._app = app
        self._settings = settings
        self.answer_within = answer_within
        """Seconds an operation may take before the answer is deferred (Discord allows 3)."""
        self.interactions = Counter(
            "wc_discord_interactions",
            "Slash commands handled, by command and outcome",
            ["command", "outcome"],
            registry=metrics.registry,
        )

    async def on_dispatch(self, event: Dispatch) -> None:
        """The gateway's dispatch handler: interactions only."""
        if event.name == "INTERACTION_CREATE" and isinstance(event.data, dict):
            await self.handle(event.data)

    async def handle(self, interaction: dict[str, Any]) -> None:
        """Run one interaction and answer it (never raises for a bad one: counted, logged)."""
        interaction_id = str(interaction.get("id") or "")
        token = str(interaction.get("token") or "")
        data = interaction.get("data")
        if (
            interaction.get("type") != 2
            or not isinstance(data, dict)
            or data.get("name") != "notifier"
            or not interaction_id
            or not token
        ):
            self.interactions.labels(command="unknown", outcome="ignored").inc()
            return
        command, values = _parse(data)
        member = interaction.get("member") if isinstance(interaction.get("member"), dict) else {}
        user = (member or {}).get("user") or interaction.get("user")
        if not isinstance(user, dict):
            user = {}
        actor = f"discord:{user.get('username', '?')} ({user.get('id', '?')})"
        guild = str(interaction.get("guild_id") or "")
        label = command if command in ANSWERED else "unknown"  # labels stay bounded
        if command in CHANGES:
            outcome = await self._change(
                interaction_id, token, command, values, member, actor, guild
            )
            self.interactions.labels(command=label, outcome=outcome).inc()
            log.info("slash command", extra={"ctx": {"command": command, "actor": actor}})
            return
        work = asyncio.create_task(self._run(command, values, member or {}, actor, guild))
        done, _ = await asyncio.wait({work}, timeout=self.answer_within)
        outcome = "answered"
        try:
            if done:
                await self._app.answer(interaction_id, token, _reply(work.result()))
            else:
                outcome = "deferred"
                await self._app.answer(interaction_id, token, _DEFER)
                await self._app.edit_original(token, _fit(await work))
        except DiscordAppError as exc:
            outcome = "failed"
            log.warning(
                "slash command answer failed",
                extra={"ctx": {"command": command, "error": str(exc)}},
            )
        self.interactions.labels(command=label, outcome=outcome).inc()
        log.info("slash command", extra={"ctx": {"command": command, "actor": actor}})

    async def _change(
        self,
        interaction_id: str,
        token: str,
        command: str,
        values: dict[str, Any],
        member: dict[str, Any] | None,
        actor: str,
        guild: str,
    ) -> str:
        """Acknowledge, then make the change and say what it did; the outcome for the metric.

        Discord refusing the acknowledgement (404: the interaction is past its 3 s) means the
        user was told the command failed: nothing is changed ("expired"). When Discord could
        not be reached, whether it took the acknowledgement is unknown: nothing is changed
        either, and the answer, if it can still be set, says to run the command again."""
        try:
            await self._app.answer(interaction_id, token, _DEFER)
        except DiscordAppError as exc:
            expired = exc.status == 404
            log.warning(
                "slash command not run: Discord did not take its acknowledgement",
                extra={
                    "ctx": {
                        "command": command,
                        "actor": actor,
                        "error": str(exc),
                        "action": "nothing changed: the user runs the command again"
                        if expired
                        else "nothing changed; check the console can reach Discord",
                    }
                },
            )
            if not expired:
                with contextlib.suppress(DiscordAppError):
                    await self._app.edit_original(
                        token, "Not done: the console could not reach Discord. Run it again."
                    )
            return "expired" if expired else "failed"
        text = await self._run(command, values, member or {}, actor, guild)
        try:
            await self._app.edit_original(token, _fit(text))
        except DiscordAppError as exc:
            log.warning(
                "slash command answer failed",
                extra={"ctx": {"command": command, "error": str(exc), "done": text}},
            )
            return "failed"
        return "deferred"

    async def _run(
        self, command: str, values: dict[str, Any], member: dict[str, Any], actor: str, guild: str
    ) -> str:
        try:
            self._check_server(guild)
            return await self._command(command, values, member, actor)
        except _Refused as exc:
            return str(exc)
        except Exception as exc:
            log.exception("slash command failed", extra={"ctx": {"command": command}})
            return f"That failed on the console's side ({type(exc).__name__}); see its log."

    async def _command(
        self, command: str, values: dict[str, Any], member: dict[str, Any], actor: str
    ) -> str:
        backend = self._backend
        if command == "status":
            return status_text(await backend.snapshot())
        if command == "priority list":
            names = [p.name for p in (await backend.snapshot()).priority_systems]
            if not names:
                return "No priority systems. Add one with `/notifier system add-priority`."
            return f"Priority systems ({len(names)}): " + ", ".join(f"`{_plain(n)}`" for n in names)
        if command in ("system add-priority", "system remove-priority"):
            name = _name(values.get("system"))
            if command.endswith("add-priority"):
                return (await backend.add_priority_system(name, actor=actor)).message
            return (await backend.remove_priority_system(name, actor=actor)).message
        if command in ("pause", "resume"):
            self._check_role(member)
            kind = str(values.get("type") or "")
            if kind not in TYPES:
                raise _Refused(f"Unknown type {kind!r}: one of {', '.join(TYPES)}.")
            flag = "enabled" if kind == "all" else kind
            result = await backend.set_flag(None, flag, command == "resume", actor=actor)
            return result.message
        raise _Refused(f"Unknown command `/notifier {command}`.")

    def _check_server(self, guild: str) -> None:
        """The commands change what pings the map's channel: answered in the console's own
        server only (``discord.guild_id``, when set), never from a direct message, where
        anyone who can reach the bot could use them."""
        if not guild:
            raise _Refused("The /notifier commands work in the server, not in direct messages.")
        configured = self._settings().discord.guild_id
        if configured and guild != configured:
            raise _Refused("This console answers /notifier in its own server only.")

    def _check_role(self, member: dict[str, Any]) -> None:
        role = self._settings().discord.command_role_id
        if not role:
            raise _Refused(
                "Pausing is off: the console has no command role (discord.command_role_id)."
            )
        roles = member.get("roles") if isinstance(member.get("roles"), list) else []
        if role not in {str(r) for r in roles or ()}:
            raise _Refused(f"You need the <@&{role}> role for this.")


def _parse(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``("system add-priority", {"system": "J154624"})`` from the nested options."""
    words: list[str] = []
    options = data.get("options")
    while (
        isinstance(options, list)
        and options
        and isinstance(options[0], dict)
        and options[0].get("type") in (_SUB, _GROUP)
    ):
        words.append(str(options[0].get("name")))
        options = options[0].get("options")
    if not isinstance(options, list):
        options = []
    values = {
        str(o.get("name")): o.get("value") for o in options if isinstance(o, dict) and "name" in o
    }
    return " ".join(words) or "?", values


def _name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise _Refused(f"A system name is 1 to {_MAX_NAME} printable characters.")
    return name


def _plain(text: str) -> str:
    return text.replace("`", "'")


def _fit(content: str) -> str:
    """``content`` within Discord's 2,000 characters; a longer one is cut at a line or list
    boundary and says so (Discord refuses more: the user would see no answer at all)."""
    if len(content) <= _MAX_CONTENT:
        return content
    head = content[: _MAX_CONTENT - len(_CUT)]
    boundary = max(head.rfind("\n"), head.rfind(", "))
    return (head[:boundary] if boundary > 0 else head) + _CUT


def _reply(content: str) -> dict[str, Any]:
    return {
        "type": 4,
        "data": {"content": _fit(content), "flags": EPHEMERAL, "allowed_mentions": {"parse": []}},
    }


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours}h {minutes}m {secs}s"


_LIST_MAX: Final = 700
"""Characters of one list in the status line (maps, sources down): with two of them and the
rest, the line stays within a message's 2,000 (hosted mode may serve dozens of maps)."""


def _listed(items: list[str], limit: int = _LIST_MAX) -> str:
    """``a, b, c`` within ``limit`` characters; the items that do not fit are counted."""
    text = ", ".join(items)
    if len(text) <= limit:
        return text
    shown: list[str] = []
    used = 0
    for item in items:
        more = f", … and {len(items) - len(shown) - 1} more"
        if used + len(item) + len(more) > limit:
            break
        shown.append(item)
        used += len(item) + 2
    return ", ".join([*shown, f"… and {len(items) - len(shown)} more"])


_PAUSER_MAX: Final = 200
"""Characters of who paused in the status line: a pause restored unread names an error's words
there, of any length."""


def _pause_text(delivery: DeliveryView) -> str:
    """``paused by `tui:alice@host` since <t:…:f> (kept across restarts)``, ``(on every
    engine of this database, ...)`` for the cluster's pause, ``running``.

    Who paused is masked again (the engine's snapshot is; this line is posted in a channel and
    must not depend on it) and cut to :data:`_PAUSER_MAX`; the time is a Discord timestamp,
    shown in each reader's own zone."""
    if not delivery.paused:
        return "running"
    text = "paused"
    if delivery.paused_by:
        who = _plain(redact(delivery.paused_by))
        who = who if len(who) <= _PAUSER_MAX else who[: _PAUSER_MAX - 1] + "…"
        text += f" by `{who}`"
    if delivery.paused_since:
        text += f" since <t:{int(delivery.paused_since)}:f>"
    if delivery.pause_cluster:
        text += " (on every engine of this database, kept across restarts)"
    elif delivery.pause_saved is not None:
        saved = delivery.pause_saved
        text += " (kept across restarts)" if saved else " (not saved: ends at the next restart)"
    return text


def status_text(snap: EngineSnapshot, *, now: float | None = None) -> str:
    """What ``/notifier status`` and the hourly status line say: the dashboard, short."""
    at = int(time.time() if now is None else now)
    connections = snap.connections
    up = sum(1 for c in connections if c.state == "connected")
    down = [f"{c.name} ({c.state})" for c in connections if c.state != "connected"]
    outbox = snap.counters.outbox
    open_breakers = [name for name, b in snap.breakers.items() if b.state != "closed"]
    flags = snap.settings.notifications
    off = [name for name in ("kill", "system", "character", "rally") if not flags.get(name)]
    lines = [
        "**Wanderer Console status**",
        f"Uptime {_duration(snap.uptime)} · version {snap.version}",
        f"Maps: {len(snap.tracking)} ("
        + _listed(
            [
                f"{name}: {t.systems} systems, {t.characters} pilots"
                for name, t in sorted(snap.tracking.items())
            ]
        )
        + ")"
        if snap.tracking
        else "Maps: none loaded",
        f"Sources: {up}/{len(connections)} connected"
        + (f"; down: {_listed(down)}" if down else ""),
        f"Queue: {snap.queue_depth} · outbox pending {outbox.get('pending', 0)},"
        f" failed {outbox.get('failed', 0)}, sent {outbox.get('sent', 0)}",
        "Breakers: " + (", ".join(open_breakers) + " open" if open_breakers else "all closed"),
        "Delivery: "
        + _pause_text(snap.delivery)
        + (
            "; notifications off"
            if not flags.enabled
            else (f"; off: {', '.join(off)}" if off else "")
        ),
        f"Priority systems: {len(snap.priority_systems)}",
        f"<t:{at}:f>",
    ]
    return "\n".join(lines)
