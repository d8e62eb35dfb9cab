"""The console watching itself: alerts on its own state, and its per-minute trends.

:mod:`~.measure` reads what each alert rule measures from the running engine, :mod:`~.alerts`
turns measures past their thresholds into alerts (banner, history, metric, operations Discord),
:mod:`~.trends` keeps a per-minute record of throughput, latency and errors in the store.
"""
