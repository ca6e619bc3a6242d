"""The columns every engine's search returns for a hit on a message's text or on a
conversation's title."""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal, null

from employeevirtual.stores.sql.tables import conversations, messages


def message_hit_columns() -> list[Any]:
    """The columns of a hit on a message's text (both engines' first SELECT)."""
    m, c = messages.c, conversations.c
    return [
        literal("message").label("kind"),
        m.id.label("id"),
        m.conversation_id.label("conversation_id"),
        m.seq.label("seq"),
        m.message_type.label("message_type"),
        m.agent_id.label("agent_id"),
        m.created_at.label("created_at"),
        c.title.label("title"),
    ]


def conversation_hit_columns() -> list[Any]:
    """The same columns for a hit on a conversation's title."""
    c = conversations.c
    return [
        literal("conversation").label("kind"),
        c.id.label("id"),
        c.id.label("conversation_id"),
        null().label("seq"),
        null().label("message_type"),
        c.agent_id.label("agent_id"),
        c.created_at.label("created_at"),
        c.title.label("title"),
    ]
