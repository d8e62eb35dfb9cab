"""The console's screens: dashboard, notification toggles and help."""
