"""Server-Sent Events on the wire: ``id``/``event``/``data`` frames and comment heartbeats."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from employeevirtual.analytics.metrics import OPEN_STREAMS
from employeevirtual.streaming.events import TurnEvent
from employeevirtual.streaming.log import encode_data

__all__ = ["HEARTBEAT", "encode", "sse_response", "wants_sse"]

HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def encode(event: TurnEvent) -> bytes:
    lines = []
    if event.id:
        lines.append(f"id: {event.id}")
    lines.append(f"event: {event.kind}")
    lines.append(f"data: {encode_data(event.data)}")  # JSON has no raw newlines
    return ("\n".join(lines) + "\n\n").encode()


def wants_sse(accept: str | None) -> bool:
    return bool(accept) and "text/event-stream" in (accept or "").lower()


def sse_response(
    body: AsyncIterator[bytes], *, headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        _counted(body), media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )


async def _counted(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``body``, counted in ``ev_open_streams`` while it is being sent (a client that goes
    away cancels the send, which ends the count too)."""
    OPEN_STREAMS.inc()
    try:
        async for chunk in body:
            yield chunk
    finally:
        OPEN_STREAMS.dec()
