"""``wanderer-console attach``: the operator console on an engine that runs elsewhere.

The engine runs 24/7 (``--no-ui`` under systemd); an operator connects with ``ssh -t host
wanderer-console attach`` and gets the same console as a local run: every panel, the toggles, the
config pane, pause/resume. Quitting it (or losing the SSH session) stops nothing: the console is
only a client of the engine's control socket (see :mod:`wanderer_console.control.server`).

Also ``wanderer-console control token``: the bearer token for ``[control] listen`` (TCP).

Both find the engine's data directory through ``--data-dir``, else the configuration; when that
does not load they say so and ask for ``--data-dir`` (not the default data directory's engine).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import stat
import sys
from pathlib import Path
from urllib.parse import urlsplit

from wanderer_console.command import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Command, refuse
from wanderer_console.config.paths import command_data_dir, unknown_location
from wanderer_console.console_api import BackendError
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.control.token import TOKEN_FILE, new_token
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.store.lock import lock_holder

__all__ = ["ATTACH_COMMAND", "TOKEN_COMMAND", "connect_backend"]

EXIT_HANGUP = 128 + signal.SIGHUP


def _attach_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the running engine's data directory: attach through its control.sock"
        " (default: from --config, else the XDG data dir)",
    )
    where.add_argument("--socket", type=Path, metavar="PATH", help="the control socket itself")
    where.add_argument(
        "--url",
        metavar="URL",
        help="an engine serving [control] listen over TCP, e.g. http://127.0.0.1:8788"
        " (needs --token-file)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="file holding the token printed by `wanderer-console control token` (with --url)",
    )
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="config file, only to find the data dir"
    )


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="the engine's data dir")
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="config file, only to find the data dir"
    )


class AttachError(Exception):
    """Why the console cannot attach; the message says what to do. A hint on a line of its own
    (what to start, what to restart) is printed after ``; `` on the refusal's one line
    (:func:`~wanderer_console.command.one_line`)."""


def _read_token(path: Path) -> str:
    """The token in ``path``: one word of printable ASCII, as `control token` prints it.

    Anything else is refused here, its content never shown: a file that is not text raised a
    traceback, and one with a second line reached the HTTP layer, whose error quoted the whole
    header, token and all, on the operator's screen."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AttachError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    token = raw.strip()
    if not token:
        raise AttachError(f"the token file {path} is empty")
    if not all(0x21 <= byte <= 0x7E for byte in token):
        raise AttachError(
            f"the token file {path} does not hold a token (one line of printable ASCII, no"
            " spaces): save the line `wanderer-console control token` printed, alone"
        )
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        print(
            f"wanderer-console attach: warning: {path} is readable by other users;"
            f" `chmod 600 {path}`",
            file=sys.stderr,
        )
    return token.decode("ascii")


def _engine_url(url: str) -> str:
    """``url`` when it can name an engine's TCP endpoint; else :class:`AttachError` saying
    what to give.

    Checked before any connection: an unclosed IPv6 bracket or a port past 65535 surfaced as a
    traceback from the HTTP layer, and credentials in the URL were echoed in every message (the
    token file is the credential; a URL holding one is never repeated)."""
    shown = "the URL given" if "@" in url else url
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535"
        problem = str(exc)
    else:
        if not parts.scheme:
            problem = "no http:// in front"
        elif parts.scheme not in ("http", "https"):
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        elif not parts.hostname:
            problem = "no host"
        elif parts.username is not None or parts.password is not None:
            problem = "it holds credentials; the token file is what authenticates"
        elif port == 0:
            problem = "port 0"
    if problem is not None:
        raise AttachError(
            f"--url {shown} is not an engine address ({problem}): give http://HOST:PORT, the"
            " engine's [control] listen, e.g. http://127.0.0.1:8788"
        )
    return url


def backend_for(args: argparse.Namespace) -> RemoteBackend:
    """The backend the arguments name (nothing is connected yet)."""
    if args.url:
        if args.token_file is None:
            raise AttachError("--url needs --token-file (the engine's TCP endpoint wants a token)")
        return RemoteBackend(
            url=_engine_url(args.url),
            token=_read_token(args.token_file),
            token_file=args.token_file,
        )
    if args.token_file is not None:
        raise AttachError("--token-file goes with --url (the local socket needs no token)")
    if args.socket is not None:
        return RemoteBackend(socket_path=args.socket)
    unknown = unknown_location(args)
    if unknown is not None:
        raise AttachError(unknown)
    return RemoteBackend(socket_path=command_data_dir(args) / SOCKET_NAME)


