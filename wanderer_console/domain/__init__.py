"""Domain models: map events, killmails, notifications, EVE ids. No I/O lives here.

Pure types and functions every other package shares (import-linter keeps I/O out):

- :mod:`~.map_events`: ``MapEnvelope``, the payload models and ``parse_payload``;
- :mod:`~.killmail`: ``Killmail`` (with ``Victim`` and ``Attacker``), normalised from the wire;
- :mod:`~.notification`: ``Notification``, ``NotificationType``, ``Target``, ``TargetKind``;
- :mod:`~.ingest_event`: ``IngestEvent``, an event posted through the ingest API;
- :mod:`~.tracking`: ``TrackingIndex``, which maps watch which systems and characters;
- :mod:`~.eve`: id ranges, security and space classes (``security_class``, ``space_facts``);
- :mod:`~.discord_limits`: Discord's message limits (``enforce_limits``, ``build_message``,
  ``escape_markdown``) and the value checks the config runs at load;
- :mod:`~.clock`: the one ``Clock`` (monotonic, wall time, sleep): ``SystemClock`` and, for
  tests, ``FrozenClock``.
"""
