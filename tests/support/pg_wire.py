"""Round trips to PostgreSQL, counted on the wire: the messages a connection's driver writes to
its socket. Each Sync or Query is answered by one ReadyForQuery: one round trip. Counted are
those that run something (a Query: BEGIN, COMMIT; a Sync after an Execute: a statement), not
a statement's preparation (Parse/Describe, once per statement and connection: asyncpg caches
it), so a count does not depend on which pooled connection a block got."""

from __future__ import annotations

import struct
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["RoundTrips", "count_round_trips"]

_QUERY, _EXECUTE, _SYNC = ord("Q"), ord("E"), ord("S")


class RoundTrips:
    """Reads the frontend messages a connection writes (after the startup exchange each is a
    type byte and a length that counts itself)."""

    def __init__(self) -> None:
        self.count = 0
        self._pending = bytearray()
        self._executed = False  # an Execute since the last Sync
        self._transport: Any = None

    def feed(self, data: Any) -> None:
        self._pending += bytes(data)
        while len(self._pending) >= 5:
            (length,) = struct.unpack("!I", self._pending[1:5])
            if len(self._pending) < 1 + length:
                return
            kind = self._pending[0]
            if kind == _EXECUTE:
                self._executed = True
            elif kind == _QUERY or (kind == _SYNC and self._executed):
                self.count += 1
                self._executed = False
            del self._pending[: 1 + length]

    def stop(self) -> None:
        """The transport's own ``write``/``writelines`` again."""
        if self._transport is not None:
            del self._transport.write, self._transport.writelines
            self._transport = None


async def count_round_trips(conn: AsyncConnection) -> RoundTrips:
    """Counting the round trips of ``conn``'s asyncpg connection from now until ``stop``."""
    driver = (await conn.get_raw_connection()).driver_connection
    transport = driver._transport
    counted = RoundTrips()
    write, writelines = transport.write, transport.writelines
    inside_lines = False  # asyncio's writelines may write through write: count once

    def counting(data: Any) -> None:
        if not inside_lines:
            counted.feed(data)
        write(data)

    def counting_lines(buffers: Any) -> None:
        nonlocal inside_lines
        buffers = list(buffers)
        for data in buffers:
            counted.feed(data)
        inside_lines = True
        try:
            writelines(buffers)
        finally:
            inside_lines = False

    transport.write, transport.writelines = counting, counting_lines
    counted._transport = transport
    return counted
