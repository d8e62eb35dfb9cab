"""Dashboard panels: each renders one part of an engine snapshot.

The dashboard screen composes :class:`~.connections.ConnectionsTable`,
:class:`~.delivery.DeliveryTable` (with :class:`~.delivery.DeadTargetNotes`),
:class:`~.breakers.BreakersTable`, :class:`~.cache.CachePanel`, :class:`~.counters.CountersPanel`,
:class:`~.throughput.ThroughputChart`, :class:`~.activity.ActivityPanel` and the fault badges
(:class:`~.badges.FaultBadges`). :class:`~.keybar.KeyBar` shows the active screen's bindings.
Shared helpers: :class:`~.synced.SyncedTable` (redraws only the cells that changed) and
:mod:`~.colours` (theme colours for table cells).
"""
