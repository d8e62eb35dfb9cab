"""Ingest: the sources that read the map, the killstream and zKillboard into the pipeline.

Every source parses what it reads into domain models and puts an :mod:`~.items` item
(``MapEventItem``, ``KillItem``; the HTTP ingest API queues ``CustomItem``) on the pipeline's
queue: :class:`~.map_sse.MapSseSource` (a map's SSE stream, resumed from the store's cursor)
after :class:`~.map_rest.MapRestClient`'s initial load of the map;
:class:`~.killstream.KillstreamSource` (the wanderer-kills WebSocket, over :mod:`~.phoenix`);
:class:`~.fallback.FallbackPoller` (REST polling while that socket is down, backfill of every
gap); :class:`~.r2z2.R2z2Source` (zKillboard's R2Z2 feed). Shared parts:
:class:`~.health.ConnectionHealth` (what the snapshot and the UI show per source),
:class:`~.recent.RecentIds` (repeats dropped before parsing) and :class:`~.backoff.Backoff`.
"""
