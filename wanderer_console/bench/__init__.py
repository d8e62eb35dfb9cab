"""Benchmarks: each scenario runs the real console against the local simulator.

``wanderer-console bench`` (:mod:`~wanderer_console.bench.suite`, ``run_suite``) runs every
scenario in one go and compares the figures with an earlier run. Each scenario module also runs
on its own (``python -m wanderer_console.bench.<module>``) and exposes its ``run_*`` function:
:mod:`~.ingest` (``run_ingest_bench``), :mod:`~.latency` (``run_latency_bench``),
:mod:`~.delivery` (``run_delivery_bench``), :mod:`~.memory` (``run_memory_bench``,
``run_soak``), :mod:`~.startup` (``run_startup_bench``), plus :mod:`~.cache_bench`,
:mod:`~.http_overhead`, :mod:`~.ingest_api` and :mod:`~.ui_latency`. :mod:`~.harness`
(``console_over_simulator``, ``kill_frame``) is the rig they share.

This package imports neither Textual nor httpx: what needs them lives in
:mod:`wanderer_console.ui.latency`, :mod:`wanderer_console.ui.startup_probe` and
:mod:`wanderer_console.http.bench_support`.
"""
