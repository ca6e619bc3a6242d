from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Response, status
from pydantic import BeforeValidator

from employeevirtual.api.deps import (
    ClientIP,
    ConversationsDep,
    CurrentUser,
    SettingsDep,
)
from employeevirtual.api.params import (
    decode_cursor,
    encode_cursor,
    page_size,
    parse_seq,
    parse_time_cursor,
)
from employeevirtual.api.routing import Router
from employeevirtual.api.schemas import (
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    HistoryOut,
    MessageOut,
)
from employeevirtual.chat.conversations import ConversationChanges, ConversationFilters
from employeevirtual.errors import InvalidInput

router = Router(prefix="/api/conversations", tags=["conversations"])


def _iso_only(value: object) -> datetime:
    """Only ISO 8601 text (the schema's date-time), not pydantic's lax unix numbers."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError("use an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z") from None


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


def _encode_cursor(at: datetime, conversation_id: UUID) -> str:
    return encode_cursor(at.isoformat(), str(conversation_id))


def _parse_cost_cursor(cursor: str) -> tuple[Decimal, UUID]:
    kind, cost, item_id = decode_cursor(cursor, parts=3)
    try:
        if kind != "cost":
            raise ValueError(kind)
        value = Decimal(cost)
        if not value.is_finite():
            raise ValueError(cost)
        return value, UUID(item_id)
    except (ValueError, ArithmeticError):
        raise InvalidInput(
            "cursor is not valid for sort=cost; pass next_cursor from a sort=cost page"
        ) from None


@router.get("")
async def list_conversations(
    user: CurrentUser,
    conversations: ConversationsDep,
    settings: SettingsDep,
    limit: int | None = None,
    cursor: str | None = None,
    agent_id: Annotated[
        UUID | None,
        Query(
            description="the conversations this agent took part in: its current agent, or "
            "one that wrote a message in it before a handoff"
        ),
    ] = None,
    status_: Annotated[Literal["active", "archived"] | None, Query(alias="status")] = None,
    created_after: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    sort: Literal["last_activity", "cost"] = "last_activity",
) -> ConversationPage:
    """The caller's conversations, latest activity first, or most expensive first
    (``sort=cost``; pass ``next_cursor`` back with the same ``sort``)."""
    size = page_size(limit, settings.page_limit_default, settings.page_limit_max)
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a timezone, e.g. 2026-01-31T00:00:00Z")
    by_cost = sort == "cost"
    rows, more = await conversations.list(
        user,
        limit=size,
        after=parse_time_cursor(cursor) if cursor and not by_cost else None,
        after_cost=_parse_cost_cursor(cursor) if cursor and by_cost else None,
        by_cost=by_cost,
        filters=ConversationFilters(
            agent_id=agent_id,
            status=status_,
            created_after=created_after,
            created_before=created_before,
        ),
    )
    last = rows[-1] if rows else None
    next_cursor = None
    if more and last is not None:
        next_cursor = (
            encode_cursor("cost", str(last.total_cost), str(last.id))
            if by_cost
            else _encode_cursor(last.last_message_at or last.created_at, last.id)
        )
    return ConversationPage(items=[ConversationOut.of(c) for c in rows], next_cursor=next_cursor)


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: UUID, user: CurrentUser, conversations: ConversationsDep, ip: ClientIP
) -> ConversationOut:
    """The caller's conversation; admins may read anyone's (each such read is audited)."""
    return ConversationOut.of(await conversations.get(user, conversation_id, client_ip=ip))


@router.patch("/{conversation_id}")
async def update_conversation(
    conversation_id: UUID,
    body: ConversationPatch,
    user: CurrentUser,
    conversations: ConversationsDep,
) -> ConversationOut:
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise InvalidInput("title and status cannot be null")
    return ConversationOut.of(
        await conversations.update(user, conversation_id, ConversationChanges(**changes))
    )


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: UUID, user: CurrentUser, conversations: ConversationsDep, ip: ClientIP
) -> Response:
    await conversations.delete(user, conversation_id, client_ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{conversation_id}/messages")
async def conversation_history(
    conversation_id: UUID,
    user: CurrentUser,
    conversations: ConversationsDep,
    settings: SettingsDep,
    ip: ClientIP,
    limit: int | None = None,
    before: str | None = None,
    include_superseded: Annotated[
        bool, Query(description="also the answers replaced by regenerate/edit, marked")
    ] = False,
) -> HistoryOut:
    """Newest page first, chronological within it; ``next_before`` pages into the past."""
    size = page_size(limit, settings.history_limit_default, settings.history_limit_max)
    before_seq: int | None = None
    if before is not None:
        before_seq = parse_seq(before, name="before", hint="pass next_before from a previous page")
    page = await conversations.history(
        user,
        conversation_id,
        limit=size,
        before=before_seq,
        include_superseded=include_superseded,
        client_ip=ip,
    )
    return HistoryOut(
        conversation_id=conversation_id,
        messages=[MessageOut.of(m) for m in page.messages],
        next_before=str(page.next_before) if page.next_before else None,
        source=page.source,
    )
