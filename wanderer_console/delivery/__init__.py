"""Delivery: the durable outbox to Discord, and the embeds the notifications carry.

:class:`~.dispatcher.Dispatcher` (given each target as a ``ResolvedTarget``) reads due outbox
rows, packs and paces them per channel (:mod:`~.pacing`) and sends them through
:class:`~.discord.DiscordSender`. :mod:`~.outcomes` applies :class:`~.policy.DeliveryPolicy` to
every answer (retry, pause, fail, dead target); :mod:`~.targets` keeps dead targets and recovers
rows left in flight by the last stop. :mod:`~.embeds` renders kills, systems, characters and
rallies for the pipeline, with the helpers of :mod:`~.formatting` (whose ``Names`` the
enrichment layer fills). The ``notify test`` and ``outbox list|retry|drop`` commands are
:mod:`~.notify_cli` and :mod:`~.outbox_cli`.
"""
