"""After healing: read both stores whole and count what the clients' history says about them."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from employeevirtual.stores.mongo.documents import DocumentStore
from employeevirtual.stores.sql.tables import conversations, messages
from employeevirtual.sync.reconcile import Reconciler
from tools.faults.workload import Op

__all__ = ["Counts", "Snapshot", "converge", "count"]

Placement = tuple[str, int]  # (conversation id, seq)


@dataclass
class Snapshot:
    sql: dict[str, Placement]
    mongo: dict[str, Placement]
    sql_contents: dict[str, str]  # message id -> content, user messages only
    mongo_contents: dict[str, str]
    behind: int  # conversations with synced_seq < message_count
    counters_off: list[str]  # conversations whose counters disagree (SQL rows, Mongo docs)

    @property
    def converged(self) -> bool:
        return self.sql == self.mongo and not self.behind and not self.counters_off


@dataclass
class Counts:
    scenario: str
    attempted: int = 0
    acknowledged: int = 0
    retried: int = 0  # requests sent again with their key (errors, timeouts, 409)
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    converge_seconds: float | None = None
    faults: str = ""
    sql_messages: int = 0
    stores_equal: bool = False
    # how long clients were kept waiting for an answer, retries included (the longest, and
    # the 99th percentile), and how many gave up unanswered
    blocked_max: float = 0.0
    blocked_p99: float = 0.0
    gave_up: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and self.stores_equal
            and self.converge_seconds is not None
        )


async def snapshot(engine: AsyncEngine, mongo_url: str, database: str) -> Snapshot:
    m, c = messages.c, conversations.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(m.id, m.conversation_id, m.seq, m.content, m.message_type))
        ).all()
        convs = (await conn.execute(select(c.id, c.message_count, c.synced_seq))).all()
    sql = {str(r[0]): (str(r[1]), int(r[2])) for r in rows}
    sql_contents = {str(r[0]): r[3] for r in rows if r[4] == "user"}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, serverSelectionTimeoutMS=5000
    )
    try:
        db = client[database]
        mongo: dict[str, Placement] = {}
        mongo_contents: dict[str, str] = {}
        async for d in db.chat_messages.find(
            {}, {"conversation_id": 1, "seq": 1, "content": 1, "message_type": 1}
        ):
            mongo[d["_id"]] = (d["conversation_id"], d["seq"])
            if d.get("message_type") == "user":
                mongo_contents[d["_id"]] = d.get("content", "")
        docs = {
            d["_id"]: d.get("metadata") or {}
            async for d in db.chat_conversations.find({}, {"metadata": 1})
        }
    finally:
        await client.close()
    off = []
    held = Counter(conv for conv, _ in sql.values())
    for cid, count, _synced in convs:
        meta = docs.get(str(cid), {})
        if (
            held[str(cid)] != count
            or meta.get("message_count") != count
            or (meta.get("last_seq") != count)
        ):
            off.append(str(cid))
    behind = sum(1 for _cid, count, synced in convs if synced < count)
    return Snapshot(sql, mongo, sql_contents, mongo_contents, behind, off)


async def converge(
    engine: AsyncEngine,
    mongo_url: str,
    database: str,
    *,
    timeout: float,  # noqa: ASYNC109
) -> tuple[Snapshot, float | None]:
    """Poll until both stores hold the same messages and every marker is caught up."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            snap = await snapshot(engine, mongo_url, database)
        except ConnectionFailure:
            # MongoDB still coming back: a restarted SecantusDB child takes seconds to listen on
            # a busy machine (the relay waits for it too); converging is still timed
            if loop.time() - started > timeout:
                raise
            await asyncio.sleep(0.2)
            continue
        if snap.converged:
            return snap, loop.time() - started
        if loop.time() - started > timeout:
            return snap, None
        await asyncio.sleep(0.2)


async def count(
    counts: Counts,
    ops: list[Op],
    snap: Snapshot,
    *,
    engine: AsyncEngine,
    mongo_url: str,
    database: str,
) -> Counts:
    """Fill ``counts`` from the clients' history and the stores."""
    counts.attempted = len(ops)
    counts.sql_messages = len(snap.sql)
    waits = sorted(op.waited for op in ops)
    if waits:
        counts.blocked_max = waits[-1]
        counts.blocked_p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    counts.gave_up = sum(1 for op in ops if not op.acknowledged)
    attempted_tokens = {op.token for op in ops}
    for op in ops:
        counts.retried += op.retried
        counts.unexpected += len(op.anomalies)
        counts.notes.extend(op.anomalies[:3])
        if not op.acknowledged:
            continue
        counts.acknowledged += 1
        body = op.bodies[0]
        for part in ("user_message", "agent_message"):
            message = body[part]
            placement = (message["conversation_id"], message["seq"])
            if snap.sql.get(message["id"]) != placement or snap.mongo.get(message["id"]) != (
                placement
            ):
                counts.lost += 1
                counts.notes.append(f"lost {part} of {op.key}")
                break
        if body["user_message"]["content"] != op.token:
            counts.unexpected += 1
            counts.notes.append(f"acknowledged body of {op.key} holds another message")
    for contents in (snap.sql_contents, snap.mongo_contents):
        for token, n in Counter(contents.values()).items():
            if token in attempted_tokens and n > 1:
                counts.duplicated += n - 1
                counts.notes.append(f"{token} stored {n} times")
            elif token not in attempted_tokens:
                counts.unexpected += 1
                counts.notes.append(f"a message nobody sent: {token[:40]}")
    counts.stores_equal = snap.sql == snap.mongo
    if not counts.stores_equal:
        only_sql = len(set(snap.sql) - set(snap.mongo))
        only_mongo = len(set(snap.mongo) - set(snap.sql))
        counts.unexpected += only_mongo
        counts.notes.append(f"stores differ: {only_sql} only in SQL, {only_mongo} only in MongoDB")
    if snap.counters_off:
        counts.unexpected += len(snap.counters_off)
        counts.notes.append(f"{len(snap.counters_off)} conversation(s) with wrong counters")
    # the reconciler's own verdict, deep: ids, seqs, counters, last activity, orphans
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        documents = DocumentStore(client[database], window=50)
        report = await Reconciler(engine, documents, grace_seconds=0).run(repair=False)
    finally:
        await client.close()
    if report.drifts:
        counts.unexpected += len(report.drifts)
        counts.notes.extend(f"drift {d.kind}: {d.detail}" for d in report.drifts[:3])
    return counts
