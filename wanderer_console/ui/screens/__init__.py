"""The console's screens: dashboard, notification toggles, config pane and help.

:class:`~.dashboard.DashboardScreen` follows the backend's frames and renders the panels of
:mod:`wanderer_console.ui.widgets`; :class:`~.toggles.TogglesScreen` flips the notification
switches, global and per map; :class:`~.config.ConfigScreen` edits the engine's config file with
secrets masked and has the engine validate, save and apply it; :class:`~.help.HelpScreen` lists
the key bindings. :class:`~wanderer_console.ui.app.WandererApp` installs them.
"""
