"""Command line: picks the TUI, headless mode, the demo, or a sub-command.

Every command is a :class:`~wanderer_console.command.Command` (name, help, ``add_arguments``,
``run``): the sub-command modules export theirs, :func:`commands` lists them, :func:`build_parser`
builds the parser from that list and :func:`main` runs the chosen one (:data:`CONSOLE` when none
is named). Textual is imported only when the TUI actually starts, so ``--no-ui`` and every
sub-command run without it; the sub-command modules are imported only when the command line
names one (or asks for ``--help``), so the engine does not carry them (about 2 MB).
"""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel, SecretStr

from wanderer_console import __version__
from wanderer_console.command import (
    EXIT_BROKEN_PIPE,
    EXIT_IN_USE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    refuse,
    refuse_json,
)
from wanderer_console.config.loader import (
    ENV_PREFIX,
    ConfigError,
    LoadedConfig,
    load_config,
    load_settings,
)
from wanderer_console.store.integrity import StorageError, ensure_data_dir
from wanderer_console.store.lock import DataDirInUseError
from wanderer_console.telemetry.logging import command_logging, redact

__all__ = [
    "CONSOLE",
    "EXIT_INVALID",
    "EXIT_IN_USE",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "commands",
    "main",
]

_EPILOG = """\
commands:
  (none)          open the operator console (TUI); --no-ui runs headless with JSON logs
  demo            run against the built-in simulator (no credentials needed)
  config check    validate a config file; prints file:line: key: problem, exits 1 if invalid;
                  asks the map API for each map (a wrong slug or key fails; --offline skips)
  config history  recorded configuration changes (JSON); config restore N brings one back
  tenant ACTION   ingest API tenants: add, list, rotate-key, disable, enable (JSON output)
  outbox ACTION   failed or held notifications: list, retry TARGET, drop (JSON output)
  export metrics  the stored per-minute trends (CSV, or --format json); --since 24h
  replay          --since 2h --dry-run: print what stored events would notify (JSON lines)
  kill ID         run one killmail through every map's rules and explain the outcome
  notify test T   send a test message to target T (MAP or MAP:ROUTE), show Discord's answer
  bench           benchmark suite against the simulator (JSON); --quick, --compare OLD.json
  db migrate-to   copy a data directory's SQLite store into PostgreSQL (verified, JSON report)
  db status       the store: backend, schema version, rows per table, outbox (JSON)
  attach          open the console on a running engine (ssh -t HOST wanderer-console attach);
                  quitting it leaves the engine running
  control token   make the bearer token for [control] listen (TCP); shown once

options before COMMAND:
  --log-level applies to every command; --config, --data-dir, --database, --no-ui and
  --dry-run only to a command that takes them (its --help lists them), as if given after its
  name; before any other command they are refused

exit codes (every command):
  0    done
  1    failed: the configuration, the database or the input is not usable (the line on
       stderr says what failed and what to do)
  2    the command line is wrong (argparse's usage lines, or one line naming the command)
  3    another engine holds the data directory
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (| head)
  A refusal is one line on stderr: wanderer-console COMMAND: what failed and what to do
  (a hint on a line of its own follows after "; "). A command whose answer is JSON (tenant,
  outbox, config history|restore, db, kill, notify test, replay, bench, export metrics
  --format json, demo --duration) also prints it as one JSON object on stdout, so a script
  reading stdout always gets JSON: {"error": the same text, "command": "COMMAND",
  "exit_code": N, ...the command's details, e.g. "database"}.

configuration:
  TOML file from --config, else $WANDERER_CONSOLE_CONFIG, else
  $XDG_CONFIG_HOME/wanderer-console/config.toml; then WANDERER_CONSOLE_* variables
  (nested keys with __) and Wanderer Notifier's variables (MAP_URL, MAP_NAME, MAP_API_KEY,
  DISCORD_*, WEBSOCKET_URL, *_NOTIFICATIONS_ENABLED, ...). See config/wanderer.example.toml.

examples:
  wanderer-console demo --no-ui --duration 20
  wanderer-console --config /etc/wanderer-console/config.toml --no-ui
  wanderer-console config check --config config.toml
  wanderer-console attach --data-dir /var/lib/wanderer-console
"""


