"""Migration 0013_team on existing data: agent and error messages without an ``agent_id`` get
their conversation's agent; user messages keep none; the new column and index exist."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, inspect, select, text

from employeevirtual.stores.sql import tables
from employeevirtual.stores.sql.engine import create_engine
from employeevirtual.stores.sql.migrate import upgrade

POSTGRES_URL = os.environ.get("EV_TEST_POSTGRES_URL")


async def test_existing_messages_get_their_writer(
    backend: str, tmp_path: Path, postgres_available: None
) -> None:
    # a database of its own (the ``settings`` fixture's comes migrated to the head already)
    schema = f"t_mig_{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        assert POSTGRES_URL is not None
        engine = create_engine(POSTGRES_URL, schema=schema)
    else:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'before.db'}")
    try:
        await upgrade(engine, "0018_memory")
        now = datetime.now(UTC)
        user, agent, conversation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        kinds = ["user", "agent", "user", "error"]
        async with engine.begin() as conn:
            await conn.execute(
                insert(tables.users).values(
                    id=user, email="m@example.com", name="M", password_hash="x", created_at=now
                )
            )
            await conn.execute(
                insert(tables.agents).values(
                    id=agent,
                    user_id=user,
                    name="A",
                    instructions="",
                    model="offline",
                    created_at=now,
                )
            )
            await conn.execute(
                insert(tables.conversations).values(
                    id=conversation,
                    user_id=user,
                    agent_id=agent,
                    created_at=now,
                    message_count=4,
                )
            )
            for seq, kind in enumerate(kinds, start=1):
                await conn.execute(
                    insert(tables.messages).values(
                        id=uuid.uuid4(),
                        conversation_id=conversation,
                        user_id=user,
                        agent_id=None,
                        content=kind,
                        message_type=kind,
                        created_at=now,
                        seq=seq,
                    )
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            m = tables.messages.c
            rows = (await conn.execute(select(m.message_type, m.agent_id).order_by(m.seq))).all()

            def shape(sync_conn: object) -> tuple[list[str], list[str]]:
                inspector = inspect(sync_conn)
                where = schema if backend == "postgres" else None
                columns = [c["name"] for c in inspector.get_columns("agents", schema=where)]
                indexes = [i["name"] for i in inspector.get_indexes("messages", schema=where)]
                return columns, indexes

            columns, indexes = await conn.run_sync(shape)
        assert [(k, a) for k, a in rows] == [
            ("user", None),
            ("agent", agent),
            ("user", None),
            ("error", agent),
        ]
        assert "delegate_ids" in columns
        assert "IX_messages_conversation_agent" in indexes
    finally:
        if backend == "postgres":
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
