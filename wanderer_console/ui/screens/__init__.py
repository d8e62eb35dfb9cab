"""The console's screens: dashboard, notification toggles, config pane and help.

:class:`~.dashboard.DashboardScreen` owns the once-a-second poll and renders the panels of
:mod:`wanderer_console.ui.widgets`; :class:`~.toggles.TogglesScreen` flips the notification
switches, global and per map; :class:`~.config.ConfigScreen` edits the config file with secrets
masked, validates it before saving and asks the engine to reload (``reload_config``);
:class:`~.help.HelpScreen` lists the key bindings. :class:`~wanderer_console.ui.app.WandererApp`
installs them.
"""
