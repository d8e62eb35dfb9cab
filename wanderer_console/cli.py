"""Command line: picks the TUI, headless mode, the demo, or a sub-command.

Textual is imported only when the TUI actually starts, so ``--no-ui`` and every sub-command run
without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from wanderer_console import __version__
from wanderer_console.bench import suite as bench_suite
from wanderer_console.config import audit_cli
from wanderer_console.config.loader import ConfigError, LoadedConfig, load_settings
from wanderer_console.delivery import notify_cli, outbox_cli
from wanderer_console.pipeline import diagnose, replay
from wanderer_console.server import tenant_cli
from wanderer_console.store.integrity import StorageError, ensure_data_dir
from wanderer_console.store.lock import DataDirInUseError

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_IN_USE = 3
"""Another engine owns the data directory."""

_EPILOG = """\
commands:
  (none)          open the operator console (TUI); --no-ui runs headless with JSON logs
  demo            run against the built-in simulator (no credentials needed)
  config check    validate a config file; prints file:line: key: problem, exits 1 if invalid
  config history  recorded configuration changes (JSON); config restore N brings one back
  tenant ACTION   ingest API tenants: add, list, rotate-key, disable, enable (JSON output)
  outbox ACTION   failed or held notifications: list, retry TARGET, drop (JSON output)
  replay          --since 2h --dry-run: print what stored events would notify (JSON lines)
  kill ID         run one killmail through every map's rules and explain the outcome
  notify test T   send a test message to target T (MAP or MAP:ROUTE), show Discord's answer
  bench           benchmark suite against the simulator (JSON); --quick, --compare OLD.json

configuration:
  TOML file from --config, else $WANDERER_CONSOLE_CONFIG, else
  $XDG_CONFIG_HOME/wanderer-console/config.toml; then WANDERER_CONSOLE_* variables
  (nested keys with __) and Wanderer Notifier's variables (MAP_URL, MAP_NAME, MAP_API_KEY,
  DISCORD_*, WEBSOCKET_URL, *_NOTIFICATIONS_ENABLED, ...). See config/wanderer.example.toml.

examples:
  wanderer-console demo --no-ui --duration 20
  wanderer-console --config /etc/wanderer-console/config.toml --no-ui
  wanderer-console config check --config config.toml
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by tests and the docs)."""
    parser = argparse.ArgumentParser(
        prog="wanderer-console",
        description="Operator console and Discord notification engine for Wanderer maps.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run against the built-in simulator",
        description="Start the simulator (fake map, killstream and Discord on loopback ports) "
        "and run the console against it.",
    )
    _common(demo)
    demo.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help="stop after this long and print a JSON summary on stdout",
    )
    demo.add_argument(
        "--rate", type=_positive_float, default=5.0, help="simulated events per second (default 5)"
    )
    demo.add_argument("--seed", type=int, default=1, help="simulator random seed (default 1)")

    notify_cli.register(sub)
    diagnose.register(sub)
    replay.add_parser(sub, _common)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser(
        "check", help="validate the configuration (file plus environment)"
    )
    check.add_argument("--config", type=Path, metavar="PATH", help="config file to check")
    tenant_cli.register(sub)
    outbox_cli.register(sub)
    bench_suite.register(sub)
    audit_cli.register(config_sub)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    default = argparse.SUPPRESS if parser.prog != "wanderer-console" else None
    parser.add_argument(
        "--config", type=Path, metavar="PATH", default=default, help="TOML config file"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=default,
        help="where the database lives (default: XDG data dir)",
    )
    parser.add_argument(
        "--no-ui",
        action="store_true",
        default=default,
        help="run headless: JSON log lines on stdout, stop on SIGINT/SIGTERM",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=default,
        help="render and log notifications without sending them",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=default,
        help="log threshold (default from config: INFO)",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _config_check(path: Path | None) -> int:
    try:
        loaded = load_settings(path, required=path is not None)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"config invalid: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_INVALID
    where = str(loaded.path) if loaded.path else "(no file; environment only)"
    warnings = [*map(str, loaded.warnings), *_config_warnings(loaded)]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    maps = ", ".join(loaded.settings.maps) or "none"
    print(f"config ok: {where}; maps: {maps}")
    return EXIT_OK


def _config_warnings(loaded: LoadedConfig) -> list[str]:
    settings = loaded.settings
    out = []
    if not settings.maps:
        out.append("no map configured: nothing will be received")
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


def _load(args: argparse.Namespace) -> LoadedConfig | None:
    try:
        loaded = load_settings(args.config, required=args.config is not None)
        for warning in loaded.warnings:  # secret hygiene; before the UI or JSON logs start
            print(f"warning: {warning}", file=sys.stderr)
        return loaded
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(
            "fix the configuration, or check it with: wanderer-console config check",
            file=sys.stderr,
        )
        return None


def _wants_tui(args: argparse.Namespace) -> bool:
    return not args.no_ui


def _no_tty_message() -> str:
    return (
        "wanderer-console: no terminal (stdin/stdout is not a TTY), so the console UI cannot "
        "start.\nRun headless with --no-ui (JSON logs on stdout), or attach with `ssh -t`."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wanderer-console`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except DataDirInUseError as exc:
        print(f"wanderer-console: {exc}", file=sys.stderr)
        return EXIT_IN_USE
    except StorageError as exc:
        # A database that cannot be used has a known fix: say it in one paragraph (the path and
        # what to do), not in a traceback that buries both.
        print(f"wanderer-console: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command; return its exit code."""
    if args.command == "tenant":
        return tenant_cli.run(args)
    if args.command == "outbox":
        return outbox_cli.run(args)
    if args.command == "bench":
        return bench_suite.run(args)
    if args.command == "config" and args.config_command in ("history", "restore"):
        return audit_cli.run(args)
    if args.command == "config":
        return _config_check(args.config)
    if args.command == "replay":
        return replay.run(args)
    if args.command == "kill":
        loaded = _load(args)
        if loaded is None:
            return EXIT_INVALID
        return diagnose.run(loaded.settings, args.killmail_id, args.hash)
    if args.command == "notify":
        loaded = _load(args)
        return EXIT_INVALID if loaded is None else notify_cli.run(loaded.settings, args.target)
    if _wants_tui(args) and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(_no_tty_message(), file=sys.stderr)
        return EXIT_USAGE
    from wanderer_console import launch  # deferred: keeps `config check` light

    if args.command == "demo":
        return launch.run_demo(
            duration=args.duration,
            rate=args.rate,
            seed=args.seed,
            data_dir=args.data_dir,
            tui=_wants_tui(args),
            dry_run=bool(args.dry_run),
            log_level=args.log_level or "INFO",
        )
    loaded = _load(args)
    if loaded is None:
        return EXIT_INVALID
    settings = loaded.settings
    if args.dry_run:
        settings.console.dry_run = True
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


# Allow `python -m wanderer_console.cli`
if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:] if len(sys.argv) > 1 else None))
