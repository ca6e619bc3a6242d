"""The agent's recent context per conversation, kept in process and validated by SQL.

An entry is (message_count, newest dialogue messages). It is only used when the conversation row
just read says the same ``message_count``: any turn committed elsewhere (another worker, the
relay never adds messages) moves the count and the turn falls back to reading SQL. It is only
stored when the turn that builds it started from the count it just advanced from, so two
concurrent turns on one conversation can never leave a window missing the other's messages.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from uuid import UUID

from employeevirtual.stores.records import ConversationRecord, MessageRecord

__all__ = ["DIALOGUE_TYPES", "RecentContext", "left_by"]

DIALOGUE_TYPES = ("user", "agent")


class RecentContext:
    def __init__(self, *, messages: int, max_conversations: int = 10_000) -> None:
        self.messages = messages
        self.max_conversations = max_conversations
        self._entries: OrderedDict[UUID, tuple[int, tuple[MessageRecord, ...]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, conversation_id: UUID, message_count: int) -> list[MessageRecord] | None:
        entry = self._entries.get(conversation_id)
        if entry is None or entry[0] != message_count:
            self.misses += 1
            return None
        self._entries.move_to_end(conversation_id)
        self.hits += 1
        return list(entry[1])

    def advance(
        self,
        conversation_id: UUID,
        *,
        base_count: int,
        base: Sequence[MessageRecord],
        added: Sequence[MessageRecord],
        message_count: int,
    ) -> None:
        """After a commit took the count from ``message_count - len(added)``: keep the new window
        if ``base`` was the context at exactly that count, forget the conversation otherwise."""
        if message_count - len(added) != base_count or self.messages <= 0:
            self._entries.pop(conversation_id, None)
            return
        window = [*base, *(m for m in added if m.message_type in DIALOGUE_TYPES)]
        self._entries[conversation_id] = (message_count, tuple(window[-self.messages :]))
        self._entries.move_to_end(conversation_id)
        while len(self._entries) > self.max_conversations:
            self._entries.popitem(last=False)

    def forget(self, conversation_id: UUID) -> None:
        self._entries.pop(conversation_id, None)

    def remember(
        self,
        record: ConversationRecord,
        before: ConversationRecord | None,
        history: Sequence[MessageRecord] | None,
        added: Sequence[MessageRecord],
    ) -> None:
        """After a turn's commit took ``before`` (None: a new conversation) to ``record``:
        ``history`` was its context then (None: the window no longer holds, it is dropped).
        A ``record`` past ``added`` (read back after a lost answer, with a later turn's
        messages counted: ``left_by``) drops the window too: the window lacks those messages."""
        if history is None or not left_by(record, added):
            self.forget(record.id)
            return
        self.advance(
            record.id,
            base_count=before.message_count if before else 0,
            base=history,
            added=added,
            message_count=record.message_count,
        )


def left_by(record: ConversationRecord, added: Sequence[MessageRecord]) -> bool:
    """Whether ``record`` is the conversation's row as the commit of ``added`` left it: its
    count ends at their last seq. A turn's write returns that row; a turn read back after its
    answer was lost (``ConversationRepository.append``) gets the row as it is then."""
    return not added or record.message_count == added[-1].seq
