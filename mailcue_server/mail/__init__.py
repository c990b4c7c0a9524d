"""Pure mail logic: bytes in, values out. No database, no sockets, no clock reads."""
