"""Server: the console's own HTTP surface, served by uvicorn inside the engine's loop.

:class:`~.app.HttpSurface` (what the runtime starts) builds the Starlette app and serves it
through :class:`~.serve.EmbeddedServer` (a bind failure raises ``ServerStartError``). Routes:
health, readiness and metrics (:mod:`~.health`), the ingest API ``POST /api/v1/events``
(:mod:`~.ingest`, keys checked by :class:`~.tenants.TenantRegistry`) and Wanderer's signed
webhooks (:mod:`~.webhook`). :mod:`~.guard` bounds connections (read deadlines, a cap) and
:mod:`~.refusals` counts and throttles what is turned away. ``wanderer-console tenant ...``
provisions ingest tenants (:mod:`~.tenant_cli`).
"""
