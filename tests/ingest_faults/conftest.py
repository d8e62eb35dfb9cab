"""Shared helpers for the ingestion fault-injection tests (real sockets on 127.0.0.1)."""

from __future__ import annotations

from wanderer_console.config.model import Settings


def map_settings(url: str, *, tenant: str = "cut", api_key: str = "key") -> Settings:
    """One map with a primary webhook, no start-up suppression, nothing else enabled."""
    return Settings.model_validate(
        {
            "console": {"startup_suppression_seconds": 0, "dry_run": True},
            "esi": {"enabled": False},
            "maps": {
                tenant: {
                    "url": url,
                    "api_key": api_key,
                    "name": "Fault Map",
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/token"},
                }
            },
        }
    )
