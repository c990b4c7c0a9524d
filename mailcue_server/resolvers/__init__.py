"""The behaviour of both APIs: plain async functions taking a :class:`Context`."""
