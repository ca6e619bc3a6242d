"""PostgreSQL's wire, seen from a test: round trips counted (``count_round_trips``), and a
statement's answer lost after the server ran it (``lose_next_answer``).

Round trips are counted on the messages a connection's driver writes to
its socket. Each Sync or Query is answered by one ReadyForQuery: one round trip. Counted are
those that run something (a Query: BEGIN, COMMIT; a Sync after an Execute: a statement), not
a statement's preparation (Parse/Describe, once per statement and connection: asyncpg caches
it), so a count does not depend on which pooled connection a block got."""

from __future__ import annotations

import struct
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["RoundTrips", "count_round_trips", "lose_next_answer"]

_QUERY, _EXECUTE, _SYNC = ord("Q"), ord("E"), ord("S")
_BIND_COMPLETE, _READY = ord("2"), ord("Z")  # the server's


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


class _AnswerLost:
    """Stands between a connection's transport and asyncpg's protocol: the server's messages
    are passed on until a BindComplete (a statement's execution begins; its preparation has
    none). From there on nothing is: at that round trip's ReadyForQuery (the server ran the
    statement and, in autocommit, committed it) the connection is aborted, and the driver
    sees it closed in the middle of the operation."""

    def __init__(self, protocol: Any, transport: Any) -> None:
        self.protocol = protocol
        self.transport = transport
        self.pending = bytearray()
        self.dropping = False

    def data_received(self, data: Any) -> None:
        self.pending += bytes(data)
        passed = bytearray()
        while len(self.pending) >= 5:
            (length,) = struct.unpack("!I", self.pending[1:5])
            if len(self.pending) < 1 + length:
                break
            kind, message = self.pending[0], bytes(self.pending[: 1 + length])
            del self.pending[: 1 + length]
            self.dropping = self.dropping or kind == _BIND_COMPLETE
            if not self.dropping:
                passed += message
            elif kind == _READY:
                self.pending.clear()
                self.transport.abort()
                break
        if passed:
            self.protocol.data_received(bytes(passed))

    def __getattr__(self, name: str) -> Any:  # connection_lost, eof_received, …
        return getattr(self.protocol, name)


async def lose_next_answer(conn: AsyncConnection) -> None:
    """The answer to the next statement ``conn``'s asyncpg connection runs is lost: the server
    runs it, the connection drops before the driver reads a byte of its result."""
    driver = (await conn.get_raw_connection()).driver_connection
    transport = driver._transport
    transport.set_protocol(_AnswerLost(transport.get_protocol(), transport))
