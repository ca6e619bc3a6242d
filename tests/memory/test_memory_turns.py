"""Memory through real turns, with a model that can only answer from its context: a fact that
left the window long ago is answered through the summary; a preference follows the person to a
new conversation with the same agent, and nowhere else; forgotten and deleted memories are
never given again; a failing summary leaves turns working."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select

from employeevirtual.runtime import Runtime
from employeevirtual.stores.sql import tables
from support.api import create_agent, register_and_login
from support.memory import PROBE_MODEL, UNKNOWN, install_probe, seed_conversation


async def _say(
    client: httpx.AsyncClient, headers: dict[str, str], message: str, **target: Any
) -> dict[str, Any]:
    body = {"message": message, **{k: str(v) for k, v in target.items()}}
    r = await client.post("/api/chat/agent", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _filler(seq: int) -> str:
    if seq % 2 == 1:
        return f"Can you tell me something about topic number {seq}?"
    return f"Here is a note about topic {seq}."


async def test_a_fact_from_message_5_is_answered_at_message_200_through_the_summary(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    probe = install_probe(runtime)
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE_MODEL)
    me = (await client.get("/api/users/me", headers=headers)).json()
    contents = [_filler(seq) for seq in range(1, 197)]
    contents[4] = "By the way, my locker code is 4417 and the locker is on floor 3."
    cid = await seed_conversation(
        runtime, user_id=uuid.UUID(me["id"]), agent_id=uuid.UUID(agent["id"]), contents=contents
    )
    assert runtime.memory is not None
    window = runtime.settings.agent_context_messages

    # messages 197-198: the window holds the last 20 messages only, and no summary exists yet
    answer = await _say(client, headers, "what is my locker code?", conversation_id=cid)
    assert answer["agent_message"]["content"] == UNKNOWN
    assert "4417" not in probe.last

    # the turn started the summary in the background; it catches up with what left the window
    await runtime.memory.worker.drain()
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(tables.conversation_summaries).where(
                    tables.conversation_summaries.c.conversation_id == cid
                )
            )
        ).all()
    assert rows, "no summary was written"
    newest = max(rows, key=lambda r: r.version)
    assert newest.covered_seq == 198 - window
    assert newest.model == "offline"
    assert len(newest.content) <= runtime.settings.memory_summary_max_chars
    assert [r.version for r in sorted(rows, key=lambda r: r.version)] == list(
        range(1, len(rows) + 1)
    )

    # messages 199-200: answered from the summary
    answer = await _say(client, headers, "what is my locker code?", conversation_id=cid)
    assert "4417" in answer["agent_message"]["content"], answer["agent_message"]["content"]
    # what the model got stays bounded: the window plus a summary of bounded length
    sent = probe.requests[-1]
    assert len(sent) <= window + 1
    assert len(probe.last) < 20 * 200 + runtime.settings.memory_summary_max_chars + 2000


async def test_a_preference_follows_the_person_to_a_new_conversation_with_the_same_agent_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    install_probe(runtime)
    ana = await register_and_login(client, name="Ana")
    bea = await register_and_login(client, name="Bea")
    sharing = await create_agent(client, ana, model=PROBE_MODEL, visibility="shared")
    private = await create_agent(
        client, ana, model=PROBE_MODEL, memory={"enabled": True, "shared": False}
    )
    assert private["memory"] == {"enabled": True, "shared": False}
    assert sharing["memory"] == {"enabled": True, "shared": True}

    first = await _say(
        client, ana, "remember: Ana drinks green tea every morning.", agent_id=sharing["id"]
    )
    calls = first["agent_message"]["metadata"]["tool_calls"]
    assert [c["name"] for c in calls] == ["remember"]
    # the memory records the message it came from
    r = await client.get("/api/memories", headers=ana)
    (memory,) = r.json()["items"]
    assert memory["content"] == "Ana drinks green tea every morning."
    assert memory["source_message_id"] == first["agent_message"]["id"]
    assert memory["scope"] == "agent" and memory["agent_id"] == sharing["id"]

    # a new conversation with the same agent knows it
    again = await _say(client, ana, "what is the green tea?", agent_id=sharing["id"])
    assert again["conversation_id"] != first["conversation_id"]
    assert "green tea every morning" in again["agent_message"]["content"]

    # an agent that does not share memory: what it keeps stays in its conversation
    kept = await _say(client, ana, "remember: Ana's cat is called Biscuit.", agent_id=private["id"])
    same = await _say(
        client, ana, "what is the cat called?", conversation_id=kept["conversation_id"]
    )
    assert "Biscuit" in same["agent_message"]["content"]
    other = await _say(client, ana, "what is the cat called?", agent_id=private["id"])
    assert other["agent_message"]["content"] == UNKNOWN
    tea = await _say(client, ana, "what is the green tea?", agent_id=private["id"])
    assert tea["agent_message"]["content"] == UNKNOWN

    # another person talking to the same (shared) agent
    stranger = await _say(client, bea, "what is the green tea?", agent_id=sharing["id"])
    assert stranger["agent_message"]["content"] == UNKNOWN
    assert (await client.get("/api/memories", headers=bea)).json()["items"] == []


async def test_forget_and_delete_remove_a_memory_from_every_later_turn(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    probe = install_probe(runtime)
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE_MODEL)
    for fact in ("Works at Acme Corp.", "Lives in Porto.", "Has a dog named Rex."):
        await _say(client, headers, f"remember: {fact}", agent_id=agent["id"])
    await _say(client, headers, "what is Porto?", agent_id=agent["id"])
    assert "Lives in Porto." in probe.last and "Acme" in probe.last

    # forget, through the agent's own tool call
    forgot = await _say(client, headers, "forget: porto", agent_id=agent["id"])
    assert [c["name"] for c in forgot["agent_message"]["metadata"]["tool_calls"]] == ["forget"]
    answer = await _say(client, headers, "what is Porto?", agent_id=agent["id"])
    assert answer["agent_message"]["content"] == UNKNOWN
    assert "Porto" not in probe.last.replace("what is Porto?", "")

    # DELETE, by the person
    items = (await client.get("/api/memories", headers=headers)).json()["items"]
    assert sorted(m["content"] for m in items) == ["Has a dog named Rex.", "Works at Acme Corp."]
    acme = next(m for m in items if "Acme" in m["content"])
    r = await client.delete(f"/api/memories/{acme['id']}", headers=headers)
    assert r.status_code == 204
    r = await client.delete(f"/api/memories/{acme['id']}", headers=headers)
    assert r.status_code == 404
    await _say(client, headers, "what is Acme?", agent_id=agent["id"])
    assert "Acme" not in probe.last and "Rex" in probe.last

    # PATCH, then DELETE all of one agent's
    rex = next(m for m in items if "Rex" in m["content"])
    r = await client.patch(
        f"/api/memories/{rex['id']}", json={"content": "Has a dog named Max."}, headers=headers
    )
    assert r.status_code == 200 and r.json()["content"] == "Has a dog named Max."
    await _say(client, headers, "what is the dog?", agent_id=agent["id"])
    assert "Max" in probe.last and "Rex" not in probe.last
    r = await client.delete("/api/memories", params={"agent_id": agent["id"]}, headers=headers)
    assert r.status_code == 200 and r.json() == {"deleted": 1}
    await _say(client, headers, "what is the dog?", agent_id=agent["id"])
    assert "Max" not in probe.last
    assert (await client.get("/api/memories", headers=headers)).json()["items"] == []
    # the forgotten texts are gone from SQL (tombstones hold no text)
    async with runtime.engine.connect() as conn:
        texts = [r.content for r in await conn.execute(select(tables.memories.c.content))]
    assert not any(word in " ".join(texts) for word in ("Porto", "Acme", "Max", "Rex"))


async def test_memory_off_gives_nothing_and_keeps_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    probe = install_probe(runtime)
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE_MODEL, memory={"enabled": False})
    answer = await _say(client, headers, "remember: Likes jazz.", agent_id=agent["id"])
    assert "tool_calls" not in answer["agent_message"]["metadata"]
    assert probe.tools[-1] == []  # neither remember nor forget offered
    assert "memory" not in probe.last
    assert (await client.get("/api/memories", headers=headers)).json()["items"] == []


async def test_a_failing_summary_leaves_turns_working(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise RuntimeError("the summary model is down")

    runtime.models.override("test:broken-summary", FunctionModel(broken))
    assert runtime.memory is not None
    runtime.memory.worker.summarizer.model = "test:broken-summary"
    install_probe(runtime)
    headers = await register_and_login(client)
    agent = await create_agent(client, headers, model=PROBE_MODEL)
    me = (await client.get("/api/users/me", headers=headers)).json()
    cid = await seed_conversation(
        runtime,
        user_id=uuid.UUID(me["id"]),
        agent_id=uuid.UUID(agent["id"]),
        contents=[_filler(seq) for seq in range(1, 41)],
    )
    for _ in range(3):
        await _say(client, headers, "what is topic 3?", conversation_id=cid)
        await runtime.memory.worker.drain()
    assert runtime.memory.worker.stats.failures >= 1
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(tables.conversation_summaries))).all()
    assert rows == []
    r = await client.get(f"/api/conversations/{cid}", headers=headers)
    assert r.json()["message_count"] == 46
