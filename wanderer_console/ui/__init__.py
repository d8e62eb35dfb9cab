"""The operator console: a Textual app over the runtime's snapshots (the only Textual user).

:func:`~.app.run_tui` is the launcher's entry point; :func:`~.app.build_app` builds
:class:`~.app.WandererApp` over any object with ``snapshot()`` (the runtime, or a test fake).
The state behind the screens is Textual-free and unit-tested: :mod:`~.model` (snapshot source,
throughput, activity), :mod:`~.faults`, :mod:`~.flags` (notification switches written back to the
TOML file), :mod:`~.config_text` (masked config editing), :mod:`~.themes` and :mod:`~.clock`.
Screens are in :mod:`~.screens`, panels in :mod:`~.widgets`, the command palette in
:mod:`~.commands`. For the benchmarks: :func:`~.latency.measure_screen_switches` and
:func:`~.startup_probe.measure_tui_startup`.
"""
