"""Command line entry point (placeholder until the CLI lands)."""


def main() -> int:
    """Run the console."""
    return 0
