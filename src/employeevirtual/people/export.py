"""Export (GDPR art. 15 and 20, LGPD art. 18): everything about a person in one ZIP.

Machine-readable: one JSON Lines file per collection (``profile``, ``agents``,
``conversations``, ``messages`` with their tool calls, sources and usage in ``metadata``,
``feedback``, ``knowledge_bases`` and ``knowledge_documents`` (each row's ``original`` names
its file in the ZIP, ``knowledge/<base id>/<document id>/<file name>``, as uploaded),
``api_keys`` without the key, ``audit_log`` rows about the person, and every registered
source: ``usage`` (raw runs), ``usage_daily`` (rollups), ``user_activities``, later
knowledge, memory, feedback), with ``manifest.json`` (schema version, counts, time).
Human-readable: ``conversations/<id>.md``, one Markdown file per conversation.

Built in the background into the data directory, page by page (500 rows at a time; the ZIP
is written by a worker thread), so memory stays flat however many messages the person has:
``make bench`` measures it at 1,000 and 100,000 messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.errors import Conflict, Forbidden, NotFound, RateLimited
from employeevirtual.knowledge.files import FileStore
from employeevirtual.people.archive import ArchiveWriter, original_name
from employeevirtual.people.markdown import markdown_header, markdown_message
from employeevirtual.people.pages import PAGE, keyset_pages
from employeevirtual.people.registry import PersonalDataRegistry
from employeevirtual.stores.records import UserRecord
from employeevirtual.stores.sql.audit import AuditRepository
from employeevirtual.stores.sql.engine import read_connection, write_transaction
from employeevirtual.stores.sql.export_jobs import (
    ExportJob,
    ExportReader,
    ExportRepository,
    ExportStatus,
)
from employeevirtual.stores.sql.person_rows import PersonRowsReader
from employeevirtual.stores.sql.users import UserReader
from employeevirtual.tasks import Background, run_rounds

__all__ = ["SCHEMA_VERSION", "ExportService", "build_export"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _batched(docs: AsyncIterator[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    async for doc in docs:
        page.append(doc)
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


async def build_export(
    engine: AsyncEngine,
    registry: PersonalDataRegistry,
    user_id: UUID,
    path: Path,
    *,
    now: datetime,
    originals: FileStore | None = None,
) -> dict[str, Any]:
    """Write the person's ZIP to ``path``; returns the manifest. ``originals``: where the
    knowledge documents' files are kept (none: the rows only)."""

    def owned(table: str) -> AsyncIterator[list[dict[str, Any]]]:
        return keyset_pages(
            engine,
            lambda conn, after: PersonRowsReader(conn).owned(
                table, user_id, after=after, limit=PAGE
            ),
            lambda row: row["id"],
        )

    async def every_message() -> AsyncIterator[list[dict[str, Any]]]:
        async for conversations in owned("conversations"):
            for conversation in conversations:
                async for page in messages_of(conversation["id"]):
                    yield page

    def messages_of(conversation_id: UUID) -> AsyncIterator[list[dict[str, Any]]]:
        return keyset_pages(
            engine,
            lambda conn, seq: PersonRowsReader(conn).messages(
                conversation_id, after_seq=seq or 0, limit=PAGE
            ),
            lambda row: row["seq"],
        )

    def audit() -> AsyncIterator[list[dict[str, Any]]]:
        return keyset_pages(
            engine,
            lambda conn, after: PersonRowsReader(conn).audit_about(
                user_id, after=after, limit=PAGE
            ),
            lambda row: (row["created_at"], row["id"]),
        )

    def feedback() -> AsyncIterator[list[dict[str, Any]]]:
        return keyset_pages(
            engine,
            lambda conn, after: PersonRowsReader(conn).feedback(user_id, after=after, limit=PAGE),
            lambda row: row["message_id"],
        )

    async def documents() -> AsyncIterator[list[dict[str, Any]]]:
        """The rows, each naming its original's entry (``None`` when the file is gone)."""
        async for page in owned("knowledge_documents"):
            for row in page:
                kept = originals is not None and await asyncio.to_thread(
                    originals.path_of(row["storage_key"]).is_file
                )
                row["original"] = original_name(row) if kept else None
            yield page

    async def profile() -> AsyncIterator[list[dict[str, Any]]]:
        async with read_connection(engine) as conn:
            row = await PersonRowsReader(conn).profile(user_id)
        if row is not None:
            yield [row]

    async with ArchiveWriter(path) as out:
        await out.jsonl("profile", profile())
        await out.jsonl("agents", owned("agents"))
        await out.jsonl("conversations", owned("conversations"))
        await out.jsonl("messages", every_message())
        await out.jsonl("feedback", feedback())
        await out.jsonl("knowledge_bases", owned("knowledge_bases"))
        await out.jsonl("knowledge_documents", documents())
        await out.jsonl("api_keys", owned("api_keys"))
        await out.jsonl("audit_log", audit())
        for source in registry.exported:
            await out.jsonl(source.name, _batched(source.export(user_id)))
        async for conversations in owned("conversations"):
            for conversation in conversations:

                async def markdown(c: dict[str, Any] = conversation) -> AsyncIterator[str]:
                    yield markdown_header(c)
                    async for page in messages_of(c["id"]):
                        yield "".join(markdown_message(m) for m in page)

                await out.text(f"conversations/{conversation['id']}.md", markdown())
        files = {"count": 0, "bytes": 0}
        if originals is not None:
            async for page in owned("knowledge_documents"):
                for document in page:
                    try:
                        size = await out.copy(
                            original_name(document), originals.path_of(document["storage_key"])
                        )
                    except FileNotFoundError:  # deleted since: its row says it had one
                        continue
                    files["count"] += 1
                    files["bytes"] += size
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "user_id": str(user_id),
            "created_at": now.isoformat(),
            "format": "one JSON object per line; times in ISO 8601 UTC",
            "collections": {name: f"{name}.jsonl" for name in out.zip.counts},
            "counts": dict(out.zip.counts),
            "markdown": "conversations/<conversation id>.md",
            "knowledge_files": {
                "path": "knowledge/<base id>/<document id>/<file name>",
                "about": "each knowledge document's original, as uploaded",
                **files,
            },
        }
        await out.raw("manifest.json", to_json(manifest, indent=2))
    return manifest


