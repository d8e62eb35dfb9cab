"""The one TLS context every client of the engine verifies servers with.

httpx builds a context per client (and aiohttp per connector), each parsing certifi's whole
certificate bundle: about 1 MB of resident memory apiece, measured on the engine's VM, for the
same trust store. Shared, it is parsed once. A context is meant to be shared by many connections;
the engine's clients all run in one event loop.
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["shared_ssl_context"]


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when set), made on first use."""
    return httpx.create_ssl_context()