_DEMO_DATA_DIR = (
    "keep the demo's data here (default: a temporary directory, deleted when the demo ends;"
    " never the engine's data dir)"
)


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    # Not --config or --database: the demo writes its own configuration (the simulator's
    # addresses) and keeps its store in SQLite in the data directory. Accepted unlisted, so
    # that _demo refuses them in words (argparse's refusal would echo a URL's password).
    _common(demo, store=False, data_dir_help=_DEMO_DATA_DIR)
    for option in ("--config", "--database"):
        demo.add_argument(option, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help="stop after this long, print a JSON summary on stdout and a verdict on stderr;"
        " exit 1 when the verdict is PROBLEM",
    )
    demo.add_argument(
        "--rate", type=_positive_float, default=5.0, help="simulated events per second (default 5)"
    )
    demo.add_argument("--seed", type=int, default=1, help="simulator random seed (default 1)")


def _config_check_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument("--config", type=Path, metavar="PATH", help="config file to check")
    check.add_argument(
        "--offline",
        action="store_true",
        help="do not ask the map API whether each map exists (by default one request per map:"
        " a 404 or a refused key fails the check, an unreachable server is a warning)",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):  # nan, inf: no JSON summary holds them
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
    return value


def _database_url(text: str) -> str:
    scheme = text.partition("://")[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise argparse.ArgumentTypeError("must be a postgresql:// URL")
    return text


def _common(
    parser: argparse.ArgumentParser,
    *,
    store: bool = True,
    data_dir_help: str = "where the database lives (default: XDG data dir)",
) -> None:
    """The engine's options, on the top-level parser and on commands with ``common_options``
    (without ``store``: not --config and --database, for the demo, which has its own; the
    demo's data directory also has its own default, so its own ``data_dir_help``).

    After a command name they default to "not given" (SUPPRESS), so they do not overwrite what
    was given before it (``wanderer-console --data-dir D demo`` keeps D). On the top-level
    parser each notes that it was given (:class:`_BeforeCommand`), for :func:`_options_before`.
    """
    top = parser.prog == "wanderer-console"
    default = None if top else argparse.SUPPRESS
    value: dict[str, Any] = {"default": default}
    flag: dict[str, Any] = {"default": default, "action": "store_true"}
    if top:
        value["action"] = _BeforeCommand
        flag.update(action=_BeforeCommand, nargs=0, const=True)
    if store:
        parser.add_argument("--config", type=Path, metavar="PATH", help="TOML config file", **value)
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=data_dir_help,
        **value,
    )
    if store:
        parser.add_argument(
            "--database",
            type=_database_url,
            metavar="URL",
            help="store in this PostgreSQL database (postgresql://USER:PASSWORD@HOST/DB) instead"
            " of SQLite in the data dir; prefer WANDERER_CONSOLE_STORE__URL for a password",
            **value,
        )
    parser.add_argument(
        "--no-ui",
        help="run headless: JSON log lines on stdout, stop gracefully on SIGINT/SIGTERM (a"
        " second one stops at once, as a crash: exit 130/143)",
        **flag,
    )
    parser.add_argument(
        "--dry-run", help="render and log notifications without sending them", **flag
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log threshold (default from config: INFO)",
        **value,
    )


_GIVEN = "_wanderer_console_before_command"
"""Where the top-level parser notes the options given to it, on ``args``: option -> value."""

_EVERY_COMMAND = ("--log-level",)
"""Top-level options every command honours (:func:`main` sets its logging from it)."""


class _BeforeCommand(argparse.Action):
    """``store`` (``store_true`` with ``nargs=0``) that also notes the option in :data:`_GIVEN`.

    Only the top-level parser has these, and it reads only what comes before a command's name:
    a command's own parser then sets the options it takes (to their default when not given
    after its name), so without the note :func:`_options_before` could not tell ``--data-dir D
    db status`` from ``db status``.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Store the value and note it under the option's first name."""
        value = self.const if self.nargs == 0 else values
        setattr(namespace, self.dest, value)
        setattr(
            namespace, _GIVEN, {**getattr(namespace, _GIVEN, {}), self.option_strings[0]: value}
        )


# -- the commands defined here ------------------------------------------------------------------