async def connect_backend(backend: RemoteBackend) -> None:
    """The handshake, with the refusal worded for the operator (:class:`AttachError`)."""
    try:
        await backend.connect()
    except BackendError as exc:
        message = str(exc)
        path = backend.socket_path
        # No socket, or one a crashed engine left: whether an engine holds the directory says
        # what to do (start one, or restart the one that serves no socket).
        unserved = ("nothing to attach to", "no engine is listening")
        if path is not None and message.startswith(unserved):
            holder = lock_holder(path.parent)
            if holder is None:
                message += (
                    f"\nno engine is running with data directory {path.parent}; start one:"
                    f" `wanderer-console --no-ui --data-dir {path.parent}`"
                    " (or `systemctl start wanderer-console`)"
                )
            else:
                message += (
                    f"\nthe engine holding {path.parent} ({holder.describe()}) serves no"
                    " control socket: is `[control] socket = false` set, or is it an older"
                    " version? Restart it with this version."
                )
        raise AttachError(message) from None


def _attach(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        refuse("attach", "no terminal (stdin/stdout is not a TTY); use `ssh -t`.")
        return EXIT_USAGE
    try:
        backend = backend_for(args)
    except AttachError as exc:
        refuse("attach", str(exc))
        return EXIT_USAGE
    return asyncio.run(_run(backend))


async def _run(backend: RemoteBackend) -> int:
    # The console's own log lines must not scribble over the screen; the engine's arrive in
    # the frames.
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("wanderer_console").propagate = False
    try:
        await connect_backend(backend)
    except AttachError as exc:
        await backend.aclose()
        refuse("attach", str(exc))
        return EXIT_INVALID
    from wanderer_console.ui.app import run_app  # Textual only once there is an engine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # A dropped SSH session: nothing of ours needs a clean stop (the engine runs elsewhere),
    # and Textual cannot shut down without its terminal.
    loop.add_signal_handler(signal.SIGHUP, os._exit, EXIT_HANGUP)
    try:
        return await run_app(backend, stop)
    finally:
        await backend.aclose()


def _token(args: argparse.Namespace) -> int:
    unknown = unknown_location(args)
    if unknown is not None:
        refuse("control token", unknown)
        return EXIT_INVALID
    data_dir = command_data_dir(args)
    if not data_dir.is_dir():
        # A mistyped directory names no engine: a token made there (the directory created for
        # it) would be read by none, and the engine's TCP endpoint would still refuse.
        refuse(
            "control token",
            f"no engine data directory at {data_dir}; pass the one the engine runs on with"
            " --data-dir (or --config naming its [console] data_dir). The engine creates it at"
            " its first start.",
        )
        return EXIT_INVALID
    new_token(data_dir, show=lambda token: print(token, flush=True))
    print(
        f"\nThe control token for the engine with data directory {data_dir}. It is shown only"
        f" now; {data_dir / TOKEN_FILE} keeps its hash. Save it in a file only you can read"
        " (chmod 600) and attach with `wanderer-console attach --url http://HOST:PORT"
        " --token-file FILE`. Any earlier token stops working now. A running engine that"
        " serves [control] listen accepts the new one at once; one that started before any"
        " token existed serves no TCP until it restarts.",
        file=sys.stderr,
    )
    return EXIT_OK


ATTACH_COMMAND = Command(
    "attach",
    help="open the console on an engine that is already running (quitting leaves it running)",
    description="Open the operator console on a running engine: through the control socket in"
    " its data directory (the engine's user only), or over TCP with a token. The engine keeps"
    " running when the console quits; when the engine restarts, the console reconnects by"
    " itself. Over SSH: `ssh -t HOST wanderer-console attach`.",
    add_arguments=_attach_arguments,
    run=_attach,
)
TOKEN_COMMAND = Command(
    "control token",
    help="make the token for [control] listen (TCP); shown once, stored hashed",
    description="Make a new bearer token for the engine's TCP control endpoint, print it once"
    " and store only its hash in the data directory (replacing any earlier token).",
    add_arguments=_token_arguments,
    run=_token,
)
