"""Outbound delivery: the worker that empties the durable queue of ``store/outbound.py``."""

from mailcue_server.workers.outbound.worker import OutboundWorker, RetrySchedule

__all__ = ["OutboundWorker", "RetrySchedule"]
