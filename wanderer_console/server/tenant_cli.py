"""``wanderer-console tenant add|list|rotate-key|disable|enable``: ingest API tenant provisioning.

Every action prints one JSON object on stdout; a refusal too (``{"error": ..., "command":
"tenant add", "exit_code": 1, "database": ...}``), after its line on stderr (exit 1). A key is
printed only by ``add``, ``rotate-key`` and ``enable --rotate-key``, once: the database keeps a
digest, never the key.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wanderer_console.command import EXIT_INVALID, EXIT_OK, Command, refuse_json
from wanderer_console.config.paths import store_arguments
from wanderer_console.server.tenants import TenantError, TenantRegistry

__all__ = ["COMMAND", "run"]

_DB_NAME = "wanderer-console.db"


def add_arguments(tenant: argparse.ArgumentParser) -> None:
    """The ``tenant`` command's actions: add, list, rotate-key, disable, enable."""
    actions = tenant.add_subparsers(dest="tenant_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("add", "create a tenant and print its key (shown once)"),
        ("list", "list tenants (never their keys)"),
        (
            "rotate-key",
            "replace an enabled tenant's key and print the new one (shown once);"
            " a disabled tenant is refused: use enable --rotate-key",
        ),
        ("disable", "refuse every request made with the tenant's key (until enable)"),
        (
            "enable",
            "accept a disabled tenant's requests again; its old key works again unless"
            " --rotate-key",
        ),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        if name != "list":
            action.add_argument("slug", help="tenant slug (the map key, e.g. 'home')")
        if name == "enable":
            action.add_argument(
                "--rotate-key",
                action="store_true",
                help="enable under a new key (printed once); the old key never works again",
            )
        store_arguments(action)


def _data_dir(args: argparse.Namespace) -> tuple[Path, set[str] | None]:
    """The data directory and the configured map keys (None when the config cannot load)."""
    from wanderer_console.config.loader import ConfigError, load_settings

    maps: set[str] | None = None
    configured_dir = None
    try:
        loaded = load_settings(args.config, required=args.config is not None)
    except ConfigError:
        loaded = None
    if loaded is not None:
        maps = set(loaded.settings.maps)
        configured_dir = loaded.settings.console.data_dir
    if args.data_dir is not None:
        return args.data_dir, maps
    if configured_dir is not None:
        return configured_dir, maps
    from wanderer_console.config.paths import default_data_dir

    return default_data_dir(), maps


def _emit(payload: dict[str, Any]) -> None:
    # Flushed: a key is committed only once its line is out (a reader that went away raises
    # here, and the change is rolled back), not when the interpreter flushes at exit.
    print(json.dumps(payload, sort_keys=True), flush=True)


def run(args: argparse.Namespace) -> int:
    """Carry out one ``tenant`` action; return the exit code."""
    from wanderer_console.config.paths import command_store, unknown_location

    name = f"tenant {args.tenant_command}"
    unknown = unknown_location(args)
    if unknown is not None:
        return refuse_json(name, unknown, EXIT_INVALID)
    data_dir, maps = _data_dir(args)
    location = command_store(args, data_dir)
    registry = TenantRegistry(location)
    action = args.tenant_command

    def finish(out: dict[str, Any]) -> dict[str, Any]:
        if action in ("add", "rotate-key") and maps is not None:
            out["map_configured"] = args.slug in maps
            if args.slug not in maps:
                out["warning"] = (
                    f"no [maps.{args.slug}] in the configuration: events are stored"
                    " but nothing is routed to Discord"
                )
        out["database"] = str(location)  # which store (a PostgreSQL URL's password masked)
        return out

    def show(**fields: Any) -> Callable[[str], None]:
        """Print the key with ``fields``, before the registry commits it: a key printed to no
        one (a reader gone) is not stored, and the key in use keeps working."""
        return lambda key: _emit(finish({"tenant": args.slug, **fields, "key": key}))

    try:
        if action == "list":
            _emit(finish({"tenants": [t.as_json() for t in registry.list()]}))
        elif action == "add":
            registry.add(args.slug, show=show(note="this key is shown once; store it now"))
        elif action == "rotate-key":
            registry.rotate_key(args.slug, show=show(note=_ROTATED))
        elif action == "enable" and args.rotate_key:
            registry.enable(args.slug, rotate=True, show=show(enabled=True, note=_ROTATED))
        elif action == "enable":
            registry.enable(args.slug)
            note = (
                "the key it had before works again; if it may have leaked, run"
                f" rotate-key {args.slug}"
            )
            _emit(finish({"tenant": args.slug, "enabled": True, "note": note}))
        else:
            registry.disable(args.slug)
            _emit(finish({"tenant": args.slug, "enabled": False}))
        return EXIT_OK
    except TenantError as exc:
        return refuse_json(name, str(exc), EXIT_INVALID, database=str(location))
    finally:
        registry.close()


_ROTATED = "the old key no longer works; this key is shown once"


COMMAND = Command(
    "tenant",
    help="ingest API tenants (keys for POST /api/v1/events)",
    description="Provision tenants of the ingest API. Output is JSON. A disabled tenant"
    " keeps its key; rotate-key refuses it, enable (--rotate-key) brings it back.",
    add_arguments=add_arguments,
    run=run,
    answers_json=True,
)
