"""Page numbers to row offsets that every database engine takes.

SQLite and PostgreSQL both take a signed 64-bit ``OFFSET``; a REST ``page``
is any integer, so ``(page - 1) * page_size`` may not fit (a huge page gave
500). Past :data:`MAX_OFFSET` no table of ours has rows, so a larger offset
reads as that one: an empty page.
"""

MAX_OFFSET = 2**62


def offset_of(page: int, page_size: int) -> int:
    """Rows before ``page`` (numbered from 1), bounded by :data:`MAX_OFFSET`."""
    return min((page - 1) * page_size, MAX_OFFSET)