def _config_check(args: argparse.Namespace) -> int:
    path: Path | None = args.config
    try:
        loaded = load_settings(path, required=path is not None)
    except ConfigError as exc:
        for problem in exc.problems:
            print(redact(str(problem)), file=sys.stderr)
        print(f"config invalid: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_INVALID
    where = str(loaded.path) if loaded.path else "(no file; environment only)"
    warnings = [*map(str, loaded.warnings), *_placeholders(loaded), *_config_warnings(loaded)]
    for warning in warnings:
        print(redact(f"warning: {warning}"), file=sys.stderr)
    if _refuse_without_maps(loaded):
        return EXIT_INVALID
    if not getattr(args, "offline", False):
        refused = _probe_maps(loaded)
        if refused:
            for line in refused:
                print(redact(line), file=sys.stderr)
            print(f"config invalid: {len(refused)} problem(s)", file=sys.stderr)
            return EXIT_INVALID
    maps = ", ".join(loaded.settings.maps)
    print(f"config ok: {where}; maps: {maps}")
    return EXIT_OK


def _refuse_without_maps(loaded: LoadedConfig) -> bool:
    """True (after saying why on stderr) when the configuration names no map and is not hosted.

    Valid, but an engine on it would receive nothing, and adding a map needs a restart: not a
    configuration to run. ``config check`` and the engine's start both ask this, so they agree.
    """
    if loaded.settings.maps or loaded.settings.hosted.enabled:
        return False
    where = str(loaded.path) if loaded.path else "(no file; environment only)"
    print(
        f"config invalid: no map configured: nothing would be received ({where}); add a"
        " [maps.<key>] table with url and api_key (or set MAP_URL and MAP_API_KEY)",
        file=sys.stderr,
    )
    return True


def _probe_maps(loaded: LoadedConfig) -> list[str]:
    """Ask the map API for each map (:mod:`~wanderer_console.ingest.map_probe`); print its
    warnings, return its problems."""
    import asyncio

    from wanderer_console.ingest.map_probe import probe_hosted, probe_maps  # deferred

    settings = loaded.settings
    agent = settings.esi.user_agent
    results = asyncio.run(probe_maps(settings.maps, user_agent=agent))
    if settings.hosted.enabled:
        hosted = asyncio.run(probe_hosted(settings.hosted, user_agent=agent))
        results.append(hosted)
        if hosted.problem is None and hosted.maps is not None:
            print(f"hosted: {hosted.maps} map(s) listed by the map server")
    for result in results:
        if result.warning:
            print(redact(f"warning: {result.warning}"), file=sys.stderr)
    return [result.problem for result in results if result.problem]


PLACEHOLDER_MARK = "replace-with"
"""What the example config's placeholder secrets start with (``replace-with-the-map-api-key``)."""


def _secret_leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted key, value)`` of every secret in the settings."""
    if isinstance(node, SecretStr):
        yield prefix, node.get_secret_value()
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _secret_leaves(getattr(node, name), f"{prefix}.{name}" if prefix else name)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _secret_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list | tuple):
        for number, value in enumerate(node):
            yield from _secret_leaves(value, f"{prefix}.{number}")


def _placeholders(loaded: LoadedConfig) -> list[str]:
    """A warning per secret still holding the example's ``replace-with-…`` text, located."""
    lines: list[str] = []
    if loaded.path is not None:
        try:
            lines = loaded.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
    out: list[str] = []
    for key, value in _secret_leaves(loaded.settings):
        if PLACEHOLDER_MARK not in value.lower():
            continue
        name = key.rsplit(".", 1)[-1]
        line = next(
            (
                number
                for number, text in enumerate(lines, start=1)
                if text.strip().startswith(name) and PLACEHOLDER_MARK in text.lower()
            ),
            None,
        )
        if line is not None:
            where = f"{loaded.path}:{line}"
        else:
            where = "(environment)" if loaded.path is None else str(loaded.path)
        out.append(
            f"{where}: {key}: still the example's placeholder ({PLACEHOLDER_MARK}-…):"
            " put the real value"
        )
    return out


def _config_warnings(loaded: LoadedConfig) -> list[str]:
    settings = loaded.settings
    out = []
    for key, map_settings in settings.maps.items():
        if not map_settings.discord.has_any_target():
            out.append(f"maps.{key}.discord: no webhook or channel: nothing will be sent")
        elif (
            not map_settings.discord.webhook_url
            and not any(
                getattr(map_settings.discord, f"{r}_webhook_url")
                for r in ("system_kill", "character_kill", "system", "character", "rally")
            )
            and not (map_settings.discord.bot_token or settings.discord.bot_token)
        ):
            out.append(f"maps.{key}.discord: channel ids set but no bot token")
    return out


def _wants_tui(args: argparse.Namespace) -> bool:
    return not args.no_ui


def _no_tty_message() -> str:
    return (
        "wanderer-console: no terminal (stdin/stdout is not a TTY), so the console UI cannot "
        "start.\nRun headless with --no-ui (JSON logs on stdout), or attach with `ssh -t`."
    )


