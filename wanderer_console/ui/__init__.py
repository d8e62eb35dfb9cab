"""The operator console: a Textual app over a :class:`~wanderer_console.console_api.ConsoleBackend`
(the only Textual user).

:func:`~.app.run_app` is the launcher's entry point (the engine in this process, or one attached
over its control endpoint); :func:`~.app.build_app` builds :class:`~.app.WandererApp` over any
backend (a test fake too). The state behind the screens is Textual-free and unit-tested:
:mod:`~.model` (what the console knows of its engine, throughput, activity), :mod:`~.faults`,
:mod:`~.flags` (the notification switches as the snapshot has them), :mod:`~.themes` and
:mod:`~.clock`. Screens are in :mod:`~.screens`, panels in :mod:`~.widgets`, the command palette in
:mod:`~.commands`. For the benchmarks: :func:`~.latency.measure_screen_switches` and
:func:`~.startup_probe.measure_tui_startup`.
"""
