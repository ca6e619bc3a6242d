"""People's data over HTTP: search, export, erasure, the audit trail. HTTP only: each route
parses, calls one service method and shapes the answer."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, status
from fastapi.responses import FileResponse

from employeevirtual.api.deps import (
    AdminUser,
    ClientIP,
    CurrentUser,
    SettingsDep,
    from_runtime,
)
from employeevirtual.api.people_schemas import (
    AdminErasureIn,
    AuditEntryOut,
    AuditPage,
    ErasureIn,
    ErasureOut,
    ExportOut,
    SearchHitOut,
    SearchPageOut,
)
from employeevirtual.api.routes.conversations import IsoDateTime
from employeevirtual.api.routing import Router
from employeevirtual.errors import InvalidInput
from employeevirtual.people.audit import AuditTrail
from employeevirtual.people.erasure import ErasureService
from employeevirtual.people.export import ExportService
from employeevirtual.people.search import SearchFilters, SearchService
from employeevirtual.stores.records import MessageType
from employeevirtual.stores.sql.audit import AuditFilter
from employeevirtual.stores.sql.erasure_jobs import ErasureJob
from employeevirtual.stores.sql.export_jobs import ExportJob

router = Router(tags=["people's data"])


SearchDep = Annotated[SearchService, Depends(from_runtime(lambda r: r.search))]
AuditDep = Annotated[AuditTrail, Depends(from_runtime(lambda r: r.audit))]
ExportsDep = Annotated[ExportService, Depends(from_runtime(lambda r: r.exports))]


def _export_out(job: ExportJob) -> ExportOut:
    return ExportOut.model_validate(
        {
            **{k: getattr(job, k) for k in ExportJob.__slots__},
            "download_url": f"/api/exports/{job.id}/download" if job.status == "ready" else None,
        }
    )


ErasureDep = Annotated[ErasureService, Depends(from_runtime(lambda r: r.erasure))]


def _erasure_out(job: ErasureJob) -> ErasureOut:
    return ErasureOut(
        id=job.id,
        status="done"
        if job.status == "done"
        else "running"
        if job.status == "running"
        else "pending",
        step=job.step,
        created_at=job.created_at,
        completed_at=job.completed_at,
    )


def _page_size(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}")
    return limit


@router.get("/api/search")
async def search(
    user: CurrentUser,
    service: SearchDep,
    settings: SettingsDep,
    ip: ClientIP,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    agent_id: UUID | None = None,
    message_type: MessageType | None = None,
    created_after: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    user_id: UUID | None = None,
) -> SearchPageOut:
    """Full-text search over the caller's messages and conversation titles, best match first.
    Words are matched with accents folded and stemmed where the engine can; end a word with
    ``*`` for a prefix. An admin may pass ``user_id`` to search another account (audited)."""
    size = _page_size(limit, settings.page_limit_default, settings.page_limit_max)
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a timezone, e.g. 2026-01-31T00:00:00Z")
    page = await service.search(
        user,
        q,
        filters=SearchFilters(
            agent_id=agent_id,
            message_type=message_type,
            created_after=created_after,
            created_before=created_before,
        ),
        limit=size,
        cursor=cursor,
        user_id=user_id,
        client_ip=ip,
    )
    return SearchPageOut(
        items=[
            SearchHitOut(
                kind="message" if f.hit.kind == "message" else "conversation",
                conversation_id=f.hit.conversation_id,
                message_id=f.hit.id if f.hit.kind == "message" else None,
                seq=f.hit.seq,
                message_type=f.hit.message_type,
                agent_id=f.hit.agent_id,
                created_at=f.hit.created_at,
                title=f.hit.title,
                snippet=f.snippet,
                highlights=f.highlights,
                score=f.hit.score,
            )
            for f in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.delete("/api/users/me", status_code=status.HTTP_202_ACCEPTED)
async def erase_me(
    body: ErasureIn, user: CurrentUser, erasure: ErasureDep, ip: ClientIP
) -> ErasureOut:
    """Erase the caller from every store (confirm with the password). From this answer on the
    account cannot log in; the erasure finishes in the background and resumes after a crash.
    ``shared_agents``: hand the caller's shared agents to an admin (default) or delete them."""
    job = await erasure.request_self(
        user, password=body.password, shared_agents=body.shared_agents, client_ip=ip
    )
    return _erasure_out(job)


