"""Domain models: map events, killmails, notifications, EVE ids. No I/O lives here."""
