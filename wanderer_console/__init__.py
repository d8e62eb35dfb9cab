"""Wanderer Console: operator console and Discord notification engine for Wanderer maps."""

__version__ = "0.1.0"