@router.delete("/api/admin/users/{user_id}", status_code=status.HTTP_202_ACCEPTED)
async def erase_user(
    user_id: UUID, body: AdminErasureIn, admin: AdminUser, erasure: ErasureDep, ip: ClientIP
) -> ErasureOut:
    """Erase a user from every store (admins only; audited). Shared agents go to the admin
    asking, unless ``shared_agents`` is ``delete``."""
    job = await erasure.request_admin(
        admin, user_id, shared_agents=body.shared_agents, client_ip=ip
    )
    return _erasure_out(job)


@router.get("/api/admin/erasures/{erasure_id}")
async def erasure_status(erasure_id: UUID, _admin: AdminUser, erasure: ErasureDep) -> ErasureOut:
    """An erasure's progress; once done, its tombstone (random id, times, who asked)."""
    return _erasure_out(await erasure.get(erasure_id))


@router.post("/api/users/me/export", status_code=status.HTTP_202_ACCEPTED)
async def export_me(user: CurrentUser, exports: ExportsDep, ip: ClientIP) -> ExportOut:
    """Start an export of everything about the caller (a ZIP of JSON Lines per collection, a
    manifest, and one Markdown file per conversation). One per ``EV_EXPORT_MIN_INTERVAL_SECONDS``
    (429 otherwise); poll its status, then download it."""
    return _export_out(await exports.request(user, client_ip=ip))


@router.get("/api/users/me/export")
async def my_latest_export(user: CurrentUser, exports: ExportsDep) -> ExportOut:
    """The caller's most recent export and its status."""
    return _export_out(await exports.latest(user))


@router.post("/api/admin/users/{user_id}/export", status_code=status.HTTP_202_ACCEPTED)
async def export_user(
    user_id: UUID, admin: AdminUser, exports: ExportsDep, ip: ClientIP
) -> ExportOut:
    """Start an export of a user's data (admins only; audited)."""
    return _export_out(await exports.request(admin, user_id=user_id, client_ip=ip))


@router.get("/api/exports/{export_id}")
async def export_status(export_id: UUID, user: CurrentUser, exports: ExportsDep) -> ExportOut:
    """An export's status: pending, running, ready (with ``download_url``), failed, expired."""
    return _export_out(await exports.get(user, export_id))


@router.get(
    "/api/exports/{export_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "the ZIP"}},
)
async def export_download(
    export_id: UUID, user: CurrentUser, exports: ExportsDep, ip: ClientIP
) -> FileResponse:
    """The ZIP, streamed from disk (an admin's download of someone else's is audited)."""
    job, path = await exports.download(user, export_id, client_ip=ip)
    return FileResponse(
        path, media_type="application/zip", filename=f"employeevirtual-export-{job.id}.zip"
    )


@router.get("/api/admin/audit")
async def audit_trail(
    _admin: AdminUser,
    audit: AuditDep,
    settings: SettingsDep,
    actor_id: UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    target_type: Annotated[str | None, Query(max_length=50)] = None,
    target_id: Annotated[str | None, Query(max_length=100)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> AuditPage:
    """The audit trail, newest first (admins only): filter by actor, action, target and time
    (``since`` inclusive, ``until`` exclusive); ``next_cursor`` pages on."""
    size = _page_size(limit, settings.page_limit_default, settings.page_limit_max)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a timezone, e.g. 2026-01-31T00:00:00Z")
    rows, next_cursor = await audit.page(
        AuditFilter(
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
        ),
        limit=size,
        cursor=cursor,
    )
    return AuditPage(
        items=[AuditEntryOut.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