def _refuse_tui_without_terminal(args: argparse.Namespace) -> bool:
    """True (after saying why) when the console UI is wanted but there is no terminal."""
    if _wants_tui(args) and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(_no_tty_message(), file=sys.stderr)
        return True
    return False


def _demo_summary(args: argparse.Namespace) -> bool:
    """The demo answers with a JSON summary when it runs for a ``--duration``."""
    return getattr(args, "duration", None) is not None


def _demo(args: argparse.Namespace) -> int:
    # Given before the command name (the top-level parser has them), they would be ignored.
    for option, attribute in (("--config", "config"), ("--database", "database")):
        if getattr(args, attribute, None) is not None:
            return _refused(
                "demo",
                args,
                f"{option} is not used by the demo: it runs on its own configuration"
                " (demo-config.toml, against the simulator) and stores in SQLite in its data"
                " directory (--data-dir keeps it). To run on your configuration or database:"
                f" wanderer-console {option} ... --no-ui",
                EXIT_USAGE,
            )
    if _refuse_tui_without_terminal(args):
        return EXIT_USAGE
    from wanderer_console import launch  # deferred: keeps `config check` light

    return launch.run_demo(
        duration=args.duration,
        rate=args.rate,
        seed=args.seed,
        data_dir=args.data_dir,
        tui=_wants_tui(args),
        dry_run=bool(args.dry_run),
        log_level=args.log_level or "INFO",
    )


def _console(args: argparse.Namespace) -> int:
    if _refuse_tui_without_terminal(args):
        return EXIT_USAGE
    from wanderer_console import launch  # deferred: keeps `config check` light

    # As the environment variables they stand for, which win over the file at start and at
    # every reload: set on the settings alone, the first reload of the file undid them.
    if args.dry_run:
        os.environ[f"{ENV_PREFIX}CONSOLE__DRY_RUN"] = "true"
    if getattr(args, "database", None):
        os.environ[f"{ENV_PREFIX}STORE__URL"] = args.database
    loaded = load_config(args)
    if loaded is None or _refuse_without_maps(loaded):
        return EXIT_INVALID
    settings = loaded.settings
    from wanderer_console.config.paths import default_data_dir

    # Before the engine lock, the store or the UI touch it: an unusable data directory is one
    # paragraph with the fix (StorageError, below), not a traceback from whichever came first.
    ensure_data_dir(args.data_dir or settings.console.data_dir or default_data_dir())
    return launch.run_console(
        settings,
        data_dir=args.data_dir,
        tui=_wants_tui(args),
        log_level=args.log_level or settings.console.log_level,
        config_path=loaded.path,
    )


# -- the registry -------------------------------------------------------------------------------

CONSOLE = Command(
    "console",
    help="open the operator console (TUI); --no-ui runs headless with JSON logs",
    run=_console,
    common_options=True,
)
"""What runs when no COMMAND is given; its options are the top-level ones."""

_BUILT_IN: tuple[Command, ...] = (
    Command(
        "demo",
        help="run against the built-in simulator",
        description="Start the simulator (fake map, killstream and Discord on loopback ports) "
        "and run the console against it.",
        add_arguments=_demo_arguments,
        run=_demo,
        answers_json=_demo_summary,
    ),
    Command(
        "config check",
        help="validate the configuration (file plus environment)",
        add_arguments=_config_check_arguments,
        run=_config_check,
    ),
)

_SUB_COMMANDS: tuple[tuple[str, str], ...] = (
    ("demo", ""),
    ("wanderer_console.delivery.notify_cli", "COMMAND"),
    ("wanderer_console.pipeline.diagnose", "COMMAND"),
    ("wanderer_console.pipeline.replay", "COMMAND"),
    ("config check", ""),
    ("wanderer_console.config.audit_cli", "HISTORY_COMMAND"),
    ("wanderer_console.config.audit_cli", "RESTORE_COMMAND"),
    ("wanderer_console.server.tenant_cli", "COMMAND"),
    ("wanderer_console.delivery.outbox_cli", "COMMAND"),
    ("wanderer_console.observe.export_cli", "COMMAND"),
    ("wanderer_console.bench.suite", "COMMAND"),
    ("wanderer_console.db_cli", "MIGRATE_COMMAND"),
    ("wanderer_console.db_cli", "STATUS_COMMAND"),
    ("wanderer_console.attach", "ATTACH_COMMAND"),
    ("wanderer_console.attach", "TOKEN_COMMAND"),
)
"""Every sub-command, in the order ``--help`` lists them: a module and the name of its
:class:`Command` (empty: one of :data:`_BUILT_IN`, by name). A two-word name is an action of
the group named by its first word (see :data:`_GROUPS`)."""


