"""The console's app, typed, for the screens that call its operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from wanderer_console.ui.app import WandererApp

__all__ = ["OnWanderer"]


class OnWanderer:
    """Mixed into a screen, before ``Screen``: :attr:`wanderer`, the app as a ``WandererApp``."""

    @property
    def wanderer(self) -> WandererApp:
        """The app, typed."""
        from wanderer_console.ui.app import WandererApp

        app = cast(DOMNode, self).app
        assert isinstance(app, WandererApp)
        return app
