"""The export's ZIP, built page by page (500 rows at a time; the ZIP is written by a worker
thread), so memory stays flat however many messages the person has: ``make bench`` measures it
at 1,000 and 100,000 messages. One JSON Lines file per collection, one Markdown file per
conversation, and ``manifest.json``."""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.people.registry import PersonalDataRegistry
from employeevirtual.stores.sql.engine import read_connection
from employeevirtual.stores.sql.person_rows import PersonRowsReader

__all__ = ["SCHEMA_VERSION", "build_export"]

SCHEMA_VERSION = 1
PAGE = 500


def _line(record: dict[str, Any]) -> bytes:
    return to_json(record, serialize_unknown=True) + b"\n"


@dataclass
class _Zip:
    """The archive, touched only from a worker thread (one call at a time)."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    _zip: zipfile.ZipFile | None = None
    _entry: IO[bytes] | None = None

    def open(self) -> None:
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED)

    def begin(self, name: str) -> None:
        assert self._zip is not None
        self.end()
        self._entry = self._zip.open(name, "w", force_zip64=True)

    def write(self, chunks: Iterable[bytes]) -> None:
        assert self._entry is not None
        for chunk in chunks:
            self._entry.write(chunk)

    def end(self) -> None:
        if self._entry is not None:
            self._entry.close()
            self._entry = None

    def close(self) -> None:
        self.end()
        if self._zip is not None:
            self._zip.close()
            self._zip = None


class _Writer:
    def __init__(self, path: Path) -> None:
        self.zip = _Zip(path)

    async def __aenter__(self) -> _Writer:
        await asyncio.to_thread(self.zip.open)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.to_thread(self.zip.close)

    async def jsonl(self, name: str, pages: AsyncIterator[list[dict[str, Any]]]) -> int:
        await asyncio.to_thread(self.zip.begin, f"{name}.jsonl")
        count = 0
        async for page in pages:
            count += len(page)
            await asyncio.to_thread(self.zip.write, [_line(r) for r in page])
        await asyncio.to_thread(self.zip.end)
        self.zip.counts[name] = count
        return count

    async def text(self, name: str, chunks: AsyncIterator[str]) -> None:
        await asyncio.to_thread(self.zip.begin, name)
        async for chunk in chunks:
            await asyncio.to_thread(self.zip.write, [chunk.encode()])
        await asyncio.to_thread(self.zip.end)


async def _batched(docs: AsyncIterator[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    async for doc in docs:
        page.append(doc)
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


def _markdown_header(conversation: dict[str, Any]) -> str:
    title = conversation.get("title") or "(untitled)"
    return (
        f"# {title}\n\n"
        f"- conversation: `{conversation['id']}`\n"
        f"- agent: `{conversation['agent_id']}`\n"
        f"- status: {conversation['status']}\n"
        f"- created: {conversation['created_at'].isoformat()}\n"
        f"- messages: {conversation['message_count']}\n\n"
    )


def _markdown_message(message: dict[str, Any]) -> str:
    who = {"user": "You", "agent": "Agent", "error": "Error"}.get(
        message["message_type"], message["message_type"]
    )
    at = message["created_at"].isoformat()
    body = str(message["content"]).replace("\n", "\n> ") if who == "Error" else message["content"]
    extra = ""
    meta = message.get("message_metadata") or {}
    for key in ("tool_calls", "sources"):
        if meta.get(key):
            extra += f"\n\n<details><summary>{key}</summary>\n\n```json\n"
            extra += to_json(meta[key], indent=2).decode() + "\n```\n</details>"
    return f"## {who} · #{message['seq']} · {at}\n\n{body}{extra}\n\n"


async def build_export(
    engine: AsyncEngine,
    registry: PersonalDataRegistry,
    user_id: UUID,
    path: Path,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Write the person's ZIP to ``path``; returns the manifest."""

    async def owned(table: str) -> AsyncIterator[list[dict[str, Any]]]:
        after: UUID | None = None
        while True:
            async with read_connection(engine) as conn:
                rows = await PersonRowsReader(conn).owned(table, user_id, after=after, limit=PAGE)
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    async def every_message() -> AsyncIterator[list[dict[str, Any]]]:
        async for conversations in owned("conversations"):
            for conversation in conversations:
                async for page in messages_of(conversation["id"]):
                    yield page

    async def messages_of(conversation_id: UUID) -> AsyncIterator[list[dict[str, Any]]]:
        seq = 0
        while True:
            async with read_connection(engine) as conn:
                rows = await PersonRowsReader(conn).messages(
                    conversation_id, after_seq=seq, limit=PAGE
                )
            if not rows:
                return
            yield rows
            seq = rows[-1]["seq"]

    async def audit() -> AsyncIterator[list[dict[str, Any]]]:
        after: tuple[datetime, UUID] | None = None
        while True:
            async with read_connection(engine) as conn:
                rows = await PersonRowsReader(conn).audit_about(user_id, after=after, limit=PAGE)
            if not rows:
                return
            yield rows
            after = (rows[-1]["created_at"], rows[-1]["id"])

    async def feedback() -> AsyncIterator[list[dict[str, Any]]]:
        after: UUID | None = None
        while True:
            async with read_connection(engine) as conn:
                rows = await PersonRowsReader(conn).feedback(user_id, after=after, limit=PAGE)
            if not rows:
                return
            yield rows
            after = rows[-1]["message_id"]

    async def profile() -> AsyncIterator[list[dict[str, Any]]]:
        async with read_connection(engine) as conn:
            row = await PersonRowsReader(conn).profile(user_id)
        if row is not None:
            yield [row]

    async with _Writer(path) as out:
        await out.jsonl("profile", profile())
        await out.jsonl("agents", owned("agents"))
        await out.jsonl("conversations", owned("conversations"))
        await out.jsonl("messages", every_message())
        await out.jsonl("feedback", feedback())
        await out.jsonl("knowledge_bases", owned("knowledge_bases"))
        await out.jsonl("knowledge_documents", owned("knowledge_documents"))
        await out.jsonl("api_keys", owned("api_keys"))
        await out.jsonl("audit_log", audit())
        for source in registry.exported:
            await out.jsonl(source.name, _batched(source.export(user_id)))
        async for conversations in owned("conversations"):
            for conversation in conversations:

                async def markdown(c: dict[str, Any] = conversation) -> AsyncIterator[str]:
                    yield _markdown_header(c)
                    async for page in messages_of(c["id"]):
                        yield "".join(_markdown_message(m) for m in page)

                await out.text(f"conversations/{conversation['id']}.md", markdown())
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "user_id": str(user_id),
            "created_at": now.isoformat(),
            "format": "one JSON object per line; times in ISO 8601 UTC",
            "collections": {name: f"{name}.jsonl" for name in out.zip.counts},
            "counts": dict(out.zip.counts),
            "markdown": "conversations/<conversation id>.md",
        }
        await asyncio.to_thread(out.zip.begin, "manifest.json")
        await asyncio.to_thread(out.zip.write, [to_json(manifest, indent=2)])
    return manifest