@functools.cache
def commands() -> tuple[Command, ...]:
    """Every sub-command, in the order ``--help`` lists them; their modules are imported on
    the first call."""
    built_in = {command.name: command for command in _BUILT_IN}
    out: list[Command] = []
    for module, attribute in _SUB_COMMANDS:
        if not attribute:
            out.append(built_in[module])
            continue
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, Command):
            raise TypeError(f"{module}.{attribute} is not a Command")
        out.append(command)
    return tuple(out)


_GROUPS: dict[str, str] = {
    "config": "configuration tools",
    "control": "the control endpoint attached consoles use",
    "db": "the store: move a data directory to PostgreSQL, show what it holds",
}
"""Groups of commands (each action its own :class:`Command`): name -> help line."""


class _Parser(argparse.ArgumentParser):
    """argparse, its refusals masked: it quotes what it refuses (``unrecognized arguments:
    --database postgresql://USER:PASSWORD@...``), which may carry a password."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and the masked message; exit 2 (argparse's own behaviour)."""
        super().error(redact(message))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, built from :data:`CONSOLE` and :func:`commands` (also used by tests
    and the docs). The chosen command's name ends up in ``args.command_name``."""
    parser = _Parser(
        prog="wanderer-console",
        description="Operator console and Discord notification engine for Wanderer maps.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_command_arguments(parser, CONSOLE)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[_Parser]] = {}
    for command in commands():
        group, _, action = command.name.rpartition(" ")
        parent = sub
        if group:
            if group not in groups:
                group_parser = sub.add_parser(group, help=_GROUPS[group])
                groups[group] = group_parser.add_subparsers(
                    dest=f"{group}_command", metavar="ACTION", required=True
                )
            parent = groups[group]
        leaf = parent.add_parser(action, help=command.help, description=command.description)
        _add_command_arguments(leaf, command)
    return parser


def _add_command_arguments(parser: argparse.ArgumentParser, command: Command) -> None:
    if command.common_options:
        _common(parser)
    command.add_arguments(parser)
    parser.set_defaults(command_name=command.name)


_Chain = list[tuple[str, argparse.ArgumentParser]]
"""A command as parsed: each word of its name (``outbox``, ``list``) and the parser it chose."""


def _options_before(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Hand the chosen command the top-level options given before its name, as if given after
    it, when it takes them (those given after it win); refuse the others as a usage error.

    A command's parser sets the options it takes, so one with a default of its own overwrote
    the value given before its name (``--data-dir D db status`` read the default data
    directory), and the options it does not take were left unread (``--dry-run outbox list``
    ran for real): the operator saw a command accept an option that changed nothing.
    """
    chain = _chosen(parser, args)
    if not chain:
        return
    for option, value in getattr(args, _GIVEN, {}).items():
        if option in _EVERY_COMMAND:
            continue
        action = _taken(chain, option)
        if action is None:
            name = " ".join(word for word, _ in chain)
            chain[-1][1].error(_not_taken(parser, option, name))
        if action.default is argparse.SUPPRESS:
            continue  # not given after the name: the value given before it stayed
        if getattr(args, action.dest, action.default) == action.default:
            setattr(args, action.dest, value)


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> _Chain:
    """The command ``args`` chose, down to its action (empty: the console itself)."""
    chain: _Chain = []
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        word = None if sub is None else getattr(args, sub.dest, None)
        if sub is None or word is None:
            return chain
        parser = sub.choices[word]
        chain.append((word, parser))


def _taken(chain: _Chain, option: str) -> argparse.Action | None:
    """The command's action for ``option`` (from its name down to its action), if it takes it."""
    return next(
        (p._option_string_actions[option] for _, p in chain if option in p._option_string_actions),
        None,
    )


def _not_taken(parser: argparse.ArgumentParser, option: str, name: str) -> str:
    """Which option does not apply to which command, and where it goes."""
    takers = _takers(parser, option)
    after = f" or after the name of: {', '.join(takers)}" if takers else ""
    return (
        f"{option} does not apply to {name} (its --help lists what does); it goes with no"
        f" command (wanderer-console {option} ...){after}"
    )


def _takers(parser: argparse.ArgumentParser, option: str) -> list[str]:
    """The commands that list ``option`` in their --help; a group every action of which
    does, by its name alone (``tenant``)."""
    leaves: list[tuple[list[str], bool]] = []

    def walk(words: list[str], chain: _Chain, here: argparse.ArgumentParser) -> None:
        sub = next((a for a in here._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            action = _taken(chain, option)
            leaves.append((words, action is not None and action.help != argparse.SUPPRESS))
            return
        for word, child in sub.choices.items():
            walk([*words, word], [*chain, (word, child)], child)

    walk([], [], parser)
    out: list[str] = []
    for words, takes in leaves:
        group = [t for w, t in leaves if w[0] == words[0]]
        if len(group) > 1 and all(group):
            if words[0] not in out:
                out.append(words[0])
        elif takes:
            out.append(" ".join(words))
    return out


def _console_arguments(argv: Sequence[str]) -> argparse.Namespace | None:
    """The arguments when they name no sub-command (the console itself), read without
    importing the sub-command modules; ``None``: let the whole parser read them."""
    if any(arg in ("-h", "--help") for arg in argv):
        return None
    parser = argparse.ArgumentParser(prog="wanderer-console", exit_on_error=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_command_arguments(parser, CONSOLE)
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError:
        return None  # the whole parser says what is wrong, with every command in its usage
    if rest:
        return None  # a sub-command, or something only the whole parser can refuse
    args.command = None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wanderer-console`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = argparse.Namespace(command_name=CONSOLE.name)
    name = ""
    try:
        parsed = _console_arguments(argv)
        if parsed is None:
            parser = build_parser()
            parsed = parser.parse_args(argv)
            _options_before(parser, parsed)
            name = " ".join(word for word, _ in _chosen(parser, parsed))
        args = parsed
        if args.command_name == CONSOLE.name:
            return CONSOLE.run(args)
        with command_logging(getattr(args, "log_level", None)):
            return _command(args.command_name).run(args)
    except KeyboardInterrupt:
        # Ctrl-C during a command (a request that does not answer, a long copy): the operator
        # asked it to stop, so one line, not a traceback through asyncio and httpx. What it was
        # writing is a transaction or an atomic replace, so nothing is left half-written.
        return _refused(name, args, "interrupted (Ctrl-C) before it finished", EXIT_INTERRUPTED)
    except DataDirInUseError as exc:
        return _refused(name, args, str(exc), EXIT_IN_USE)
    except StorageError as exc:
        # A database that cannot be used has a known fix: say it in one paragraph (the path and
        # what to do), not in a traceback that buries both.
        return _refused(name, args, str(exc), EXIT_INVALID)
    except BrokenPipeError:
        # The reader went away (``db status | head``): nothing is wrong, so no traceback. The
        # interpreter flushes stdout at exit and would fail again: point it at /dev/null (as the
        # signal module's documentation advises), and exit as a process killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.filename is None:
            raise  # not a path the operator gave: a traceback tells more
        # A path the file system refuses (a data directory only the engine's user may enter, a
        # pasted token as --data-dir): ``Path.exists()`` and friends raise for anything but
        # "not there", wherever a command first looks. Say which path and what to do.
        return _refused(name, args, _path_problem(exc), EXIT_INVALID)


def _refused(name: str, args: argparse.Namespace, message: str, code: int) -> int:
    """Refuse what was caught on a command's way out in the format of every refusal
    (:func:`~wanderer_console.command.refuse`), naming the command as typed (``name``: ``tenant
    add``; empty: the console itself), with its JSON on stdout when its answer is JSON; return
    ``code``. They said ``wanderer-console: ...``, naming no command, and a script reading a
    JSON command's stdout got nothing."""
    command = None if args.command_name == CONSOLE.name else _command(args.command_name)
    if command is not None and command.answers_json_to(args):
        return refuse_json(name, message, code)
    refuse(name, message)
    return code


def _path_problem(exc: OSError) -> str:
    """What is wrong with the path in ``exc`` and what to do, in one paragraph."""
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    what = f"cannot use {where}: {exc.strerror or exc}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"{what}. This user may not reach it: run it as the user the engine runs as (sudo"
            " -u USER wanderer-console ...), or pass the data directory (--data-dir) or config"
            " (--config) this user may use."
        )
    return f"{what}. Check --data-dir and --config (and [console] data_dir in the config)."


def _command(name: str) -> Command:
    return next(command for command in commands() if command.name == name)


# Allow `python -m wanderer_console.cli`
if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:] if len(sys.argv) > 1 else None))
