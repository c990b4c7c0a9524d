"""Live mail events: the EventBus Protocol (``bus``), in-process and Redis implementations."""
