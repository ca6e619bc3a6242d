"""Feedback on an agent's answer: POST /api/conversations/{id}/messages/{message_id}/feedback."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends

from employeevirtual.analytics.feedback import FeedbackService
from employeevirtual.api.analytics_schemas import FeedbackIn, FeedbackOut
from employeevirtual.api.deps import ClientIP, CurrentUser, from_runtime
from employeevirtual.api.routing import Router

router = Router(prefix="/api/conversations", tags=["conversations"])


FeedbackDep = Annotated[FeedbackService, Depends(from_runtime(lambda r: r.feedback))]


@router.post("/{conversation_id}/messages/{message_id}/feedback")
async def give_feedback(
    conversation_id: UUID,
    message_id: UUID,
    body: FeedbackIn,
    user: CurrentUser,
    feedback: FeedbackDep,
    ip: ClientIP,
) -> FeedbackOut:
    """Rate an agent's answer up or down, with an optional comment; a later call replaces the
    earlier one. Only the conversation's owner can (another's conversation: 404)."""
    record = await feedback.give(
        user,
        conversation_id,
        message_id,
        rating=body.rating,
        comment=body.comment,
        client_ip=ip,
    )
    return FeedbackOut.model_validate(record)
