"""Teams of agents (issue 13): an agent's delegates, and which agent wrote each message.

- ``agents.delegate_ids``: the agents an agent may ask (a JSON list of ids, like its tools).
- ``IX_messages_conversation_agent``: the conversations an agent took part in (the list filter
  ``agent_id`` probes it per conversation).
- Existing agent and error messages get the ``agent_id`` of their conversation's agent where
  it is missing (until now a conversation had one agent, so that is who wrote them).

Revision ID: 0013_team
Revises: 0018_memory
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from employeevirtual.stores.sql.migrations.schema import real_schema
from employeevirtual.stores.sql.types import JSONDocument

revision = "0013_team"
down_revision = "0018_memory"
branch_labels = None
depends_on = None

S = "empl"


def upgrade() -> None:
    op.add_column(
        "agents", sa.Column("delegate_ids", JSONDocument, nullable=True), schema=real_schema()
    )
    op.create_index(
        "IX_messages_conversation_agent", "messages", ["conversation_id", "agent_id"], schema=S
    )
    meta = sa.MetaData(schema=S)
    messages = sa.Table(
        "messages",
        meta,
        sa.Column("conversation_id", sa.Uuid()),
        sa.Column("agent_id", sa.Uuid()),
        sa.Column("message_type", sa.String(50)),
    )
    conversations = sa.Table(
        "conversations", meta, sa.Column("id", sa.Uuid()), sa.Column("agent_id", sa.Uuid())
    )
    owner = (
        sa.select(conversations.c.agent_id)
        .where(conversations.c.id == messages.c.conversation_id)
        .scalar_subquery()
    )
    op.execute(
        sa.update(messages)
        .where(messages.c.agent_id.is_(None), messages.c.message_type.in_(["agent", "error"]))
        .values(agent_id=owner)
    )


def downgrade() -> None:
    op.drop_index("IX_messages_conversation_agent", table_name="messages", schema=S)
    op.drop_column("agents", "delegate_ids", schema=real_schema())
