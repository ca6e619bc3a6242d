"""A model that can only answer from what it is given (its context), and helpers to build long
conversations straight into both stores (no 200 HTTP turns)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import insert

from employeevirtual.runtime import Runtime
from employeevirtual.stores.mongo.shapes import message_document
from employeevirtual.stores.records import ConversationRecord, MessageRecord
from employeevirtual.stores.sql.tables import conversations, messages

PROBE_MODEL = "test:context-probe"
UNKNOWN = "I do not know."
_ID = re.compile(r"\[([0-9a-f]{8})\] (.+)")


@dataclass
class Probe:
    """What the model was sent on each request (the bench and the tests measure it)."""

    contexts: list[str] = field(default_factory=list)
    requests: list[list[ModelMessage]] = field(default_factory=list)
    tools: list[list[str]] = field(default_factory=list)  # the tools offered, per request

    @property
    def last(self) -> str:
        return self.contexts[-1]


def _prompt(messages: list[ModelMessage]) -> str:
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    for part in last.parts:
        if isinstance(part, UserPromptPart) and isinstance(part.content, str):
            return part.content
    return ""


def _context(messages: list[ModelMessage], info: AgentInfo) -> str:
    """Everything the model was given except the question being asked."""
    texts = [info.instructions or ""]
    for message in messages[:-1]:
        for part in message.parts:
            content = getattr(part, "content", None)
            if isinstance(content, str):
                texts.append(content)
    return "\n".join(texts)


def context_probe(probe: Probe) -> FunctionModel:
    """``remember: <fact>`` calls ``remember``; ``forget: <words>`` calls ``forget`` with the
    id of the memory shown holding those words; ``what is <key>?`` answers with the sentence
    of its context that mentions ``<key>``, or ``I do not know.``"""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        ):
            returned = [p for p in last.parts if isinstance(p, ToolReturnPart)]
            return ModelResponse(parts=[TextPart(f"done: {returned[-1].model_response_str()}")])
        prompt = _prompt(messages)
        context = _context(messages, info)
        probe.contexts.append(context)
        probe.requests.append(list(messages))
        tools = [t.name for t in info.function_tools]
        probe.tools.append(tools)
        if prompt.startswith(("remember: ", "forget: ")) and "remember" not in tools:
            return ModelResponse(parts=[TextPart(UNKNOWN)])
        if prompt.startswith("remember: "):
            return ModelResponse(parts=[ToolCallPart("remember", {"fact": prompt[10:]})])
        if prompt.startswith("forget: "):
            words = prompt[8:].lower()
            for line in (info.instructions or "").splitlines():
                match = _ID.search(line)
                if match and words in match.group(2).lower():
                    return ModelResponse(
                        parts=[ToolCallPart("forget", {"memory_id": match.group(1)})]
                    )
            return ModelResponse(parts=[TextPart(UNKNOWN)])
        key = prompt.removeprefix("what is ").rstrip("?").strip().lower()
        words = [w for w in re.findall(r"\w+", key) if len(w) > 2 and w != "the"]
        for sentence in re.split(r"(?<=[.!?])\s+|\n", context):
            lower = sentence.lower()
            if words and all(w in lower for w in words) and "what is" not in lower:
                return ModelResponse(parts=[TextPart(f"From what I know: {sentence.strip()}")])
        return ModelResponse(parts=[TextPart(UNKNOWN)])

    return FunctionModel(reply, model_name=PROBE_MODEL)


def install_probe(runtime: Runtime) -> Probe:
    probe = Probe()
    runtime.models.override(PROBE_MODEL, context_probe(probe))
    return probe


async def seed_conversation(
    runtime: Runtime,
    *,
    user_id: UUID,
    agent_id: UUID,
    contents: list[str],
    supersedes: dict[int, list[int]] | None = None,
) -> UUID:
    """A conversation whose messages are ``contents`` (user, agent, user, ... from seq 1), in
    SQL and MongoDB as a turn would have left them (nothing owed to the relay). ``supersedes``:
    seq -> the seqs that message replaces (``metadata.supersedes``, as an edit leaves it)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    n = len(contents)
    record = ConversationRecord(
        id=uuid.uuid4(),
        user_id=user_id,
        agent_id=agent_id,
        title="seeded",
        status="active",
        session_id=None,
        metadata={},
        created_at=start,
        updated_at=start + timedelta(milliseconds=n),
        last_message_at=start + timedelta(milliseconds=n),
        message_count=n,
        total_tokens=0,
        total_cost=Decimal(0),
        total_response_time=Decimal(0),
        agent_runs=n // 2,
        synced_seq=n,
        last_error=None,
    )
    rows: list[MessageRecord] = []
    ids = [uuid.uuid4() for _ in contents]
    for i, content in enumerate(contents, start=1):
        user = i % 2 == 1
        metadata: dict[str, Any] = {} if user else {"model_used": "seed"}
        if supersedes and i in supersedes:
            metadata["supersedes"] = [str(ids[seq - 1]) for seq in supersedes[i]]
        rows.append(
            MessageRecord(
                id=ids[i - 1],
                conversation_id=record.id,
                seq=i,
                user_id=user_id,
                agent_id=None if user else agent_id,
                content=content,
                message_type="user" if user else "agent",
                metadata=metadata,
                created_at=start + timedelta(milliseconds=i),
            )
        )
    values: dict[str, Any] = {
        "id": record.id,
        "user_id": user_id,
        "agent_id": agent_id,
        "title": record.title,
        "status": "active",
        "metadata": {},
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_message_at": record.last_message_at,
        "message_count": n,
        "agent_runs": record.agent_runs,
        "synced_seq": n,
    }
    async with runtime.engine.begin() as conn:
        await conn.execute(insert(conversations).values(**values))
        await conn.execute(
            insert(messages),
            [
                {
                    "id": m.id,
                    "conversation_id": m.conversation_id,
                    "seq": m.seq,
                    "user_id": m.user_id,
                    "agent_id": m.agent_id,
                    "content": m.content,
                    "message_type": m.message_type,
                    "message_metadata": m.metadata,
                    "created_at": m.created_at,
                    "is_edited": False,
                }
                for m in rows
            ],
        )
    documents = runtime.documents
    await documents.messages.insert_many([message_document(m) for m in rows])
    await documents.conversations.insert_one(documents.conversation_document(record, rows))
    return record.id
