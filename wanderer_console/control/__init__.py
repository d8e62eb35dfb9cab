"""The engine's control surface: the console's operations in-process and over a socket.

:mod:`.local` is the engine in this process as a
:class:`~wanderer_console.console_api.ConsoleBackend`; :mod:`.server` serves that backend on a
Unix socket in the data directory (and optionally TCP with a token) for ``wanderer-console
attach``; :mod:`.token` keeps the TCP token (hashed).
"""
