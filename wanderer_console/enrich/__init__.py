"""Enrichment: names, tickers and universe facts from ESI, behind a cache.

:class:`~.esi.EsiClient` speaks ESI (bulk ``/universe/names``, entity GETs honouring ``Expires``
and ``ETag``, the error limit). :class:`~.cache.CacheFacade` keeps its answers per namespace
(versioned, single flight, warmed at start and persisted through the store), with its counters
in :mod:`~.cache_stats`. :class:`~.kills.KillEnricher` prefetches what a kill notification is
missing and fills its ``Names``; :class:`~.kills.CacheSystemInfo` answers the kill filters'
system facts from the cache. The runtime builds them and the pipeline's engine uses the
enricher; rendering only reads the cache synchronously (``peek_*``), never the network.
"""
