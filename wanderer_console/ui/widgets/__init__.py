"""Dashboard panels: each renders one part of a runtime snapshot."""
