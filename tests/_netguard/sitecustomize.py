"""Loopback only: every look-up of, or connection to, a host that is not this machine is noted.

The tests speak to fakes on 127.0.0.1 alone. A setting left at its default (ESI, Discord's API,
zKillboard) would make an engine under test ask the real service: on a machine with a network,
a test would reach a real server (and depend on it), on one without, it would wait on DNS. This
file is imported by Python at start-up (``sitecustomize``) in every process the tests start,
because ``tests/conftest.py`` puts its folder first on ``PYTHONPATH``; the test process itself
installs the same hook (:func:`install`). A note goes to the file ``WANDERER_CONSOLE_TEST_NETLOG``
names, and the test that ran meanwhile fails (``tests/conftest.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

LOG_VARIABLE = "WANDERER_CONSOLE_TEST_NETLOG"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""})
_installed = False


def _host(event: str, args: tuple[Any, ...]) -> object:
    if event == "socket.getaddrinfo":
        return args[0]
    address = args[1]
    return address[0] if isinstance(address, tuple) and address else None  # a Unix socket: None


def _name(host: object) -> str | None:
    """The host asked for, as text; ``None`` when there is none (a Unix socket)."""
    if isinstance(host, bytes):
        return host.decode(errors="replace")
    return host if isinstance(host, str) else None


def _foreign(host: str | None) -> bool:
    if host is None:
        return False
    return host not in LOOPBACK and not host.startswith("127.") and not host.endswith(".localhost")


def install() -> None:
    """Note every foreign host this process asks for in the file ``WANDERER_CONSOLE_TEST_NETLOG``
    names when it is asked (nothing without it); once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    argv = " ".join(sys.argv)[:160]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.getaddrinfo" and event != "socket.connect":
            return
        host = _name(_host(event, args))
        path = os.environ.get(LOG_VARIABLE)
        if path and _foreign(host):
            with open(path, "a", encoding="utf-8") as log:
                log.write(f"{event} {host!r} (pid {os.getpid()}: {argv})\n")

    sys.addaudithook(hook)


install()
