"""A real MCP server for the tests (FastMCP), run as its own process:

    python tests/support/mcp_server.py http PORT    # Streamable HTTP on 127.0.0.1:PORT/mcp
    python tests/support/mcp_server.py stdio

Besides honest tools it misbehaves on request: ``hang`` never answers, ``huge`` returns 5 MB,
``explode`` raises. Over HTTP, a call of ``malformed`` is answered with broken JSON and one of
``malformed_result`` with a JSON-RPC result of the wrong shape (by an ASGI layer in front of the
real server), and ``/moved/mcp`` redirects to ``localhost`` (off a 127.0.0.1-only allowlist).
Over stdio the same two write their broken answer straight to the pipe the client reads (past
the server's own writer) and never answer properly; ``malformed_bytes`` writes bytes that are
not UTF-8 at all, and ``die`` ends the process in the middle of the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.server.dependencies import get_http_headers

mcp = FastMCP("orders")
HUGE_BYTES = 5 * 1024 * 1024
STDIO = sys.argv[1:2] == ["stdio"]
# over stdio, a second descriptor on the pipe the client reads (the MCP server diverts fd 1 to
# stderr, against stray prints, and writes its answers to a private copy)
WIRE = os.dup(1) if STDIO else -1


async def _answer_raw(ctx: Context, line: bytes) -> str:
    """Over stdio: ``line`` (``{id}`` replaced by the request's id) is the call's only answer."""
    request_id = ctx.request_id  # the client's numeric id, as text here
    wire_id = json.dumps(int(request_id) if request_id.isdigit() else request_id).encode()
    os.write(WIRE, line.replace(b"{id}", wire_id) + b"\n")
    await asyncio.sleep(3600)
    return "woke up"


@mcp.tool
def lookup_order(order_id: str) -> str:
    """Where an order is."""
    return f"order {order_id}: shipped"


@mcp.tool
def key_fingerprint() -> str:
    """The first 12 hex digits of the SHA-256 of the key this server was given."""
    key = get_http_headers(include={"x-api-key"}).get("x-api-key") or os.environ.get("ORDERS_KEY")
    return hashlib.sha256((key or "").encode()).hexdigest()[:12] if key else "no key"


@mcp.tool
def environment_names() -> list[str]:
    """The names of this process's environment variables."""
    return sorted(os.environ)


@mcp.tool
async def hang() -> str:
    """Never answers."""
    await asyncio.sleep(3600)
    return "woke up"


@mcp.tool
def huge() -> str:
    """Five megabytes of text."""
    return "x" * HUGE_BYTES


@mcp.tool
def explode() -> str:
    """Raises."""
    raise RuntimeError("boom from the server")


@mcp.tool
async def malformed(ctx: Context) -> str:
    """Answered with broken JSON."""
    if STDIO:
        return await _answer_raw(ctx, b'{"jsonrpc": "2.0", "id": {id}, "resu')
    return "not reached over HTTP"


@mcp.tool
async def malformed_result(ctx: Context) -> str:
    """Answered with a result of the wrong shape."""
    if STDIO:
        return await _answer_raw(ctx, b'{"jsonrpc": "2.0", "id": {id}, "result": {"content": 7}}')
    return "not reached over HTTP"


@mcp.tool
async def malformed_bytes(ctx: Context) -> str:
    """Over stdio, answered with bytes that are not UTF-8 (and a NUL)."""
    if STDIO:
        return await _answer_raw(ctx, b"\xff\xfe\xc3\x28 {id} \x00\x80\x81 not utf-8 \xf0\x28\x8c")
    return "bytes"


@mcp.tool
def die() -> str:
    """Over stdio, the process ends in the middle of the call."""
    if STDIO:
        os._exit(3)
    return "alive"


def misbehaving(app: Any, port: int) -> Any:
    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        if scope["path"] == "/moved/mcp":
            location = f"http://localhost:{port}/mcp".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 307,
                    "headers": [(b"location", location), (b"content-length", b"0")],
                }
            )
            return await send({"type": "http.response.body", "body": b""})
        if scope["method"] != "POST":
            return await app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        name = (request.get("params") or {}).get("name") if isinstance(request, dict) else None
        reply: bytes | None = None
        if request.get("method") == "tools/call" and name == "malformed":
            reply = b'{"jsonrpc": "2.0", "id": ' + str(request.get("id")).encode() + b', "resu'
        elif request.get("method") == "tools/call" and name == "malformed_result":
            broken = {"jsonrpc": "2.0", "id": request.get("id"), "result": {"content": "oops"}}
            reply = json.dumps(broken).encode()
        if reply is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(reply)).encode()),
                    ],
                }
            )
            return await send({"type": "http.response.body", "body": reply})
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return wrapper


def main() -> None:
    if sys.argv[1] == "http":
        import uvicorn

        port = int(sys.argv[2])
        app = misbehaving(mcp.http_app(path="/mcp"), port)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    else:
        mcp.run(transport="stdio", show_banner=False)


if __name__ == "__main__":
    main()
