"""Several instances on one PostgreSQL database: who works which map (:class:`MapLeases`)."""

from wanderer_console.cluster.leases import MapLeases, instance_info, resource_of

__all__ = ["MapLeases", "instance_info", "resource_of"]
