"""A turn found stored: its write committed on a connection lost before the answer came back,
and the write's replay was refused by the messages' keys (``engine.replay_refused``).
``ConversationRepository.append`` reads the turn back instead of failing a turn that is there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

from sqlalchemy import select

from employeevirtual.stores.records import ConversationRecord, MessageRecord
from employeevirtual.stores.sql.engine import Connection
from employeevirtual.stores.sql.rows import conversation_from_row
from employeevirtual.stores.sql.tables import conversations, messages

__all__ = ["stored_turn"]


async def stored_turn(
    conn: Connection, conversation_id: UUID, new: Sequence[MessageRecord]
) -> tuple[ConversationRecord, list[MessageRecord]] | None:
    """``new`` with the seqs it was stored with, and the conversation's row as it is now; None
    unless every one of ``new`` is stored in ``conversation_id``, in order, one seq after the
    other (what one run of the turn's write leaves). The row may have moved past the turn's
    last seq (a later turn committed meanwhile): its counters then include that turn too."""
    m = messages.c
    query = select(m.id, m.conversation_id, m.seq).where(m.id.in_([x.id for x in new]))
    rows = (await conn.execute(query)).all()
    seqs = {r.id: r.seq for r in rows if r.conversation_id == conversation_id}
    if len(rows) != len(new) or len(seqs) != len(new):
        return None
    stored = [replace(x, seq=seqs[x.id]) for x in new]
    first = stored[0].seq
    if [x.seq for x in stored] != list(range(first, first + len(stored))):
        return None
    row = (
        await conn.execute(select(conversations).where(conversations.c.id == conversation_id))
    ).first()
    return (conversation_from_row(row), stored) if row is not None else None
