"""Pipeline: from a queued item to stored events and outbox notifications.

:class:`~.queue.BoundedPriorityQueue` (built by ``item_queue``) sits between the sources and
the :class:`~.engine.Engine`, which de-duplicates each item, applies map events to the tracking
(:mod:`~.map_updates`, with the runtime's ``MapHooks``), runs the rules (:mod:`~.rules`, kill
filters over :mod:`~.kill_facts`), mutes history at start-up (:mod:`~.startup`) and renders the
notifications (posted events through :mod:`~.custom`). :mod:`~.writer` writes a batch's events,
notifications and stream cursors in one transaction. The same decisions serve the ``replay``
(:mod:`~.replay`) and ``kill`` (:mod:`~.diagnose`) commands.
"""
