"""Every row of a person's, a page at a time: keyset paging, each page read in a short read
connection of its own (an export never holds one open while it writes the ZIP)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.sql.engine import Connection, read_connection

__all__ = ["PAGE", "keyset_pages"]

PAGE = 500

K = TypeVar("K")
Row = dict[str, Any]


async def keyset_pages(
    engine: AsyncEngine,
    read: Callable[[Connection, K | None], Awaitable[list[Row]]],
    key: Callable[[Row], K],
) -> AsyncIterator[list[Row]]:
    """The pages ``read`` returns, from the start (``None``) and then after the last row's
    ``key``, until an empty page."""
    after: K | None = None
    while True:
        async with read_connection(engine) as conn:
            rows = await read(conn, after)
        if not rows:
            return
        yield rows
        after = key(rows[-1])
