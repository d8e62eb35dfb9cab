"""``python -m wanderer_console`` is the ``wanderer-console`` command."""

from wanderer_console.cli import main

raise SystemExit(main())