class ExportService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        registry: PersonalDataRegistry,
        export_dir: Path,
        ttl: timedelta,
        min_interval: timedelta,
        originals: FileStore | None = None,
        interval_seconds: float = 2.0,
        stale_after: timedelta = timedelta(hours=1),
        clock: Clock = _utcnow,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.export_dir = export_dir
        self.ttl = ttl
        self.min_interval = min_interval
        self.originals = originals
        self.interval = interval_seconds
        self.stale_after = stale_after
        self.clock = clock
        self._background = Background("exports")
        self._wake = asyncio.Event()

    def path(self, job: ExportJob) -> Path:
        return self.export_dir / f"{job.id}.zip"

    async def request(
        self, caller: UserRecord, *, user_id: UUID | None = None, client_ip: str | None = None
    ) -> ExportJob:
        """Start an export of the caller (or, for an admin, of ``user_id``); audited, and at
        most one per person per ``min_interval``."""
        subject = caller.id if user_id is None else user_id
        if subject != caller.id and not caller.is_admin:
            raise Forbidden("only an admin may export another user's data")
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            if await UserReader(conn).get(subject) is None:
                raise NotFound(f"user {subject} not found")
            jobs = ExportRepository(conn)
            latest = await jobs.latest_for(subject)
            if latest is not None and now - latest.created_at < self.min_interval:
                wait = int((latest.created_at + self.min_interval - now).total_seconds()) + 1
                raise RateLimited(
                    f"one export per {int(self.min_interval.total_seconds())} s; the last one "
                    f"({latest.id}) is {latest.status}; retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            job = await jobs.create(user_id=subject, requested_by=caller.id, now=now)
            await AuditRepository(conn).record(
                action="user.export",
                actor_id=caller.id,
                target_type="user",
                target_id=str(subject),
                details={"export_id": str(job.id)},
                client_ip=client_ip,
                now=now,
            )
        self._wake.set()
        return job

    async def get(self, caller: UserRecord, job_id: UUID) -> ExportJob:
        async with read_connection(self.engine) as conn:
            job = await ExportReader(conn).get(job_id)
        if job is None or (job.user_id != caller.id and not caller.is_admin):
            raise NotFound(f"export {job_id} not found")
        return job

    async def latest(self, caller: UserRecord) -> ExportJob:
        async with read_connection(self.engine) as conn:
            job = await ExportReader(conn).latest_for(caller.id)
        if job is None:
            raise NotFound("no export yet; start one with POST /api/users/me/export")
        return job

    async def download(
        self, caller: UserRecord, job_id: UUID, *, client_ip: str | None
    ) -> tuple[ExportJob, Path]:
        job = await self.get(caller, job_id)
        if job.status != "ready":
            raise Conflict(f"export {job_id} is {job.status}, not ready; check its status")
        path = self.path(job)
        if not path.exists():
            raise Conflict(f"export {job_id} has expired; start a new one")
        if job.user_id != caller.id:
            async with write_transaction(self.engine) as conn:
                await AuditRepository(conn).record(
                    action="user.export_download",
                    actor_id=caller.id,
                    target_type="user",
                    target_id=str(job.user_id),
                    details={"export_id": str(job.id)},
                    client_ip=client_ip,
                    now=self.clock(),
                )
        return job, path

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        await run_rounds(self.run_pending, wake=self._wake, interval=self.interval, what="export")

    async def run_pending(self) -> int:
        async with read_connection(self.engine) as conn:
            jobs = await ExportReader(conn).unfinished(limit=10)
        built = 0
        for job in jobs:
            stale = job.status == "running" and job.created_at < self.clock() - self.stale_after
            async with write_transaction(self.engine) as conn:
                claimed = await ExportRepository(conn).claim(job.id, take_stale=stale)
            if claimed:
                await self.build(job)
                built += 1
        return built

    async def build(self, job: ExportJob) -> None:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        part = self.export_dir / f"{job.id}.zip.part"
        status: ExportStatus
        try:
            await build_export(
                self.engine,
                self.registry,
                job.user_id,
                part,
                now=self.clock(),
                originals=self.originals,
            )
            final = self.path(job)
            os.replace(part, final)
            status, size, error = "ready", final.stat().st_size, None
        except Exception as exc:
            log.exception("export %s failed", job.id)
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            status, size, error = "failed", None, f"{type(exc).__name__}"
        now = self.clock()
        async with write_transaction(self.engine) as conn:
            await ExportRepository(conn).finish(
                job.id,
                status=status,
                now=now,
                expires_at=now + self.ttl if status == "ready" else None,
                size_bytes=size,
                error=error,
            )

    async def expire(self) -> int:
        """Delete finished exports past their time (their ZIP and their status)."""
        now = self.clock()
        async with read_connection(self.engine) as conn:
            jobs = await ExportReader(conn).expired(now=now, limit=100)
        for job in jobs:
            with contextlib.suppress(FileNotFoundError):
                self.path(job).unlink()
            async with write_transaction(self.engine) as conn:
                await ExportRepository(conn).finish(job.id, status="expired", now=now)
        return len(jobs)
