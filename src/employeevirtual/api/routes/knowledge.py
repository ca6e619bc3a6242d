"""Knowledge bases and their documents over HTTP."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import File, Form, Query, Response, UploadFile, status

from employeevirtual.api.deps import ClientIP, CurrentUser, KnowledgeDep, SettingsDep
from employeevirtual.api.knowledge_schemas import (
    DocumentOut,
    DocumentPage,
    KnowledgeBaseIn,
    KnowledgeBaseOut,
    KnowledgeBasePage,
    KnowledgeBasePatch,
    SearchIn,
    SearchOut,
    SourceOut,
)
from employeevirtual.api.routing import Router
from employeevirtual.errors import InvalidInput
from employeevirtual.knowledge.uploads import PayloadTooLarge
from employeevirtual.stores.sql.knowledge_bases import KnowledgeBaseChanges, NewKnowledgeBase

router = Router(prefix="/api/knowledge-bases", tags=["knowledge"])

Limit = Annotated[int | None, Query(ge=1, description="page size (at most EV_PAGE_LIMIT_MAX)")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the last page")]


def _limit(limit: int | None, maximum: int, default: int) -> int:
    if limit is not None and limit > maximum:
        raise InvalidInput(f"limit is at most {maximum}")
    return limit or default


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_base(
    body: KnowledgeBaseIn, user: CurrentUser, knowledge: KnowledgeDep, ip: ClientIP
) -> KnowledgeBaseOut:
    new = NewKnowledgeBase(**body.model_dump())
    return KnowledgeBaseOut.of(await knowledge.create_base(user, new, client_ip=ip))


@router.get("")
async def list_bases(
    user: CurrentUser,
    knowledge: KnowledgeDep,
    settings: SettingsDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> KnowledgeBasePage:
    size = _limit(limit, settings.page_limit_max, settings.page_limit_default)
    page = await knowledge.list_bases(user, limit=size, cursor=cursor)
    return KnowledgeBasePage(
        items=[KnowledgeBaseOut.of(b) for b in page.items], next_cursor=page.next_cursor
    )


@router.get("/{base_id}")
async def get_base(base_id: UUID, user: CurrentUser, knowledge: KnowledgeDep) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.of(await knowledge.get_base(user, base_id))


@router.patch("/{base_id}")
async def update_base(
    base_id: UUID,
    body: KnowledgeBasePatch,
    user: CurrentUser,
    knowledge: KnowledgeDep,
    ip: ClientIP,
) -> KnowledgeBaseOut:
    changes = KnowledgeBaseChanges(**body.model_dump(exclude_unset=True))
    return KnowledgeBaseOut.of(await knowledge.update_base(user, base_id, changes, client_ip=ip))


@router.delete("/{base_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_base(
    base_id: UUID, user: CurrentUser, knowledge: KnowledgeDep, ip: ClientIP
) -> Response:
    await knowledge.delete_base(user, base_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{base_id}/documents",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        413: {"description": "the file is larger than EV_KNOWLEDGE_MAX_FILE_BYTES"},
        415: {"description": "not .txt, .md, .html, .pdf or .docx"},
    },
)
async def upload_document(
    base_id: UUID,
    user: CurrentUser,
    knowledge: KnowledgeDep,
    settings: SettingsDep,
    ip: ClientIP,
    file: Annotated[UploadFile, File(description=".txt, .md, .html, .pdf or .docx")],
    title: Annotated[str | None, Form(max_length=300)] = None,
) -> DocumentOut:
    """Queued for ingestion; follow ``status`` and ``chunks_done``/``chunks_total``."""
    data = await file.read(settings.knowledge_max_file_bytes + 1)
    if len(data) > settings.knowledge_max_file_bytes:
        raise PayloadTooLarge(
            f"the file is larger than {settings.knowledge_max_file_bytes:,} bytes "
            "(EV_KNOWLEDGE_MAX_FILE_BYTES)"
        )
    document = await knowledge.upload(
        user, base_id, filename=file.filename or "", data=data, title=title, client_ip=ip
    )
    return DocumentOut.of(document)


@router.get("/{base_id}/documents")
async def list_documents(
    base_id: UUID,
    user: CurrentUser,
    knowledge: KnowledgeDep,
    settings: SettingsDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> DocumentPage:
    size = _limit(limit, settings.page_limit_max, settings.page_limit_default)
    page = await knowledge.list_documents(user, base_id, limit=size, cursor=cursor)
    return DocumentPage(items=[DocumentOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{base_id}/documents/{document_id}")
async def get_document(
    base_id: UUID, document_id: UUID, user: CurrentUser, knowledge: KnowledgeDep
) -> DocumentOut:
    return DocumentOut.of(await knowledge.get_document(user, base_id, document_id))


@router.get(
    "/{base_id}/documents/{document_id}/original",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
async def download_document(
    base_id: UUID, document_id: UUID, user: CurrentUser, knowledge: KnowledgeDep
) -> Response:
    document, data = await knowledge.original(user, base_id, document_id)
    return Response(
        data,
        media_type=document.content_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename)}"},
    )


@router.delete("/{base_id}/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    base_id: UUID, document_id: UUID, user: CurrentUser, knowledge: KnowledgeDep, ip: ClientIP
) -> Response:
    """Its chunks and vectors are gone before this answers: it is never cited again."""
    await knowledge.delete_document(user, base_id, document_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{base_id}/search")
async def search(
    base_id: UUID, body: SearchIn, user: CurrentUser, knowledge: KnowledgeDep
) -> SearchOut:
    """What an agent's search would find in this base (for checking a base's contents)."""
    await knowledge.get_base(user, base_id)
    passages = await knowledge.search(
        user.id, [base_id], body.query, limit=body.limit, mode=body.mode
    )
    return SearchOut(
        query=body.query,
        mode=body.mode,
        results=[SourceOut.model_validate(p.as_source()) for p in passages],
    )
